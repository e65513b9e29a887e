"""Malformed raw files (Amazon 2018/2023, MovieLens, tabular): one DataError naming the file, line
and field, or a counted filter; never a traceback and never a silent coercion.

Each test copies a fixture folder into tmp_path and breaks one file, mostly with the edits of
sidrec.testing.fuzz.
"""

from __future__ import annotations

import gzip
import json
import random
import shutil
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from sidrec.data.importers.amazon import import_amazon
from sidrec.data.importers.movielens import import_movielens
from sidrec.data.importers.tabular import import_tabular
from sidrec.errors import DataError
from sidrec.testing import fuzz

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REVIEWS = {"2018": "Toys_and_Games.json", "2023": "Toys_and_Games.jsonl"}
TIME = {"2018": "unixReviewTime", "2023": "timestamp"}


def broken(tmp_path: Path, fixture: str, name: str, edit: Callable[[Path, random.Random], Path | None]) -> Path:
    """A copy of tests/fixtures/<fixture> with `edit` applied to its file `name`; returns the folder."""
    folder = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, folder)
    assert edit(folder / name, random.Random(0)) is not None
    return folder


def error_of(fn: Callable[..., object], *args: object, **kwargs: object) -> DataError:
    with pytest.raises(DataError) as err:
        fn(*args, **kwargs)
    assert "\n" not in str(err.value)
    return err.value


def middle_line(fixture: str, name: str) -> int:
    """The 1-based line that the fuzz edits of one line change."""
    return len((FIXTURES / fixture / name).read_text(encoding="latin-1").splitlines()) // 2 + 1


def set_line(path: Path, line: int, text: str, encoding: str = "utf-8") -> None:
    lines = path.read_text(encoding=encoding).splitlines()
    lines[line - 1] = text
    path.write_text("\n".join(lines) + "\n", encoding=encoding)


# ====================================================================== Amazon: review files
@pytest.mark.parametrize("version", ["2018", "2023"])
@pytest.mark.parametrize(("defect", "expected"), [
    ("duplicate_key", "duplicate key 'asin'"),
    ("deep_nesting", "nested deeper than 64"),
    ("time_nan", "'NaN' is not a JSON value"),
    ("non_utf8", "not UTF-8"),
])
def test_amazon_bad_review_line_names_file_and_line(version: str, defect: str, expected: str, tmp_path: Path) -> None:
    folder = broken(tmp_path, f"amazon{version}", REVIEWS[version], fuzz.JSON_LINES.get(defect) or fuzz.GENERIC[defect])
    err = error_of(import_amazon, folder)
    assert err.path is not None and err.path.endswith(REVIEWS[version])
    assert err.line == middle_line(f"amazon{version}", REVIEWS[version]) and expected in err.message


def test_amazon_skip_counts_lines_with_a_duplicate_key(tmp_path: Path) -> None:
    folder = broken(tmp_path, "amazon2018", REVIEWS["2018"], fuzz.duplicate_key)
    ds = import_amazon(folder, on_bad_line="skip", user_k=1, item_k=1)
    assert {f.name: f.removed_interactions for f in ds.info.filters}["bad_lines"] == 1


@pytest.mark.parametrize(("defect", "expected"), [
    ("gzip_truncated", "truncated or corrupt gzip"),
    ("gzip_mislabelled", "named .gz but not gzip"),
    ("gzip_unlabelled", "gzip-compressed data under a name without .gz"),
])
def test_amazon_bad_gzip_names_the_file(defect: str, expected: str, tmp_path: Path) -> None:
    folder = broken(tmp_path, "amazon2023", REVIEWS["2023"], fuzz.JSON_LINES[defect])
    err = error_of(import_amazon, folder)
    assert err.path is not None and Path(err.path).name.startswith(REVIEWS["2023"]) and expected in err.message


