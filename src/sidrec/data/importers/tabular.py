"""Users' own data: an interactions table (CSV or parquet) and an optional items table.

    interactions.csv|parquet   user, item and (optional) time columns, names configurable
    items.csv|parquet          item_id + text columns: title, description, brand, categories
                               (a list in parquet; in CSV a Python list literal or a
                               `categories_sep`-separated string); any other column is kept as
                               an extra text column

Times may be numbers (unix seconds, or ordinal) or ISO 8601 dates; they must be finite, ≥ 0 and
not in the future. Without a time column the row order is the time (time_kind "order"). Errors
name the file, the line (CSV: the line as an editor shows it; parquet: the 1-based row) and the
column: a CSV that is not UTF-8, cannot be parsed, has a header shorter than its rows or a field
over reading.CSV_FIELD_LIMIT characters, and a parquet file that is truncated or not parquet.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from sidrec.data.build import Protocol, build_dataset
from sidrec.data.dataset import Dataset, FilterRecord
from sidrec.data.importers import reading
from sidrec.errors import ConfigError, DataError

TABLE_SUFFIXES = (".csv", ".parquet")
OnUnknownItem = Literal["error", "drop"]


def import_tabular(
    path: str | Path,
    *,
    items_path: str | Path | None = None,
    name: str | None = None,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = "timestamp",
    items_id_col: str = "item_id",
    categories_sep: str = "|",
    protocol: Protocol = "leave-one-out",
    max_history: int | None = None,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    on_unknown_item: OnUnknownItem = "error",
    require_text: bool = False,
) -> Dataset:
    """Import an interactions table (and optionally an items table) into a canonical Dataset.

    Takes the interactions file, or a folder holding `interactions.csv|parquet` and optionally
    `items.csv|parquet`; the column names (time_col=None: the row order is the time); the items
    table (`items_path`, or the folder's `items.*`); the split protocol (history 20 for
    leave-one-out, 10 for temporal, unless `max_history`); what to do with interactions whose item
    has no row in the items table ("error" or "drop", counted); and whether every item must have a
    title (`require_text`). Returns the Dataset. Raises DataError naming the file, line and column.
    """
    if on_unknown_item not in ("error", "drop"):
        raise ConfigError(f"on_unknown_item must be 'error' or 'drop', got {on_unknown_item!r}")
    if time_col is None and protocol == "temporal":
        raise ConfigError("the temporal protocol needs a time column (time_col)")
    inter_path, items_file = _files(Path(path), items_path)
    raw = read_table(inter_path)
    cols = [user_col, item_col] + ([time_col] if time_col else [])
    require_columns(raw, cols, inter_path, hint="pass time_col=None to use the row order" if time_col else None)
    inter = pd.DataFrame({
        "user_id": _ids(raw, user_col, inter_path),
        "item_id": _ids(raw, item_col, inter_path),
    })
    if time_col:
        inter["timestamp"] = parse_times(raw, time_col, inter_path)
    else:
        inter["timestamp"] = inter.groupby("user_id", sort=False).cumcount().astype("int64")
    filters: list[FilterRecord] = []
    notes: list[str] = []
    if items_file is None:
        items = pd.DataFrame({"item_id": pd.unique(inter["item_id"])})
        notes.append("no items table: items have no text")
    else:
        items = read_items_table(items_file, items_id_col, categories_sep)
        notes += _check_titles(items, items_file, require_text)
        inter, rec = _unknown_items(inter, raw, items, inter_path, item_col, items_file, on_unknown_item)
        filters += rec
    return build_dataset(
        name=name or inter_path.parent.name,
        source=str(inter_path),
        format="tabular",
        items=items,
        interactions=inter,
        protocol=protocol,
        max_history=max_history or (10 if protocol == "temporal" else 20),
        ratios=ratios,
        filters=filters,
        time_kind="timestamp" if time_col else "order",
        notes=notes,
    )


# ---------------------------------------------------------------------- tables
def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV (UTF-8, with or without BOM; every value a string, empty cells as "") or parquet
    file; returns it with a RangeIndex (row i is data row i + 1). DataError (file, line, column)
    for a file that is not UTF-8, not parsable, has fewer header names than row fields or a
    field above reading.CSV_FIELD_LIMIT characters, and for a truncated or non-parquet .parquet."""
    if path.suffix == ".parquet":
        return _read_parquet(path)
    if path.suffix == ".csv":
        df = _read_csv(path)
        _check_field_lengths(df, path)
        return df
    raise DataError(f"unsupported table type '{path.suffix}' (use .csv or .parquet)", path=path)


