"""Shared fixtures: where the real datasets live, small hand-built datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sidrec.data.build import build_dataset
from sidrec.data.dataset import Dataset
from sidrec.sids.table import SIDTable

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """Path under ../shared/data; skips the test with a clear message when it is absent."""
    p = SHARED_DATA.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"real dataset not found at {p} (the shared data folder sits beside the repo)")
    return p


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models run fastest (and steadiest on a shared CPU) on one thread."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture
def tiny_interactions() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Four users, six items, with a timestamp tie to exercise the stable tie rule."""
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(6)], "title": [f"Item {k}" for k in range(6)]})
    rows = [
        ("u1", "i0", 10), ("u1", "i1", 20), ("u1", "i2", 20), ("u1", "i3", 30), ("u1", "i4", 40),
        ("u2", "i5", 5), ("u2", "i0", 6), ("u2", "i1", 7),
        ("u3", "i2", 1), ("u3", "i3", 2),
        ("u4", "i4", 100), ("u4", "i5", 50), ("u4", "i0", 200), ("u4", "i1", 300),
    ]
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    return items, inter


def chain_dataset(
    n_users: int = 300,
    n_items: int = 40,
    seed: int = 0,
    *,
    lengths: tuple[int, int] = (5, 12),
    max_history: int = 6,
    path: Path | None = None,
) -> Dataset:
    """Each user walks item i → i+1 (mod n_items) from a random start, for lengths[0] ≤ n < lengths[1] steps."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start, length = int(rng.integers(n_items)), int(rng.integers(*lengths))
        rows += [(f"u{u}", f"i{(start + k) % n_items}", k) for k in range(length)]
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(n_items)]})
    inter = pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])
    ds = build_dataset(name="chain", source="test", format="test", items=items, interactions=inter,
                       max_history=max_history, time_kind="order", synthetic=True)
    if path is not None:
        ds.save(path)
    return ds


def chain_sid_table(n_items: int = 40) -> SIDTable:
    """3-level SIDs for the chain dataset's items i0 … i{n-1}: (i // 10, (i // 3) mod 4, i mod 3)."""
    i = np.arange(n_items)
    return SIDTable([f"i{k}" for k in range(n_items)], np.stack([i // 10, (i // 3) % 4, i % 3], axis=1)).with_dedup()


def tiny_lm_env(root: Path, *, n_users: int = 120, n_items: int = 40) -> Path:
    """A folder with a tiny random causal LM (`lm/`), the chain dataset (`chain/`) and its SIDs
    (`sids.json`): what the generative-model tests train on."""
    from sidrec.llm.tiny import make_tiny_lm

    make_tiny_lm(root / "lm", hidden=32)
    chain_dataset(n_users=n_users, n_items=n_items, path=root / "chain")
    chain_sid_table(n_items).save(root / "sids.json")
    return root
