"""RQ-KMeans, balanced RQ-KMeans and RQ-VAE on random vectors."""

from __future__ import annotations

import numpy as np
import pytest

from sidrec.errors import ConfigError
from sidrec.sids.dedupe import colliding_items
from sidrec.sids.quantize.balanced import BalancedConfig, balanced_rq_kmeans
from sidrec.sids.quantize.capacity import capacity_assign
from sidrec.sids.quantize.kmeans import sq_distances, train_kmeans
from sidrec.sids.quantize.rqkmeans import RQKMeansConfig, rq_kmeans
from sidrec.sids.quantize.rqvae import RQVAEConfig, rq_vae


def clustered(n: int, d: int = 32, centers: int = 40, noise: float = 0.3, seed: int = 0) -> np.ndarray:
    """Unequal Gaussian clusters (Zipf-like sizes), L2-normalised: collisions are likely."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d)).astype(np.float32)
    p = 1.0 / np.arange(1, centers + 1)
    x = c[rng.choice(centers, size=n, p=p / p.sum())] + noise * rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.mark.parametrize("backend", ["faiss", "sklearn"])
def test_rqkmeans_deterministic_and_residual_error_decreases(backend: str) -> None:
    x = clustered(3000)
    cfg = RQKMeansConfig(levels=3, codebook=16, backend=backend, seed=3)
    a, b = rq_kmeans(x, cfg, show_progress=False), rq_kmeans(x, cfg, show_progress=False)
    np.testing.assert_array_equal(a.codes, b.codes)
    assert a.codes.shape == (3000, 3) and a.codes.dtype == np.int64 and a.codes.max() < 16
    mse = a.diagnostics["reconstruction"]["mse_per_level"]
    var = a.diagnostics["reconstruction"]["variance"]
    assert var > mse[0] > mse[1] > mse[2]
    other = rq_kmeans(x, cfg.model_copy(update={"seed": 4}), show_progress=False)
    assert not np.array_equal(other.codes, a.codes)


def test_rqkmeans_samples_for_training_and_chunks_assignment() -> None:
    x = clustered(5000)
    res = rq_kmeans(x, RQKMeansConfig(levels=2, codebook=8, max_points_per_centroid=20, chunk_size=777),
                    show_progress=False)
    # nearest-centroid assignment over all points, whatever the chunking
    d = sq_distances(x, res.codebooks[0])
    np.testing.assert_array_equal(res.codes[:, 0], d.argmin(1))


def test_capacity_assign_respects_capacities_exactly() -> None:
    rng = np.random.default_rng(0)
    x = clustered(1000, centers=5)
    cents = train_kmeans(x, 10, seed=0)
    codes, stats = capacity_assign(lambda s: x[s], len(x), cents, chunk_size=128)
    counts = np.bincount(codes, minlength=10)
    assert counts.max() == 100 and counts.min() == 100 and stats["rejected"] > 0
    # groups: each group spreads over distinct codes when it has ≤ K items
    groups = rng.integers(0, 300, size=len(x))
    codes, _ = capacity_assign(lambda s: x[s], len(x), cents, groups=groups)
    for g in np.unique(groups):
        members = codes[groups == g]
        cap = -(-len(members) // 10)
        assert np.bincount(members).max() <= cap


def test_balanced_gives_equal_sizes_and_fewer_collisions() -> None:
    x = clustered(4000, centers=30, noise=0.15)
    plain = rq_kmeans(x, RQKMeansConfig(levels=2, codebook=32), show_progress=False)
    level = balanced_rq_kmeans(x, BalancedConfig(levels=2, codebook=32, scope="level"), show_progress=False)
    last = balanced_rq_kmeans(x, BalancedConfig(levels=2, codebook=32), show_progress=False)
    cap = -(-4000 // 32)
    for res in (level, last):
        assert np.bincount(res.codes[:, 0], minlength=32).max() <= cap  # level 1: ≤ ceil(n/K) per code
    assert np.bincount(level.codes[:, 1], minlength=32).max() <= cap
    assert np.bincount(plain.codes[:, 0], minlength=32).max() > 2 * cap  # plain k-means is unbalanced
    assert colliding_items(last.codes) < colliding_items(plain.codes)
    # scope "last": a trie node with ≤ K items gets distinct last codes
    _, inv, counts = np.unique(last.codes[:, :1], axis=0, return_inverse=True, return_counts=True)
    small_nodes = counts[inv.reshape(-1)] <= 32
    assert colliding_items(last.codes[small_nodes]) == 0
    again = balanced_rq_kmeans(x, BalancedConfig(levels=2, codebook=32), show_progress=False)
    np.testing.assert_array_equal(again.codes, last.codes)


def test_rqvae_deterministic_loss_decreases_and_dim_check() -> None:
    x = clustered(600, d=24)
    cfg = RQVAEConfig(levels=2, codebook=8, hidden=[32, 16], latent_dim=8, epochs=15, batch_size=128, seed=1,
                      device="cpu")
    a, b = rq_vae(x, cfg, show_progress=False), rq_vae(x, cfg, show_progress=False)
    np.testing.assert_array_equal(a.codes, b.codes)
    assert a.codes.shape == (600, 2) and a.codes.max() < 8
    losses = [h["loss"] for h in a.diagnostics["loss_history"]]
    assert losses[-1] < losses[0]
    assert a.diagnostics["reconstruction"]["mse"] > 0
    with pytest.raises(ConfigError, match="input_dim is 384.*24 dimensions"):
        rq_vae(x, cfg.model_copy(update={"input_dim": 384}), show_progress=False)


def test_rqvae_sinkhorn_last_level_balances_codes() -> None:
    x = clustered(512, d=16, centers=4)
    base = dict(levels=2, codebook=8, hidden=[32], latent_dim=8, epochs=3, batch_size=256, seed=0, device="cpu")
    plain = rq_vae(x, RQVAEConfig(**base), show_progress=False)
    sk = rq_vae(x, RQVAEConfig(**base, sinkhorn_last_level=True), show_progress=False)
    spread = lambda c: np.bincount(c, minlength=8).std()  # noqa: E731
    assert spread(sk.codes[:, 1]) < spread(plain.codes[:, 1])