def _read_parquet(path: Path) -> pd.DataFrame:
    """A parquet file as a frame; DataError when it lacks the PAR1 markers (truncated, or another
    format under a .parquet name) or pyarrow cannot read it."""
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(max(0, path.stat().st_size - 4))
        tail = f.read(4)
    if head != b"PAR1" or tail != b"PAR1" or path.stat().st_size < 12:
        kind = "truncated parquet data" if head == b"PAR1" else "not a parquet file"
        raise DataError(f"{kind} (no PAR1 marker at its {'end' if head == b'PAR1' else 'start'})", path=path,
                        hint="write it again (DataFrame.to_parquet), or give a CSV file a .csv name")
    try:
        return pd.read_parquet(path).reset_index(drop=True)
    except (OSError, ValueError, pa.ArrowException) as e:
        raise DataError(f"cannot read the parquet data ({_first_line(e)})", path=path,
                        hint="write it again (DataFrame.to_parquet)") from None


def _read_csv(path: Path) -> pd.DataFrame:
    """A UTF-8 CSV (BOM allowed) as a frame of strings; every pandas failure becomes one DataError
    naming the file and, where it can be found, the line."""
    if reading.is_gzip(path):
        raise DataError("gzip-compressed data under a .csv name", path=path, hint="decompress it (gunzip)")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        reading.read_text(path)  # raises the DataError naming the line
        raise DataError(f"bytes that are not UTF-8 ({e.reason})", path=path,
                        hint="re-encode the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DataError("empty file (no header)", path=path, line=1) from None
    except pd.errors.ParserError as e:
        _find_csv_defect(path)  # raises the DataError naming the line as an editor shows it
        m = re.search(r"(?:line|row) (\d+)", str(e))
        raise DataError(f"cannot parse as CSV ({_first_line(e).removeprefix('Error tokenizing data. ')})",
                        path=path, line=int(m.group(1)) if m else None) from None
    if not isinstance(df.index, pd.RangeIndex):  # pandas takes the surplus leading fields as the index
        raise DataError(f"the header names {len(df.columns)} columns but the rows have "
                        f"{len(df.columns) + df.index.nlevels} fields: the columns would shift", path=path, line=1,
                        hint="add the missing column names to the header")
    return df


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _find_csv_defect(path: Path) -> None:
    """Raise DataError at the first row that the csv module cannot read or that has more fields
    than the header (pandas' own line numbers skip the line breaks inside quoted cells)."""
    width = None
    try:
        for line, row in reading.csv_rows(path):
            if width is None:
                width = len(row)
            elif len(row) > width:
                raise DataError(f"{len(row)} fields, but the header names {width} columns", path=path, line=line,
                                hint="quote values that contain a comma")
    except DataError as e:
        if "unexpected end of data" in e.message:
            raise DataError("a quote opened in this row is never closed", path=path, line=e.line,
                            hint="remove the stray quote, or double quotes inside quoted values") from None
        if "expected after" in e.message:
            raise DataError(f"a stray quote ({e.message})", path=path, line=e.line,
                            hint="quote the whole value and double the quotes inside it") from None
        raise


def _check_field_lengths(df: pd.DataFrame, path: Path) -> None:
    """DataError (line, column) for the first field longer than reading.CSV_FIELD_LIMIT characters."""
    first: tuple[int, str, int] | None = None
    for col in df.columns:
        lengths = df[col].astype(str).str.len().to_numpy()
        long = np.flatnonzero(lengths > reading.CSV_FIELD_LIMIT)
        if len(long) and (first is None or long[0] < first[0]):
            first = (int(long[0]), str(col), int(lengths[long[0]]))
    if first is not None:
        row, col, n = first
        raise DataError(f"a field of {n:,} characters (limit {reading.CSV_FIELD_LIMIT:,}; a stray quote or a "
                        "missing line break merged lines)", path=path, line=line_of(df, row, path), field=col)


def require_columns(df: pd.DataFrame, columns: Sequence[str], path: Path, hint: str | None = None) -> None:
    """Raise DataError naming the file and the first missing column, listing the columns present."""
    for col in columns:
        if col not in df.columns:
            raise DataError(f"missing column; the columns are {list(map(str, df.columns))}", path=path,
                            line=1 if path.suffix == ".csv" else None, field=col, hint=hint)


def lines_of(df: pd.DataFrame, path: Path) -> np.ndarray:
    """`line_of` for every row at once (int64)."""
    n = len(df)
    if path.suffix != ".csv":
        return np.arange(1, n + 1, dtype="int64")
    breaks = np.zeros(n, dtype="int64")
    for c in df.columns:
        breaks += df[c].astype(str).str.count("\n").to_numpy(dtype="int64")
    return np.arange(n, dtype="int64") + 2 + np.concatenate([[0], np.cumsum(breaks)[:-1]]).astype("int64")


def line_of(df: pd.DataFrame, row: int, path: Path) -> int:
    """The 1-based line of data row `row` (0-based) as an editor shows it: CSV lines count the
    header and any line breaks inside quoted cells before it; parquet gives the 1-based row."""
    if path.suffix != ".csv":
        return row + 1
    before = df.iloc[:row]
    breaks = sum(int(before[c].astype(str).str.count("\n").sum()) for c in df.columns)
    return row + 2 + breaks


def _ids(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    """A column of ids as stripped strings; DataError (file, line, column) on the first empty value."""
    values = df[col]
    empty = values.isna().to_numpy() | (values.astype(str).str.strip() == "").to_numpy()
    if empty.any():
        row = int(np.flatnonzero(empty)[0])
        raise DataError("empty value", path=path, line=line_of(df, row, path), field=col)
    return values.astype(str).str.strip()


def parse_times(df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    """A time column as unix seconds (int64): numbers are seconds (fractions cut off), strings may
    be ISO 8601 dates, datetime columns are converted (UTC when naive). DataError names the first
    bad line: not a number or date, not finite, negative or in the future."""
    values = df[col]
    if pd.api.types.is_datetime64_any_dtype(values):
        return _seconds(values, df, col, path)
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype("float64")
    else:
        numbers = pd.to_numeric(values.astype(str).str.strip(), errors="coerce")
    if numbers.notna().all():
        return _checked(numbers.to_numpy(dtype="float64"), df, col, path)
    if numbers.notna().any():
        row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
        raise DataError(f"'{values.iloc[row]}' is not a number (the other times are numbers)", path=path,
                        line=line_of(df, row, path), field=col)
    dates = pd.to_datetime(values.astype(str).str.strip(), errors="coerce", utc=True, format="ISO8601")
    return _seconds(dates, df, col, path)


def _seconds(dates: pd.Series, df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    bad = dates.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(f"'{df[col].iloc[row]}' is not a time", path=path, line=line_of(df, row, path), field=col,
                        hint="use unix seconds or ISO 8601 dates (2021-03-04 or 2021-03-04T12:00:00)")
    if dates.dt.tz is None:
        dates = dates.dt.tz_localize("UTC")
    epoch = pd.Timestamp("1970-01-01", tz="UTC")
    return _checked(((dates - epoch) // pd.Timedelta(seconds=1)).to_numpy(dtype="float64"), df, col, path)


def _checked(seconds: np.ndarray, df: pd.DataFrame, col: str, path: Path) -> pd.Series:
    """Seconds checked by reading.check_unix_seconds (finite, ≥ 0, not in the future) as int64;
    the lines of the rows are computed only for the error."""
    try:
        return pd.Series(reading.check_unix_seconds(seconds, path, col), index=df.index)
    except DataError:
        reading.check_unix_seconds(seconds, path, col, lines=lines_of(df, path))
        raise


def read_items_table(path: Path, id_col: str = "item_id", categories_sep: str = "|") -> pd.DataFrame:
    """Read the items table; returns item_id (str) + the text columns, categories as lists.
    Raises DataError for a missing id column, an empty id or a repeated id (with its line)."""
    raw = read_table(path)
    require_columns(raw, [id_col], path)
    items = raw.copy()
    items[id_col] = _ids(raw, id_col, path)
    dup = items[id_col].duplicated().to_numpy()
    if dup.any():
        row = int(np.flatnonzero(dup)[0])
        first = int(np.flatnonzero((items[id_col] == items[id_col].iloc[row]).to_numpy())[0])
        raise DataError(f"item_id '{items[id_col].iloc[row]}' repeats line {line_of(raw, first, path)}", path=path,
                        line=line_of(raw, row, path), field=id_col)
    items = items.rename(columns={id_col: "item_id"})
    if "categories" in items.columns:
        items["categories"] = items["categories"].map(lambda v: _categories(v, categories_sep))
    return items


def _categories(value: Any, sep: str) -> list[str]:
    """Categories from a list/array, a Python list literal or a `sep`-separated string."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    if isinstance(value, list | tuple | np.ndarray):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        try:
            parsed = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            parsed = None
        if isinstance(parsed, list):
            return [str(v).strip() for v in parsed if str(v).strip()]
    return [c.strip() for c in text.split(sep) if c.strip()]


# ---------------------------------------------------------------------- checks
def _check_titles(items: pd.DataFrame, path: Path, require_text: bool) -> list[str]:
    """Count items with an empty title; with require_text, DataError at the first one."""
    if "title" not in items.columns:
        if require_text:
            require_columns(items, ["title"], path, hint="require_text needs a title for every item")
        return [f"{path.name} has no title column: items have no title"]
    empty = (items["title"].isna() | (items["title"].astype(str).str.strip() == "")).to_numpy()
    if not empty.any():
        return []
    row = int(np.flatnonzero(empty)[0])
    if require_text:
        raise DataError(f"empty title (item '{items['item_id'].iloc[row]}'; {int(empty.sum())} items in all)",
                        path=path, line=line_of(items, row, path), field="title",
                        hint="give every item a title, or import without require_text")
    return [f"{int(empty.sum())} of {len(items)} items in {path.name} have an empty title"]


def _unknown_items(
    inter: pd.DataFrame,
    raw: pd.DataFrame,
    items: pd.DataFrame,
    inter_path: Path,
    item_col: str,
    items_path: Path,
    on_unknown_item: OnUnknownItem,
) -> tuple[pd.DataFrame, list[FilterRecord]]:
    """Interactions whose item has no row in the items table: DataError (file, line, column) or
    dropped and counted."""
    unknown = (~inter["item_id"].isin(set(items["item_id"]))).to_numpy()
    if not unknown.any():
        return inter, []
    if on_unknown_item == "error":
        row = int(np.flatnonzero(unknown)[0])
        raise DataError(
            f"item '{inter['item_id'].iloc[row]}' has no row in {items_path.name} "
            f"({int(unknown.sum())} interactions in all)",
            path=inter_path, line=line_of(raw, row, inter_path), field=item_col,
            hint="add the items, or import with on_unknown_item='drop'",
        )
    record = FilterRecord(
        name="unknown_items",
        description=f"interactions whose item has no row in {items_path.name}",
        removed_interactions=int(unknown.sum()),
        removed_items=int(inter.loc[unknown, "item_id"].nunique()),
    )
    return inter[~unknown], [record]


# ---------------------------------------------------------------------- files
def _files(path: Path, items_path: str | Path | None) -> tuple[Path, Path | None]:
    """The interactions file and the items file (None when there is none)."""
    if path.is_dir():
        inter = _table_in(path, "interactions")
        if inter is None:
            raise DataError("no interactions.csv or interactions.parquet", path=path,
                            hint="point at the interactions file, or name it interactions.csv")
        path = inter
        default_items = _table_in(path.parent, "items")
    elif path.is_file():
        default_items = None
    else:
        raise DataError("no such file or folder", path=path)
    if items_path is not None:
        items = Path(items_path)
        if not items.is_file():
            raise DataError("items table not found", path=items)
        return path, items
    return path, default_items


def _table_in(folder: Path, stem: str) -> Path | None:
    for suffix in TABLE_SUFFIXES:
        if (folder / f"{stem}{suffix}").is_file():
            return folder / f"{stem}{suffix}"
    return None
