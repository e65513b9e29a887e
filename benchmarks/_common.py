"""Shared helpers for benchmarks: result files with machine/versions, mean and t-based CI over seeds."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from sidrec.utils.io import write_json
from sidrec.utils.runs import environment_info

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SHARED_DATA = ROOT.parent / "shared" / "data"

# two-sided 95% Student t quantiles by degrees of freedom
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228}


def mean_ci(values: list[float]) -> dict[str, float]:
    """Mean, median and 95% t-interval half-width over seeds."""
    n = len(values)
    mean = statistics.fmean(values)
    half = _T95.get(n - 1, 1.96) * statistics.stdev(values) / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "median": statistics.median(values), "ci95_half": half, "n": n,
            "min": min(values), "max": max(values)}


def write_result(name: str, *, summary: dict[str, Any], config: dict[str, Any], raw: Any, **extra: Any) -> Path:
    """benchmarks/results/NAME.json with a top-level summary, the machine, versions, config and raw figures."""
    path = RESULTS / f"{name}.json"
    write_json(path, {"summary": summary, "environment": environment_info(), "config": config, "raw": raw, **extra})
    return path
