from __future__ import annotations

import pandas as pd
import pytest

from sidrec.data.build import build_dataset
from sidrec.data.dataset import Dataset
from sidrec.data.splits import leave_one_out, sliding_window_samples, sort_interactions, temporal_split
from sidrec.errors import DataError


def test_sort_is_stable_on_timestamp_ties(tiny_interactions):
    _, inter = tiny_interactions
    s = sort_interactions(inter)
    u1 = s[s.user_id == "u1"].item_id.tolist()
    assert u1 == ["i0", "i1", "i2", "i3", "i4"]  # i1 and i2 tie at t=20: file order kept
    u4 = s[s.user_id == "u4"].item_id.tolist()
    assert u4 == ["i5", "i4", "i0", "i1"]  # sorted by time, not file order


def test_leave_one_out_examples(tiny_interactions):
    _, inter = tiny_interactions
    splits, filters = leave_one_out(sort_interactions(inter), max_history=2)
    test = splits["test"].set_index("user_id")
    valid = splits["valid"].set_index("user_id")
    assert test.loc["u1", "target"] == "i4" and list(test.loc["u1", "history"]) == ["i2", "i3"]
    assert valid.loc["u1", "target"] == "i3" and list(valid.loc["u1", "history"]) == ["i1", "i2"]
    train_u1 = splits["train"][splits["train"].user_id == "u1"]
    assert train_u1.target.tolist() == ["i1", "i2"]
    assert [list(h) for h in train_u1.history] == [["i0"], ["i0", "i1"]]
    # u3 has 2 interactions: counted, not silently dropped
    assert "u3" not in set(test.index)
    (f,) = filters
    assert f.removed_users == 1 and f.removed_interactions == 2
    # u2 has exactly 3: valid and test, no train
    assert "u2" in set(test.index) and "u2" not in set(splits["train"].user_id)


def test_temporal_split_orders_samples_by_target_time(tiny_interactions):
    _, inter = tiny_interactions
    s = sort_interactions(inter)
    samples = sliding_window_samples(s, max_history=10)
    assert len(samples) == sum(n - 1 for n in s.groupby("user_id").size())
    splits, _ = temporal_split(s, max_history=10, ratios=(0.6, 0.2, 0.2))
    tr, va, te = splits["train"], splits["valid"], splits["test"]
    assert len(tr) + len(va) + len(te) == len(samples)
    assert tr.timestamp.max() <= va.timestamp.min() <= va.timestamp.max() <= te.timestamp.min()
    with pytest.raises(ValueError):
        temporal_split(s, ratios=(0.5, 0.5, 0.5))


def test_build_save_load_roundtrip(tmp_path, tiny_interactions):
    items, inter = tiny_interactions
    ds = build_dataset(name="tiny", source="mem", format="test", items=items, interactions=inter, max_history=3)
    ds.save(tmp_path / "tiny")
    back = Dataset.load(tmp_path / "tiny")
    assert back.info.stats["users"] == 4 and back.n_items == 6
    pd.testing.assert_frame_equal(back.split("train"), ds.split("train"))
    enc = back.encode("test")
    assert enc.histories.shape == (3, 3)
    row = list(back.split("test").user_id).index("u1")
    assert enc.histories[row].tolist() == [back.item_index["i1"] + 1, back.item_index["i2"] + 1, back.item_index["i3"] + 1]
    assert enc.targets[row] == back.item_index["i4"]


def test_build_rejects_unknown_items(tiny_interactions):
    items, inter = tiny_interactions
    with pytest.raises(DataError, match="i5"):
        build_dataset(name="t", source="mem", format="test", items=items[items.item_id != "i5"], interactions=inter)


def test_load_validates_and_names_file_line_field(tmp_path, tiny_interactions):
    items, inter = tiny_interactions
    ds = build_dataset(name="t", source="mem", format="test", items=items, interactions=inter)
    ds.save(tmp_path / "t")
    test = pd.read_parquet(tmp_path / "t" / "test.parquet")
    test.loc[1, "history"] = ["i0", "nope"]
    test.to_parquet(tmp_path / "t" / "test.parquet", index=False)
    with pytest.raises(DataError) as e:
        Dataset.load(tmp_path / "t")
    msg = str(e.value)
    assert "test.parquet" in msg and "line 2" in msg and "history" in msg and "nope" in msg
    with pytest.raises(DataError, match="dataset.json"):
        Dataset.load(tmp_path)
