"""LC-Rec json layout: `X.inter.json` (+ optional `X.item.json`, `X.index.json`).

- `X.inter.json`: `{user: [item, ...]}`, each list in chronological order. No timestamps, so the
  canonical timestamp is the position in the user's list and time_kind is "order".
- `X.item.json` (optional): `{item: {"title", "description", "brand", "categories"}}`; any other
  string field becomes an extra text column.
- `X.index.json` (optional): `{item: ["<a_1>", "<b_2>", ...]}`: semantic IDs that came with the
  source, kept as `Dataset.external_sids`.

Item row order: the keys of `X.item.json` when present, else the keys of `X.index.json`, else the
order of first appearance in `X.inter.json`.
"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

from sidrec.data.build import Protocol, build_dataset
from sidrec.data.dataset import Dataset
from sidrec.errors import ConfigError, DataError

INTER_SUFFIX = ".inter.json"
ITEM_SUFFIX = ".item.json"
INDEX_SUFFIX = ".index.json"


def import_lcrec(
    path: str | Path,
    *,
    name: str | None = None,
    protocol: Protocol = "leave-one-out",
    max_history: int = 20,
) -> Dataset:
    """Import an LC-Rec dataset folder (or the path of its `X.inter.json`).

    Takes the folder, an optional dataset name (default: `X`), the split protocol (only
    leave-one-out: the source has no timestamps) and the history length. Returns the canonical
    Dataset with time_kind "order" and the SIDs of `X.index.json`, if any, as `external_sids`.
    Raises DataError for unreadable json, non-list sequences, items missing from the item file
    and items without a SID.
    """
    if protocol != "leave-one-out":
        raise ConfigError(
            f"protocol '{protocol}' needs timestamps; LC-Rec files only give the order: use leave-one-out"
        )
    inter_path = _inter_file(Path(path))
    stem = inter_path.name[: -len(INTER_SUFFIX)]
    name = name or stem
    item_path = inter_path.with_name(stem + ITEM_SUFFIX)
    index_path = inter_path.with_name(stem + INDEX_SUFFIX)

    interactions = read_inter_json(inter_path)
    external_sids = read_index_json(index_path) if index_path.exists() else None
    notes: list[str] = []
    if item_path.exists():
        items = read_item_json(item_path)
        _check_known_items(interactions, items, inter_path, item_path)
    else:
        notes.append(f"no {item_path.name}: items have no text (title, description, brand, categories are empty)")
        order = list(external_sids) if external_sids is not None else list(pd.unique(interactions["item_id"]))
        items = pd.DataFrame({"item_id": pd.Series(order, dtype=str)})
        if external_sids is not None:
            _check_known_items(interactions, items, inter_path, index_path)
    if external_sids is not None:
        check_sids_cover_items(external_sids, items, index_path)
        notes.append(f"external SIDs from {index_path.name}: {sid_summary(external_sids)}")
    return build_dataset(
        name=name,
        source=str(inter_path.parent),
        format="lcrec",
        items=items,
        interactions=interactions,
        protocol="leave-one-out",
        max_history=max_history,
        time_kind="order",
        external_sids=external_sids,
        notes=notes,
    )


def read_inter_json(path: Path) -> pd.DataFrame:
    """Read `{user: [item, ...]}`; returns user_id, item_id (str) and timestamp = position (int64)."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DataError("expected a json object {user: [item, ...]}", path=path, line=1)
    users: list[str] = []
    item_ids: list[str] = []
    positions: list[int] = []
    for user, seq in data.items():
        if not isinstance(seq, list):
            raise DataError(
                f"the sequence of user '{user}' is a {type(seq).__name__}, not a list",
                path=path,
                field=str(user),
                hint="each value must be the user's item list in chronological order",
            )
        users.extend([str(user)] * len(seq))
        item_ids.extend(str(i) for i in seq)
        positions.extend(range(len(seq)))
    return pd.DataFrame(
        {
            "user_id": pd.Series(users, dtype=str),
            "item_id": pd.Series(item_ids, dtype=str),
            "timestamp": pd.Series(positions, dtype="int64"),
        }
    )


