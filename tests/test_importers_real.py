"""Importers on the real shared datasets (../shared/data): exact published counts.

Skipped with a message when the shared folder is absent. Each dataset is imported once per module.
"""

from __future__ import annotations

import ast
import csv
from pathlib import Path

import pandas as pd
import pytest

from sidrec.data.dataset import Dataset
from sidrec.data.importers import detect_format, import_dataset
from sidrec.data.importers.lcrec import import_lcrec
from sidrec.data.importers.minionerec import import_minionerec
from sidrec.data.importers.recbole import import_recbole

pytestmark = pytest.mark.integration

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared(name: str) -> Path:
    """The shared dataset folder `name`; skips the test when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"real dataset not found at {path} (the shared data folder sits beside the repo)")
    return path


@pytest.fixture(scope="module")
def ml100k() -> Dataset:
    return import_recbole(shared("ml-100k"))


@pytest.fixture(scope="module")
def beauty() -> Dataset:
    return import_lcrec(shared("amazon14-beauty"))


@pytest.fixture(scope="module")
def industrial() -> Dataset:
    return import_minionerec(shared("amazon18-industrial"))


def _as_lists(df: pd.DataFrame) -> pd.DataFrame:
    """Copy with list-like cells (parquet gives arrays back) as lists, for frame comparison."""
    out = df.copy()
    for col in out.columns:
        if len(out) and not isinstance(out[col].iloc[0], str) and hasattr(out[col].iloc[0], "__len__"):
            out[col] = out[col].map(list)
    return out


# ---------------------------------------------------------------------- ml-100k (RecBole)
def test_ml100k_counts(ml100k: Dataset) -> None:
    stats = ml100k.info.stats
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100_000)
    assert len(ml100k.split("valid")) == 943 and len(ml100k.split("test")) == 943
    assert len(ml100k.split("train")) == 100_000 - 3 * 943
    assert ml100k.info.time_kind == "timestamp" and ml100k.info.format == "recbole"
    assert ml100k.info.filters == []  # every user has >= 20 ratings: nothing removed
    assert stats["items_with_title"] == 1682


def test_ml100k_test_target_is_each_users_last_interaction(ml100k: Dataset) -> None:
    last = ml100k.interactions.groupby("user_id").tail(1).set_index("user_id")["item_id"]
    test = ml100k.split("test").set_index("user_id")["target"]
    assert test.sort_index().equals(last.sort_index())
    assert ml100k.split("test")["history"].map(len).max() == 20


# ---------------------------------------------------------------------- Beauty (LC-Rec)
def test_beauty_counts_and_external_sids(beauty: Dataset) -> None:
    stats = beauty.info.stats
    assert (stats["users"], stats["items"], stats["interactions"]) == (22_363, 12_101, 198_502)
    assert len(beauty.split("valid")) == 22_363 and len(beauty.split("test")) == 22_363
    assert len(beauty.split("train")) == 198_502 - 3 * 22_363
    assert beauty.info.time_kind == "order" and beauty.info.protocol == "leave-one-out"
    assert beauty.info.protocol_params["max_history"] == 20
    assert any("no text" in note for note in beauty.info.notes)
    assert stats["items_with_title"] == 0
    sids = beauty.external_sids
    assert sids is not None and len(sids) == 12_101 and set(sids) == set(beauty.item_ids)
    assert {len(t) for t in sids.values()} == {4}
    assert len({tuple(t) for t in sids.values()}) == 12_088  # 13 collisions, as the README says


def test_beauty_timestamps_are_positions(beauty: Dataset) -> None:
    inter = beauty.interactions
    expected = inter.groupby("user_id", sort=False).cumcount()
    assert (inter["timestamp"].to_numpy() == expected.to_numpy()).all()
    assert beauty.split("test")["history"].map(len).max() == 20


# ---------------------------------------------------------------------- Industrial (MiniOneRec)
def test_industrial_partial_protocol_counts(industrial: Dataset) -> None:
    assert industrial.info.protocol == "industrial-partial"
    assert len(industrial.split("train")) == 10_393
    assert industrial.interactions["user_id"].nunique() == 3_285  # the users whose first rows give train
    assert len(industrial.split("valid")) == 4_532 and len(industrial.split("test")) == 4_533
    assert industrial.n_items == 3_686
    assert industrial.info.time_kind == "order" and industrial.info.protocol_params["max_history"] == 10
    sids = industrial.external_sids
    assert sids is not None and len(sids) == 3_686 and {len(t) for t in sids.values()} == {3}
    assert len({tuple(t) for t in sids.values()}) == 3_670
    assert industrial.split("train")["history"].map(len).max() <= 10


def test_industrial_items_have_parsed_text(industrial: Dataset) -> None:
    items = industrial.items
    assert items["title"].str.strip().ne("").all()
    assert not items["description"].str.startswith("['").any()  # stringified lists were joined
    assert items["item_id"].tolist()[:3] == ["0", "1", "2"]  # info/*.txt order


def test_industrial_valid_rows_match_the_csv(industrial: Dataset) -> None:
    path = next((shared("amazon18-industrial") / "valid").glob("*.csv"))
    with open(path, encoding="utf-8", newline="") as f:
        first = next(csv.DictReader(f))
    row = industrial.split("valid").iloc[0]
    assert row["user_id"] == first["user_id"] and row["target"] == first["item_id"]
    assert list(row["history"]) == [str(i) for i in ast.literal_eval(first["history_item_id"])]


def test_industrial_train_comes_before_each_users_evaluation_rows(industrial: Dataset) -> None:
    train_last = industrial.split("train").groupby("user_id")["timestamp"].max()
    evals = pd.concat([industrial.split("valid"), industrial.split("test")])
    eval_first = evals.groupby("user_id")["timestamp"].min()
    assert (train_last < eval_first.reindex(train_last.index)).all()


def test_industrial_round_trip(industrial: Dataset, tmp_path: Path) -> None:
    industrial.save(tmp_path / "industrial")
    loaded = Dataset.load(tmp_path / "industrial")
    assert loaded.external_sids == industrial.external_sids
    pd.testing.assert_frame_equal(_as_lists(loaded.items), _as_lists(industrial.items))
    pd.testing.assert_frame_equal(loaded.interactions, industrial.interactions)
    for name, df in industrial.splits.items():
        pd.testing.assert_frame_equal(_as_lists(loaded.split(name)), _as_lists(df))


# ---------------------------------------------------------------------- registry
def test_detect_format_on_real_layouts() -> None:
    assert detect_format(shared("ml-100k")) == "recbole"
    assert detect_format(shared("amazon14-beauty")) == "lcrec"
    assert detect_format(shared("amazon18-industrial")) == "minionerec"


def test_import_dataset_auto_matches_direct_import(ml100k: Dataset) -> None:
    auto = import_dataset("auto", shared("ml-100k"))
    assert auto.info.format == "recbole"
    pd.testing.assert_frame_equal(auto.interactions, ml100k.interactions)
