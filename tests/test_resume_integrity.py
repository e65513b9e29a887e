"""Resume integrity: fingerprints refuse to mix runs, --overwrite clears every run kind, leftovers of a
killed atomic write are reconciled, a failed start leaves nothing that blocks the retry."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sidrec.errors import ConfigError, SidrecError
from sidrec.llm.trainer import trim_history
from sidrec.pipelines.classic import train_classic
from sidrec.utils.fingerprint import dataset_digest, fingerprint, fingerprint_diff
from sidrec.utils.io import atomic_dir, reconcile_atomic_leftovers, write_json
from sidrec.utils.runs import RunDir

from .conftest import chain_dataset, chain_sid_table

SASREC = {"epochs": 2, "hidden_size": 16, "num_layers": 1, "num_heads": 1, "batch_size": 64, "device": "cpu",
          "patience": 5}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    from sidrec.llm.tiny import make_tiny_lm

    root = tmp_path_factory.mktemp("resume")
    chain_dataset(n_users=40, n_items=40, seed=0, path=root / "chain")
    chain_dataset(n_users=40, n_items=40, seed=1, path=root / "other")
    chain_sid_table(40).save(root / "sids.json")
    make_tiny_lm(root / "lm", hidden=16)
    return {"root": root, "chain": root / "chain", "other": root / "other", "sids": root / "sids.json",
            "lm": root / "lm"}


def sft_values(data: dict[str, Path], **training) -> dict:
    return {"dataset": str(data["chain"]), "sids": str(data["sids"]), "model": {"name_or_path": str(data["lm"])},
            "training": {"epochs": 2, "batch_size": 8, "eval_samples": 5, "eval_metric": "loss", "device": "cpu",
                         **training},
            "eval": {"num_beams": 5, "splits": ["test"], "max_examples": 5}}


# ----------------------------------------------------------------------------- fingerprints
def test_fingerprint_diff_names_inputs_and_keys():
    a = fingerprint({"training": {"lr": 1e-3, "device": "cpu"}, "dataset": "x"}, {"dataset": "d1"})
    b = fingerprint({"training": {"lr": 2e-3, "device": "cuda"}, "dataset": "y"}, {"dataset": "d2"})
    diff = fingerprint_diff(a, b, free={"dataset", "training.device"})
    assert diff == ["the dataset content differs from the one the run was trained on", "training.lr: 0.001 → 0.002"]
    assert fingerprint_diff(a, a) == []


def test_dataset_digest_follows_content_not_path(data, tmp_path):
    import shutil

    shutil.copytree(data["chain"], tmp_path / "moved")
    assert dataset_digest(tmp_path / "moved") == dataset_digest(data["chain"])
    assert dataset_digest(data["other"]) != dataset_digest(data["chain"])


def test_sft_resume_refuses_a_changed_override_and_another_dataset(data, tmp_path):
    from sidrec.pipelines.llm import train_sft

    out = tmp_path / "run"
    train_sft(sft_values(data), out)
    saved = json.loads((out / "fingerprint.json").read_text())
    assert set(saved["inputs"]) == {"dataset", "sids"} and "training.lr" in saved["config"]
    with pytest.raises(ConfigError, match=r"cannot resume .*training\.lr: .* → 0\.5"):
        train_sft(sft_values(data), out, overrides={"training.lr": 0.5}, resume=True)
    with pytest.raises(ConfigError, match="the dataset content differs"):
        train_sft(sft_values(data), out, overrides={"dataset": str(data["other"])}, resume=True)
    # where it runs and the evaluation batch size may change; the run then continues
    again = train_sft(sft_values(data), out, overrides={"eval.batch_size": 3}, resume=True)
    assert again["train"]["steps"] > 0


def test_classic_resume_refuses_another_dataset_and_a_changed_setting(data, tmp_path):
    out = tmp_path / "sasrec"
    train_classic("sasrec", data["chain"], out, overrides=SASREC)
    with pytest.raises(ConfigError, match="the dataset content differs"):
        train_classic("sasrec", data["other"], out, overrides=SASREC, resume=True)
    with pytest.raises(ConfigError, match=r"hidden_size: 16 → 32"):
        train_classic("sasrec", data["chain"], out, overrides={**SASREC, "hidden_size": 32}, resume=True)


# ----------------------------------------------------------------------------- --overwrite
def test_overwrite_clears_checkpoint_metrics_and_model_of_a_classic_run(data, tmp_path):
    out = tmp_path / "sasrec"
    first = train_classic("sasrec", data["chain"], out, overrides=SASREC)
    assert (out / "checkpoint").is_dir() and (out / "metrics.json").is_file()
    # an --overwrite start that dies before its first checkpoint ...
    RunDir(out, overwrite=True).close()
    assert sorted(p.name for p in out.iterdir()) == ["log.txt"]
    # ... so a later --resume cannot pick up the previous run's checkpoint under the new config
    new = {**SASREC, "lr": 0.01}
    resumed = train_classic("sasrec", data["chain"], out, overrides=new, resume=True)
    fresh = train_classic("sasrec", data["chain"], tmp_path / "fresh", overrides=new)
    assert resumed["test"] == fresh["test"] and resumed["test"] != first["test"]


def test_overwrite_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(SidrecError, match="not a sidrec run folder"):
        RunDir(tmp_path / "mine", overwrite=True)
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_overwrite_keeps_the_inputs_the_caller_put_in_the_folder(tmp_path):
    out = tmp_path / "run"
    RunDir(out).close()
    (out / "negatives.parquet").write_text("x")
    (out / "metrics.json").write_text("{}")
    RunDir(out, overwrite=True, keep={"negatives.parquet"}).close()
    assert sorted(p.name for p in out.iterdir()) == ["log.txt", "negatives.parquet"]


# ----------------------------------------------------------------------------- failed starts
def test_a_start_that_fails_validation_leaves_no_folder(data, tmp_path):
    from sidrec.pipelines.llm import train_sft

    with pytest.raises(ConfigError, match="lr"):
        train_classic("sasrec", data["chain"], tmp_path / "bad", overrides={**SASREC, "lr": -1})
    assert not (tmp_path / "bad").exists()
    bad = sft_values(data)
    bad["model"]["name_or_path"] = str(tmp_path / "no-such-model")
    with pytest.raises(SidrecError):
        train_sft(bad, tmp_path / "bad-sft")
    assert not (tmp_path / "bad-sft").exists()
    # the corrected retry needs no --overwrite
    assert train_classic("sasrec", data["chain"], tmp_path / "bad", overrides=SASREC)["epochs_run"] == 2


def test_a_folder_with_only_the_scaffolding_of_a_failed_start_is_reused(tmp_path):
    out = tmp_path / "run"
    run = RunDir(out)
    run.write_config({"lr": 1})
    run.close()
    RunDir(out).close()  # no --overwrite needed
    assert sorted(p.name for p in out.iterdir()) == ["log.txt"]
    (out / "metrics.json").write_text("{}")
    with pytest.raises(SidrecError, match="already exists"):
        RunDir(out)


# ----------------------------------------------------------------------------- leftovers of killed writes
def _kill_at_replace(monkeypatch, n: int) -> None:
    """Make the n-th os.replace raise (what a kill at that instant leaves on disk)."""
    real, calls = os.replace, {"n": 0}

    def replace(a, b):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt("killed")
        real(a, b)

    monkeypatch.setattr(os, "replace", replace)


def test_an_exception_between_the_two_renames_of_a_swap_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    target = tmp_path / "checkpoint"
    with atomic_dir(target) as tmp:
        (tmp / "progress.json").write_text('{"step": 1}')
    # the 1st replace moves the old folder aside, the 2nd would put the new one in place
    _kill_at_replace(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target) as tmp:
            (tmp / "progress.json").write_text('{"step": 2}')
    monkeypatch.undo()
    assert json.loads((target / "progress.json").read_text()) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]


def test_reconcile_completes_a_swap_and_removes_stale_leftovers(tmp_path):
    (tmp_path / ".checkpoint.abc.old").mkdir()
    (tmp_path / ".checkpoint.abc.old" / "progress.json").write_text('{"step": 1}')
    (tmp_path / ".checkpoint.def.tmp").mkdir()
    (tmp_path / ".checkpoint.def.tmp" / "progress.json").write_text('{"step": 2}')
    (tmp_path / ".metrics.json.xyz.tmp").write_text("{half")
    done = reconcile_atomic_leftovers(tmp_path)
    assert json.loads((tmp_path / "checkpoint" / "progress.json").read_text()) == {"step": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"] and len(done) == 3
    # with the folder in place, leftovers are stale: removed, the folder untouched
    (tmp_path / ".checkpoint.ghi.tmp").mkdir()
    reconcile_atomic_leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    # only an .old folder (killed before the new copy was complete and cleaned): the old one comes back
    os.replace(tmp_path / "checkpoint", tmp_path / ".checkpoint.jkl.old")
    reconcile_atomic_leftovers(tmp_path)
    assert json.loads((tmp_path / "checkpoint" / "progress.json").read_text()) == {"step": 2}


def test_resume_reconciles_leftovers_and_logs_it(tmp_path):
    out = tmp_path / "run"
    RunDir(out).close()
    (out / ".checkpoint.abc.old").mkdir()
    write_json(out / ".checkpoint.abc.old" / "progress.json", {"step": 3})
    run = RunDir(out, resume=True)
    run.close()
    assert (out / "checkpoint" / "progress.json").is_file()
    assert "completed an interrupted swap" in (out / "log.txt").read_text()


def test_trim_history_drops_lines_after_the_checkpoint_and_a_torn_line(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text('{"step": 5, "loss": 1}\n{"step": 10, "valid": {}}\n{"step": 15, "loss": 0.5}\n{"step": 2')
    trim_history(path, 10)
    assert [json.loads(x)["step"] for x in path.read_text().splitlines()] == [5, 10]
