"""MiniOneRec / D3 CSV folder: the splits are given by the files.

    FOLDER/
      train/X.csv, valid/X.csv, test/X.csv   user_id, history_item_title, item_title,
                                             history_item_id, item_id, history_item_sid, item_sid
                                             (list columns are Python literals: ast.literal_eval)
      info/X.txt                             sid<TAB>title<TAB>item_id, one line per item (required)
      index/C.index.json                     {item_id: [token, ...]}: SIDs that came with the source
      index/C.item.json                      {item_id: {title, description, brand, categories}}

`C` is the category, a prefix of `X` (e.g. `Industrial_and_Scientific` for
`Industrial_and_Scientific_5_2016-10-2018-11`). Several categories may share the folders: pass
`category` to choose one. A folder with index/ (the MiniOneRec layout) needs both index files; one
without it (the D3 layout) has no external SIDs and titles only.

The layout guarantees that the files agree, so disagreement is an error naming the csv line and
field: `item_title` must be the info title of `item_id`; with index/, `item_sid` /
`history_item_sid` must be the SIDs of index/C.index.json, `history_item_title` the info titles,
and the sid column of info/X.txt the same SIDs.

Protocols:
- "given": train, valid and test rows are used as they are (histories cut to `max_history`).
- "industrial-partial" (the train folder is absent, as in the public Industrial release): for
  each user, their first valid row (or first test row when they have no valid row) has a history
  made only of train-period items; sliding windows over it (target = each item after the first,
  history = up to `max_history` items before it) are the train samples.

Interactions: each user's sequence is rebuilt from their rows (the first row's history, then each
row's target, train → valid → test, file order); timestamp = position, time_kind "order".
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from sidrec.data.build import finalize, normalize_items
from sidrec.data.dataset import Dataset
from sidrec.data.importers.lcrec import check_sids_cover_items, read_index_json, read_item_json, sid_summary
from sidrec.data.importers.reading import csv_rows, open_text
from sidrec.data.splits import sort_interactions
from sidrec.errors import DataError

SPLIT_FOLDERS = ("train", "valid", "test")
REQUIRED_COLUMNS = ("user_id", "history_item_id", "item_id")


@dataclass
class SplitRow:
    """One row of a split csv: the user, their history (oldest first), the target, and where it is."""

    user_id: str
    history: list[str]
    target: str
    path: Path
    line: int
    position: int = -1  # the target's position in the user's rebuilt sequence (set by rebuild_sequences)


@dataclass
class Reference:
    """What the split csvs must agree with: the items' info titles and, with index/, their SIDs."""

    titles: dict[str, str]       # item_id → title of info/X.txt
    info_path: Path
    sids: dict[str, str] | None  # item_id → the SID of index/C.index.json, tokens joined as in the csvs
    index_path: Path | None


