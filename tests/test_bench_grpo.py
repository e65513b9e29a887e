"""benchmarks/grpo.py's collection on hand-made runs: each arm is paired with the stage-1 model it
starts from (the TS-Rec pipeline with TS-Rec's stage 1), with its control on the same seeds, and the
TS-Rec pipeline with SFT → GRPO on the same seeds."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from .bench_runs import N, make_run, ndcg, ranks

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import grpo  # noqa: E402

def _run(folder: Path, r: np.ndarray, grpo_run: bool = False) -> Path:
    rows = [{"step": 1, "loss": 1.0, **({"zero_variance_share": 0.1, "kl": 0.2} if grpo_run else {})}]
    return make_run(folder, r, r, rows)


def test_collect_pairs_each_arm_with_its_own_stage1_and_control(tmp_path: Path) -> None:
    stage1 = {"sft": _run(tmp_path / "s1" / "sft", ranks(1)), "tsrec": _run(tmp_path / "s1" / "tsrec", ranks(2))}
    r = {(arm, s): ranks(10 * i + s) for i, arm in enumerate(("sft_continued", "grpo", "tsrec_grpo")) for s in (0, 1)}
    runs = {"sft_continued": [_run(tmp_path / "sft_continued" / f"seed{s}", r["sft_continued", s]) for s in (0, 1)],
            "grpo": [_run(tmp_path / "grpo" / f"seed{s}", r["grpo", s], grpo_run=True) for s in (0, 1)],
            "tsrec_grpo": [_run(tmp_path / "tsrec_grpo" / "seed0", r["tsrec_grpo", 0], grpo_run=True)]}
    summary, raw = grpo.collect(stage1, runs)

    assert summary["industrial.tsrec.ndcg@10"] == pytest.approx(ndcg(ranks(2)).mean())
    tsrec_grpo = ndcg(r["tsrec_grpo", 0])
    # against TS-Rec's stage 1, not SFT's
    assert raw["arms"]["tsrec_grpo"]["stage1"] == "tsrec"
    assert summary["industrial.tsrec_grpo.ndcg@10_vs_stage1"] == pytest.approx(
        tsrec_grpo.mean() - ndcg(ranks(2)).mean())
    # against SFT → GRPO on its one seed only
    assert summary["industrial.tsrec_grpo.ndcg@10_vs_grpo"] == pytest.approx(
        tsrec_grpo.mean() - ndcg(r["grpo", 0]).mean())
    lo, hi = summary["industrial.tsrec_grpo.ndcg@10_vs_grpo_lo"], summary["industrial.tsrec_grpo.ndcg@10_vs_grpo_hi"]
    assert lo < summary["industrial.tsrec_grpo.ndcg@10_vs_grpo"] < hi
    assert "industrial.tsrec_grpo.ndcg@10_vs_control" not in summary  # its control is not continued SFT
    # grpo: against continued SFT over both seeds (per-example means over seeds), and SFT's stage 1
    both = (ndcg(r["grpo", 0]) + ndcg(r["grpo", 1])) / 2 - (ndcg(r["sft_continued", 0]) +
                                                              ndcg(r["sft_continued", 1])) / 2
    assert summary["industrial.grpo.ndcg@10_vs_control"] == pytest.approx(both.mean())
    assert raw["arms"]["grpo"]["stage1"] == "sft"
    assert summary["seeds"] == 2 and summary["test_rows"] == N  # the grpo_* arms' fewest seeds


def test_collect_without_tsrec_stage1_skips_its_pairing(tmp_path: Path) -> None:
    stage1 = {"sft": _run(tmp_path / "s1" / "sft", ranks(1))}
    runs = {"tsrec_grpo": [_run(tmp_path / "tsrec_grpo" / "seed0", ranks(5), grpo_run=True)]}
    summary, raw = grpo.collect(stage1, runs)
    assert "industrial.tsrec.ndcg@10" not in summary and "paired_vs_stage1" not in raw["arms"]["tsrec_grpo"]
    assert "industrial.tsrec_grpo.ndcg@10_vs_grpo" not in summary
    assert summary["industrial.tsrec_grpo.ndcg@10"] == pytest.approx(ndcg(ranks(5)).mean())
