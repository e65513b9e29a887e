"""Amazon Reviews raw files, 2018 and 2023 releases (one JSON object per line, optionally gzipped).

2018: `Category.json[.gz]`   reviewerID, asin, overall, unixReviewTime (seconds)
      `meta_Category.json[.gz]` asin, title, description (list), brand, category (list),
                                feature (list), main_cat
2023: `Category.jsonl[.gz]`  user_id, parent_asin (the item id), rating, timestamp (milliseconds)
      `meta_Category.jsonl[.gz]` parent_asin, title, description (list), features (list),
                                store (→ brand), categories (list), main_category

The version is read from the keys of the first record. Filters run in this order, each one
recorded in dataset.json: exact duplicates → time window → title filter (and the interactions of
items without metadata or with a bad title) → iterative k-core (last, so the result is a true
k-core). A title that is a JSON object, number or array is treated like a missing title: the item
is removed and counted (`title_not_text`), never stored as a repr. Times must be unix seconds
(2018) or milliseconds (2023) between 1990 and now; anything else is a DataError naming the line.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from sidrec.data.build import Protocol, build_dataset
from sidrec.data.dataset import Dataset, FilterRecord
from sidrec.data.filters import dedupe_interactions, k_core, restrict_to_items, time_window, title_filter
from sidrec.data.importers import reading
from sidrec.data.importers.lcrec import categories_of, text_of
from sidrec.errors import ConfigError, DataError

Version = Literal["2018", "2023"]
OnBadLine = Literal["error", "skip"]
REVIEW_SUFFIXES = (".json", ".json.gz", ".jsonl", ".jsonl.gz")


@dataclass(frozen=True)
class Layout:
    """Where one release keeps the fields sidrec needs."""

    user: str
    item: str
    time: str
    time_divisor: int  # raw time / divisor = unix seconds
    meta_item: str
    meta_text: dict[str, str]  # source key → canonical column (lists are joined to text)
    meta_categories: str


LAYOUTS: dict[Version, Layout] = {
    "2018": Layout(
        user="reviewerID",
        item="asin",
        time="unixReviewTime",
        time_divisor=1,
        meta_item="asin",
        meta_text={"title": "title", "description": "description", "brand": "brand", "feature": "features",
                   "main_cat": "main_category"},
        meta_categories="category",
    ),
    "2023": Layout(
        user="user_id",
        item="parent_asin",
        time="timestamp",
        time_divisor=1000,
        meta_item="parent_asin",
        meta_text={"title": "title", "description": "description", "store": "brand", "features": "features",
                   "main_category": "main_category"},
        meta_categories="categories",
    ),
}


def import_amazon(
    path: str | Path,
    *,
    name: str | None = None,
    meta_path: str | Path | None = None,
    version: Literal["auto", "2018", "2023"] = "auto",
    user_k: int = 5,
    item_k: int = 5,
    start: int | float | str | dt.date | None = None,
    end: int | float | str | dt.date | None = None,
    title_max_words: int | None = None,
    protocol: Protocol = "leave-one-out",
    max_history: int | None = None,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    on_bad_line: OnBadLine = "error",
) -> Dataset:
    """Import an Amazon Reviews 2018 or 2023 category (a folder, or the path of the review file).

    Takes the review file's folder or path, the metadata path (default: `meta_<review file>` beside
    it), the release ("auto" reads it from the record keys), the k-core thresholds, an optional
    time window [start, end) (unix seconds or ISO dates), the title word limit (None: no limit;
    missing, empty, non-text and HTML-like titles are always removed), the split protocol
    (leave-one-out with history 20 by default, or temporal with history 10) and what to do with
    unparsable lines.
    Returns the canonical Dataset; every filter's counts are in `dataset.info.filters`.
    """
    if on_bad_line not in ("error", "skip"):
        raise ConfigError(f"on_bad_line must be 'error' or 'skip', got {on_bad_line!r}")
    review_path, meta = _files(Path(path), meta_path)
    layout_version = detect_version(review_path) if version == "auto" else version
    if layout_version not in LAYOUTS:
        raise ConfigError(f"unknown Amazon release {version!r}: use 2018, 2023 or auto")
    layout = LAYOUTS[layout_version]
    filters: list[FilterRecord] = []
    notes: list[str] = [f"Amazon Reviews {layout_version}"]

    inter, bad = read_reviews(review_path, layout, on_bad_line)
    filters += _bad_line_record(review_path, bad, "interactions")
    inter, rec = dedupe_interactions(inter)
    filters.append(rec)
    inter = inter.assign(timestamp=inter["timestamp"] // layout.time_divisor)
    if start is not None or end is not None:
        inter, rec = time_window(inter, to_unix_seconds(start, "start"), to_unix_seconds(end, "end"))
        filters.append(rec)
    meta_filter_names: list[str] = []
    if meta is not None:
        items, meta_filters, not_text = read_meta(meta, layout, on_bad_line)
        inter, items, title_filters = _apply_title_filter(inter, items, title_max_words, not_text, meta)
        meta_filter_names = [f.name for f in meta_filters + title_filters]
        filters += meta_filters + title_filters
    else:
        items = pd.DataFrame({"item_id": pd.unique(inter["item_id"])})
        notes.append("no metadata file: items have no text and the title filter was not applied")
    inter, rec = k_core(inter, user_k=user_k, item_k=item_k)
    filters.append(rec)
    if inter.empty:
        removed = ", ".join(f"{f.name} -{f.removed_interactions}" for f in filters if f.removed_interactions)
        by_meta = [f.name for f in filters if f.removed_interactions and f.name in meta_filter_names]
        from_meta = (f"; {' and '.join(by_meta)} follow the metadata file {meta}: check its item ids and titles"
                     if by_meta else "")
        raise DataError("no interactions left after filtering", path=review_path,
                        hint=f"interactions removed: {removed}{from_meta}; loosen user_k / item_k or the time window")
    return build_dataset(
        name=name or _category_name(review_path),
        source=str(review_path),
        format=f"amazon{layout_version}",
        items=items,
        interactions=inter,
        protocol=protocol,
        max_history=max_history or (10 if protocol == "temporal" else 20),
        ratios=ratios,
        filters=filters,
        time_kind="timestamp",
        drop_items_without_interactions=True,
        notes=notes,
    )


# ---------------------------------------------------------------------- reading
def read_reviews(path: Path, layout: Layout, on_bad_line: OnBadLine = "error") -> tuple[pd.DataFrame, int]:
    """Read the review file; returns user_id, item_id, timestamp (raw units) in file order and the
    number of skipped bad lines. A bad line (invalid JSON, a duplicate key, missing key, a time that
    is not a finite non-negative number) raises DataError with the file, line and field unless
    on_bad_line="skip". Times before 1990 or in the future (usually the wrong unit for the
    release) always raise DataError; so does a file without a single review."""
    users: list[str] = []
    items: list[str] = []
    times: list[int] = []
    lines: list[int] = []
    bad = 0
    for line_no, record in json_lines(path):
        try:
            user = _required(record, layout.user, path, line_no)
            item = _required(record, layout.item, path, line_no)
            time = _time(record, layout.time, path, line_no)
        except DataError:
            if on_bad_line == "error":
                raise
            bad += 1
            continue
        users.append(user)
        items.append(item)
        times.append(time)
        lines.append(line_no)
    if not users:
        raise DataError("no reviews" + (f" ({bad} bad lines skipped)" if bad else ""), path=path)
    seconds = np.asarray(times, dtype="float64") / layout.time_divisor
    reading.check_unix_seconds(seconds, path, layout.time, lines=lines, era_start=reading.ERA_1990,
                               unit_hint=_unit_hint(layout, seconds))
    df = pd.DataFrame({"user_id": users, "item_id": items, "timestamp": times})
    return df.astype({"user_id": str, "item_id": str, "timestamp": "int64"}), bad


def _unit_hint(layout: Layout, seconds: np.ndarray) -> str | None:
    """What to say when most of a file's times look like the other release's unit."""
    median = float(np.median(seconds))
    if layout.time_divisor == 1000 and median < reading.ERA_1990:
        return "Amazon 2023 times are milliseconds; these look like seconds, which land in 1970 after dividing by 1000"
    if layout.time_divisor == 1 and median > 1e11:
        return "Amazon 2018 times are unix seconds; these look like milliseconds (divide by 1000)"
    return None


def read_meta(
    path: Path, layout: Layout, on_bad_line: OnBadLine = "error"
) -> tuple[pd.DataFrame, list[FilterRecord], set[str]]:
    """Read the metadata file; returns one row per item (file order, first row of a repeated item
    kept), the records of skipped bad lines and repeated items, and the ids of items whose title is
    not text (a JSON object, number or array: their title is left empty, for the title filter to
    remove them). Raises DataError when the file holds no valid row."""
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    not_text: set[str] = set()
    bad = repeated = 0
    for line_no, record in json_lines(path):
        try:
            item = _required(record, layout.meta_item, path, line_no)
        except DataError:
            if on_bad_line == "error":
                raise
            bad += 1
            continue
        assert isinstance(record, dict)  # _required raised for unparsable lines
        if item in seen:
            repeated += 1
            continue
        seen.add(item)
        row: dict[str, Any] = {"item_id": item}
        for key, column in layout.meta_text.items():
            row[column] = text_of(record.get(key))
        if not isinstance(record.get("title"), str | None):
            not_text.add(item)
            row["title"] = ""
        row["categories"] = categories_of(record.get(layout.meta_categories))
        rows.append(row)
    if not rows:
        raise DataError("no metadata rows" + (f" ({bad} bad lines skipped)" if bad else " (the file is empty)"),
                        path=path, hint="fix the file, or remove it to import without item text")
    columns = ["item_id", *layout.meta_text.values(), "categories"]
    filters = _bad_line_record(path, bad, "items")
    filters.append(FilterRecord(name="duplicate_metadata",
                                description=f"repeated metadata rows for the same item in {path.name} (first kept)",
                                removed_items=repeated))
    return pd.DataFrame(rows, columns=columns), filters, not_text


def json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """Yield (1-based line number, record) for each non-blank line of a .json/.jsonl[.gz] file.

    The record is the parsed JSON object, or, for a line that is not a JSON object (invalid JSON, a
    duplicate key, NaN, nesting too deep), a string that says why; the readers turn that into a
    DataError naming the file and line, or count a skip. Defects of the file itself (truncated or
    mislabelled gzip, gzip data without a .gz name, bytes that are not UTF-8) raise DataError.
    """
    if not path.name.endswith(".gz") and reading.is_gzip(path):
        raise DataError("gzip-compressed data under a name without .gz", path=path,
                        hint=f"rename it to {path.name}.gz, or decompress it")
    with reading.open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            if line.strip():
                yield line_no, _parse_line(line, path, line_no)


def _parse_line(line: str, path: Path, line_no: int) -> dict[str, Any] | str:
    """The JSON object on one line, or a message saying why the line is not one."""
    try:
        value = reading.parse_json(line, path, line_no)
    except DataError as e:
        return e.message
    if not isinstance(value, dict):
        return f"a JSON {_JSON_TYPES.get(type(value), type(value).__name__)}, not an object"
    return value


_JSON_TYPES = {dict: "object", list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


def _required(record: dict[str, Any] | str, key: str, path: Path, line: int) -> str:
    """The value of `key` as a stripped string; DataError (file, line, field) when missing or empty."""
    if isinstance(record, str):
        raise DataError(f"unparsable line: {record}", path=path, line=line,
                        hint="use on_bad_line='skip' to count and skip such lines")
    value = record.get(key)
    if value is None or str(value).strip() == "":
        raise DataError("missing required key", path=path, line=line, field=key)
    if isinstance(value, dict | list | bool):
        raise DataError(f"a JSON {_JSON_TYPES[type(value)]}, not a string or number", path=path, line=line,
                        field=key)
    return str(value).strip()


def _time(record: dict[str, Any] | str, key: str, path: Path, line: int) -> int:
    """The value of `key` as an integer time (fractions cut off); DataError (file, line, field) when
    missing, not a number, not finite or negative."""
    text = _required(record, key, path, line)
    if text.lstrip("-").isdecimal() and len(text) < 19:
        number: float = int(text)
    else:
        try:
            number = float(text)
        except ValueError:
            raise DataError(f"'{text[:40]}' is not a number", path=path, line=line, field=key) from None
        if not math.isfinite(number):
            raise DataError(f"'{text[:40]}' is not a finite number", path=path, line=line, field=key)
    if number < 0:
        raise DataError(f"time {text[:40]} is negative", path=path, line=line, field=key,
                        hint="unix times are ≥ 0")
    return int(number)


def detect_version(path: Path) -> Version:
    """The release of a review or metadata file ("2018" or "2023"), from the keys of its first JSON
    object (unparsable lines before it are left to the readers to report)."""
    for line_no, record in json_lines(path):
        if isinstance(record, str):
            continue
        if "reviewerID" in record or ("asin" in record and "parent_asin" not in record):
            return "2018"
        if "parent_asin" in record or "user_id" in record:
            return "2023"
        raise DataError(f"cannot tell the Amazon release from the keys {sorted(record)}", path=path, line=line_no,
                        hint="2018 records have reviewerID/asin, 2023 records have user_id/parent_asin")
    raise DataError("no JSON object in the file", path=path)


# ---------------------------------------------------------------------- filters
def _apply_title_filter(
    inter: pd.DataFrame, items: pd.DataFrame, title_max_words: int | None, not_text: set[str], meta: Path
) -> tuple[pd.DataFrame, pd.DataFrame, list[FilterRecord]]:
    """Remove items whose title is not text (`not_text`) or is bad, then the interactions of items
    without metadata or with a bad title. Returns the interactions, the kept items and the records
    (`title_not_text` only when there are such items)."""
    text_rec = [FilterRecord(name="title_not_text", removed_items=len(not_text),
                             description=f"items whose title in {meta.name} is a JSON object, number or array "
                                         "(removed like a missing title)")] if not_text else []
    kept_items, title_rec = title_filter(items[~items["item_id"].isin(not_text)], max_words=title_max_words)
    no_meta_items = set(inter["item_id"]) - set(items["item_id"])
    inter, no_meta_rec = restrict_to_items(inter, items["item_id"], "interactions whose item has no metadata row")
    no_meta_rec = no_meta_rec.model_copy(update={"name": "missing_metadata", "removed_items": len(no_meta_items)})
    inter, bad_title_rec = restrict_to_items(inter, kept_items["item_id"],
                                             "interactions whose item failed the title filter")
    bad_title_rec = bad_title_rec.model_copy(update={"name": "title_filter_interactions"})
    return inter, kept_items, [no_meta_rec, *text_rec, title_rec, bad_title_rec]


def _bad_line_record(path: Path, bad: int, unit: Literal["interactions", "items"]) -> list[FilterRecord]:
    if not bad:
        return []
    description = f"unparsable lines or lines missing a required key in {path.name}"
    if unit == "interactions":
        return [FilterRecord(name="bad_lines", description=description, removed_interactions=bad)]
    return [FilterRecord(name="bad_metadata_lines", description=description, removed_items=bad)]


def to_unix_seconds(value: int | float | str | dt.date | None, what: str = "time") -> int | None:
    """A time bound as unix seconds: numbers are taken as seconds, strings as seconds or ISO dates
    (UTC unless they carry an offset). Returns None for None; raises ConfigError otherwise."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{what}: expected unix seconds or an ISO date, got {value!r}")
    if isinstance(value, int | float):
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as e:
        raise ConfigError(f"{what}: expected unix seconds or an ISO date, got {value!r}") from e
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return int(ts.timestamp())


# ---------------------------------------------------------------------- files
def _files(path: Path, meta_path: str | Path | None) -> tuple[Path, Path | None]:
    """The review file and its metadata file (None when there is none)."""
    if path.is_dir():
        found = sorted(p for p in path.iterdir() if p.name.endswith(REVIEW_SUFFIXES) and not p.name.startswith("meta_"))
        if not found:
            raise DataError(f"no review file (*{', *'.join(REVIEW_SUFFIXES)})", path=path)
        if len(found) > 1:
            raise DataError(f"several review files: {[p.name for p in found]}", path=path,
                            hint="pass the path of the one to import")
        path = found[0]
    elif not path.is_file():
        raise DataError("no such file or folder", path=path)
    if meta_path is not None:
        meta = Path(meta_path)
        if not meta.is_file():
            raise DataError("metadata file not found", path=meta)
        return path, meta
    category = _category_name(path)
    for suffix in REVIEW_SUFFIXES:
        candidate = path.with_name(f"meta_{category}{suffix}")
        if candidate.is_file():
            return path, candidate
    return path, None


def _category_name(path: Path) -> str:
    """`Toys_and_Games` for `Toys_and_Games.jsonl.gz`."""
    name = path.name
    for suffix in sorted(REVIEW_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return path.stem
