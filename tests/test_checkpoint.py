"""Training-state files load without unpickling code: a planted pickle is refused with one line, and
the RNG states both trainers save round-trip exactly."""

from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from sidrec.errors import DataError
from sidrec.utils.checkpoint import load_state, rng_state, save_state, set_rng_state

SRC = Path(__file__).resolve().parents[1] / "src"


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED_BY_PICKLE",))


def test_a_planted_pickle_is_refused_and_never_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "optimizer.pt"
    torch.save({"optimizer": _Exploit()}, path)
    with pytest.raises(DataError) as err:
        load_state(path)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
    message = str(err.value)
    assert str(path) in message and "--overwrite" in message and "\n" not in message
    path.write_bytes(pickle.dumps(_Exploit()))  # a bare pickle, not a torch file
    with pytest.raises(DataError):
        load_state(path)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()


def test_truncated_state_files_are_refused_with_one_line(tmp_path):
    path = tmp_path / "rng.pt"
    save_state(path, rng_state())
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(DataError, match="rng.pt"):
        load_state(path)


def test_rng_states_round_trip_through_a_safe_file(tmp_path):
    random.seed(3)
    np.random.seed(4)
    torch.manual_seed(5)
    random.gauss(0, 1)  # a cached gaussian in python's state
    np.random.standard_normal()
    save_state(tmp_path / "rng.pt", rng_state())
    expect = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    set_rng_state(load_state(tmp_path / "rng.pt"))
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expect


def test_no_unsafe_torch_load_in_the_package():
    offenders = [str(p) for p in SRC.rglob("*.py") if "weights_only=False" in p.read_text(encoding="utf-8")]
    assert offenders == []


def test_resume_from_a_planted_sft_checkpoint_is_refused(tmp_path, monkeypatch):
    from sidrec.llm.tiny import make_tiny_lm
    from sidrec.pipelines.llm import train_sft

    from .conftest import chain_dataset, chain_sid_table

    monkeypatch.chdir(tmp_path)
    make_tiny_lm(tmp_path / "lm", hidden=16)
    chain_dataset(n_users=30, n_items=40, path=tmp_path / "chain")
    chain_sid_table(40).save(tmp_path / "sids.json")
    cfg = {"dataset": str(tmp_path / "chain"), "sids": str(tmp_path / "sids.json"),
           "model": {"name_or_path": str(tmp_path / "lm")},
           "training": {"epochs": 1, "batch_size": 8, "eval_samples": 5, "eval_metric": "loss", "device": "cpu"},
           "eval": {"num_beams": 5, "splits": ["test"], "max_examples": 5}}
    train_sft(cfg, tmp_path / "run")
    torch.save({"optimizer": _Exploit()}, tmp_path / "run" / "checkpoint" / "optimizer.pt")
    with pytest.raises(DataError, match="optimizer.pt"):
        train_sft(cfg, tmp_path / "run", resume=True)
    assert not (tmp_path / "PWNED_BY_PICKLE").exists()
