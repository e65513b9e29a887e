"""Balanced RQ-KMeans: residual k-means whose assignments respect per-code capacities.

Per level: (1) a k-means codebook on a sample of the residuals, refined by `refine_iters` rounds of
balanced k-means on that sample (capacity-constrained assignment, then centroid = mean);
(2) every item is assigned under capacities (see capacity.py):
- scope "node" (default): the items sharing the previous levels' codes (a node of the SID trie)
  spread evenly over the level's codes, ceil(node size / K) per code; a node with ≤ K items
  therefore gets distinct codes, so collisions vanish once nodes are small;
- scope "level": ceil(n / K) items per code over the whole level (the balanced k-means of
  OneRec / MiniOneRec's constrained RQ-KMeans);
- scope "last": "level" for every level but the last, "node" for the last one: balanced code use
  where it costs little reconstruction, distinct last codes inside every node of ≤ K items.
Level 1 is the same in every scope (one node: the root). The capacities are exact; only the items
rejected by an over-full code are re-assigned (dense costs for those items only).
"""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field
from scipy import sparse

from sidrec.sids.quantize import QuantizeResult
from sidrec.sids.quantize.capacity import capacity_assign
from sidrec.sids.quantize.kmeans import sample_rows, train_kmeans
from sidrec.sids.quantize.rqkmeans import RQKMeansConfig, reconstruction_errors, residual_rows, thread_limit
from sidrec.utils.progress import progress


class BalancedConfig(RQKMeansConfig):
    """RQ-KMeans options plus how the balance is enforced."""

    scope: Literal["node", "level", "last"] = Field(
        "last", description="balance codes within each trie node, per level, or per level + per node at the last level")
    refine_iters: int = Field(3, ge=0, description="balanced k-means rounds on the sample after plain k-means")


def _refine(sample: np.ndarray, centroids: np.ndarray, iters: int) -> np.ndarray:
    """Balanced k-means on the sample: capacity-constrained assignment, then means (empty codes keep theirs)."""
    k = len(centroids)
    for _ in range(iters):
        codes, _ = capacity_assign(lambda sel: sample[sel], len(sample), centroids)
        onehot = sparse.csr_matrix((np.ones(len(codes), dtype=np.float32), (codes, np.arange(len(codes)))),
                                   shape=(k, len(codes)))
        sums = np.asarray(onehot @ sample)
        counts = np.bincount(codes, minlength=k)
        nz = counts > 0
        centroids = centroids.copy()
        centroids[nz] = (sums[nz] / counts[nz, None]).astype(np.float32)
    return centroids


def balanced_rq_kmeans(x: np.ndarray, config: BalancedConfig | None = None, *,
                       show_progress: bool = True) -> QuantizeResult:
    """Codes int64 [n, levels] with near-equal code use per node (or per level), plus diagnostics."""
    config = config or BalancedConfig()
    with thread_limit(config.threads):
        return _balanced(x, config, show_progress)


def _balanced(x: np.ndarray, config: BalancedConfig, show_progress: bool) -> QuantizeResult:
    t0 = time.perf_counter()
    n = len(x)
    sizes = config.sizes()
    codes = np.zeros((n, config.levels), dtype=np.int64)
    codebooks: list[np.ndarray] = []
    level_stats: list[dict[str, float]] = []
    with progress(disable=not show_progress) as bar:
        for lvl, k in enumerate(sizes):
            t = time.perf_counter()
            rows = residual_rows(x, codebooks, codes)
            sample_idx = sample_rows(n, config.max_points_per_centroid * k, config.seed + lvl)
            sample = rows(sample_idx)
            cb = train_kmeans(sample, k, niter=config.niter, seed=config.seed + lvl, backend=config.backend,
                              threads=config.threads)
            cb = _refine(sample, cb, config.refine_iters)
            per_node = config.scope == "node" or (config.scope == "last" and lvl == config.levels - 1)
            if per_node and lvl > 0:
                _, groups = np.unique(codes[:, :lvl], axis=0, return_inverse=True)
                groups = groups.reshape(-1)
            else:
                groups = np.zeros(n, dtype=np.int64)
            task = bar.add_task(f"level {lvl + 1}/{config.levels}: balanced assignment", total=n)
            codes[:, lvl], st = capacity_assign(rows, n, cb, groups=groups,
                                                chunk_size=config.chunk_size,
                                                on_chunk=lambda m, task=task: bar.advance(task, m))
            codebooks.append(cb)
            level_stats.append({"seconds": round(time.perf_counter() - t, 3), "groups": int(groups.max(initial=0)) + 1,
                                "repaired_items": st["rejected"], "repair_rounds": st["rounds"]})
    diagnostics = {"reconstruction": reconstruction_errors(x, codebooks, codes, config.chunk_size),
                   "levels": level_stats, "seconds": round(time.perf_counter() - t0, 3)}
    return QuantizeResult(codes=codes, codebook_sizes=sizes, diagnostics=diagnostics, codebooks=codebooks)
