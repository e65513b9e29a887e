"""Ranking metrics with one target per example.

rank is 1-based; HR@K = 1[rank <= K] (= Recall@K with one target); NDCG@K = 1/log2(rank+1) for a
hit, else 0; MRR = mean 1/rank over the full ranking. Ties in score are broken by item index
(lower index first), the order a stable top-K returns, so a constant scorer gets no free hits.

A target that a truncated ranking (beam search) did not return has rank `UNRANKED`: it counts 0 in
every metric, MRR included (MRR is then MRR@beam, not a guess at the rank beyond the beam).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

DEFAULT_KS: tuple[int, ...] = (1, 3, 5, 10, 20)
UNRANKED: int = int(np.iinfo(np.int64).max)  # the rank of a target missing from a truncated ranking


def ranks_from_scores(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target among all items. scores [B, N], targets [B] (0-based item index)."""
    target_scores = scores.gather(1, targets.view(-1, 1))
    higher = (scores > target_scores).sum(dim=1)
    index = torch.arange(scores.shape[1], device=scores.device).view(1, -1)
    tied_before = ((scores == target_scores) & (index < targets.view(-1, 1))).sum(dim=1)
    return 1 + higher + tied_before


def per_example_metrics(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, np.ndarray]:
    """Per-example metric values (the inputs to bootstrap CIs and paired comparisons)."""
    ranked = np.asarray(ranks) != UNRANKED
    ranks = np.where(ranked, np.asarray(ranks, dtype=np.float64), np.inf)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        hit = ranks <= k
        out[f"hr@{k}"] = hit.astype(np.float64)
        out[f"ndcg@{k}"] = np.where(hit, 1.0 / np.log2(ranks + 1.0), 0.0)
    out["mrr"] = 1.0 / ranks
    return out


def metrics_from_ranks(
    ranks: np.ndarray,
    ks: Sequence[int] = DEFAULT_KS,
    *,
    ci: bool = True,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, float | int | dict[str, list[float]]]:
    """Mean of each metric; with `ci`, a 95% bootstrap interval per metric under key 'ci'.
    No ranks is an error, not NaN metrics."""
    if len(ranks) == 0:
        from sidrec.errors import DataError

        raise DataError("nothing to evaluate: the split has no examples (NaN metrics would follow)")
    per = per_example_metrics(ranks, ks)
    out: dict[str, float | int | dict[str, list[float]]] = {k: float(v.mean()) for k, v in per.items()}
    out["n"] = int(len(ranks))
    if ci and len(ranks) > 1:
        names = list(per)
        lows, highs = bootstrap_ci(np.stack([per[k] for k in names], axis=1), n_boot=n_boot, seed=seed)
        out["ci95"] = {k: [float(lo), float(hi)] for k, lo, hi in zip(names, lows, highs, strict=True)}
    return out


def bootstrap_ci(
    values: np.ndarray, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval of the mean of each column of `values` [n] or [n, m]."""
    values = np.asarray(values, dtype=np.float64)
    squeeze = values.ndim == 1
    values = values.reshape(len(values), -1)
    rng = np.random.default_rng(seed)
    n = len(values)
    means = np.empty((n_boot, values.shape[1]))
    for b in range(n_boot):  # one resample at a time keeps memory at O(n)
        means[b] = values[rng.integers(0, n, n)].mean(axis=0)
    lo, hi = np.percentile(means, [(1 - level) / 2 * 100, (1 + level) / 2 * 100], axis=0)
    return (lo[0], hi[0]) if squeeze else (lo, hi)
