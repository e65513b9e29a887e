"""Seeded k-means for codebooks, and chunked nearest-centroid assignment.

Backend choice (measured on this project's 2-core machine, 65,536 × 384 → 256 clusters, see
docs/sids.md): faiss-cpu is faster per Lloyd iteration than scikit-learn single-threaded and runs a
fixed number of iterations from a seeded random init, so "faiss" is the default; "sklearn" is the
fallback when faiss is not installed. Codebooks are trained on a seeded sample of at most
`max_points_per_centroid × k` points (faiss's own default is 256 per centroid); all points are then
assigned in chunks, so memory stays at the embedding matrix plus one chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np

Backend = Literal["faiss", "sklearn"]


def available_backend(preferred: Backend = "faiss") -> Backend:
    """`preferred` when importable, else the other one (ImportError when neither is)."""
    order: list[Backend] = [preferred, "sklearn" if preferred == "faiss" else "faiss"]
    for name in order:
        try:
            __import__("faiss" if name == "faiss" else "sklearn.cluster")
            return name
        except ImportError:
            continue
    raise ImportError("k-means needs faiss-cpu or scikit-learn: pip install faiss-cpu")


def sample_rows(n: int, max_rows: int, seed: int) -> np.ndarray:
    """Sorted row indices of a seeded sample without replacement (all rows when n ≤ max_rows)."""
    if n <= max_rows:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_rows, replace=False))


def train_kmeans(
    x: np.ndarray,
    k: int,
    *,
    niter: int = 20,
    seed: int = 0,
    backend: Backend = "faiss",
    threads: int | None = None,
) -> np.ndarray:
    """Centroids float32 [k, d] of `x` (all of it: sample beforehand), deterministic for a seed."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    if n < k:
        raise ValueError(f"k-means with {k} clusters needs at least {k} points, got {n}")
    backend = available_backend(backend)
    if backend == "faiss":
        import faiss

        old = faiss.omp_get_max_threads()
        if threads:
            faiss.omp_set_num_threads(threads)
        try:
            km = faiss.Kmeans(d, k, niter=niter, seed=seed, max_points_per_centroid=max(1, -(-n // k)),
                              min_points_per_centroid=1, verbose=False)
            km.train(x)
        finally:
            faiss.omp_set_num_threads(old)
        return np.ascontiguousarray(km.centroids, dtype=np.float32)
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        km = KMeans(k, n_init=1, init="random", max_iter=niter, random_state=seed, algorithm="lloyd").fit(x)
    return np.ascontiguousarray(km.cluster_centers_, dtype=np.float32)


def chunks(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def sq_distances(x: np.ndarray, centroids: np.ndarray, c_norms: np.ndarray | None = None) -> np.ndarray:
    """Squared L2 distances float32 [len(x), k] (clipped at 0)."""
    if c_norms is None:
        c_norms = np.einsum("ij,ij->i", centroids, centroids)
    d = x @ centroids.T
    d *= -2.0
    d += c_norms[None, :]
    d += np.einsum("ij,ij->i", x, x)[:, None]
    np.maximum(d, 0.0, out=d)
    return d


def assign_nearest(
    rows: Callable[[slice], np.ndarray],
    n: int,
    centroids: np.ndarray,
    *,
    chunk_size: int = 65536,
    on_chunk: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid of every row (rows(slice) yields float32 [m, d]): (codes int64 [n], sq dist float32 [n])."""
    codes = np.empty(n, dtype=np.int64)
    dist = np.empty(n, dtype=np.float32)
    c_norms = np.einsum("ij,ij->i", centroids, centroids)
    for sl in chunks(n, chunk_size):
        d = sq_distances(rows(sl), centroids, c_norms)
        codes[sl] = d.argmin(axis=1)
        dist[sl] = d[np.arange(len(d)), codes[sl]]
        if on_chunk is not None:
            on_chunk(sl.stop - sl.start)
    return codes, dist
