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
