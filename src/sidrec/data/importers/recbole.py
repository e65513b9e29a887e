"""RecBole atomic files: `NAME.inter` (+ optional `NAME.item`), tab-separated, typed headers.

Header fields look like `item_id:token`, `movie_title:token_seq`, `timestamp:float`. The item
file's text fields become title / categories / extra columns:
- a field named like `*title*` → title; `class`, `genre(s)`, `categories` → categories (space-split
  token_seq); `brand` → brand; `description` → description; any other field → an extra column.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sidrec.data.build import Protocol, build_dataset
from sidrec.data.dataset import Dataset, FilterRecord
from sidrec.errors import DataError

_CATEGORY_FIELDS = {"class", "genre", "genres", "categories", "category"}


def read_atomic(path: Path) -> tuple[pd.DataFrame, dict[str, str]]:
    """Read one atomic file; returns the frame (all strings, names without types) and field → type."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split("\t")
    fields: dict[str, str] = {}
    for col in header:
        if ":" not in col:
            raise DataError(
                f"header field '{col}' has no ':type' suffix",
                path=path,
                line=1,
                field=col,
                hint="RecBole atomic files name fields like item_id:token",
            )
        name, typ = col.rsplit(":", 1)
        fields[name] = typ
    df = pd.read_csv(path, sep="\t", header=0, names=list(fields), dtype=str, keep_default_na=False,
                     quoting=3, on_bad_lines="error")
    return df, fields


def _check_numeric(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    values = pd.to_numeric(df[col], errors="coerce")
    bad = values.isna()
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise DataError(f"'{df[col].iloc[i]}' is not a number", path=path, line=i + 2, field=col)
    return values


def import_recbole(
    path: str | Path,
    *,
    name: str | None = None,
    protocol: Protocol = "leave-one-out",
    max_history: int = 20,
    min_rating: float | None = None,
) -> Dataset:
    """Import a RecBole dataset folder (or the path of its .inter file)."""
    path = Path(path)
    inter_path = path if path.suffix == ".inter" else _one(path, ".inter")
    name = name or inter_path.stem
    item_path = inter_path.with_suffix(".item")
    try:
        inter, fields = read_atomic(inter_path)
    except pd.errors.ParserError as e:
        raise DataError(f"cannot parse: {e}", path=inter_path) from e
    for col in ("user_id", "item_id"):
        if col not in fields:
            raise DataError("missing field", path=inter_path, line=1, field=f"{col}:token")
    filters: list[FilterRecord] = []
    if "timestamp" in fields:
        inter["timestamp"] = _check_numeric(inter, "timestamp", inter_path).astype("int64")
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
        dup = items_raw["item_id"].duplicated()
        if dup.any():
            i = int(dup.to_numpy().nonzero()[0][0])
            raise DataError(f"duplicate item_id '{items_raw['item_id'].iloc[i]}'", path=item_path, line=i + 2,
                            field="item_id")
        items = _items_from_fields(items_raw)
        unknown = ~inter["item_id"].isin(set(items["item_id"]))
        if unknown.any():
            i = int(unknown.to_numpy().nonzero()[0][0])
            raise DataError(f"item_id '{inter['item_id'].iloc[i]}' has no row in {item_path.name}",
                            path=inter_path, line=int(inter.index[i]) + 2, field="item_id")
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