@pytest.mark.parametrize("version", ["2018", "2023"])
@pytest.mark.parametrize(("value", "expected"), [
    (-5, "negative"), (10**20, "lies in the future"), ("yesterday", "not a number"), (10**400, "not a finite"),
])
def test_amazon_bad_time_names_line_and_field(version: str, value: object, expected: str, tmp_path: Path) -> None:
    folder = broken(tmp_path, f"amazon{version}", REVIEWS[version], fuzz._set_time(value))
    err = error_of(import_amazon, folder)
    assert (err.line, err.field) == (middle_line(f"amazon{version}", REVIEWS[version]), TIME[version])
    assert expected in err.message


def test_amazon_times_in_the_wrong_unit(tmp_path: Path) -> None:
    ms = error_of(import_amazon, broken(tmp_path / "a", "amazon2018", REVIEWS["2018"], fuzz._all_times(1000)))
    assert (ms.line, ms.field) == (1, "unixReviewTime") and "future" in ms.message
    assert ms.hint is not None and "look like milliseconds" in ms.hint
    s = error_of(import_amazon, broken(tmp_path / "b", "amazon2023", REVIEWS["2023"], fuzz._all_times(0.001)))
    assert (s.line, s.field) == (1, "timestamp") and "before 1990" in s.message
    assert s.hint is not None and "look like seconds" in s.hint


def test_amazon_review_id_of_the_wrong_type(tmp_path: Path) -> None:
    folder = tmp_path / "a"
    shutil.copytree(FIXTURES / "amazon2018", folder)
    record = json.loads((folder / REVIEWS["2018"]).read_text().splitlines()[4])
    set_line(folder / REVIEWS["2018"], 5, json.dumps({**record, "asin": {"id": "B01"}}))
    err = error_of(import_amazon, folder)
    assert (err.line, err.field) == (5, "asin") and "JSON object" in err.message


# ====================================================================== Amazon: metadata
@pytest.mark.parametrize("version", ["2018", "2023"])
@pytest.mark.parametrize("title", [{"en": "a title"}, 12.5, ["a", "b"]])
def test_amazon_title_that_is_not_text_is_a_counted_filter(version: str, title: object, tmp_path: Path) -> None:
    meta = "meta_" + REVIEWS[version]
    folder = tmp_path / "a"
    shutil.copytree(FIXTURES / f"amazon{version}", folder)
    record = json.loads((folder / meta).read_text().splitlines()[0])  # B01
    set_line(folder / meta, 1, json.dumps({**record, "title": title}))
    ds = import_amazon(folder, user_k=1, item_k=1)
    f = {r.name: r for r in ds.info.filters}
    assert f["title_not_text"].removed_items == 1 and "B01" not in ds.item_index
    assert f["title_filter"].removed_items == 1  # only B06, the HTML title: not counted twice
    assert f["title_filter_interactions"].removed_interactions > 0
    assert not ds.items["title"].str.contains(r"^nan$|[{\[]|12\.5").any()
    # with the default 5-core the fixture empties: the error names the metadata file
    err = error_of(import_amazon, folder)
    assert "no interactions left" in err.message and err.hint is not None and str(folder / meta) in err.hint


def test_amazon_null_title_is_a_missing_title(tmp_path: Path) -> None:
    folder = broken(tmp_path, "amazon2023", "meta_" + REVIEWS["2023"], fuzz.META_LINES["title_null"])
    ds = import_amazon(folder, user_k=1, item_k=1)
    assert {f.name: f.removed_items for f in ds.info.filters}["title_filter"] == 2  # B06 and this one


@pytest.mark.parametrize("defect", ["duplicate_key", "deep_nesting"])
def test_amazon_bad_metadata_line_names_file_and_line(defect: str, tmp_path: Path) -> None:
    meta = "meta_" + REVIEWS["2023"]
    err = error_of(import_amazon, broken(tmp_path, "amazon2023", meta, fuzz.META_LINES[defect]))
    assert err.path is not None and err.path.endswith(meta) and err.line == middle_line("amazon2023", meta)


def test_amazon_empty_or_all_invalid_metadata_names_the_file(tmp_path: Path) -> None:
    meta = "meta_" + REVIEWS["2018"]
    err = error_of(import_amazon, broken(tmp_path / "a", "amazon2018", meta, fuzz.empty))
    assert err.path is not None and err.path.endswith(meta) and "no metadata rows" in err.message
    folder = broken(tmp_path / "b", "amazon2018", meta, fuzz.empty)
    (folder / meta).write_text('{"title": "no asin"}\nnot json\n')
    err = error_of(import_amazon, folder, on_bad_line="skip")
    assert err.path is not None and err.path.endswith(meta) and "2 bad lines skipped" in err.message


