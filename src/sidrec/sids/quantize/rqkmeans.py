"""RQ-KMeans: k-means on the embeddings, then on the residuals, level by level.

Level l's codebook C_l is trained (seeded k-means) on a sample of the level-l residuals
r_l = x − Σ_{j<l} C_j[c_j]; every item is then assigned its nearest code, in chunks. Residuals are
recomputed per chunk from x and the codes so far, so memory is the embedding matrix + one chunk.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sidrec.sids.quantize import QuantizeResult
from sidrec.sids.quantize.kmeans import assign_nearest, chunks, sample_rows, train_kmeans
from sidrec.utils.progress import progress


class RQKMeansConfig(BaseModel):
    """Residual k-means: `levels` codebooks of `codebook` codes each."""

    model_config = ConfigDict(extra="forbid")

    levels: int = Field(3, ge=1, le=8)
    codebook: int | list[int] = Field(256, description="codes per level (one int, or one per level)")
    niter: int = Field(20, ge=1, description="Lloyd iterations per level")
    max_points_per_centroid: int = Field(256, ge=1, description="k-means trains on ≤ this × codebook sampled points")
    backend: Literal["faiss", "sklearn"] = "faiss"
    threads: int | None = Field(1, description="CPU threads for k-means and assignment (None: the libraries' "
                                "default); 1 was 2.4× faster than 2 on the shared 2-core machine (docs/sids.md)")
    chunk_size: int = Field(65536, ge=1, description="rows per assignment chunk")
    seed: int = 0

    def sizes(self) -> list[int]:
        return codebook_sizes(self.codebook, self.levels)


def codebook_sizes(codebook: int | list[int], levels: int) -> list[int]:
    """One codebook size per level (an int repeats)."""
    sizes = [codebook] * levels if isinstance(codebook, int) else list(codebook)
    if len(sizes) != levels:
        raise ValueError(f"{len(sizes)} codebook sizes for {levels} levels")
    if any(k < 1 for k in sizes):
        raise ValueError(f"codebook sizes must be ≥ 1, got {sizes}")
    return sizes


def residual_rows(x: np.ndarray, codebooks: list[np.ndarray], codes: np.ndarray) -> Callable[[Any], np.ndarray]:
    """rows(slice or indices) → residual float32 after the len(codebooks) levels already assigned."""

    def rows(sel: Any) -> np.ndarray:
        r = np.array(x[sel], dtype=np.float32, copy=True)
        for lvl, cb in enumerate(codebooks):
            r -= cb[codes[sel, lvl]]
        return r

    return rows


def reconstruction_errors(x: np.ndarray, codebooks: list[np.ndarray], codes: np.ndarray,
                          chunk_size: int = 65536) -> dict[str, Any]:
    """Mean squared error ‖x − Σ_{j≤l} C_j[c_j]‖² after each level, absolute and relative to the variance."""
    n = len(x)
    mean = np.zeros(x.shape[1], dtype=np.float64)
    for sl in chunks(n, chunk_size):
        mean += x[sl].sum(axis=0, dtype=np.float64)
    mean /= max(n, 1)
    total = 0.0
    per_level = np.zeros(len(codebooks))
    for sl in chunks(n, chunk_size):
        r = np.array(x[sl], dtype=np.float32, copy=True)
        total += float(((r - mean.astype(np.float32)) ** 2).sum(dtype=np.float64))
        for lvl, cb in enumerate(codebooks):
            r -= cb[codes[sl, lvl]]
            per_level[lvl] += float(np.einsum("ij,ij->", r, r, dtype=np.float64))
    var = total / max(n, 1)
    mse = per_level / max(n, 1)
    return {"mse_per_level": [round(float(v), 6) for v in mse], "variance": round(var, 6),
            "relative_per_level": [round(float(v / var), 6) if var > 0 else None for v in mse],
            "mse": round(float(mse[-1]), 6), "relative": round(float(mse[-1] / var), 6) if var > 0 else None}


def thread_limit(threads: int | None) -> contextlib.AbstractContextManager[Any]:
    """Limit BLAS / OpenMP threads inside the block (no-op for None)."""
    if not threads:
        return contextlib.nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(threads)


def rq_kmeans(x: np.ndarray, config: RQKMeansConfig | None = None, *, show_progress: bool = True) -> QuantizeResult:
    """Codes int64 [n, levels] by residual k-means, the codebooks, and diagnostics (errors, time)."""
    config = config or RQKMeansConfig()
    with thread_limit(config.threads):
        return _rq_kmeans(x, config, show_progress)


def _rq_kmeans(x: np.ndarray, config: RQKMeansConfig, show_progress: bool) -> QuantizeResult:
    t0 = time.perf_counter()
    n = len(x)
    sizes = config.sizes()
    codes = np.zeros((n, config.levels), dtype=np.int64)
    codebooks: list[np.ndarray] = []
    timings: list[dict[str, float]] = []
    with progress(disable=not show_progress) as bar:
        for lvl, k in enumerate(sizes):
            t = time.perf_counter()
            rows = residual_rows(x, codebooks, codes)
            sample = sample_rows(n, config.max_points_per_centroid * k, config.seed + lvl)
            cb = train_kmeans(rows(sample), k, niter=config.niter, seed=config.seed + lvl, backend=config.backend,
                              threads=config.threads)
            t_train = time.perf_counter() - t
            task = bar.add_task(f"level {lvl + 1}/{config.levels}: assigning", total=n)
            codes[:, lvl], _ = assign_nearest(rows, n, cb, chunk_size=config.chunk_size,
                                              on_chunk=lambda m, task=task: bar.advance(task, m))
            codebooks.append(cb)
            timings.append({"train_seconds": round(t_train, 3), "assign_seconds": round(time.perf_counter() - t - t_train, 3)})
    seconds = time.perf_counter() - t0
    diagnostics = {"reconstruction": reconstruction_errors(x, codebooks, codes, config.chunk_size),
                   "levels": timings, "seconds": round(seconds, 3)}
    return QuantizeResult(codes=codes, codebook_sizes=sizes, diagnostics=diagnostics, codebooks=codebooks)
