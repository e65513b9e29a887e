"""benchmarks/sft_recipe.py's `--against`: an arm paired with another finished run of the same split
(e.g. quality.py's archived SASRec), on the test rows both ranked, whatever order each file keeps."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from .bench_runs import make_run, ndcg, ranks

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import sft_recipe  # noqa: E402


def test_an_arm_is_paired_with_another_run_on_the_rows_both_ranked(tmp_path: Path) -> None:
    arm = make_run(tmp_path / "recipe", ranks(1))
    other = make_run(tmp_path / "sasrec", ranks(2))
    shuffled = pd.read_parquet(other / "ranks_test.parquet").sample(frac=1.0, random_state=0)
    shuffled.to_parquet(other / "ranks_test.parquet")  # another model's file, in its own row order
    against = sft_recipe.parse_against([f"sasrec={other}"])
    assert against == {"sasrec": other}
    got = sft_recipe.versus(arm, against)["sasrec"]["ndcg@10"]
    assert got["diff"] == pytest.approx(ndcg(ranks(1)).mean() - ndcg(ranks(2)).mean())
    assert got["ci95"][0] < got["diff"] < got["ci95"][1]


@pytest.mark.parametrize("pair", ["sasrec", "=runs/x", "sasrec="])
def test_a_malformed_pair_is_one_line(pair: str) -> None:
    with pytest.raises(SystemExit, match="NAME=RUN_FOLDER"):
        sft_recipe.parse_against([pair])


def test_a_run_without_test_ranks_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no ranks_test.parquet"):
        sft_recipe.parse_against([f"sasrec={tmp_path / 'empty'}"])
