"""kill -9 at chosen points of a training run, then `--resume`: the machinery of the resume tests
and of benchmarks/robustness.py.

A training runs in a child process that SIGKILLs itself at a point named by a spec:
`step:N` (before the N-th optimizer step), `save:N` (before the N-th tensor file is written),
`before:NAME:N` (before the N-th rename onto NAME) and `after:NAME:N` (right after the N-th rename
whose source is NAME, i.e. between the two renames of a folder swap). `kill_then_resume` kills a run
at several points in a row, each resume restarting from what the previous kill left, then lets it
finish.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

CHILD = r'''
import json, os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
kind, out, spec, resume, setup = sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4] == "1", json.loads(sys.argv[5])

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if spec != "none":
    what, *rest = spec.split(":")
    counts = {"n": 0}
    if what == "step":
        limit = int(rest[0])
        orig_step = torch.optim.AdamW.step
        def step(self, *a, **k):
            counts["n"] += 1
            if counts["n"] == limit:
                die()
            return orig_step(self, *a, **k)
        torch.optim.AdamW.step = step
    elif what == "save":
        limit = int(rest[0])
        orig_save = torch.save
        def save(*a, **k):
            counts["n"] += 1
            if counts["n"] == limit:
                die()
            return orig_save(*a, **k)
        torch.save = save
    else:
        name, limit = rest[0], int(rest[1])
        real = os.replace
        def replace(a, b):
            hit = Path(b if what == "before" else a).name == name
            if hit:
                counts["n"] += 1
            if hit and what == "before" and counts["n"] == limit:
                die()
            real(a, b)
            if hit and what == "after" and counts["n"] == limit:
                die()
        os.replace = replace

if kind == "sft":
    from sidrec.pipelines.llm import train_sft
    train_sft(setup, out, resume=resume)
else:
    from sidrec.pipelines.classic import train_classic
    train_classic("sasrec", setup.pop("data"), out, overrides=setup, resume=resume)
'''


# SFT: checkpoints every `eval_steps` steps and at each epoch end
SFT_KILLS = [
    "step:3",                       # mid-training, before the first checkpoint
    "save:2",                       # inside the first checkpoint write (weights written, optimizer not)
    "after:checkpoint:1",           # between the two renames of the next checkpoint swap
    "step:2",                       # mid-training after a resume
    "before:metrics.json:1",        # while the final metrics are written
]
SASREC_KILLS = [
    "step:4",
    "before:state.pt:2",            # inside the second epoch's checkpoint write
    "before:history.jsonl:1",       # checkpoint written, history not yet
    "before:metrics.json:1",
]


def make_setups(root: Path) -> dict[str, Any]:
    """A tiny chain dataset, SID table and random Llama under `root`, and the SFT / SASRec settings."""
    from sidrec.data.build import build_dataset
    from sidrec.llm.tiny import make_tiny_lm
    from sidrec.sids.table import SIDTable

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    rows = []
    for u in range(40):
        start, length = int(rng.integers(40)), int(rng.integers(5, 12))
        rows += [(f"u{u}", f"i{(start + k) % 40}", k) for k in range(length)]
    build_dataset(name="chain", source="test", format="test", items=pd.DataFrame({"item_id": [f"i{j}" for j in range(40)]}),
                  interactions=pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]), max_history=6,
                  time_kind="order", synthetic=True).save(root / "chain")
    i = np.arange(40)
    SIDTable([f"i{k}" for k in range(40)], np.stack([i // 10, (i // 3) % 4, i % 3], axis=1)).with_dedup().save(
        root / "sids.json")
    make_tiny_lm(root / "lm", hidden=16)
    (root / "child.py").write_text(CHILD)
    sft = {"dataset": str(root / "chain"), "sids": str(root / "sids.json"), "model": {"name_or_path": str(root / "lm")},
           "training": {"epochs": 2, "batch_size": 8, "eval_samples": 5, "eval_steps": 4, "eval_metric": "loss",
                        "patience": 50, "device": "cpu"},
           "eval": {"num_beams": 5, "splits": ["test"], "max_examples": 10}}
    sasrec = {"data": str(root / "chain"), "epochs": 5, "patience": 10, "hidden_size": 16, "num_layers": 1,
              "batch_size": 16, "lr": 0.003, "device": "cpu"}
    return {"root": root, "sft": sft, "sasrec": sasrec}


def run_child(setups: dict[str, Any], kind: str, out: Path, spec: str, resume: bool) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(setups["root"] / "child.py"), kind, str(out), spec,
                           "1" if resume else "0", json.dumps(setups[kind])],
                          capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode


def random_kills(kind: str, seed: int, n: int = 4) -> list[str]:
    """`n` seeded random kill points: optimizer steps and tensor-file writes (checkpoint contents)."""
    import random

    rng = random.Random(f"{kind}/{seed}")
    steps = 10 if kind == "sft" else 12  # optimizer steps of the tiny runs of make_setups (per process)
    return [f"step:{rng.randint(1, steps)}" if rng.random() < 0.6 else f"save:{rng.randint(1, 6)}" for _ in range(n)]


def kill_then_resume(setups: dict[str, Any], kind: str, out: Path, specs: list[str],
                     allow_unreached: bool = False, reached: list[str] | None = None) -> dict[str, Any]:
    """Kill a run at each spec in turn (resuming after each), then let it finish; its metrics.json.
    With `allow_unreached`, a spec the resumed run finishes before reaching ends the sequence."""
    for i, spec in enumerate(specs):
        rc = run_child(setups, kind, out, spec, resume=i > 0)
        if rc == 0 and allow_unreached:
            break
        if rc != -signal.SIGKILL:
            raise RuntimeError(f"{spec}: the kill point was never reached")
        if reached is not None:
            reached.append(spec)
        if (out / "metrics.json").exists() and not spec.startswith("before:metrics"):
            raise RuntimeError(f"{spec}: metrics.json exists before the run finished")
    if run_child(setups, kind, out, "none", resume=True) != 0:
        raise RuntimeError("the final resume failed")
    leftovers = [p.name for p in out.iterdir() if p.name.endswith((".tmp", ".old"))]
    if leftovers:
        raise RuntimeError(f"leftovers after the resumed run: {leftovers}")
    return json.loads((out / "metrics.json").read_text())


def uninterrupted(setups: dict[str, Any], kind: str, out: Path) -> dict[str, Any]:
    if run_child(setups, kind, out, "none", resume=False) != 0:
        raise RuntimeError("the uninterrupted run failed")
    return json.loads((out / "metrics.json").read_text())


def _untimed(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if "time" not in k and "per_second" not in k}


def same_result(kind: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Identical weights and metrics (wall-clock figures aside)."""
    if kind == "sft":
        return (a["param_checksums"] == b["param_checksums"] and _untimed(a["test"]) == _untimed(b["test"])
                and a["train"]["steps"] == b["train"]["steps"] and a["train"]["best_step"] == b["train"]["best_step"])
    return (_untimed(a["valid"]) == _untimed(b["valid"]) and _untimed(a["test"]) == _untimed(b["test"])
            and a["best_epoch"] == b["best_epoch"])
