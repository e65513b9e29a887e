"""Training: prefix packing, learning a deterministic pattern, the run folder, early stopping, resume."""

from __future__ import annotations

import json
from collections import Counter

import pandas as pd
import pytest
import torch
import yaml

from sidrec.errors import ConfigError
from sidrec.evaluation.ranking import load_ranks
from sidrec.models import load_model
from sidrec.training import (
    SequentialTrainConfig,
    SequentialTrainer,
    TrainingInterrupted,
    build_model,
    build_train_sequences,
    train_popularity,
)
from sidrec.utils.runs import RunDir

from .conftest import chain_dataset

FAST = {"hidden_size": 32, "num_layers": 1, "batch_size": 32, "lr": 0.01, "dropout": 0.1, "device": "cpu"}


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return chain_dataset(path=tmp_path_factory.mktemp("data") / "chain")


def covered_examples(seqs) -> Counter:
    """The (history, target) pairs a set of training sequences takes a loss on."""
    out: Counter = Counter()
    for inp, tgt, n in zip(seqs.inputs, seqs.targets, seqs.lengths, strict=True):
        for j in range(int(n)):
            if tgt[j] >= 0:
                out[(tuple(int(x) - 1 for x in inp[: j + 1]), int(tgt[j]))] += 1
    return out


def test_prefix_packing_covers_exactly_the_examples():
    split = pd.DataFrame({
        "user_id": ["a", "a", "a", "a", "a", "b", "b", "b", "c"],
        "history": [["x"], ["x", "y"], ["x", "y", "z"], ["y", "z", "w"], ["y", "z", "w"], ["z"], ["z", "x"], ["y"], []],
        "target": ["y", "z", "w", "x", "x", "x", "y", "w", "x"],
    })
    index = {"x": 0, "y": 1, "z": 2, "w": 3}
    examples = Counter(
        (tuple(index[i] for i in h), index[t])
        for h, t in zip(split["history"], split["target"], strict=True) if h
    )
    packed = build_train_sequences(split, index, max_history=3, packing=True)
    plain = build_train_sequences(split, index, max_history=3, packing=False)
    assert covered_examples(packed) == examples == covered_examples(plain)
    assert packed.n_examples == plain.n_examples == 8 and packed.n_skipped == 1
    assert len(packed) == 5 < len(plain) == 8  # a: x y z (+ 2 cut windows), b: z x and y


def test_packed_loss_equals_per_example_loss(chain):
    torch.manual_seed(0)
    model = build_model(SequentialTrainConfig(**FAST), chain.n_items, 6).eval()
    totals = []
    for packing in (True, False):
        seqs = build_train_sequences(chain.split("train"), chain.item_index, 6, packing=packing)
        inputs, targets = torch.from_numpy(seqs.inputs), torch.from_numpy(seqs.targets)
        with torch.no_grad():
            totals.append(model.loss(inputs, targets).item() * seqs.n_examples)
        assert seqs.n_examples == len(chain.split("train"))
    assert totals[0] == pytest.approx(totals[1], rel=1e-5)


@pytest.mark.parametrize("kind", ["sasrec", "gru4rec"])
def test_models_learn_the_chain_and_write_the_run_folder(chain, tmp_path, kind):
    cfg = SequentialTrainConfig(model=kind, epochs=8, patience=8, **FAST)
    out = SequentialTrainer(cfg, chain, RunDir(tmp_path / kind), show_progress=False).train()
    assert out["test"]["hr@1"] > 0.9 and out["valid"]["hr@1"] > 0.9
    run = tmp_path / kind
    for name in ("config.yaml", "history.jsonl", "checkpoint/state.pt", "model/model.json", "metrics.json",
                 "ranks_valid.parquet", "ranks_test.parquet", "log.txt", "run.json"):
        assert (run / name).exists(), name
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["dataset"] == str(chain.path.resolve()) and config["max_history"] == 6
    assert SequentialTrainConfig(**config).model == kind  # config.yaml feeds back as a config
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == list(range(1, 9))
    assert {"train_loss", "valid", "train_time_s", "eval_time_s"} <= set(history[0])
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"hr@1", "hr@3", "hr@5", "hr@10", "hr@20", "ndcg@10", "mrr", "ci95"}
    ranks = load_ranks(run / "ranks_test.parquet")
    assert ranks["user_id"].tolist() == chain.split("test")["user_id"].tolist()
    assert (ranks["rank"] <= 1).mean() == pytest.approx(metrics["test"]["hr@1"])
    model, ids = load_model(run / "model")
    assert ids == chain.item_ids and model.kind == kind


def test_popularity_cannot_learn_the_chain(chain, tmp_path):
    out = train_popularity(chain, RunDir(tmp_path / "pop"), device="cpu", show_progress=False)
    assert out["test"]["hr@1"] < 0.2
    assert (tmp_path / "pop" / "metrics.json").exists() and (tmp_path / "pop" / "ranks_test.parquet").exists()


def test_early_stopping_stops(chain, tmp_path):
    cfg = SequentialTrainConfig(epochs=50, patience=2, **{**FAST, "lr": 1e-9})  # nothing ever improves
    out = SequentialTrainer(cfg, chain, RunDir(tmp_path / "es"), show_progress=False).train()
    assert out["stopped_early"] and out["epochs_run"] == 3 and out["best_epoch"] == 1


def test_resume_reproduces_an_uninterrupted_run(chain, tmp_path):
    cfg = SequentialTrainConfig(epochs=4, patience=4, **{**FAST, "lr": 3e-3})
    full = SequentialTrainer(cfg, chain, RunDir(tmp_path / "full"), show_progress=False).train()

    def crash_after_2(epoch: int, record: dict) -> None:
        if epoch == 2:
            raise TrainingInterrupted("simulated crash")

    with pytest.raises(TrainingInterrupted):
        SequentialTrainer(cfg, chain, RunDir(tmp_path / "cut"), show_progress=False, callbacks=[crash_after_2]).train()
    assert not (tmp_path / "cut" / "metrics.json").exists()
    resumed = SequentialTrainer(cfg, chain, RunDir(tmp_path / "cut", resume=True), show_progress=False).train(resume=True)
    assert resumed["valid"] == full["valid"] and resumed["test"] == full["test"]
    assert resumed["best_epoch"] == full["best_epoch"] and resumed["epochs_run"] == 4
    losses = [[json.loads(x)["train_loss"] for x in (tmp_path / r / "history.jsonl").read_text().splitlines()]
              for r in ("full", "cut")]
    assert losses[0] == losses[1]
    # a finished run resumes to the same result without training again
    again = SequentialTrainer(cfg, chain, RunDir(tmp_path / "cut", resume=True), show_progress=False).train(resume=True)
    assert again["test"] == full["test"]


def test_same_seed_same_model_and_config_checks(chain, tmp_path):
    cfg = SequentialTrainConfig(model="gru4rec", epochs=1, **FAST)
    states = []
    for name in ("a", "b"):
        SequentialTrainer(cfg, chain, RunDir(tmp_path / name), show_progress=False).train()
        states.append(torch.load(tmp_path / name / "checkpoint" / "state.pt", weights_only=False)["model"])
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])
    other = SequentialTrainConfig(model="gru4rec", epochs=1, **{**FAST, "lr": 0.02})
    with pytest.raises(ConfigError, match="lr"):
        SequentialTrainer(other, chain, RunDir(tmp_path / "a", resume=True), show_progress=False).train(resume=True)
    with pytest.raises(ValueError):
        SequentialTrainConfig(model="sasrec", unknown_field=1)
