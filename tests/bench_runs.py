"""Hand-made benchmark run folders (metrics.json, history.jsonl, per-example ranks) for testing the
benchmarks' collection code without training anything."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sidrec.evaluation.metrics import UNRANKED, per_example_metrics

N = 200
USERS = [f"u{i % 150}" for i in range(N)]  # some users have two rows
TARGETS = [str(i % 37) for i in range(N)]


def ranks(seed: int) -> np.ndarray:
    """N ranks in 1..20, about a third unranked (beyond the beam)."""
    r = np.random.default_rng(seed).integers(1, 30, size=N)
    return np.where(r > 20, UNRANKED, r)


def ndcg(r: np.ndarray) -> np.ndarray:
    return per_example_metrics(r)["ndcg@10"]


def make_run(folder: Path, test: np.ndarray, valid: np.ndarray | None = None, history: list[dict[str, Any]] | None = None
             ) -> Path:
    """A finished run folder with these per-example test (and validation) ranks."""
    folder.mkdir(parents=True)
    splits = {"test": test, **({"valid": valid} if valid is not None else {})}
    metrics: dict[str, Any] = {"train": {"time_s": 10.0, "steps": 5, "eval_time_s": 0.0, "best_step": 5,
                                         "corpus": {"seqrec": N}}}
    for name, r in splits.items():
        m = per_example_metrics(r)
        metrics[name] = {**{k: float(v.mean()) for k, v in m.items()}, "n": N}
        pd.DataFrame({"user_id": USERS, "target": TARGETS, "rank": r}).to_parquet(folder / f"ranks_{name}.parquet")
    (folder / "metrics.json").write_text(json.dumps(metrics))
    rows = history if history is not None else [{"step": 1, "loss": 1.0}]
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder
