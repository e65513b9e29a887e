"""Paired comparison of two runs on the same examples: bootstrap CI of the difference and a p-value."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from sidrec.evaluation.metrics import DEFAULT_KS, per_example_metrics


@dataclass
class PairedResult:
    metric: str
    a: float
    b: float
    diff: float  # b - a
    ci_low: float
    ci_high: float
    p_value: float  # two-sided, paired bootstrap
    n: int


def paired_bootstrap(
    ranks_a: np.ndarray,
    ranks_b: np.ndarray,
    metrics: Sequence[str] | None = None,
    ks: Sequence[int] = DEFAULT_KS,
    n_boot: int = 10000,
    seed: int = 0,
) -> list[PairedResult]:
    """Resample examples with replacement (the same indices for both runs) and measure B − A.

    The p-value is two-sided: the share of the centred bootstrap distribution of the difference whose
    magnitude reaches the observed one (the null-shifted bootstrap test of Efron & Tibshirani).
    """
    ranks_a = np.asarray(ranks_a)
    ranks_b = np.asarray(ranks_b)
    if ranks_a.shape != ranks_b.shape:
        raise ValueError(f"runs cover different numbers of examples: {len(ranks_a)} vs {len(ranks_b)}")
    pa, pb = per_example_metrics(ranks_a, ks), per_example_metrics(ranks_b, ks)
    return paired_bootstrap_values(pa, pb, metrics, n_boot=n_boot, seed=seed)


def paired_bootstrap_values(
    per_a: dict[str, np.ndarray],
    per_b: dict[str, np.ndarray],
    metrics: Sequence[str] | None = None,
    *,
    n_boot: int = 10000,
    seed: int = 0,
) -> list[PairedResult]:
    """`paired_bootstrap` on per-example metric values (e.g. averaged over seeds) instead of ranks."""
    names = list(metrics) if metrics else list(per_a)
    n = len(per_a[names[0]])
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n)) if n * n_boot <= 50_000_000 else None
    results = []
    for m in names:
        d = per_b[m] - per_a[m]
        obs = float(d.mean())
        if idx is not None:
            boots = d[idx].mean(axis=1)
        else:
            boots = np.array([d[rng.integers(0, n, n)].mean() for _ in range(n_boot)])
        lo, hi = np.percentile(boots, [2.5, 97.5])
        centred = boots - boots.mean()
        p = 1.0 if np.all(d == 0) else float((np.sum(np.abs(centred) >= abs(obs)) + 1) / (n_boot + 1))
        results.append(PairedResult(m, float(per_a[m].mean()), float(per_b[m].mean()), obs, float(lo), float(hi), p, n))
    return results
