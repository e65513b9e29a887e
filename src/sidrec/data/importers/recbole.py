"""RecBole atomic files: `NAME.inter` (+ optional `NAME.item`), tab-separated, typed headers.

Header fields look like `item_id:token`, `movie_title:token_seq`, `timestamp:float`. The files are
unquoted TSV: every line has exactly as many tab-separated fields as the header (a quote is plain
text). The item file's text fields become title / categories / extra columns:
- a field named like `*title*` → title; `class`, `genre(s)`, `categories` → categories (space-split
  token_seq); `brand` → brand; `description` → description; any other field → an extra column.

Timestamps (`timestamp:float`) must be finite unix seconds, ≥ 0 and not in the future (no lower era
bound: RecBole datasets span decades). The item file is optional; when present, its defects are errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pandas as pd

from sidrec.data.build import Protocol, build_dataset
from sidrec.data.dataset import Dataset, FilterRecord
from sidrec.data.importers.reading import CSV_FIELD_LIMIT, check_field_lengths, check_unix_seconds, open_text
from sidrec.errors import DataError

_CATEGORY_FIELDS = {"class", "genre", "genres", "categories", "category"}
FIELD_TYPES = ("token", "token_seq", "float", "float_seq")


def read_atomic(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read one atomic file; returns the frame (all strings, names without types, indexed by the
    1-based line of each row) and field → type. Raises DataError (line, field) for a header field
    without a known type, a repeated field, a row whose field count differs from the header's and
    a field above the csv field limit."""
    with open_text(path) as f:
        lines: Iterator[str] = iter(f)
        first = next(lines, "").rstrip("\r\n")
        if not first.strip():
            raise DataError("empty file (no header)", path=path, line=1,
                            hint="RecBole atomic files start with a header like user_id:token")
        fields = _header_fields(first.split("\t"), path)
        n = len(fields)
        columns: list[list[str]] = [[] for _ in range(n)]
        numbers: list[int] = []
        for k, text in enumerate(lines, start=2):
            text = text.rstrip("\r\n")
            if not text:
                continue
            parts = text.split("\t")
            if len(text) > CSV_FIELD_LIMIT:
                check_field_lengths([parts], path, first_line=k)
            if len(parts) != n:
                _field_count_error(path, n, k, len(parts), lines if not numbers else None)
            for column, value in zip(columns, parts):
                column.append(value)
            numbers.append(k)
    df = pd.DataFrame(dict(zip(fields, columns)), index=pd.Index(numbers, dtype="int64"), dtype=str)
    return df, fields


def _header_fields(header: list[str], path: Path) -> dict[str, str]:
    fields: dict[str, str] = {}
    for col in (c.strip() for c in header):
        if ":" not in col:
            raise DataError(f"header field '{col}' has no ':type' suffix", path=path, line=1, field=col,
                            hint="RecBole atomic files name fields like item_id:token")
        name, typ = col.rsplit(":", 1)
        if typ not in FIELD_TYPES:
            raise DataError(f"header field '{col}' has the unknown type '{typ}'", path=path, line=1, field=name,
                            hint=f"RecBole types are {', '.join(FIELD_TYPES)}")
        if name in fields:
            raise DataError(f"header field '{name}' appears twice", path=path, line=1, field=name)
        fields[name] = typ
    return fields


def _field_count_error(path: Path, expected: int, line: int, got: int, rest: Iterator[str] | None) -> NoReturn:
    """Raise for a row of `got` fields; when it is the first row and the next row has as many, the
    header is what is short (or long): say so rather than blame the row."""
    if rest is not None:
        following = next((t.rstrip("\r\n") for t in rest if t.rstrip("\r\n")), None)
        if following is not None and len(following.split("\t")) == got:
            raise DataError(f"the header names {expected} fields but the rows have {got} (line {line} and the next)",
                            path=path, line=1, hint="give every column a name:type in the header")
    raise DataError(f"{got} tab-separated fields where the header (line 1) has {expected}", path=path, line=line,
                    hint="a stray or missing tab; RecBole files are unquoted TSV")


def _check_numeric(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = values.isna()
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"'{df[col].iloc[i][:60]}' is not a number", path=path, line=int(df.index[i]), field=col)
    return values


def _check_ids(df: pd.DataFrame, cols: tuple[str, ...], path: Path) -> None:
    for col in cols:
        empty = df[col].str.strip() == ""
        if empty.any():
            line = int(df.index[int(empty.to_numpy().nonzero()[0][0])])
            raise DataError(f"empty {col} ({int(empty.sum())} such rows)", path=path, line=line, field=col)


