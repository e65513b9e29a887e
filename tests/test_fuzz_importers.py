"""Malformed variants of every importer's layout (sidrec.testing.fuzz: subsets of the real shared
datasets and the raw-format fixtures, each with one defect) all end in a one-line error naming the
file or an explicit counted filter: never a traceback, never a silent acceptance."""

from __future__ import annotations

import collections
from pathlib import Path

import pytest

from sidrec.testing.fuzz import build_bases, clean_filters, corpus, run_case

from .conftest import SHARED_DATA

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory):
    work = tmp_path_factory.mktemp("fuzz")
    bases = build_bases(work, SHARED_DATA if SHARED_DATA.is_dir() else None, FIXTURES)
    cases = corpus(bases, work / "cases")
    clean = clean_filters(bases, work / "out")
    return [run_case(c, work / "out", clean[c.base.name]) for c in cases]


def test_no_malformed_input_ends_in_a_traceback_or_silently(outcomes):
    bad = [f"{o.kind}: {o.case}: {o.message[:200]}" for o in outcomes if o.kind in ("traceback", "silent")]
    assert bad == []


def test_the_corpus_covers_every_importer_and_defect_class(outcomes):
    by_importer = collections.Counter(o.importer for o in outcomes)
    expected = {"amazon", "movielens", "tabular"} | ({"lcrec", "minionerec", "recbole"} if SHARED_DATA.is_dir() else set())
    assert set(by_importer) == expected
    defects = {o.defect for o in outcomes}
    for kind in ("non_utf8", "truncated", "gzip_truncated", "gzip_mislabelled", "deep_nesting", "duplicate_key",
                 "time_nan", "time_inf", "time_string", "time_milliseconds", "header_short", "stray_quote",
                 "huge_field", "title_dict", "parquet_truncated", "missing"):
        assert kind in defects, kind
    if SHARED_DATA.is_dir():
        assert {"sid_disagrees", "title_disagrees", "time_seconds"} <= defects
        assert len(outcomes) >= 150