def read_item_json(path: Path) -> pd.DataFrame:
    """Read `{item: {title, description, brand, categories, ...}}`; returns one row per item (file order)."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DataError("expected a json object {item: {title, ...}}", path=path, line=1)
    rows: list[dict[str, Any]] = []
    for item_id, meta in data.items():
        if not isinstance(meta, dict):
            raise DataError(
                f"the entry of item '{item_id}' is a {type(meta).__name__}, not an object",
                path=path,
                field=str(item_id),
            )
        row: dict[str, Any] = {"item_id": str(item_id)}
        for key, value in meta.items():
            if key == "categories":
                row[key] = categories_of(value)
            else:
                row[key] = text_of(value, parse_list_literal=key == "description")
        rows.append(row)
    return pd.DataFrame(rows, columns=_columns(rows))


def read_index_json(path: Path) -> dict[str, list[str]]:
    """Read `{item: [token, ...]}`; returns item_id (str) → list of SID tokens."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DataError("expected a json object {item: [token, ...]}", path=path, line=1)
    sids: dict[str, list[str]] = {}
    for item_id, tokens in data.items():
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) for t in tokens):
            raise DataError(
                f"the SID of item '{item_id}' must be a non-empty list of token strings, got {tokens!r}",
                path=path,
                field=str(item_id),
            )
        sids[str(item_id)] = list(tokens)
    return sids


def text_of(value: Any, *, parse_list_literal: bool = False) -> str:
    """A text field as one string: lists are joined with spaces; with `parse_list_literal`, so is a
    string holding a Python list literal (MiniOneRec's descriptions), parsed with ast.literal_eval,
    or, when it is not a valid literal (some are cut or mis-quoted), split on its `', '` separators."""
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v).strip() for v in value if str(v).strip())
    text = str(value).strip()
    if parse_list_literal and text.startswith("[") and text.endswith("]"):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            parsed = _loose_list_items(text)
        if isinstance(parsed, list):
            return text_of(parsed)
    return text


_LIST_SEPARATOR = re.compile(r"""['"]\s*,\s*['"]""")


def _loose_list_items(text: str) -> list[str]:
    """The items of a list-literal-looking string that ast cannot parse: `['a', "b"]` → [a, b]."""
    inner = text[1:-1].strip()
    if len(inner) >= 2 and inner[0] in "'\"" and inner[-1] in "'\"":
        inner = inner[1:-1]
    return _LIST_SEPARATOR.split(inner)


def categories_of(value: Any) -> list[str]:
    """Categories as a list of strings: a list, a stringified list, or one category string."""
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return [text]
        if isinstance(parsed, list):
            return categories_of(parsed)
    return [text] if text else []


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    cols: dict[str, None] = {"item_id": None}
    for row in rows:
        cols.update(dict.fromkeys(row))
    return list(cols)


def _check_known_items(interactions: pd.DataFrame, items: pd.DataFrame, inter_path: Path, items_path: Path) -> None:
    unknown = ~interactions["item_id"].isin(set(items["item_id"]))
    if unknown.any():
        row = interactions[unknown].iloc[0]
        raise DataError(
            f"item '{row['item_id']}' (position {row['timestamp']} of user '{row['user_id']}') "
            f"is not in {items_path.name}",
            path=inter_path,
            field=str(row["user_id"]),
            hint=f"{int(unknown.sum())} interactions mention items missing from {items_path.name}",
        )


def check_sids_cover_items(sids: dict[str, list[str]], items: pd.DataFrame, index_path: Path) -> None:
    """Raise DataError unless `sids` has exactly one SID per item of `items` (no more, no fewer)."""
    missing = [i for i in items["item_id"] if i not in sids]
    if missing:
        raise DataError(
            f"{len(missing)} items have no SID, e.g. '{missing[0]}'",
            path=index_path,
            field=missing[0],
            hint="the index file must give a SID for every item",
        )
    known = set(items["item_id"])
    extra = [i for i in sids if i not in known]
    if extra:
        raise DataError(
            f"{len(extra)} SIDs are for items that are not in the dataset, e.g. '{extra[0]}'",
            path=index_path,
            field=extra[0],
        )


def sid_summary(sids: dict[str, list[str]]) -> str:
    """A one-line description of a SID table: items, tokens per SID, distinct SIDs."""
    lengths = sorted({len(t) for t in sids.values()})
    distinct = len({tuple(t) for t in sids.values()})
    return f"{len(sids)} items, {'/'.join(map(str, lengths))} tokens each, {distinct} distinct"


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid json: {e.msg}", path=path, line=e.lineno, hint=f"column {e.colno}") from e


def _inter_file(path: Path) -> Path:
    if path.is_file():
        if not path.name.endswith(INTER_SUFFIX):
            raise DataError(f"not an LC-Rec interaction file (expected *{INTER_SUFFIX})", path=path)
        return path
    if not path.is_dir():
        raise DataError("no such file or folder", path=path)
    found = sorted(path.glob(f"*{INTER_SUFFIX}"))
    if not found:
        raise DataError(f"no *{INTER_SUFFIX} file", path=path, hint="point at an LC-Rec dataset folder")
    if len(found) > 1:
        raise DataError(
            f"several *{INTER_SUFFIX} files: {[f.name for f in found]}",
            path=path,
            hint="pass the path of the one to import",
        )
    return found[0]