def import_recbole(
    path: str | Path,
    *,
    name: str | None = None,
    protocol: Protocol = "leave-one-out",
    max_history: int = 20,
    min_rating: float | None = None,
) -> Dataset:
    """Import a RecBole dataset folder (or the path of its .inter file).

    Raises DataError naming the file, line and field for malformed headers and rows, empty ids,
    bad timestamps, items missing from the .item file and repeated item ids there."""
    path = Path(path)
    inter_path = path if path.suffix == ".inter" else _one(path, ".inter")
    name = name or inter_path.stem
    item_path = inter_path.with_suffix(".item")
    inter, fields = read_atomic(inter_path)
    for col in ("user_id", "item_id"):
        if col not in fields:
            raise DataError("missing field", path=inter_path, line=1, field=f"{col}:token")
    if inter.empty:
        raise DataError("no interactions (only a header)", path=inter_path)
    _check_ids(inter, ("user_id", "item_id"), inter_path)
    filters: list[FilterRecord] = []
    if "timestamp" in fields:
        seconds = _check_numeric(inter, "timestamp", inter_path)
        inter["timestamp"] = check_unix_seconds(seconds.to_numpy(), inter_path, "timestamp",
                                                lines=inter.index.tolist())
        time_kind = "timestamp"
    else:
        inter["timestamp"] = inter.groupby("user_id").cumcount()
        time_kind = "order"
    if min_rating is not None:
        if "rating" not in fields:
            raise DataError("min_rating given but the file has no rating field", path=inter_path, field="rating")
        rating = _check_numeric(inter, "rating", inter_path)
        keep = rating >= min_rating
        filters.append(FilterRecord(name="min_rating", description=f"rating < {min_rating}",
                                    removed_interactions=int((~keep).sum())))
        inter = inter[keep]
    if item_path.exists():
        items_raw, item_fields = read_atomic(item_path)
        if "item_id" not in item_fields:
            raise DataError("missing field", path=item_path, line=1, field="item_id:token")
        _check_ids(items_raw, ("item_id",), item_path)
        dup = items_raw["item_id"].duplicated()
        if dup.any():
            i = int(dup.to_numpy().nonzero()[0][0])
            item = items_raw["item_id"].iloc[i]
            first = int(items_raw.index[int((items_raw["item_id"] == item).to_numpy().nonzero()[0][0])])
            raise DataError(f"duplicate item_id '{item}' (first on line {first})", path=item_path,
                            line=int(items_raw.index[i]), field="item_id")
        items = _items_from_fields(items_raw)
        unknown = ~inter["item_id"].isin(set(items["item_id"]))
        if unknown.any():
            i = int(unknown.to_numpy().nonzero()[0][0])
            raise DataError(f"item_id '{inter['item_id'].iloc[i]}' has no row in {item_path.name}",
                            path=inter_path, line=int(inter.index[i]), field="item_id",
                            hint=f"{int(unknown.sum())} interactions mention items missing from {item_path.name}")
    else:
        items = pd.DataFrame({"item_id": pd.unique(inter["item_id"])})
    return build_dataset(
        name=name,
        source=str(inter_path.parent),
        format="recbole",
        items=items,
        interactions=inter,
        protocol=protocol,
        max_history=max_history,
        filters=filters,
        time_kind=time_kind,
        notes=[] if item_path.exists() else [f"no {item_path.name}: items have no text"],
    )


def _items_from_fields(raw: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"item_id": raw["item_id"]})
    for col in raw.columns:
        if col == "item_id":
            continue
        low = col.lower()
        if "title" in low and "title" not in out:
            out["title"] = raw[col]
        elif low in _CATEGORY_FIELDS:
            out["categories"] = raw[col].map(lambda s: s.split() if s else [])
        elif low in ("brand", "description"):
            out[low] = raw[col]
        else:
            out[col] = raw[col]
    return out


def _one(folder: Path, suffix: str) -> Path:
    found = sorted(folder.glob(f"*{suffix}"))
    if not found:
        raise DataError(f"no *{suffix} file", path=folder, hint="point at a RecBole dataset folder")
    if len(found) > 1:
        raise DataError(f"several *{suffix} files: {[f.name for f in found]}", path=folder,
                        hint="pass the path of the one to import")
    return found[0]