def import_minionerec(
    path: str | Path,
    *,
    name: str | None = None,
    category: str | None = None,
    max_history: int = 10,
) -> Dataset:
    """Import a MiniOneRec / D3 folder.

    Takes the folder, an optional dataset name (default: the csv stem), the category (needed only
    when the folders hold several) and the history length. Returns the canonical Dataset with the
    given splits (protocol "given"), or protocol "industrial-partial" when train/ is absent, and
    the SIDs of `index/C.index.json` as `external_sids`. Raises DataError naming the file, line and
    field for unparsable list literals, item ids that are not in the items table and title / SID
    columns that disagree with info/ and index/, and naming the expected file for a missing one.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise DataError("not a folder", path=folder, hint="point at the MiniOneRec folder that holds valid/ and test/")
    csvs = {split: _split_csv(folder, split, category) for split in SPLIT_FOLDERS}
    for split in ("valid", "test"):
        if csvs[split] is None:
            raise DataError(f"no {split}/*.csv", path=folder / split, hint="a MiniOneRec folder has valid/ and test/")
    test_csv = csvs["test"]
    assert test_csv is not None
    stem = test_csv.stem
    info_path = _required_file(folder / "info", stem, ".txt", "sid<TAB>title<TAB>item_id, one line per item")
    info = read_info_txt(info_path)
    index_path = item_json = None
    if (folder / "index").is_dir():
        index_path = _required_file(folder / "index", stem, ".index.json", "{item_id: [SID tokens]}", ".item.json")
        item_json = _required_file(folder / "index", stem, ".item.json", "{item_id: {title, description, …}}",
                                   ".index.json")
    external_sids = read_index_json(index_path) if index_path is not None else None
    if item_json is None:
        items = info.drop(columns=["sid", "line"]).rename(columns={"title_info": "title"})
        notes = ["no index/ folder (the D3 layout): no external SIDs, items have titles only "
                 f"(from {info_path.name}), the SID columns of the csvs are not checked"]
    else:
        items, notes = merge_item_text(info.drop(columns=["line"]), read_item_json(item_json), info_path.name,
                                       item_json.name)
    items = normalize_items(items, str(folder))
    if external_sids is not None:
        assert index_path is not None
        check_sids_cover_items(external_sids, items, index_path)
        check_info_sids(info, external_sids, info_path, index_path)
        notes.append(f"external SIDs from {index_path.name}: {sid_summary(external_sids)}")
    ref = Reference(
        titles=dict(zip(info["item_id"], info["title_info"])),
        info_path=info_path,
        sids={k: "".join(v) for k, v in external_sids.items()} if external_sids is not None else None,
        index_path=index_path,
    )
    rows = {split: read_split_csv(p, ref) if p is not None else [] for split, p in csvs.items()}
    sequences, mismatches = rebuild_sequences([*rows["train"], *rows["valid"], *rows["test"]])
    if mismatches:
        notes.append(
            f"{mismatches} rows have a history that is not the tail of the sequence rebuilt from the user's "
            "earlier rows; their history is kept as the file gives it"
        )
    splits: dict[str, pd.DataFrame] = {}
    if csvs["train"] is not None:
        protocol = "given"
        splits["train"] = examples(rows["train"], max_history)
    else:
        protocol = "industrial-partial"
        first_rows = first_row_per_user([*rows["valid"], *rows["test"]])
        splits["train"] = partial_train_samples(first_rows, max_history)
        notes.append(
            f"no train/ folder (protocol industrial-partial): train = sliding windows over the history of "
            f"each user's first valid (else test) row: {len(splits['train'])} samples from the first rows of "
            f"{len(first_rows)} users ({splits['train']['user_id'].nunique()} of them have a history of 2+ items)"
        )
    splits["valid"] = examples(rows["valid"], max_history)
    splits["test"] = examples(rows["test"], max_history)
    return finalize(
        name=name or stem,
        source=str(folder),
        format="minionerec",
        items=items,
        interactions=interactions_of(sequences),
        splits=splits,
        protocol=protocol,
        protocol_params={"max_history": max_history, "files": {s: f"{s}/{p.name}" for s, p in csvs.items() if p}},
        filters=[],
        time_kind="order",
        external_sids=external_sids,
        notes=notes,
    )


# ---------------------------------------------------------------------- reading
def read_split_csv(path: Path, ref: Reference) -> list[SplitRow]:
    """Read one split csv; returns its rows. Raises DataError (file, 1-based line, field) for a
    missing column, a row of the wrong width, an unparsable list literal, an item id that is not in
    the items table, and a title or SID column that disagrees with `ref`."""
    rows: list[SplitRow] = []
    records = csv_rows(path)
    try:
        first = next(records, None)
        if first is None:
            raise DataError("empty file (no header)", path=path, line=1)
        header = [h.strip() for h in first[1]]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise DataError(f"missing column; the columns are {header}", path=path, line=1, field=missing[0])
        repeated = next((c for k, c in enumerate(header) if c in header[:k]), None)
        if repeated is not None:
            raise DataError("column appears twice", path=path, line=1, field=repeated)
        col = {c: k for k, c in enumerate(header)}
        for line, record in records:
            rows.append(_split_row(record, header, col, ref, path, line))
    finally:
        records.close()
    return rows


def _split_row(record: list[str], header: list[str], col: dict[str, int], ref: Reference, path: Path,
               line: int) -> SplitRow:
    if len(record) != len(header):
        raise DataError(f"{len(record)} fields where the header has {len(header)}", path=path, line=line)
    user = record[col["user_id"]].strip()
    if not user:
        raise DataError("empty user_id", path=path, line=line, field="user_id")
    history = [str(v).strip() for v in _parse_list(record, col, "history_item_id", (int, str), path, line)]
    target = record[col["item_id"]].strip()
    for item in history:
        if item not in ref.titles:
            raise DataError(f"history item '{item}' is not in the items table", path=path, line=line,
                            field="history_item_id", hint=f"the items table is {ref.info_path.name}")
    if target not in ref.titles:
        raise DataError(f"item '{target}' is not in the items table", path=path, line=line,
                        field="item_id", hint=f"the items table is {ref.info_path.name}")
    if "item_title" in col:
        _agree(record[col["item_title"]].strip(), ref.titles[target], target, "title", ref.info_path,
               path, line, "item_title")
    if ref.sids is not None and ref.index_path is not None:  # the MiniOneRec layout: check every column
        if "history_item_title" in col:
            titles = _parse_list(record, col, "history_item_title", (str,), path, line)
            _agree_list([t.strip() for t in titles], [ref.titles[i] for i in history], history, "title",
                        ref.info_path, path, line, "history_item_title")
        if "item_sid" in col:
            _agree(record[col["item_sid"]].strip(), ref.sids[target], target, "SID", ref.index_path,
                   path, line, "item_sid")
        if "history_item_sid" in col:
            sids = _parse_list(record, col, "history_item_sid", (str,), path, line)
            _agree_list([s.strip() for s in sids], [ref.sids[i] for i in history], history, "SID",
                        ref.index_path, path, line, "history_item_sid")
    return SplitRow(user, history, target, path, line)


def _parse_list(record: list[str], col: dict[str, int], field: str, types: tuple[type, ...], path: Path,
                line: int) -> list[Any]:
    """The Python list literal of one field (ast.literal_eval, never eval), its elements of `types`."""
    text = record[col[field]].strip()
    try:
        value = ast.literal_eval(text)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise DataError(f"not a Python list literal: {text[:60]!r}", path=path, line=line, field=field,
                        hint="list columns hold literals like [1, 2] or ['a', 'b']") from None
    if not isinstance(value, list | tuple) or not all(isinstance(v, types) and not isinstance(v, bool) for v in value):
        kinds = " or ".join(t.__name__ for t in types)
        raise DataError(f"expected a list of {kinds}, got {text[:60]!r}", path=path, line=line, field=field)
    return list(value)


def _agree(value: str, expected: str, item: str, what: str, source: Path, path: Path, line: int, field: str) -> None:
    if value != expected:
        raise DataError(f"{value[:80]!r}, but {source.parent.name}/{source.name} gives item '{item}' the {what} "
                        f"{expected[:80]!r}", path=path, line=line, field=field,
                        hint="the csvs and the info / index files must come from the same release")


def _agree_list(values: list[str], expected: list[str], items: list[str], what: str, source: Path, path: Path,
                line: int, field: str) -> None:
    if len(values) != len(expected):
        raise DataError(f"{len(values)} entries for a history of {len(expected)} items (history_item_id)",
                        path=path, line=line, field=field)
    for k, (value, want) in enumerate(zip(values, expected)):
        if value != want:
            _agree(value, want, items[k], what, source, path, line, f"{field}[{k}]")


def merge_item_text(
    info: pd.DataFrame, text: pd.DataFrame, info_name: str, text_name: str
) -> tuple[pd.DataFrame, list[str]]:
    """Items of `info` (its order) with the text columns of `text`; the info title stands in for a
    missing or empty one. Returns the table and notes counting items only one of the two files has."""
    notes: list[str] = []
    merged = info.merge(text, on="item_id", how="left", indicator=True)
    no_text = int((merged["_merge"] == "left_only").sum())
    if no_text:
        notes.append(f"{no_text} items of {info_name} have no entry in {text_name}")
    unused = len(set(text["item_id"]) - set(info["item_id"]))
    if unused:
        notes.append(f"{unused} items of {text_name} are not in {info_name} and are left out")
    title = merged["title"].fillna("") if "title" in merged else pd.Series("", index=merged.index)
    merged["title"] = title.where(title.str.strip() != "", merged["title_info"])
    return merged.drop(columns=["sid", "title_info", "_merge"]), notes


def read_info_txt(path: Path) -> pd.DataFrame:
    """Read `sid<TAB>title<TAB>item_id` lines; returns item_id, title_info, sid and line, in file order.
    Raises DataError (line) for a line without 3 fields, an empty or repeated item id, or no items."""
    rows: list[tuple[str, str, str, int]] = []
    seen: dict[str, int] = {}
    with open_text(path) as f:
        for line_no, line in enumerate(f, start=1):
            line = line.rstrip("\n").rstrip("\r")
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 3:
                raise DataError(f"{len(parts)} tab-separated fields, expected 3 (sid, title, item_id)",
                                path=path, line=line_no)
            sid, title, item_id = (p.strip() for p in parts)
            if not item_id:
                raise DataError("empty item_id", path=path, line=line_no, field="item_id")
            if item_id in seen:
                raise DataError(f"item_id '{item_id}' repeats line {seen[item_id]}", path=path, line=line_no,
                                field="item_id")
            seen[item_id] = line_no
            rows.append((item_id, title, sid, line_no))
    if not rows:
        raise DataError("no items (an empty items table)", path=path,
                        hint="one line per item: sid<TAB>title<TAB>item_id")
    return pd.DataFrame(rows, columns=["item_id", "title_info", "sid", "line"]).astype(
        {"item_id": str, "title_info": str, "sid": str, "line": "int64"}
    )


def check_info_sids(info: pd.DataFrame, sids: dict[str, list[str]], info_path: Path, index_path: Path) -> None:
    """Raise DataError (info line) unless each info sid is the item's SID of the index file, joined."""
    for item, sid, line in zip(info["item_id"], info["sid"], info["line"]):
        want = "".join(sids[item])
        if sid != want:
            raise DataError(f"sid {sid[:80]!r}, but {index_path.name} gives item '{item}' the SID {want!r}",
                            path=info_path, line=int(line), field="sid",
                            hint="info/ and index/ must come from the same release")


# ---------------------------------------------------------------------- sequences and splits
def rebuild_sequences(rows: list[SplitRow]) -> tuple[dict[str, list[str]], int]:
    """Each user's item sequence from their rows in order (first row's history, then each target).

    Sets each row's `position` (its target's index in the sequence). Returns user → sequence and
    the number of rows whose history is not the tail of the sequence rebuilt so far (0 on
    consistent data)."""
    sequences: dict[str, list[str]] = {}
    mismatches = 0
    for row in rows:
        seq = sequences.get(row.user_id)
        if seq is None:
            seq = sequences[row.user_id] = list(row.history)
        elif row.history and seq[-len(row.history) :] != row.history:
            mismatches += 1
        row.position = len(seq)
        seq.append(row.target)
    return sequences, mismatches


def examples(rows: list[SplitRow], max_history: int) -> pd.DataFrame:
    """Split rows as canonical examples (history cut to its last `max_history` items);
    timestamp = the target's position in the rebuilt sequence (call rebuild_sequences first)."""
    return _frame([(r.user_id, r.history[max(0, len(r.history) - max_history) :], r.target, r.position) for r in rows])


def first_row_per_user(rows: list[SplitRow]) -> list[SplitRow]:
    """The first row of each user in the order given (pass valid rows before test rows)."""
    first: dict[str, SplitRow] = {}
    for row in rows:
        first.setdefault(row.user_id, row)
    return list(first.values())


