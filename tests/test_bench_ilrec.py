"""benchmarks/ilrec.py's stage-2 arms are valid settings of the methods they name: a typo in an arm's
section (an unknown key, a value out of range) fails here, not an hour into a benchmark."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import ilrec  # noqa: E402
from _common import paired_ci, seed_mean_per_example  # noqa: E402
from sidrec.methods.ilrec.config import ILRecSettings  # noqa: E402
from sidrec.methods.preference.config import DPOSettings  # noqa: E402

from .bench_runs import make_run, ndcg, ranks  # noqa: E402


@pytest.mark.parametrize("name", sorted(ilrec.STAGE2_ARMS))
def test_every_stage2_arm_validates_as_its_method_settings(name: str) -> None:
    arm = ilrec.STAGE2_ARMS[name]
    if arm["method"] == "ilrec":
        settings = ILRecSettings(**arm["ilrec"])
        for key, value in arm["ilrec"].items():
            assert getattr(settings, key) == value  # taken as written, not coerced
    elif arm["method"] in ("dpo", "sdpo"):
        DPOSettings(**arm["dpo"])
    else:
        assert arm["method"] == "sft"


def test_the_settings_refuse_what_an_arm_could_get_wrong() -> None:
    with pytest.raises(ValidationError):
        ILRecSettings(lamda=0.1)  # a misspelt key
    with pytest.raises(ValidationError):
        ILRecSettings(lam=-1.0)


def test_a_recollection_keeps_the_record_of_the_invocation_that_trained() -> None:
    trained = {"seeds": [0], "arms": ["ilrec_no_cpd"], "collect": False, "wall_seconds": 5756.4}
    old = {"raw": {"industrial": {"invocation": trained}}}
    collect = {"seeds": [0, 1, 2], "arms": ["ilrec"], "collect": True, "wall_seconds": 12.0}
    record = ilrec.invocation_record(old, "industrial", collect)
    assert {k: record[k] for k in trained} == trained
    assert record["recollected"] == collect
    # collecting again keeps the same training record, not the first re-collection nested inside it
    again = ilrec.invocation_record({"raw": {"industrial": {"invocation": record}}}, "industrial", collect)
    assert again == record
    # a run that trains replaces the record; a dataset with no record yet takes the collection's own
    train = {**collect, "collect": False}
    assert ilrec.invocation_record(old, "industrial", train) == train
    assert ilrec.invocation_record(old, "beauty", collect) == collect


def test_an_arm_is_paired_with_the_control_on_its_own_seeds(tmp_path: Path) -> None:
    control = [make_run(tmp_path / "sft_continued" / f"seed{s}", ranks(s), ranks(10 + s)) for s in (0, 1, 2)]
    one_seed = [make_run(tmp_path / "ilrec_no_cpd" / "seed0", ranks(5), ranks(15))]
    runs = {"sft_continued": control, "ilrec_no_cpd": one_seed}
    for split, prefix in (("test", ""), ("valid", "valid_")):
        got = ilrec.vs_control(runs, "ilrec_no_cpd", split)
        assert got[f"{prefix}control_seeds"] == [0]
        diff = got[f"{prefix}paired_vs_control"]["ndcg@10"]["diff"]
        arm = ndcg(ranks(5 if split == "test" else 15))
        assert diff == pytest.approx(arm.mean() - ndcg(ranks(0 if split == "test" else 10)).mean())
        # not against the mean of all three control seeds
        three = paired_ci(seed_mean_per_example(control, split)[1], seed_mean_per_example(one_seed, split)[1])
        assert diff != pytest.approx(three["ndcg@10"]["diff"])
    # an arm on seeds the control lacks, or without validation ranks, is not paired
    runs["ilrec_mean"] = [make_run(tmp_path / "ilrec_mean" / "seed7", ranks(7))]
    assert ilrec.vs_control(runs, "ilrec_mean", "test") == {}
    runs["ilrec_lam0.1"] = [make_run(tmp_path / "ilrec_lam0.1" / "seed1", ranks(8))]
    assert ilrec.vs_control(runs, "ilrec_lam0.1", "test")["control_seeds"] == [1]
    assert ilrec.vs_control(runs, "ilrec_lam0.1", "valid") == {}


def test_each_preference_arm_names_a_negatives_strategy_and_ilrec_arms_none() -> None:
    from sidrec.methods.preference.negatives import STRATEGIES

    for name, arm in ilrec.STAGE2_ARMS.items():
        strategy = ilrec.negatives_strategy(name)
        if arm["method"] in ("dpo", "sdpo"):
            assert strategy in STRATEGIES
        else:
            assert strategy is None
    assert ilrec.negatives_strategy("dpo") == "beam" and ilrec.negatives_strategy("sdpo_pop") == "popularity"
    assert ilrec.negatives_strategy("dpo_random") == "random"
