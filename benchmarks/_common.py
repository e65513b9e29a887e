"""Shared helpers for benchmarks: result files with machine/versions, mean and t-based CI over seeds."""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console

from sidrec.evaluation.metrics import per_example_metrics
from sidrec.utils.io import write_json, write_yaml
from sidrec.utils.runs import environment_info

ROOT = Path(__file__).resolve().parents[1]
# both overridable from the environment (benchmarks/gpu_scale.sh: a GPU machine has no ../shared, and its
# results, or a dry run's, go to a folder of their own rather than into benchmarks/results)
RESULTS = Path(os.environ.get("SIDREC_BENCH_RESULTS") or ROOT / "benchmarks" / "results")
SHARED_DATA = Path(os.environ.get("SIDREC_SHARED_DATA") or ROOT.parent / "shared" / "data")
METRICS = ("hr@5", "ndcg@5", "hr@10", "ndcg@10")
console = Console(width=None if sys.stdout.isatty() else 160)  # logs keep whole table rows

# two-sided 95% Student t quantiles by degrees of freedom
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean, median and 95% t-interval half-width over seeds."""
    n = len(values)
    mean = statistics.fmean(values)
    half = _T95.get(n - 1, 1.96) * statistics.stdev(values) / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "median": statistics.median(values), "ci95_half": half, "n": n,
            "min": min(values), "max": max(values)}


def rel(path: Path) -> str:
    """A path as shown and recorded: relative to the repo when inside it (runs elsewhere: as it is)."""
    path = Path(path)
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def parse_sets(pairs: list[str] | None) -> dict[str, Any]:
    """`--set key.sub=value` pairs (values parsed as YAML, as the CLI's `--set`) → {"key.sub": value}."""
    from sidrec.cli.common import parse_overrides
    from sidrec.errors import SidrecError

    try:
        return parse_overrides(pairs)
    except SidrecError as e:  # one line, as the CLI answers
        raise SystemExit(f"error: {e}") from None


def override_suffix(overrides: dict[str, Any]) -> str:
    """'' without overrides, else `-set<hash>`: runs with `--set` overrides get folders of their own."""
    if not overrides:
        return ""
    import hashlib
    import json

    return "-set" + hashlib.sha256(json.dumps(overrides, sort_keys=True, default=str).encode()).hexdigest()[:8]


def write_result(name: str, *, summary: dict[str, Any], config: dict[str, Any], raw: Any, **extra: Any) -> Path:
    """benchmarks/results/NAME.json with a top-level summary, the machine, versions, config and raw figures."""
    path = RESULTS / f"{name}.json"
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(path, {"summary": summary, "environment": environment_info(), "config": config, "raw": raw, **extra})
    return path


def train_run(run: Path, cfg: dict[str, Any], threads: int) -> None:
    """Train one run folder through the CLI in a child process (skipped when finished, resumed when
    interrupted); `threads` torch threads."""
    if (run / "metrics.json").is_file():
        return
    run.mkdir(parents=True, exist_ok=True)
    write_yaml(run / "bench-config.yaml", cfg)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "sidrec.cli.main", "train", "sft", "--config", str(run / "bench-config.yaml"),
           "--out", str(run)]
    resume = (run / "checkpoint" / "progress.json").is_file()
    cmd.append("--resume" if resume else "--overwrite")
    # the child's output is logged beside the run folder while it trains (`--overwrite` refuses a folder
    # holding a file it does not know), then moved in as RUN/stdout.txt
    outside = run.with_name(run.name + ".stdout.txt")
    if (run / "stdout.txt").is_file():  # an earlier attempt's log: continue it
        with open(outside, "a") as log, open(run / "stdout.txt") as old:
            log.write(old.read())
        (run / "stdout.txt").unlink()
    with open(outside, "a") as log:
        t0 = time.perf_counter()
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    shutil.move(outside, run / "stdout.txt")
    status = "ok" if rc == 0 else f"FAILED rc={rc} (see {run / 'stdout.txt'})"
    console.print(f"{rel(run)}: {status} in {time.perf_counter() - t0:.0f} s")


# ----------------------------------------------------------------------------- run archive
# A finished run's small files (metrics, log, config, per-example ranks; never weights) are copied into
# benchmarks/results/<bench>-runs/ in the layout of the work folder and committed, so a benchmark
# re-collects every run ever measured even where the run folders are gone (another session, another
# machine). A live run folder wins over its archived copy.
RUN_FILES = ("metrics.json", "metrics_valid.json", "history.jsonl", "config.yaml", "ranks_test.parquet",
             "ranks_valid.parquet")


def is_finished(run: Path) -> bool:
    return (run / "metrics.json").is_file()


def archive_run(run: Path, dest: Path) -> None:
    """Copy a finished run's small files (`RUN_FILES`) into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in RUN_FILES:
        if (run / name).is_file():
            shutil.copyfile(run / name, dest / name)


def finished_runs(runs: list[Path], work: Path, archive: Path | None) -> list[Path]:
    """The finished ones of `runs` (folders under `work`): each finished live run is archived under
    `archive` (same layout) and returned; a run whose folder is gone or unfinished is returned as its
    archived copy where there is one. `archive=None`: live runs only."""
    out = []
    for run in runs:
        copy = archive / run.relative_to(work) if archive is not None else None
        if is_finished(run):
            if copy is not None:
                archive_run(run, copy)
            out.append(run)
        elif copy is not None and is_finished(copy):
            out.append(copy)
    return out


def eval_run(run: Path, split: str, threads: int) -> None:
    """Evaluate a finished run on `split` through the CLI in a child process (skipped when its ranks
    file exists), with the run's own evaluation settings; `threads` torch threads."""
    if (run / f"ranks_{split}.parquet").is_file():
        return
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "sidrec.cli.main", "eval", "--run-dir", str(run), "--split", split, "--device", "cpu"]
    with open(run / "stdout.txt", "a") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    console.print(f"{rel(run)}: {split} evaluation {'ok' if rc == 0 else f'FAILED rc={rc}'}")


def seed_mean_per_example(runs: list[Path], split: str = "test") -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per-example metrics averaged over seeds, on the rows every seed was evaluated on (one per test row:
    repeated (user, target) pairs are matched by their order of occurrence)."""
    def numbered(f: pd.DataFrame) -> pd.DataFrame:  # a user can have the same target twice (two test rows)
        return f.assign(occurrence=f.groupby(["user_id", "target"]).cumcount())

    frames = [numbered(pd.read_parquet(r / f"ranks_{split}.parquet")) for r in runs]
    on = ["user_id", "target", "occurrence"]
    keys = frames[0][on].reset_index(drop=True)  # positions, whatever index the parquet file kept
    per = []
    for f in frames:
        f = keys.merge(f, on=on, how="left")
        per.append(per_example_metrics(f["rank"].to_numpy()))
    return keys, {m: np.mean([p[m] for p in per], axis=0) for m in per[0]}


def paired_runs(a: Path, b: Path, split: str = "test") -> dict[str, Any]:
    """`paired_ci` of run B against run A on the rows both were evaluated on, matched by (user, target,
    occurrence): e.g. an LLM run against the SASRec of the same split, whose ranks come in their own order."""
    keys_a, per_a = seed_mean_per_example([a], split)
    keys_b, per_b = seed_mean_per_example([b], split)
    both = keys_a.reset_index(names="row_a").merge(keys_b.reset_index(names="row_b"), on=list(keys_a.columns))
    both = both.sort_values("row_a")  # A's order, whatever order the merge returns: the same bootstrap draws
    ia, ib = both["row_a"].to_numpy(), both["row_b"].to_numpy()
    return paired_ci({m: v[ia] for m, v in per_a.items()}, {m: v[ib] for m, v in per_b.items()})


def paired_ci(a: dict[str, np.ndarray], b: dict[str, np.ndarray], n_boot: int = 10000) -> dict[str, Any]:
    """B − A per metric on per-example values: difference, 95% CI, p, and the relative change."""
    from sidrec.evaluation.compare import paired_bootstrap_values

    return {r.metric: {"diff": r.diff, "ci95": [r.ci_low, r.ci_high], "p": r.p_value,
                       "rel": r.diff / r.a if r.a > 0 else None}
            for r in paired_bootstrap_values(a, b, METRICS, n_boot=n_boot, seed=0)}
