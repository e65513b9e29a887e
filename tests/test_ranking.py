"""Full-ranking evaluation: ranks of any scorer, ties, history exclusion, rank files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sidrec.data.dataset import EncodedSplit
from sidrec.evaluation.metrics import ranks_from_scores
from sidrec.evaluation.ranking import evaluate_split, fast_ranks, load_ranks, rank_targets, save_ranks
from sidrec.models import PopularityModel

from .conftest import chain_dataset


def test_fast_ranks_equal_reference_with_and_without_ties():
    torch.manual_seed(0)
    scores = torch.randn(64, 50)
    targets = torch.randint(0, 50, (64,))
    assert torch.equal(fast_ranks(scores, targets), ranks_from_scores(scores, targets))
    tied = torch.tensor([[0.1, 0.9, 0.5, 0.9], [1.0, 1.0, 1.0, 1.0], [0.3, 0.2, 0.1, 0.0]])
    for t in ([2, 3, 0], [1, 0, 3], [3, 2, 1]):
        tt = torch.tensor(t)
        assert torch.equal(fast_ranks(tied, tt), ranks_from_scores(tied, tt))
    assert fast_ranks(tied, torch.tensor([3, 2, 1])).tolist() == [2, 3, 2]


def test_rank_targets_batches_and_score_functions():
    rng = np.random.default_rng(1)
    table = torch.from_numpy(rng.normal(size=(7, 30))).float()  # score rows keyed by the last item
    enc = EncodedSplit(
        histories=np.array([[0, 1], [2, 3], [0, 4], [5, 6], [0, 7]] * 3, dtype=np.int64),
        targets=rng.integers(0, 30, 15),
        user_ids=np.array([f"u{i}" for i in range(15)], dtype=object),
    )

    def score_fn(hist: torch.Tensor) -> torch.Tensor:
        return table[hist[:, -1] - 1]

    ranks = rank_targets(score_fn, enc, batch_size=4, device="cpu", progress=False)
    expected = ranks_from_scores(table[torch.from_numpy(enc.histories[:, -1]) - 1], torch.from_numpy(enc.targets))
    assert ranks.dtype == np.int64 and ranks.tolist() == expected.tolist()
    assert rank_targets(score_fn, enc, batch_size=100, device="cpu", progress=False).tolist() == ranks.tolist()


def test_exclude_history_pushes_history_items_down():
    enc = EncodedSplit(histories=np.array([[0, 1, 2]]), targets=np.array([3]), user_ids=np.array(["u"], dtype=object))

    def score_fn(hist: torch.Tensor) -> torch.Tensor:
        return torch.tensor([[9.0, 8.0, 7.0, 6.0, 5.0]]).expand(hist.shape[0], -1)

    assert rank_targets(score_fn, enc, device="cpu", progress=False).tolist() == [4]
    assert rank_targets(score_fn, enc, device="cpu", progress=False, exclude_history=True).tolist() == [2]


def test_save_and_load_ranks_in_split_order(tmp_path):
    ds = chain_dataset(60, 20, lengths=(4, 9), max_history=5)
    split = ds.split("test")
    ranks = np.arange(1, len(split) + 1)
    save_ranks(tmp_path / "r.parquet", split, ranks)
    df = load_ranks(tmp_path / "r.parquet")
    assert list(df.columns) == ["user_id", "target", "rank"]
    assert df["user_id"].tolist() == split["user_id"].tolist()
    assert df["target"].tolist() == split["target"].tolist()
    assert df["rank"].tolist() == ranks.tolist()
    save_ranks(tmp_path / "e.parquet", ds.encode("test"), ranks, item_ids=ds.item_ids)
    assert load_ranks(tmp_path / "e.parquet").equals(df)
    with pytest.raises(ValueError):
        save_ranks(tmp_path / "bad.parquet", split, ranks[:-1])


def test_evaluate_split_with_popularity():
    ds = chain_dataset(60, 20, lengths=(4, 9), max_history=5)
    model = PopularityModel.fit(ds)
    # every train-period interaction counted once: all items of each user except valid and test targets
    assert model.counts.sum().item() == len(ds.interactions) - 2 * len(ds.split("test"))
    metrics, ranks = evaluate_split(model, ds, "test", device="cpu", progress=False)
    assert len(ranks) == len(ds.split("test")) == metrics["n"]
    assert set(metrics) >= {"hr@1", "ndcg@10", "hr@20", "mrr", "ci95"}
    assert metrics["hr@20"] == 1.0  # 20 items: everything is in the top 20
    assert metrics["hr@1"] < 0.3  # popularity cannot follow the chain