# ====================================================================== MovieLens
def ml_line(fixture: str, name: str, line: int, text: str, tmp_path: Path) -> Path:
    folder = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, folder)
    set_line(folder / name, line, text, encoding="latin-1")
    return folder


@pytest.mark.parametrize(("text", "field", "expected"), [
    ("3\t::6::4::874968060", "user_id", "not a whole-number id"),  # a stray tab
    ("3::six::4::874968060", "item_id", "not a whole-number id"),
    ("3::6::nan::874968060", "rating", "not a finite number"),
    ("3::6::4::-3", "timestamp", "negative"),
    ("3::6::4::99999999999999999999", "timestamp", "future"),
    ("3::6::4::inf", "timestamp", "not a finite number"),
    ("3::6::4::100", "timestamp", "before 1990"),
])
def test_movielens_bad_value_names_line_and_field(text: str, field: str, expected: str, tmp_path: Path) -> None:
    err = error_of(import_movielens, ml_line("movielens1m", "ratings.dat", 1, text, tmp_path))
    assert err.path is not None and err.path.endswith("ratings.dat")
    assert (err.line, err.field) == (1, field) and expected in err.message


def test_movielens_milliseconds_get_a_hint(tmp_path: Path) -> None:
    folder = broken(tmp_path, "movielens100k", "u.data", fuzz._headerless_all(3, lambda v: v + "000"))
    err = error_of(import_movielens, folder)
    assert (err.line, err.field) == (1, "timestamp") and err.hint is not None and "milliseconds" in err.hint


def test_movielens_item_id_in_the_movie_file_must_be_a_number(tmp_path: Path) -> None:
    err = error_of(import_movielens, ml_line("movielens1m", "movies.dat", 2, "x2::GoldenEye (1995)::Action", tmp_path))
    assert err.path is not None and err.path.endswith("movies.dat") and (err.line, err.field) == (2, "item_id")


@pytest.mark.parametrize(("fixture", "name", "expected"), [
    ("movielens100k", "u.data", "no ratings"), ("movielens1m", "ratings.dat", "no ratings"),
    ("movielens100k", "u.item", "no movies"), ("movielens1m", "movies.dat", "no movies"),
])
def test_movielens_empty_file_names_it(fixture: str, name: str, expected: str, tmp_path: Path) -> None:
    err = error_of(import_movielens, broken(tmp_path, fixture, name, fuzz.empty))
    assert err.path is not None and err.path.endswith(name) and expected in err.message


@pytest.mark.parametrize(("fixture", "name"), [("movielens100k", "u.item"), ("movielens1m", "movies.dat")])
def test_movielens_missing_movie_file_names_it(fixture: str, name: str, tmp_path: Path) -> None:
    err = error_of(import_movielens, broken(tmp_path, fixture, name, fuzz.missing))
    assert err.path is not None and err.path.endswith(name) and "part of the" in err.message


# ====================================================================== tabular
TABULAR = FIXTURES / "tabular"


