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
from sidrec.methods.ilrec.config import ILRecSettings  # noqa: E402
from sidrec.methods.preference.config import DPOSettings  # noqa: E402


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
