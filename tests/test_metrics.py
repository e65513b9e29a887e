from __future__ import annotations

import math

import numpy as np
import torch

from sidrec.evaluation.compare import paired_bootstrap
from sidrec.evaluation.metrics import UNRANKED, bootstrap_ci, metrics_from_ranks, per_example_metrics, ranks_from_scores


def test_ranks_break_ties_by_item_index():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.9], [1.0, 1.0, 1.0, 1.0]])
    assert ranks_from_scores(scores, torch.tensor([2, 3])).tolist() == [3, 4]
    assert ranks_from_scores(scores, torch.tensor([1, 0])).tolist() == [1, 1]
    assert ranks_from_scores(scores, torch.tensor([3, 2])).tolist() == [2, 3]


def test_metrics_match_hand_computation():
    ranks = np.array([1, 2, 4, 11, 30])
    m = metrics_from_ranks(ranks, ks=(1, 3, 10), ci=False)
    assert m["hr@1"] == 0.2
    assert m["hr@3"] == 0.4
    assert m["hr@10"] == 0.6
    expected_ndcg10 = (1 + 1 / math.log2(3) + 1 / math.log2(5)) / 5
    assert math.isclose(m["ndcg@10"], expected_ndcg10)
    assert math.isclose(m["mrr"], np.mean(1 / ranks))
    assert m["n"] == 5


def test_unranked_targets_count_zero_in_every_metric():
    """A beam miss is not rank beam+1: MRR@beam gives it 0, not 1/(beam+1)."""
    ranks = np.array([1, UNRANKED, 4, UNRANKED])
    per = per_example_metrics(ranks, ks=(1, 5, 20))
    assert per["mrr"].tolist() == [1.0, 0.0, 0.25, 0.0]
    assert per["hr@20"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert per["ndcg@20"][[1, 3]].tolist() == [0.0, 0.0]
    m = metrics_from_ranks(np.full(10, UNRANKED), ci=True, n_boot=50)
    assert m["mrr"] == 0.0 and m["ndcg@10"] == 0.0 and m["ci95"]["mrr"] == [0.0, 0.0]


def test_bootstrap_ci_contains_mean_and_shrinks():
    rng = np.random.default_rng(0)
    small = rng.random(50) < 0.3
    large = rng.random(5000) < 0.3
    lo_s, hi_s = bootstrap_ci(small, n_boot=500)
    lo_l, hi_l = bootstrap_ci(large, n_boot=500)
    assert lo_s <= small.mean() <= hi_s and lo_l <= large.mean() <= hi_l
    assert (hi_l - lo_l) < (hi_s - lo_s)
    m = metrics_from_ranks(np.arange(1, 101), n_boot=200)
    lo, hi = m["ci95"]["hr@10"]
    assert lo <= m["hr@10"] <= hi


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(1)
    a = rng.integers(1, 50, 2000)
    better = np.maximum(1, a - 10)
    res = {r.metric: r for r in paired_bootstrap(a, better, metrics=["hr@10", "ndcg@10"], n_boot=2000)}
    assert res["hr@10"].diff > 0 and res["hr@10"].ci_low > 0 and res["hr@10"].p_value < 0.01
    same = paired_bootstrap(a, a.copy(), metrics=["hr@10"], n_boot=500)[0]
    assert same.diff == 0 and same.p_value == 1.0
    noise = rng.permutation(a)  # same distribution, unrelated pairing
    r = paired_bootstrap(a, noise, metrics=["hr@10"], n_boot=2000)[0]
    assert r.ci_low <= 0 <= r.ci_high


def test_per_example_metrics_shapes():
    per = per_example_metrics(np.array([1, 5]), ks=(5,))
    assert per["hr@5"].tolist() == [1.0, 1.0]
    assert per["ndcg@5"][1] == 1 / math.log2(6)
