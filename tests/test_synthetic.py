"""The embedded synthetic dataset: labelled, deterministic, well-formed, with real sequential signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from sidrec.data.dataset import Dataset
from sidrec.data.synthetic import (
    ATTRIBUTES,
    BRANDS,
    CATALOGUE,
    END_TIME,
    START_TIME,
    SyntheticConfig,
    generate_synthetic,
)

SMALL = {"n_items": 300, "n_users": 250}


@pytest.fixture(scope="module")
def default_ds() -> Dataset:
    """The default dataset (2000 items, 3000 users, seed 0), generated once for the module."""
    return generate_synthetic(SyntheticConfig())


# ---------------------------------------------------------------- labels and sizes


def test_labelled_synthetic_everywhere(default_ds: Dataset) -> None:
    info = default_ds.info
    assert info.name == "synthetic"
    assert info.format == "synthetic"
    assert info.synthetic is True
    assert info.time_kind == "timestamp"
    assert "seed 0" in info.source
    assert any("synthetic" in n.lower() and "seed 0" in n for n in info.notes)


def test_default_sizes(default_ds: Dataset) -> None:
    assert default_ds.n_items == 2000
    assert default_ds.interactions["user_id"].nunique() == 3000
    lengths = default_ds.interactions.groupby("user_id").size()
    assert lengths.min() >= 5
    assert 10.5 <= lengths.mean() <= 13.5


def test_custom_sizes_honoured() -> None:
    cfg = SyntheticConfig(n_items=120, n_users=80, min_length=6, mean_length=9, max_length=15, seed=5)
    ds = generate_synthetic(cfg)
    assert ds.n_items == 120
    lengths = ds.interactions.groupby("user_id").size()
    assert len(lengths) == 80
    assert lengths.min() >= 6 and lengths.max() <= 15


def test_fewer_items_than_product_types_still_works() -> None:
    ds = generate_synthetic(SyntheticConfig(n_items=20, n_users=30, seed=2))
    assert ds.n_items == 20
    assert len(ds.split("test")) == 30


# ---------------------------------------------------------------- determinism


def test_same_seed_gives_identical_frames() -> None:
    a = generate_synthetic(SyntheticConfig(**SMALL, seed=7))
    b = generate_synthetic(SyntheticConfig(**SMALL, seed=7))
    pd.testing.assert_frame_equal(a.items, b.items)
    pd.testing.assert_frame_equal(a.interactions, b.interactions)
    for split in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(a.split(split), b.split(split))


def test_different_seed_gives_different_data() -> None:
    a = generate_synthetic(SyntheticConfig(**SMALL, seed=7))
    b = generate_synthetic(SyntheticConfig(**SMALL, seed=8))
    assert a.items["title"].tolist() != b.items["title"].tolist()
    assert a.interactions["item_id"].tolist() != b.interactions["item_id"].tolist()


# ---------------------------------------------------------------- catalogue and item text


def test_catalogue_tables_are_rich_and_consistent() -> None:
    assert len(CATALOGUE) >= 10
    types = {pt.name: dept for dept, cats in CATALOGUE.items() for pts in cats.values() for pt in pts}
    assert len(types) >= 60
    for dept, cats in CATALOGUE.items():
        assert len(BRANDS[dept]) >= 4
        for pts in cats.values():
            for pt in pts:
                assert pt.use.startswith("for ") and pt.features
                for comp in pt.complements:
                    assert types.get(comp) == dept, f"{pt.name} → {comp}"
    all_brands = [b for bs in BRANDS.values() for b in bs]
    assert len(all_brands) == len(set(all_brands))
    assert all(len(v) >= 2 for v in ATTRIBUTES.values())


def test_every_item_has_text_brand_and_categories(default_ds: Dataset) -> None:
    items = default_ds.items
    assert items["item_id"].str.fullmatch(r"S\d{6}").all()
    for col in ("title", "description", "brand"):
        assert items[col].str.strip().str.len().gt(0).all(), col
    assert items["categories"].map(len).eq(3).all()
    assert items["categories"].map(lambda c: all(str(x).strip() for x in c)).all()
    assert items["price"].astype(float).gt(0).all()
    depts = items["categories"].map(lambda c: c[0])
    assert depts.nunique() >= 10
    assert items["categories"].map(lambda c: c[2]).nunique() >= 60


def test_titles_are_diverse(default_ds: Dataset) -> None:
    titles = default_ds.items["title"]
    assert titles.nunique() / len(titles) >= 0.95
    assert titles.str.contains(r"\(Gen \d+\)").mean() < 0.05  # diverse by content, not by suffix
    assert default_ds.items["description"].nunique() / len(titles) >= 0.9
    # the text carries the structure: the brand is in the title, the product type in the description
    rows = default_ds.items.itertuples()
    assert all(r.brand in r.title and r.categories[2] in r.description for r in rows)


# ---------------------------------------------------------------- interactions and splits


def test_timestamps_increase_within_2024_2025(default_ds: Dataset) -> None:
    inter = default_ds.interactions
    ts = inter["timestamp"].to_numpy()
    assert ts.min() >= START_TIME and ts.max() <= END_TIME
    same_user = inter["user_id"].to_numpy()[1:] == inter["user_id"].to_numpy()[:-1]
    assert (np.diff(ts)[same_user] > 0).all()
    starts = inter.groupby("user_id")["timestamp"].min()
    assert starts.max() - starts.min() > 300 * 86400  # users start at different times


def test_leave_one_out_splits(default_ds: Dataset) -> None:
    assert default_ds.info.protocol == "leave-one-out"
    assert default_ds.info.protocol_params["max_history"] == 20
    train, valid, test = (default_ds.split(s) for s in ("train", "valid", "test"))
    assert len(valid) == len(test) == 3000
    assert len(train) == len(default_ds.interactions) - 2 * 3000 - 3000  # first item of a user is no target
    assert test["history"].map(len).max() <= 20
    v = valid.set_index("user_id")["timestamp"]
    t = test.set_index("user_id")["timestamp"]
    assert (t > v.reindex(t.index)).all()


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    ds = generate_synthetic(SyntheticConfig(n_items=80, n_users=40, seed=1))
    loaded = Dataset.load(ds.save(tmp_path / "synthetic"))
    assert loaded.info.synthetic is True and loaded.info.format == "synthetic"
    pd.testing.assert_frame_equal(loaded.interactions, ds.interactions)


# ---------------------------------------------------------------- the signal is real


def _hit_rates(ds: Dataset, k: int = 10) -> tuple[float, float]:
    """HR@k on test (full ranking) of popularity and of a first-order item → next-item model."""
    n = ds.n_items
    train, test = ds.encode("train"), ds.encode("test")
    prev, nxt = train.histories[:, -1] - 1, train.targets
    pop = np.bincount(nxt, minlength=n).astype(np.float64)
    trans = np.zeros((n, n), dtype=np.float32)
    np.add.at(trans, (prev, nxt), 1.0)
    rows = np.arange(len(test))
    pop_rank = (pop[None, :] > pop[test.targets][:, None]).sum(axis=1)
    scores = trans[test.histories[:, -1] - 1] + (1e-3 * pop / pop.max())[None, :]  # popularity breaks ties
    trans_rank = (scores > scores[rows, test.targets][:, None]).sum(axis=1)
    return float((pop_rank < k).mean()), float((trans_rank < k).mean())


def test_transition_model_beats_popularity(default_ds: Dataset) -> None:
    hr_pop, hr_trans = _hit_rates(default_ds)
    assert hr_pop > 0.005  # popularity is informative, just much weaker
    assert hr_trans >= 2.0 * hr_pop, (hr_pop, hr_trans)


def test_complementary_structure(default_ds: Dataset) -> None:
    items = default_ds.items.set_index("item_id")
    inter = default_ds.interactions
    same_user = inter["user_id"].to_numpy()[1:] == inter["user_id"].to_numpy()[:-1]
    cats = items["categories"].reindex(inter["item_id"]).tolist()
    dept = np.array([c[0] for c in cats])
    ptype = [c[2] for c in cats]
    assert (dept[1:] == dept[:-1])[same_user].mean() >= 0.6
    complements = {
        (pt.name, comp) for cs in CATALOGUE.values() for pts in cs.values() for pt in pts for comp in pt.complements
    }
    is_comp = np.array([(a, b) in complements for a, b in zip(ptype[:-1], ptype[1:], strict=True)])
    assert is_comp[same_user].mean() >= 0.2  # primary → accessory is a frequent step
    brand = items["brand"].reindex(inter["item_id"]).to_numpy()
    assert (brand[1:] == brand[:-1])[same_user & is_comp].mean() >= 0.4  # accessories often share the brand


# ---------------------------------------------------------------- configuration


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValidationError):
        SyntheticConfig(p_complement=0.8, p_continue=0.3)
    with pytest.raises(ValidationError):
        SyntheticConfig(min_length=8, mean_length=6)
    with pytest.raises(ValidationError):
        SyntheticConfig(n_itmes=10)  # typo: unknown fields are refused
