"""LC-Rec json layout: `X.inter.json` with `X.index.json` and / or `X.item.json`.

- `X.inter.json`: `{user: [item, ...]}`, each list in chronological order. No timestamps, so the
  canonical timestamp is the position in the user's list and time_kind is "order".
- `X.item.json` (optional): `{item: {"title", "description", "brand", "categories"}}`; any other
  field becomes an extra text column. Every field is a string, a list of strings or null (a
  number or an object is an error, never stored as its repr).
- `X.index.json`: `{item: ["<a_1>", "<b_2>", ...]}`: semantic IDs that came with the source, kept
  as `Dataset.external_sids`; every SID has the same number of tokens. Required unless `X.item.json`
  is present (without either, the items would have neither SIDs nor text).

The json files refuse duplicate keys (the last would win and a user's sequence would be lost),
NaN / Infinity and deep nesting. Item ids in `X.inter.json` are integers (or strings of digits);
a user whose list is empty is left out and counted (filter `empty_sequences`).

Item row order: the keys of `X.item.json` when present, else the keys of `X.index.json`.
"""

from __future__ import annotations

import ast
import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pandas as pd

from sidrec.data.build import Protocol, build_dataset
from sidrec.data.dataset import Dataset, FilterRecord
from sidrec.data.importers.reading import MAX_JSON_DEPTH, load_json, read_text
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
    Raises DataError for unreadable json, sequences that are not lists of item ids, items missing
    from the item / index file, items without a SID, SIDs of unequal length and a folder without
    `X.index.json` (and without `X.item.json`).
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

    if not index_path.exists() and not item_path.exists():
        raise DataError(
            f"no {index_path.name} (and no {item_path.name}): the items would have neither SIDs nor text",
            path=inter_path.parent,
            hint=f"an LC-Rec folder holds {inter_path.name} with {index_path.name} (and optionally {item_path.name})",
        )
    interactions, empty_users = read_inter_json(inter_path)
    external_sids = read_index_json(index_path) if index_path.exists() else None
    notes: list[str] = []
    filters: list[FilterRecord] = []
    if empty_users:
        filters.append(FilterRecord(
            name="empty_sequences",
            description=f"users whose item list in {inter_path.name} is empty (e.g. '{empty_users[0]}')",
            removed_users=len(empty_users),
        ))
    if item_path.exists():
        items = read_item_json(item_path)
        _check_known_items(interactions, items, inter_path, item_path)
    else:
        notes.append(f"no {item_path.name}: items have no text (title, description, brand, categories are empty)")
        assert external_sids is not None  # checked above: without X.item.json, X.index.json is required
        items = pd.DataFrame({"item_id": pd.Series(list(external_sids), dtype=str)})
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
        filters=filters,
        time_kind="order",
        external_sids=external_sids,
        notes=notes,
    )


_INTEGER = re.compile(r"[0-9]+")


