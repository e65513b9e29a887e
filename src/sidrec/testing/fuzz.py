"""Malformed dataset files, derived from clean ones, and what `sidrec data import` makes of them.

    bases = build_bases(work, shared=Path("../shared/data"))   # small clean copies, one per layout
    cases = corpus(bases, work / "cases")                        # ≥ 150 malformed variants
    outcome = run_import(case, work / "out")                     # traceback | silent | clear_error | counted_filter

Each base is a small but real copy of one layout: a subset of the shared datasets (LC-Rec json,
MiniOneRec csv, RecBole atomic files) and the test fixtures of the raw layouts (Amazon 2018 / 2023,
MovieLens 100K / 1M, a custom CSV table). Each case applies one defect to one file of a base:
bytes that are not UTF-8, truncation, garbage, gzip / parquet that is truncated or mislabelled,
deeply nested JSON, duplicate JSON keys, values of the wrong type, non-finite / non-numeric /
out-of-range / wrong-unit timestamps, a header with fewer fields than the rows, stray quotes and
tabs, fields above the csv module's limit, SID and title columns that disagree with the index files,
a missing file.

An outcome is
- `clear_error`: a non-zero exit with one line that starts with `error:` and names the file;
- `counted_filter`: exit 0 with a filter in dataset.json that removed more than the clean import's;
- `silent`: exit 0 and nothing counted: the defect was absorbed or coerced without a word;
- `traceback`: an exception escaped, or the message is not one line naming the file.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTCOMES = ("clear_error", "counted_filter", "silent", "traceback")


@dataclass(frozen=True)
class Base:
    name: str        # e.g. "lcrec-beauty"
    format: str      # importer name
    path: Path       # folder (or file) given to `sidrec data import`
    files: dict[str, str] = field(default_factory=dict)  # role → file name inside path


@dataclass(frozen=True)
class Case:
    base: Base
    defect: str
    target: str      # the file the defect was applied to (name inside the case folder)
    path: Path       # the case's folder, given to the importer

    @property
    def name(self) -> str:
        return f"{self.base.name}/{self.target}/{self.defect}"


@dataclass
class Outcome:
    case: str
    importer: str
    defect: str
    kind: str
    exit_code: int
    message: str


# ----------------------------------------------------------------------------- clean bases
def build_bases(work: Path, shared: Path | None, fixtures: Path) -> list[Base]:
    """Small clean copies of every layout under `work/bases` (shared ones only where present)."""
    root = work / "bases"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    bases: list[Base] = []
    if shared is not None and (shared / "amazon14-beauty").is_dir():
        bases.append(_beauty_base(shared / "amazon14-beauty", root / "lcrec-beauty"))
    if shared is not None and (shared / "amazon18-industrial").is_dir():
        bases.append(_industrial_base(shared / "amazon18-industrial", root / "minionerec-industrial"))
    if shared is not None and (shared / "ml-100k").is_dir():
        bases.append(_ml100k_base(shared / "ml-100k", root / "recbole-ml100k"))
    for name, fmt, folder, files in (
        ("amazon2018", "amazon", "amazon2018", {"reviews": "Toys_and_Games.json", "meta": "meta_Toys_and_Games.json"}),
        ("amazon2023", "amazon", "amazon2023", {"reviews": "Toys_and_Games.jsonl", "meta": "meta_Toys_and_Games.jsonl"}),
        ("movielens100k", "movielens", "movielens100k", {"ratings": "u.data", "items": "u.item"}),
        ("movielens1m", "movielens", "movielens1m", {"ratings": "ratings.dat", "items": "movies.dat"}),
        ("tabular", "tabular", "tabular", {"interactions": "interactions.csv", "items": "items.csv"}),
    ):
        shutil.copytree(fixtures / folder, root / name)
        bases.append(Base(name, fmt, root / name, files))
    return bases


def _beauty_base(src: Path, out: Path) -> Base:
    out.mkdir()
    inter = json.loads((src / "Beauty.inter.json").read_text(encoding="utf-8"))
    users = dict(list(inter.items())[:120])
    (out / "Beauty.inter.json").write_text(json.dumps(users), encoding="utf-8")
    index = json.loads((src / "Beauty.index.json").read_text(encoding="utf-8"))
    used = {str(i) for seq in users.values() for i in seq}
    (out / "Beauty.index.json").write_text(json.dumps({k: v for k, v in index.items() if k in used}), encoding="utf-8")
    return Base("lcrec-beauty", "lcrec", out, {"inter": "Beauty.inter.json", "index": "Beauty.index.json"})


def _industrial_base(src: Path, out: Path) -> Base:
    shutil.copytree(src, out, ignore=shutil.ignore_patterns("semantics"))
    files = {}
    for split in ("valid", "test"):
        csv_path = next((out / split).glob("*.csv"))
        lines = csv_path.read_text(encoding="utf-8").splitlines(keepends=True)
        csv_path.write_text("".join(lines[:301]), encoding="utf-8")
        files[split] = f"{split}/{csv_path.name}"
    files["info"] = "info/" + next((out / "info").glob("*.txt")).name
    files["index"] = "index/" + next((out / "index").glob("*.index.json")).name
    files["item"] = "index/" + next((out / "index").glob("*.item.json")).name
    return Base("minionerec-industrial", "minionerec", out, files)


def _ml100k_base(src: Path, out: Path) -> Base:
    out.mkdir()
    lines = (src / "ml-100k.inter").read_text(encoding="utf-8").splitlines(keepends=True)
    keep = [lines[0]] + [x for x in lines[1:] if int(x.split("\t", 1)[0]) <= 40]
    (out / "ml-100k.inter").write_text("".join(keep), encoding="utf-8")
    shutil.copy(src / "ml-100k.item", out / "ml-100k.item")
    return Base("recbole-ml100k", "recbole", out, {"inter": "ml-100k.inter", "item": "ml-100k.item"})


# ----------------------------------------------------------------------------- defects
Edit = Callable[[Path, random.Random], Path | None]  # edits the file in place (may rename it); None: not applicable


def _read(p: Path) -> str:
    return p.read_text(encoding="utf-8", errors="surrogateescape")  # byte-exact for latin-1 files too


def _write(p: Path, text: str) -> None:
    p.write_text(text, encoding="utf-8", errors="surrogateescape")


def _lines(p: Path) -> list[str]:
    return _read(p).splitlines(keepends=True)


def _set_line(p: Path, k: int, new: str) -> None:
    lines = _lines(p)
    lines[k] = new
    _write(p, "".join(lines))


def _middle(p: Path) -> int:
    n = len(_lines(p))
    return max(1, n // 2) if n > 1 else 0


def non_utf8(p: Path, rng: random.Random) -> Path:
    data = p.read_bytes()
    cut = data.index(b"\n", len(data) // 2) if b"\n" in data[len(data) // 2:] else len(data) // 2
    p.write_bytes(data[:cut] + b" \xff\xfe\xc3\x28 " + data[cut:])
    return p


def truncated(p: Path, rng: random.Random) -> Path:
    data = p.read_bytes()
    p.write_bytes(data[: int(len(data) * 0.57)])
    return p


def empty(p: Path, rng: random.Random) -> Path:
    p.write_bytes(b"")
    return p


def garbage(p: Path, rng: random.Random) -> Path:
    p.write_bytes(bytes(rng.randrange(256) for _ in range(3000)))
    return p


def missing(p: Path, rng: random.Random) -> Path:
    p.unlink()
    return p


def gzip_truncated(p: Path, rng: random.Random) -> Path:
    data = gzip.compress(p.read_bytes())
    gz = p.with_name(p.name + ".gz")
    gz.write_bytes(data[: len(data) // 2])
    p.unlink()
    return gz


def gzip_mislabelled(p: Path, rng: random.Random) -> Path:
    gz = p.with_name(p.name + ".gz")
    p.rename(gz)  # plain text under a .gz name
    return gz


def gzip_unlabelled(p: Path, rng: random.Random) -> Path:
    p.write_bytes(gzip.compress(p.read_bytes()))  # gzip bytes under a plain name
    return p


def deep_nesting(p: Path, rng: random.Random) -> Path:
    text = _read(p)
    deep = "[" * 100_000 + "]" * 100_000
    if p.suffix in (".json",) and text.lstrip().startswith("{") and "\n{" not in text:  # one JSON document
        obj = text.rstrip()
        p.write_text(obj[:-1] + f', "deep": {deep}}}', encoding="utf-8")
    else:  # JSON lines: a line that is nothing but nesting
        k = _middle(p)
        _set_line(p, k, deep + "\n")
    return p


def duplicate_key(p: Path, rng: random.Random) -> Path | None:
    text = _read(p)
    if text.lstrip().startswith("{") and "\n{" not in text.strip():  # one JSON object: repeat its first key
        obj = json.loads(text)
        key = next(iter(obj))
        other = list(obj.values())[-1]
        body = json.dumps(obj)
        p.write_text(body[:-1] + f", {json.dumps(key)}: {json.dumps(other)}}}", encoding="utf-8")
        return p
    if "\n{" in text or text.startswith("{"):  # JSON lines: repeat the id key of one record with another value
        k = _middle(p)
        line = _lines(p)[k].rstrip("\n")
        rec = json.loads(line)
        key = next(k2 for k2 in ("asin", "parent_asin", "reviewerID", "user_id") if k2 in rec)
        _set_line(p, k, line[:-1] + f', "{key}": "{rec[key]}-other"}}\n')
        return p
    return None


def _json_lines_edit(fn: Callable[[dict[str, Any]], bool]) -> Edit:
    def edit(p: Path, rng: random.Random) -> Path | None:
        lines = _lines(p)
        for k in range(len(lines) // 2, len(lines)):
            try:
                rec = json.loads(lines[k])
            except json.JSONDecodeError:
                continue
            if isinstance(rec, dict) and fn(rec):
                lines[k] = json.dumps(rec, allow_nan=True) + "\n"
                _write(p, "".join(lines))
                return p
        return None
    return edit


def _time_key(rec: dict[str, Any]) -> str | None:
    return next((k for k in ("unixReviewTime", "timestamp") if k in rec), None)


def _set_time(value: Any) -> Edit:
    def fn(rec: dict[str, Any]) -> bool:
        key = _time_key(rec)
        if key is None:
            return False
        rec[key] = value
        return True
    return _json_lines_edit(fn)


def _all_times(scale: float) -> Edit:
    def edit(p: Path, rng: random.Random) -> Path | None:
        out, hit = [], False
        for line in _lines(p):
            rec = json.loads(line)
            key = _time_key(rec)
            if key is not None:
                rec[key] = int(rec[key] * scale)
                hit = True
            out.append(json.dumps(rec) + "\n")
        p.write_text("".join(out), encoding="utf-8")
        return p if hit else None
    return edit


def _title(value: Any) -> Edit:
    def fn(rec: dict[str, Any]) -> bool:
        if "title" not in rec:
            return False
        rec["title"] = value
        return True
    return _json_lines_edit(fn)


# --- delimited text (csv / tsv / '::' / '|')
def _sep(p: Path) -> str:
    head = _lines(p)[0]
    for s in ("::", "\t", "|", ","):
        if s in head:
            return s
    return ","


def header_short(p: Path, rng: random.Random) -> Path | None:
    lines = _lines(p)
    sep = _sep(p)
    fields = lines[0].rstrip("\n").split(sep)
    if len(fields) < 2:
        return None
    lines[0] = sep.join(fields[:-1]) + "\n"
    _write(p, "".join(lines))
    return p


def _middle_row(p: Path, change: Callable[[list[str]], None]) -> Path:
    """Apply `change` to the fields of the file's middle line (split on its separator)."""
    lines = _lines(p)
    k = _middle(p)
    sep = _sep(p)
    parts = lines[k].rstrip("\n").split(sep)
    change(parts)
    lines[k] = sep.join(parts) + "\n"
    _write(p, "".join(lines))
    return p


