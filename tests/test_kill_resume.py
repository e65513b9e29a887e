"""kill -9 at chosen points of SASRec and SFT training (optimizer steps, inside checkpoint writes, between
the two renames of a checkpoint swap, while the final metrics are written), then `--resume`: the
resumed run ends with exactly the metrics and weights of an uninterrupted one.

Each training runs in a child process that SIGKILLs itself at a point named by a spec:
`step:N` (before the N-th optimizer step), `save:N` (before the N-th tensor file is written),
`before:NAME:N` (before the N-th rename onto NAME) and
`after:NAME:N` (right after the N-th rename whose source is NAME, i.e. between the two renames of
a folder swap). A run is killed at several points in a row, each resume restarting from what the
previous kill left.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import chain_dataset, chain_sid_table

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


@pytest.fixture(scope="module")
def setups(tmp_path_factory) -> dict[str, dict]:
    from sidrec.llm.tiny import make_tiny_lm

    root = tmp_path_factory.mktemp("kill")
    chain_dataset(n_users=40, n_items=40, path=root / "chain")
    chain_sid_table(40).save(root / "sids.json")
    make_tiny_lm(root / "lm", hidden=16)
    (root / "child.py").write_text(CHILD)
    sft = {"dataset": str(root / "chain"), "sids": str(root / "sids.json"), "model": {"name_or_path": str(root / "lm")},
           "training": {"epochs": 2, "batch_size": 8, "eval_samples": 5, "eval_steps": 4, "eval_metric": "loss",
                        "patience": 50, "device": "cpu"},
           "eval": {"num_beams": 5, "splits": ["test"], "max_examples": 10}}
    sasrec = {"data": str(root / "chain"), "epochs": 5, "patience": 10, "hidden_size": 16, "num_layers": 1,
              "batch_size": 16, "lr": 0.003, "device": "cpu"}
    return {"root": root, "sft": sft, "sasrec": sasrec}


def run_child(setups: dict, kind: str, out: Path, spec: str, resume: bool) -> int:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, str(setups["root"] / "child.py"), kind, str(out), spec,
                           "1" if resume else "0", json.dumps(setups[kind])],
                          capture_output=True, text=True, env=env, timeout=300)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.returncode


def kill_then_resume(setups: dict, kind: str, out: Path, specs: list[str]) -> dict:
    for i, spec in enumerate(specs):
        rc = run_child(setups, kind, out, spec, resume=i > 0)
        assert rc == -signal.SIGKILL, f"{spec}: the kill point was never reached"
        assert not (out / "metrics.json").exists() or spec.startswith("before:metrics")
    assert run_child(setups, kind, out, "none", resume=True) == 0
    assert not [p.name for p in out.iterdir() if p.name.endswith((".tmp", ".old"))]
    return json.loads((out / "metrics.json").read_text())


# SFT: 5 train examples per epoch-batch of 8 → steps; checkpoints every 4 steps and at each epoch end
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


def test_sft_killed_at_five_points_resumes_to_identical_metrics(setups, tmp_path):
    assert run_child(setups, "sft", tmp_path / "full", "none", resume=False) == 0
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    cut = kill_then_resume(setups, "sft", tmp_path / "cut", SFT_KILLS)
    assert cut["param_checksums"] == full["param_checksums"]
    assert cut["test"] == full["test"] and cut["train"]["steps"] == full["train"]["steps"]
    assert cut["train"]["best_step"] == full["train"]["best_step"]
    history = [(tmp_path / r / "history.jsonl").read_text().splitlines() for r in ("full", "cut")]
    strip = [[{k: v for k, v in json.loads(x).items() if "time" not in k} for x in h] for h in history]
    assert strip[0] == strip[1]


def test_sasrec_killed_at_four_points_resumes_to_identical_metrics(setups, tmp_path):
    assert run_child(setups, "sasrec", tmp_path / "full", "none", resume=False) == 0
    full = json.loads((tmp_path / "full" / "metrics.json").read_text())
    cut = kill_then_resume(setups, "sasrec", tmp_path / "cut", SASREC_KILLS)
    assert cut["valid"] == full["valid"] and cut["test"] == full["test"]
    assert cut["best_epoch"] == full["best_epoch"] and cut["epochs_run"] == full["epochs_run"]