def read_inter_json(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """Read `{user: [item, ...]}`; returns user_id, item_id (str) and timestamp = position (int64),
    and the users whose list is empty (left out). Raises DataError naming the user for a value that
    is not a list of integer item ids (ints, or strings of digits)."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DataError("expected a json object {user: [item, ...]}", path=path, line=1)
    users: list[str] = []
    item_ids: list[str] = []
    positions: list[int] = []
    empty: list[str] = []
    hint = "each value must be the user's list of integer item ids in chronological order"
    for user, seq in data.items():
        if not isinstance(seq, list):
            raise DataError(f"the sequence of user '{user}' is {_json_kind(seq)}, not a list", path=path,
                            field=str(user), hint=hint)
        if not seq:
            empty.append(str(user))
            continue
        if not all(type(i) is int for i in seq):
            for pos, i in enumerate(seq):
                if not (type(i) is int or isinstance(i, str) and _INTEGER.fullmatch(i)):
                    raise DataError(f"item {pos + 1} of the sequence of user '{user}' is {_json_kind(i)}, "
                                    "not an integer item id", path=path, field=str(user), hint=hint)
        users.extend([str(user)] * len(seq))
        item_ids.extend(str(i) for i in seq)
        positions.extend(range(len(seq)))
    frame = pd.DataFrame(
        {
            "user_id": pd.Series(users, dtype=str),
            "item_id": pd.Series(item_ids, dtype=str),
            "timestamp": pd.Series(positions, dtype="int64"),
        }
    )
    return frame, empty


def read_item_json(path: Path) -> pd.DataFrame:
    """Read `{item: {title, description, brand, categories, ...}}`; returns one row per item (file order)."""
    data = _load_json(path)
    if not isinstance(data, dict):
        raise DataError("expected a json object {item: {title, ...}}", path=path, line=1)
    rows: list[dict[str, Any]] = []
    for item_id, meta in data.items():
        if not isinstance(meta, dict):
            raise DataError(
                f"the entry of item '{item_id}' is {_json_kind(meta)}, not an object",
                path=path,
                field=str(item_id),
            )
        row: dict[str, Any] = {"item_id": str(item_id)}
        for key, value in meta.items():
            if not (value is None or isinstance(value, str)
                    or isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise DataError(f"the {key} of item '{item_id}' is {_json_kind(value)}, not a string", path=path,
                                field=f"{item_id}.{key}", hint="text fields are strings (or lists of strings, or null)")
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
        if not isinstance(tokens, list) or not tokens or not all(isinstance(t, str) and t.strip() for t in tokens):
            raise DataError(
                f"the SID of item '{item_id}' must be a non-empty list of token strings, got {_json_kind(tokens)}",
                path=path,
                field=str(item_id),
            )
        sids[str(item_id)] = list(tokens)
    lengths = Counter(len(t) for t in sids.values())
    if len(lengths) > 1:
        common, n_common = lengths.most_common(1)[0]
        odd = next(i for i, t in sids.items() if len(t) != common)
        raise DataError(
            f"the SID of item '{odd}' has {len(sids[odd])} tokens where {n_common} of the {len(sids)} items "
            f"have {common}",
            path=path,
            field=odd,
            hint=f"every SID has one token per level; {len(sids) - n_common} items differ",
        )
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


def _json_kind(value: Any) -> str:
    """'a JSON string ("1,2,3")': the JSON type of a value and its start, for error messages."""
    kinds = {str: "string", dict: "object", list: "array", bool: "boolean", type(None): "null"}
    kind = kinds.get(type(value), "number")
    text = json.dumps(value, ensure_ascii=False, default=str)
    return f"a JSON {kind} ({text[:60]}{'…' if len(text) > 60 else ''})"


class _Constant(str):
    """A NaN / Infinity met while locating it (json's parse_constant hook)."""


def _load_json(path: Path) -> Any:
    """`load_json`, with a NaN / Infinity error that names where it stands ('item.title')."""
    try:
        return load_json(path)
    except DataError as e:
        where = _constant_at(path)
        if where is None:
            raise
        raise DataError(f"{where[1]} is not a JSON value (write null, a number or a string)", path=path,
                        field=where[0]) from e


def _constant_at(path: Path) -> tuple[str, str] | None:
    """(key path, name) of the first NaN / Infinity of a JSON document, if it parses with them."""
    try:
        data = json.loads(read_text(path), parse_constant=_Constant)
    except (DataError, ValueError, RecursionError):
        return None

    def find(value: Any, where: str, depth: int) -> tuple[str, str] | None:
        if isinstance(value, _Constant):
            return where, str(value)
        if depth > MAX_JSON_DEPTH or not isinstance(value, dict | list):
            return None
        pairs = value.items() if isinstance(value, dict) else enumerate(value)
        for k, v in pairs:
            sub = (f"{where}.{k}" if where else str(k)) if isinstance(value, dict) else f"{where}[{k}]"
            found = find(v, sub, depth + 1)
            if found is not None:
                return found
        return None

    return find(data, "", 0)


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
