"""Bad input to every command: one line that starts with `error:` and names the field, option or file,
a non-zero exit, never a traceback; SIDREC_DEBUG=1 shows the traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidrec.cli.main import cli
from sidrec.testing.cli_cases import CASES, prepare


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    return prepare(tmp_path_factory.mktemp("badcli"))


@pytest.mark.parametrize("args, expect", CASES, ids=[" ".join(a[:3]) + f"·{i}" for i, (a, _) in enumerate(CASES)])
def test_bad_input_gets_one_line(work, capsys, args, expect):
    code = cli([a.format(w=work) for a in args])
    out = capsys.readouterr()
    lines = [x for x in out.err.strip().splitlines() if x.strip()]
    assert code != 0, out
    assert len(lines) == 1 and lines[0].startswith("error:"), out.err
    assert "Traceback" not in out.err + out.out
    assert expect in lines[0], lines[0]


def test_the_traceback_is_shown_with_sidrec_debug(work, capsys, monkeypatch):
    monkeypatch.setenv("SIDREC_DEBUG", "1")
    with pytest.raises(Exception):  # noqa: B017 - whichever error the command raises
        cli(["train", "sasrec", "--data", str(work / "d"), "--out", str(work / "r"), "--set", "lr=abc"])


def test_an_unexpected_error_is_one_line_that_asks_for_a_report(work, capsys, monkeypatch):
    import sidrec.pipelines.classic as classic

    def boom(*a, **k):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(classic, "train_classic", boom)
    code = cli(["train", "sasrec", "--data", str(work / "d"), "--out", str(work / "r2")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "ZeroDivisionError" in err and "SIDREC_DEBUG=1" in err


def test_degenerate_results_are_refused_not_nan():
    import numpy as np
    import pandas as pd

    from sidrec.data.build import build_dataset
    from sidrec.errors import ConfigError, DataError
    from sidrec.evaluation.metrics import metrics_from_ranks

    with pytest.raises(DataError, match="nothing to evaluate"):
        metrics_from_ranks(np.array([], dtype=np.int64))
    items = pd.DataFrame({"item_id": ["a", "b"]})
    none = pd.DataFrame({"user_id": [], "item_id": [], "timestamp": []})
    with pytest.raises(DataError, match="0 interactions"):
        build_dataset(name="x", source="src.csv", format="test", items=items, interactions=none)
    inter = pd.DataFrame({"user_id": ["u"] * 4, "item_id": ["a", "b", "a", "b"], "timestamp": [1, 2, 3, 4]})
    with pytest.raises(ConfigError, match="max_history"):
        build_dataset(name="x", source="src.csv", format="test", items=items, interactions=inter, max_history=0)
