"""kill -9 at chosen points of SASRec and SFT training (optimizer steps, inside checkpoint writes, between
the two renames of a checkpoint swap, while the final metrics are written), then `--resume`: the
resumed run ends with exactly the metrics and weights of an uninterrupted one (sidrec.testing.kill)."""

from __future__ import annotations

import json

import pytest

from sidrec.testing.kill import SASREC_KILLS, SFT_KILLS, kill_then_resume, make_setups, same_result, uninterrupted


@pytest.fixture(scope="module")
def setups(tmp_path_factory):
    return make_setups(tmp_path_factory.mktemp("kill"))


def test_sft_killed_at_five_points_resumes_to_identical_metrics(setups, tmp_path):
    full = uninterrupted(setups, "sft", tmp_path / "full")
    cut = kill_then_resume(setups, "sft", tmp_path / "cut", SFT_KILLS)
    assert same_result("sft", full, cut)
    history = [(tmp_path / r / "history.jsonl").read_text().splitlines() for r in ("full", "cut")]
    strip = [[{k: v for k, v in json.loads(x).items() if "time" not in k} for x in h] for h in history]
    assert strip[0] == strip[1]


def test_sasrec_killed_at_four_points_resumes_to_identical_metrics(setups, tmp_path):
    full = uninterrupted(setups, "sasrec", tmp_path / "full")
    cut = kill_then_resume(setups, "sasrec", tmp_path / "cut", SASREC_KILLS)
    assert same_result("sasrec", full, cut) and cut["epochs_run"] == full["epochs_run"]
