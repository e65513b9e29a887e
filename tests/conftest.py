"""Shared fixtures: where the real datasets live, small hand-built datasets."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
    titled: bool = False,
) -> Dataset:
    """Each user walks item i → i+1 (mod n_items) from a random start, for lengths[0] ≤ n < lengths[1] steps.

    `titled`: items get titles ("Chain item 7") and categories ("group 0" for i0–i9 …, and "even" / "odd")."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        start, length = int(rng.integers(n_items)), int(rng.integers(*lengths))
        rows += [(f"u{u}", f"i{(start + k) % n_items}", k) for k in range(length)]
    items = pd.DataFrame({"item_id": [f"i{j}" for j in range(n_items)]})
    if titled:
        items["title"] = [f"Chain item {j}" for j in range(n_items)]
        items["categories"] = [[f"group {j // 10}", "even" if j % 2 == 0 else "odd"] for j in range(n_items)]
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


def tiny_serving_runs(root: Path, *, n_items: int = 40) -> dict[str, Path]:
    """Trained runs over the titled chain dataset for the serving tests: `sft` (a tiny random causal LM
    fine-tuned for one epoch), `tiger` (a tiny T5), `sasrec`, `gru4rec` and `pop`."""
    from sidrec.llm.tiny import make_tiny_lm
    from sidrec.pipelines.classic import train_classic
    from sidrec.pipelines.llm import train_sft

    make_tiny_lm(root / "lm", hidden=32)
    chain_dataset(n_users=120, n_items=n_items, path=root / "chain", titled=True)
    chain_sid_table(n_items).save(root / "sids.json")
    values = {"dataset": str(root / "chain"), "sids": str(root / "sids.json"), "model": {"name_or_path": str(root / "lm")},
              "data": {"tasks": {"seqrec": 1.0}, "compact": True},
              "training": {"epochs": 1, "batch_size": 16, "lr": 3e-3, "eval_samples": 10, "log_steps": 50,
                           "device": "cpu", "seed": 0},
              "eval": {"num_beams": 10, "batch_size": 32, "splits": ["test"], "max_examples": 10}}
    train_sft(values, root / "sft")
    tiger = {"d_model": 32, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 2, "d_kv": 16,
             "max_history": 6}
    train_sft({**values, "method": "tiger", "tiger": tiger, "model": {}, "data": {}}, root / "tiger")
    for kind in ("sasrec", "gru4rec"):
        train_classic(kind, root / "chain", root / kind, overrides={"epochs": 2, "device": "cpu", "seed": 0})
    train_classic("pop", root / "chain", root / "pop")
    return {name: root / name for name in ("sft", "tiger", "sasrec", "gru4rec", "pop")} | {"root": root}


@pytest.fixture(scope="session")
def serving_runs(tmp_path_factory) -> dict[str, Path]:
    """`tiny_serving_runs`, trained once per test session (the serving and browser tests share them)."""
    return tiny_serving_runs(tmp_path_factory.mktemp("serving"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_server(app: Any) -> Iterator[tuple[str, Any]]:
    """A real uvicorn server for `app` on 127.0.0.1 in a thread: yields (its URL, the uvicorn server);
    stopped the way Ctrl-C stops it (in-flight requests finish) on exit."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                           timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, name="sidrec-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=30)
