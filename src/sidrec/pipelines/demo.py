"""The main job on the embedded default: synthetic data → popularity, GRU4Rec, SASRec → metrics table.

    from sidrec.pipelines.demo import run_demo
    results = run_demo("runs/demo", seed=0)
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sidrec.data.synthetic import SyntheticConfig, generate_synthetic
from sidrec.pipelines.classic import train_classic
from sidrec.utils.io import write_json
from sidrec.utils.progress import console

# A short budget so `make demo` finishes in a few minutes on a 2-core CPU; lr 3e-3 converges faster there.
DEMO_TRAINING: dict[str, Any] = {"epochs": 15, "patience": 3, "lr": 3e-3}


def run_demo(
    out: str | Path = "runs/demo",
    *,
    seed: int = 0,
    device: str = "auto",
    n_items: int = 2000,
    n_users: int = 3000,
    epochs: int | None = None,
) -> dict[str, dict[str, Any]]:
    """Run the demo end to end; returns {model: test metrics} and writes OUT/summary.json."""
    out = Path(out)
    data_dir = out / "data"
    t0 = time.perf_counter()
    console.print(f"[bold]1/4[/] generating the [yellow]synthetic[/] dataset ({n_items:,} items, {n_users:,} users, seed {seed})")
    generate_synthetic(SyntheticConfig(n_items=n_items, n_users=n_users, seed=seed)).save(data_dir)
    overrides = {**DEMO_TRAINING, "seed": seed, "device": device}
    if epochs is not None:
        overrides["epochs"] = epochs
    results: dict[str, dict[str, Any]] = {}
    for step, model in enumerate(("pop", "gru4rec", "sasrec"), start=2):
        console.print(f"[bold]{step}/4[/] training {model}")
        metrics = train_classic(model, data_dir, out / model, overrides=overrides, overwrite=True)
        results[model] = metrics["test"]
    summary = {
        "dataset": "synthetic",
        "seed": seed,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "test": results,
    }
    write_json(out / "summary.json", summary)
    return results