def partial_train_samples(first_rows: list[SplitRow], max_history: int) -> pd.DataFrame:
    """Sliding windows over each first row's history: target = each item after the first,
    history = up to `max_history` items before it, timestamp = the target's position."""
    out: list[tuple[str, list[str], str, int]] = []
    for row in first_rows:
        h = row.history
        for t in range(1, len(h)):
            out.append((row.user_id, h[max(0, t - max_history) : t], h[t], t))
    return _frame(out)


def interactions_of(sequences: dict[str, list[str]]) -> pd.DataFrame:
    """The interactions table of rebuilt sequences: timestamp = position, sorted by user then position."""
    users = [u for u, seq in sequences.items() for _ in seq]
    items = [i for seq in sequences.values() for i in seq]
    positions = [p for seq in sequences.values() for p in range(len(seq))]
    df = pd.DataFrame({"user_id": users, "item_id": items, "timestamp": positions}).astype(
        {"user_id": str, "item_id": str, "timestamp": "int64"}
    )
    return sort_interactions(df)


def _frame(rows: list[tuple[str, list[str], str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "history", "target", "timestamp"]).astype(
        {"user_id": str, "target": str, "timestamp": "int64"}
    )


# ---------------------------------------------------------------------- files
def _split_csv(folder: Path, split: str, category: str | None) -> Path | None:
    """The csv of one split (None when the split folder is absent)."""
    sub = folder / split
    if not sub.is_dir():
        return None
    found = sorted(p for p in sub.glob("*.csv") if category is None or p.name.startswith(category))
    if not found:
        raise DataError(f"no *.csv{f' for category {category!r}' if category else ''}", path=sub)
    if len(found) > 1:
        raise DataError(f"several csv files: {[p.name for p in found]}", path=sub,
                        hint="pass category=… (the file name prefix) to choose one")
    return found[0]


def _category_file(folder: Path, stem: str, suffix: str) -> Path | None:
    """The file in `folder` named `P<suffix>` whose P is the longest prefix of the csv `stem`."""
    if not folder.is_dir():
        return None
    matches = [p for p in folder.glob(f"*{suffix}") if stem.startswith(p.name[: -len(suffix)])]
    return max(matches, key=lambda p: len(p.name)) if matches else None


def _required_file(folder: Path, stem: str, suffix: str, what: str, sibling_suffix: str | None = None) -> Path:
    """`_category_file`, or DataError naming the file expected (its category taken from the sibling
    file of `sibling_suffix` when there is one)."""
    found = _category_file(folder, stem, suffix)
    if found is not None:
        return found
    sibling = _category_file(folder, stem, sibling_suffix) if sibling_suffix is not None else None
    expected = (sibling.name[: -len(sibling_suffix or "")] if sibling is not None else stem) + suffix
    raise DataError(f"no {folder.name}/{expected} ({what})", path=folder,
                    hint=f"a MiniOneRec folder has it; its name is the csv name {stem!r} or a prefix of it")
