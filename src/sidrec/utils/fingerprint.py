"""What a run depends on, recorded so that `--resume` can refuse to mix runs.

A fingerprint is `{"config": {dotted key: value}, "inputs": {name: sha256}}`: the resolved config
flattened to dotted keys, and a content digest of each input (the dataset folder's files, the SID
table). `fingerprint_diff` names every input whose content changed and every config key whose value
changed, so the refusal says exactly what differs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

_CHUNK = 1 << 20


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def folder_digest(folder: str | Path, names: list[str] | None = None) -> str:
    """sha256 over the (name, content digest) of the folder's files (`names`, or every visible file)."""
    folder = Path(folder)
    files = sorted(names) if names is not None else sorted(
        p.name for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    h = hashlib.sha256()
    for name in files:
        path = folder / name
        if path.is_file():
            h.update(f"{name}\0{file_digest(path)}\0".encode())
    return h.hexdigest()


def dataset_digest(folder: str | Path) -> str:
    """Content digest of a sidrec dataset folder (dataset.json, items, interactions and the splits)."""
    return folder_digest(folder, ["dataset.json", "items.parquet", "interactions.parquet",
                                  "train.parquet", "valid.parquet", "test.parquet"])


def flatten(values: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} → {"a.b": 1}; values are JSON-normalised (paths become strings)."""
    values = json.loads(json.dumps(values, default=str))
    out: dict[str, Any] = {}

    def walk(v: Any, key: str) -> None:
        if isinstance(v, dict) and v:
            for k, sub in v.items():
                walk(sub, f"{key}.{k}" if key else str(k))
        else:
            out[key] = v

    walk(values, prefix)
    return out


def fingerprint(config: dict[str, Any], inputs: dict[str, str | None]) -> dict[str, Any]:
    return {"config": flatten(config), "inputs": dict(inputs)}


def fingerprint_diff(saved: dict[str, Any], now: dict[str, Any], free: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    """Human-readable differences: changed inputs first, then changed config keys (`free` keys and
    keys under a free prefix `x.` are allowed to change)."""
    out: list[str] = []
    for name in sorted(set(saved.get("inputs", {})) | set(now.get("inputs", {}))):
        a, b = saved.get("inputs", {}).get(name), now.get("inputs", {}).get(name)
        if a != b:
            out.append(f"the {name} content differs from the one the run was trained on")
    old, new = saved.get("config", {}), now.get("config", {})
    for key in sorted(set(old) | set(new)):
        if key in free or any(key.startswith(f + ".") for f in free):
            continue
        if old.get(key) != new.get(key):
            out.append(f"{key}: {old.get(key)!r} → {new.get(key)!r}")
    return out