def tabular_with(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "tabular"
    shutil.copytree(TABULAR, folder)
    (folder / name).write_text(text, encoding="utf-8")
    return folder


def test_tabular_huge_field_names_line_and_column(tmp_path: Path) -> None:
    items = (TABULAR / "items.csv").read_text().splitlines()
    items[4] += "x" * 200_000  # sku3, line 5 (sku1's description spans lines 2-3)
    err = error_of(import_tabular, tabular_with(tmp_path, "items.csv", "\n".join(items) + "\n"))
    assert err.path is not None and err.path.endswith("items.csv") and (err.line, err.field) == (5, "color")


def test_tabular_row_with_extra_fields_names_the_line_an_editor_shows(tmp_path: Path) -> None:
    items = (TABULAR / "items.csv").read_text().splitlines()
    items[5] += ",surplus"  # sku4, line 6; pandas would count it as line 5
    err = error_of(import_tabular, tabular_with(tmp_path, "items.csv", "\n".join(items) + "\n"))
    assert err.path is not None and err.path.endswith("items.csv") and err.line == 6 and "7 fields" in err.message


def test_tabular_stray_quote_names_the_line(tmp_path: Path) -> None:
    inter = (TABULAR / "interactions.csv").read_text().splitlines()
    inter[6] = inter[6].replace(",16", ',"16')  # line 7
    err = error_of(import_tabular, tabular_with(tmp_path, "interactions.csv", "\n".join(inter) + "\n"))
    assert err.path is not None and err.path.endswith("interactions.csv") and err.line == 7 and "quote" in err.message


def test_tabular_short_header_does_not_shift_columns(tmp_path: Path) -> None:
    for name in ("interactions.csv", "items.csv"):
        err = error_of(import_tabular, broken(tmp_path / name, "tabular", name, fuzz.header_short))
        assert err.path is not None and err.path.endswith(name) and err.line == 1 and "would shift" in err.message


def test_tabular_not_utf8_names_the_line(tmp_path: Path) -> None:
    err = error_of(import_tabular, broken(tmp_path, "tabular", "interactions.csv", fuzz.non_utf8))
    assert err.path is not None and err.path.endswith("interactions.csv") and err.line == 7 and "UTF-8" in err.message


def test_tabular_keeps_reading_a_utf8_bom(tmp_path: Path) -> None:
    folder = tabular_with(tmp_path, "interactions.csv", "\ufeff" + (TABULAR / "interactions.csv").read_text())
    assert len(import_tabular(folder).interactions) == 12


def test_tabular_gzip_under_a_csv_name(tmp_path: Path) -> None:
    folder = tmp_path / "tabular"
    shutil.copytree(TABULAR, folder)
    (folder / "interactions.csv").write_bytes(gzip.compress((TABULAR / "interactions.csv").read_bytes()))
    err = error_of(import_tabular, folder)
    assert err.path is not None and err.path.endswith("interactions.csv") and "gzip" in err.message


@pytest.mark.parametrize(("defect", "expected"), [("parquet_truncated", "truncated parquet"),
                                                  ("parquet_mislabelled", "not a parquet file")])
def test_tabular_bad_parquet_names_the_file(defect: str, expected: str, tmp_path: Path) -> None:
    edit = getattr(fuzz, defect)
    err = error_of(import_tabular, broken(tmp_path, "tabular", "interactions.csv", edit))
    assert err.path is not None and err.path.endswith("interactions.parquet") and expected in err.message


@pytest.mark.parametrize(("value", "expected"), [
    ("inf", "not a finite number"), ("-7", "negative"), ("1e20", "future"),
])
def test_tabular_bad_time_names_line_and_field(value: str, expected: str, tmp_path: Path) -> None:
    inter = (TABULAR / "interactions.csv").read_text().splitlines()
    inter[6] = ",".join(inter[6].split(",")[:2] + [value])  # line 7
    err = error_of(import_tabular, tabular_with(tmp_path, "interactions.csv", "\n".join(inter) + "\n"))
    assert (err.line, err.field) == (7, "timestamp") and expected in err.message
    assert "milliseconds" not in (err.hint or "")  # 1e20 is no millisecond time either


def test_tabular_milliseconds_get_a_hint_and_ordinal_times_pass(tmp_path: Path) -> None:
    raw = pd.read_csv(TABULAR / "interactions.csv", dtype=str)
    ms = raw.assign(timestamp=raw["timestamp"] + "000")
    err = error_of(import_tabular, tabular_with(tmp_path / "a", "interactions.csv", ms.to_csv(index=False)))
    assert (err.line, err.field) == (2, "timestamp") and err.hint is not None and "milliseconds" in err.hint
    ordinal = raw.assign(timestamp=[str(k) for k in range(len(raw))])
    ds = import_tabular(tabular_with(tmp_path / "b", "interactions.csv", ordinal.to_csv(index=False)))
    assert ds.interactions["timestamp"].min() == 0