def stray_quote(p: Path, rng: random.Random) -> Path:
    return _middle_row(p, lambda parts: parts.__setitem__(-1, '"' + parts[-1]))


def stray_tab(p: Path, rng: random.Random) -> Path:
    return _middle_row(p, lambda parts: parts.__setitem__(0, parts[0][:1] + "\t" + parts[0][1:]))


def extra_fields(p: Path, rng: random.Random) -> Path:
    return _middle_row(p, lambda parts: parts.extend(["surplus", "7"]))


def fewer_fields(p: Path, rng: random.Random) -> Path:
    return _middle_row(p, lambda parts: parts.__delitem__(slice(-2, None)))


def huge_field(p: Path, rng: random.Random) -> Path:
    return _middle_row(p, lambda parts: parts.__setitem__(-1, parts[-1] + "x" * 200_000))


def _column_edit(column: str, value: Callable[[str], str]) -> Edit:
    """Set one cell of a delimited file with a header (by column name, type suffix ignored)."""
    def edit(p: Path, rng: random.Random) -> Path | None:
        import csv
        import io

        sep = _sep(p)
        if sep == ",":
            rows = list(csv.reader(io.StringIO(_read(p))))
        else:
            rows = [x.rstrip("\n").split(sep) for x in _lines(p)]
        names = [h.split(":")[0] for h in rows[0]]
        if column not in names:
            return None
        c = names.index(column)
        k = max(1, len(rows) // 2)
        rows[k][c] = value(rows[k][c])
        if sep == ",":
            buf = io.StringIO()
            csv.writer(buf, lineterminator="\n").writerows(rows)
            p.write_text(buf.getvalue(), encoding="utf-8")
        else:
            p.write_text("".join(sep.join(r) + "\n" for r in rows), encoding="utf-8")
        return p
    return edit


def _headerless_edit(column: int, value: Callable[[str], str]) -> Edit:
    def edit(p: Path, rng: random.Random) -> Path:
        lines = _lines(p)
        sep = _sep(p)
        k = _middle(p)
        parts = lines[k].rstrip("\n").split(sep)
        parts[column] = value(parts[column])
        lines[k] = sep.join(parts) + "\n"
        _write(p, "".join(lines))
        return p
    return edit


def _headerless_all(column: int, value: Callable[[str], str]) -> Edit:
    def edit(p: Path, rng: random.Random) -> Path:
        sep = _sep(p)
        out = []
        for line in _lines(p):
            parts = line.rstrip("\n").split(sep)
            parts[column] = value(parts[column])
            out.append(sep.join(parts) + "\n")
        p.write_text("".join(out), encoding="utf-8")
        return p
    return edit


def _all_column(column: str, value: Callable[[str], str]) -> Edit:
    def edit(p: Path, rng: random.Random) -> Path | None:
        sep = _sep(p)
        lines = _lines(p)
        names = [h.split(":")[0] for h in lines[0].rstrip("\n").split(sep)]
        if column not in names or sep == ",":
            if sep == "," and column in names:
                import csv
                import io

                rows = list(csv.reader(io.StringIO(_read(p))))
                c = names.index(column)
                for r in rows[1:]:
                    r[c] = value(r[c])
                buf = io.StringIO()
                csv.writer(buf, lineterminator="\n").writerows(rows)
                p.write_text(buf.getvalue(), encoding="utf-8")
                return p
            return None
        c = names.index(column)
        out = [lines[0]]
        for line in lines[1:]:
            parts = line.rstrip("\n").split(sep)
            parts[c] = value(parts[c])
            out.append(sep.join(parts) + "\n")
        p.write_text("".join(out), encoding="utf-8")
        return p
    return edit


def parquet_truncated(p: Path, rng: random.Random) -> Path:
    import pandas as pd

    q = p.with_suffix(".parquet")
    pd.read_csv(p, dtype=str, keep_default_na=False).to_parquet(q, index=False)
    data = q.read_bytes()
    q.write_bytes(data[: len(data) // 2])
    p.unlink()
    return q


def parquet_mislabelled(p: Path, rng: random.Random) -> Path:
    q = p.with_suffix(".parquet")
    p.rename(q)  # csv text under a .parquet name
    return q


# --- JSON documents (LC-Rec / MiniOneRec index files)
def _json_doc_edit(fn: Callable[[Any], Any]) -> Edit:
    def edit(p: Path, rng: random.Random) -> Path | None:
        obj = json.loads(_read(p))
        new = fn(obj)
        if new is None:
            return None
        p.write_text(json.dumps(new), encoding="utf-8")
        return p
    return edit


def _first_value(value: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def fn(obj: Any) -> Any:
        if not isinstance(obj, dict) or not obj:
            return None
        key = list(obj)[len(obj) // 2]
        obj[key] = value(obj[key])
        return obj
    return fn


GENERIC: dict[str, Edit] = {"non_utf8": non_utf8, "truncated": truncated, "empty": empty, "garbage": garbage,
                            "missing": missing}
# an optional file (RecBole .item, a custom items table) may be absent: that is not a defect
OPTIONAL_FILE: dict[str, Edit] = {k: v for k, v in GENERIC.items() if k != "missing"}
JSON_LINES: dict[str, Edit] = {
    "deep_nesting": deep_nesting, "duplicate_key": duplicate_key,
    "time_nan": _set_time(float("nan")), "time_inf": _set_time(float("inf")), "time_negative": _set_time(-5),
    "time_huge": _set_time(10 ** 20), "time_string": _set_time("yesterday"), "time_float_string": _set_time("1.5e9x"),
    "gzip_truncated": gzip_truncated, "gzip_mislabelled": gzip_mislabelled, "gzip_unlabelled": gzip_unlabelled,
}
META_LINES: dict[str, Edit] = {
    "deep_nesting": deep_nesting, "duplicate_key": duplicate_key,
    "title_dict": _title({"en": "a title"}), "title_number": _title(12.5), "title_null": _title(None),
    "title_list": _title(["a", "b"]), "gzip_truncated": gzip_truncated,
}


def defects_for(base: Base) -> dict[str, dict[str, Edit]]:
    """role → {defect name → edit} for one base."""
    f = base.files
    if base.name == "amazon2018":
        return {"reviews": {**GENERIC, **JSON_LINES, "time_milliseconds": _all_times(1000)},
                "meta": {**GENERIC, **META_LINES}}
    if base.name == "amazon2023":
        return {"reviews": {**GENERIC, **JSON_LINES, "time_seconds": _all_times(0.001)},
                "meta": {**GENERIC, **META_LINES}}
    if base.format == "movielens":
        ratings = {**GENERIC, "fewer_fields": fewer_fields, "extra_fields": extra_fields, "stray_tab": stray_tab,
                   "time_string": _headerless_edit(3, lambda v: "soon"), "time_negative": _headerless_edit(3, lambda v: "-3"),
                   "time_huge": _headerless_edit(3, lambda v: "99999999999999999999"),
                   "time_nan": _headerless_edit(3, lambda v: "nan"), "time_inf": _headerless_edit(3, lambda v: "inf"),
                   "time_milliseconds": _headerless_all(3, lambda v: v + "000"),
                   "rating_string": _headerless_edit(2, lambda v: "good"), "item_empty": _headerless_edit(1, lambda v: "")}
        items = {**GENERIC, "fewer_fields": fewer_fields}
        # MovieLens files are latin-1: every byte sequence is valid text there
        return {"ratings": {k: v for k, v in ratings.items() if k != "non_utf8"},
                "items": {k: v for k, v in items.items() if k != "non_utf8"}}
    if base.format == "tabular":
        inter = {**GENERIC, "header_short": header_short, "stray_quote": stray_quote, "extra_fields": extra_fields,
                 "huge_field": huge_field, "time_nan": _column_edit("timestamp", lambda v: "nan"),
                 "time_inf": _column_edit("timestamp", lambda v: "inf"),
                 "time_negative": _column_edit("timestamp", lambda v: "-7"),
                 "time_huge": _column_edit("timestamp", lambda v: "1e20"),
                 "time_string": _column_edit("timestamp", lambda v: "tuesday"),
                 "time_milliseconds": _all_column("timestamp", lambda v: v + "000"),
                 "parquet_truncated": parquet_truncated, "parquet_mislabelled": parquet_mislabelled}
        items = {**OPTIONAL_FILE, "header_short": header_short, "stray_quote": stray_quote, "huge_field": huge_field,
                 "parquet_truncated": parquet_truncated, "duplicate_id": _column_edit("item_id", lambda v: "sku1")}
        return {"interactions": inter, "items": items}
    if base.format == "recbole":
        inter = {**GENERIC, "header_short": header_short, "stray_quote": stray_quote, "extra_fields": extra_fields,
                 "fewer_fields": fewer_fields, "huge_field": huge_field,
                 "time_nan": _column_edit("timestamp", lambda v: "nan"),
                 "time_inf": _column_edit("timestamp", lambda v: "inf"),
                 "time_negative": _column_edit("timestamp", lambda v: "-1"),
                 "time_huge": _column_edit("timestamp", lambda v: "1e20"),
                 "time_string": _column_edit("timestamp", lambda v: "noon"),
                 "time_milliseconds": _all_column("timestamp", lambda v: v + "000"),
                 "no_type_suffix": lambda p, r: _header_without_types(p)}
        # RecBole files are unquoted TSV: a quote character is plain text there
        items = {**OPTIONAL_FILE, "header_short": header_short, "huge_field": huge_field,
                 "duplicate_id": _column_edit("item_id", lambda v: "1")}
        return {"inter": inter, "item": items}
    if base.format == "lcrec":
        inter = {**GENERIC, "deep_nesting": deep_nesting, "duplicate_key": duplicate_key,
                 "sequence_string": _json_doc_edit(_first_value(lambda v: "1,2,3")),
                 "sequence_dicts": _json_doc_edit(_first_value(lambda v: [{"item": x} for x in v])),
                 "sequence_floats": _json_doc_edit(_first_value(lambda v: [x + 0.5 for x in v])),
                 "sequence_empty": _json_doc_edit(_first_value(lambda v: [])),
                 "not_an_object": _json_doc_edit(lambda o: list(o.values()))}
        index = {**GENERIC, "duplicate_key": duplicate_key, "deep_nesting": deep_nesting,
                 "sid_string": _json_doc_edit(_first_value(lambda v: "".join(v))),
                 "sid_short": _json_doc_edit(_first_value(lambda v: v[:-1])),
                 "sid_numbers": _json_doc_edit(_first_value(lambda v: list(range(len(v))))),
                 "item_removed": _json_doc_edit(lambda o: dict(list(o.items())[1:]))}
        return {"inter": inter, "index": index}
    if base.format == "minionerec":
        split = {**GENERIC, "header_short": header_short, "stray_quote": stray_quote, "huge_field": huge_field,
                 "extra_fields": extra_fields,
                 "sid_disagrees": _column_edit("item_sid", lambda v: "<a_1><b_2><c_3>"),
                 "title_disagrees": _column_edit("item_title", lambda v: v + " (other)"),
                 "history_not_a_list": _column_edit("history_item_id", lambda v: "[1, 2"),
                 "history_code": _column_edit("history_item_id", lambda v: "__import__('os').getcwd()"),
                 "item_unknown": _column_edit("item_id", lambda v: "999999")}
        info = {**GENERIC, "fewer_fields": fewer_fields, "stray_tab": stray_tab}
        index = {**GENERIC, "duplicate_key": duplicate_key, "deep_nesting": deep_nesting,
                 "sid_short": _json_doc_edit(_first_value(lambda v: v[:-1]))}
        item = {**GENERIC, "duplicate_key": duplicate_key,
                "title_dict": _json_doc_edit(_first_value(lambda v: {**v, "title": {"x": 1}})),
                "title_number": _json_doc_edit(_first_value(lambda v: {**v, "title": float("nan")}))}
        return {"valid": {k: v for k, v in split.items() if k != "missing"}, "test": split, "info": info,
                "index": index, "item": item}
    raise ValueError(base.name)


def _header_without_types(p: Path) -> Path:
    lines = _lines(p)
    lines[0] = "\t".join(h.split(":")[0] for h in lines[0].rstrip("\n").split("\t")) + "\n"
    _write(p, "".join(lines))
    return p


def corpus(bases: list[Base], out: Path, seed: int = 0) -> list[Case]:
    """Every (base, file, defect) case, each in its own folder under `out`."""
    if out.exists():
        shutil.rmtree(out)
    cases: list[Case] = []
    for base in bases:
        for role, edits in defects_for(base).items():
            for defect, edit in edits.items():
                folder = out / base.name / role / defect
                shutil.copytree(base.path, folder)
                result = edit(folder / base.files[role], random.Random(f"{seed}/{base.name}/{role}/{defect}"))
                if result is None:
                    shutil.rmtree(folder)
                    continue
                cases.append(Case(base, defect, base.files[role], folder))
    return cases


# ----------------------------------------------------------------------------- running
def _filters(dataset_dir: Path) -> dict[str, int]:
    info = json.loads((dataset_dir / "dataset.json").read_text(encoding="utf-8"))
    out: dict[str, int] = {}
    for f in info.get("filters", []):
        n = sum(int(f.get(k) or 0) for k in ("removed_interactions", "removed_items", "removed_users", "removed_examples"))
        out[f["name"]] = out.get(f["name"], 0) + n
    return out


def import_cli(fmt: str, path: Path, out: Path) -> tuple[int, str, BaseException | None]:
    """`sidrec data import FMT PATH --out OUT` in process: exit code, stderr, escaped exception."""
    from typer.testing import CliRunner

    from sidrec.cli.main import app

    res = CliRunner().invoke(app, ["data", "import", fmt, str(path), "--out", str(out)], catch_exceptions=True)
    exc = res.exception if res.exception is not None and not isinstance(res.exception, SystemExit) else None
    err = res.stderr if hasattr(res, "stderr") else res.output
    return res.exit_code, err, exc


def clean_filters(bases: list[Base], out: Path) -> dict[str, dict[str, int]]:
    """The filter counts of each clean base's import (a case's filter must remove more)."""
    result = {}
    for base in bases:
        target = out / "clean" / base.name
        code, err, exc = import_cli(base.format, base.path, target)
        if code != 0 or exc is not None:
            raise RuntimeError(f"the clean base {base.name} does not import: {err or exc}")
        result[base.name] = _filters(target)
    return result


def run_case(case: Case, out: Path, clean: dict[str, int]) -> Outcome:
    target = out / "cases" / case.base.name / case.target.replace("/", "_") / case.defect
    code, err, exc = import_cli(case.base.format, case.path, target)
    lines = [x for x in err.strip().splitlines() if x.strip()]
    message = " ".join(x.strip() for x in lines)
    if exc is not None:
        kind, message = "traceback", f"{type(exc).__name__}: {exc}"[:300]
    elif code != 0:
        named = Path(case.target).name.split(".")[0] in message or Path(case.target).stem in message or (
            case.defect == "missing" and str(case.path) in message)
        one_line = message.startswith("error:") and "Traceback" not in message
        kind = "clear_error" if one_line and named else "traceback"
    else:
        filters = _filters(target)
        grew = {k: v for k, v in filters.items() if v > clean.get(k, 0)}
        kind = "counted_filter" if grew else "silent"
        message = ", ".join(f"{k} +{v - clean.get(k, 0)}" for k, v in grew.items()) or "accepted"
    return Outcome(case.name, case.base.format, case.defect, kind, code, message)


def main(argv: list[str] | None = None) -> None:
    """python -m sidrec.testing.fuzz [BASE ...]: run the corpus (of the named bases) and list the
    cases that end in a traceback or silently."""
    import argparse
    import collections
    import tempfile

    ap = argparse.ArgumentParser()
    ap.add_argument("bases", nargs="*", help="base names (default: all)")
    ap.add_argument("--shared", type=Path, default=Path("../shared/data"))
    ap.add_argument("--fixtures", type=Path, default=Path("tests/fixtures"))
    ap.add_argument("--all", action="store_true", help="list every case, not only the failing ones")
    args = ap.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="sidrec-fuzz-"))
    built = build_bases(work, args.shared if args.shared.is_dir() else None, args.fixtures)
    unknown = sorted(set(args.bases) - {b.name for b in built})
    if unknown:
        shutil.rmtree(work, ignore_errors=True)
        raise SystemExit(f"error: unknown base(s) {', '.join(unknown)}: choose from {', '.join(b.name for b in built)}"
                         f"{'' if args.shared.is_dir() else f' ({args.shared} not found: the shared-data bases are absent)'}")
    bases = [b for b in built if not args.bases or b.name in args.bases]
    cases = corpus(bases, work / "cases")
    clean = clean_filters(bases, work / "out")
    results = [run_case(c, work / "out", clean[c.base.name]) for c in cases]
    for r in results:
        if args.all or r.kind in ("traceback", "silent"):
            print(f"{r.kind:14s} {r.case:70s} {r.message[:160]}")
    print(dict(collections.Counter(r.kind for r in results)), f"{len(results)} cases")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
