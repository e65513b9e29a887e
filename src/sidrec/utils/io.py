"""Atomic writes: an artifact is either absent or complete, never half-written."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import yaml


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is renamed onto `path` (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_dir(directory: str | Path) -> Iterator[Path]:
    """Yield an empty temporary folder beside `directory`; on success it replaces `directory`
    (rename-based: readers see the old folder or the new one, never a half-written one)."""
    import shutil

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".tmp", dir=directory.parent))
    old: Path | None = None
    try:
        yield tmp
        if directory.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", suffix=".old", dir=directory.parent))
            old.rmdir()
            os.replace(directory, old)
            os.replace(tmp, directory)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, directory)
    finally:
        if old is not None and old.exists() and not directory.exists():
            os.replace(old, directory)  # interrupted between the renames: the previous version stays
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    # a SIGKILL between the two renames skips this `finally`: `reconcile_atomic_leftovers` finishes it


def reconcile_atomic_leftovers(folder: str | Path) -> list[str]:
    """Finish or undo what a killed `atomic_path` / `atomic_dir` left in `folder`; returns what was done.

    A `.NAME.*.tmp` file is an unfinished write (removed). For folders, a kill can fall between the
    two renames of a swap: `NAME` is then missing while `.NAME.*.old` (the previous version) and
    `.NAME.*.tmp` (the new one, complete: the swap only starts after it was written) both exist; the
    new one is put in place. With `NAME` present, leftovers are stale and removed.
    """
    import shutil

    folder = Path(folder)
    if not folder.is_dir():
        return []
    done: list[str] = []
    leftovers: dict[str, dict[str, list[Path]]] = {}
    for p in folder.iterdir():
        if not p.name.startswith(".") or p.suffix not in (".tmp", ".old"):
            continue
        name = p.name[1:].rsplit(".", 2)[0]
        leftovers.setdefault(name, {".tmp": [], ".old": []})[p.suffix].append(p)
    for name, kinds in sorted(leftovers.items()):
        target = folder / name
        if not target.exists() and kinds[".old"]:
            new = [p for p in kinds[".tmp"] if p.is_dir()]
            chosen = new[0] if len(new) == 1 else max(kinds[".old"], key=lambda p: p.stat().st_mtime)
            os.replace(chosen, target)
            done.append(f"{name}: completed an interrupted swap from {chosen.name}")
        for p in kinds[".tmp"] + kinds[".old"]:
            if p.exists():
                shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink()
                done.append(f"removed the leftover {p.name}")
    return done


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_yaml(path: str | Path, obj: Any) -> None:
    write_text(path, yaml.safe_dump(json.loads(json.dumps(obj, default=_json_default)), sort_keys=False))


def read_yaml(path: str | Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def read_config(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping (empty file → {}); ConfigError naming the file when it is
    missing, not valid YAML (with the line) or not a mapping of keys to values."""
    from sidrec.errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        value = read_yaml(path)
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}); re-encode the file as UTF-8") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML ({problem})") from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys to values, not a YAML {type(value).__name__}")
    return value


def write_parquet(path: str | Path, df: pd.DataFrame) -> None:
    with atomic_path(path) as tmp:
        df.to_parquet(tmp, index=False)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):  # numpy / torch scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def merge_config(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Nested dict merge (update wins). A dotted key `a.b.c` (a `--set` override) addresses one field,
    and its value replaces that field, a mapping included: `data.tasks={seqrec: 1.0}` leaves no other
    task behind (`data.tasks.item2sid=0` turns one off)."""
    out = dict(base)
    for key, value in update.items():
        if "." in key:
            head, rest = key.split(".", 1)
            out[head] = _set_field(out.get(head), rest, value)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_config(out[key], value)
        else:
            out[key] = value
    return out


def _set_field(base: Any, path: str, value: Any) -> dict[str, Any]:
    """`base` (a mapping, or nothing yet) with the field at dotted `path` replaced by `value`."""
    out = dict(base) if isinstance(base, dict) else {}
    head, _, rest = path.partition(".")
    out[head] = _set_field(out.get(head), rest, value) if rest else value
    return out
