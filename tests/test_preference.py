"""DPO / S-DPO: the losses against hand-computed values, the negative samplers (never a positive),
the negatives file's checks, and the trainers on a tiny random Llama from an SFT run via the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from sidrec.cli.main import app
from sidrec.data.dataset import Dataset
from sidrec.errors import ConfigError, DataError
from sidrec.methods.preference.trainer import DPOTrainer
from sidrec.methods.preference.negatives import load_negatives, sample_negatives, save_negatives, user_positives
from sidrec.methods.preference.losses import dpo_loss, sdpo_loss, sequence_logps
from sidrec.llm.recommender import GenerativeRecommender
from sidrec.llm.shared_prefix import collate_prompt_groups, prompt_group_logps
from sidrec.llm.tiny import make_tiny_lm
from sidrec.methods.preference.negatives import sample_run_negatives
from sidrec.pipelines.llm import continue_from, sft_config, train_sft
from sidrec.utils.runs import RunDir

from .conftest import chain_dataset, chain_sid_table

N_ITEMS = 40


def _log_sigmoid(x: float) -> float:
    return -math.log1p(math.exp(-x))


# ----------------------------------------------------------------------------- losses
def test_dpo_loss_matches_the_hand_value():
    # h+ = 0.5·(−1 − (−2)) = 0.5, h− = 0.5·(−3 − (−2)) = −0.5 → −log σ(1)
    loss = dpo_loss(torch.tensor([-1.0]), torch.tensor([[-3.0]]), torch.tensor([-2.0]), torch.tensor([[-2.0]]), 0.5)
    assert float(loss[0]) == pytest.approx(-_log_sigmoid(1.0), rel=1e-6)
    # two negatives: the mean of the two pairwise losses
    loss = dpo_loss(torch.tensor([0.0]), torch.tensor([[-1.0], [1.0]]), torch.tensor([0.0]),
                    torch.tensor([[0.0], [0.0]]), 1.0)
    assert float(loss[0]) == pytest.approx(-(_log_sigmoid(1.0) + _log_sigmoid(-1.0)) / 2, rel=1e-6)


def test_sdpo_loss_matches_the_hand_value_and_reduces_to_dpo():
    # h+ = 0, h− = (−1, 2): −log σ(−log(e^−1 + e^2))
    loss = sdpo_loss(torch.tensor([0.0]), torch.tensor([[-1.0], [2.0]]), torch.tensor([0.0]),
                     torch.tensor([[0.0], [0.0]]), 1.0)
    assert float(loss[0]) == pytest.approx(-_log_sigmoid(-math.log(math.exp(-1) + math.exp(2))), rel=1e-6)
    g = torch.Generator().manual_seed(0)
    c, r, rc, rr = (torch.randn(5, generator=g), torch.randn(1, 5, generator=g), torch.randn(5, generator=g),
                    torch.randn(1, 5, generator=g))
    torch.testing.assert_close(sdpo_loss(c, r, rc, rr, 0.3), dpo_loss(c, r, rc, rr, 0.3))
    # policy == reference: every implicit reward is 0, DPO = log 2, S-DPO = log(1 + K)
    z = torch.zeros(4)
    assert float(dpo_loss(z, torch.zeros(3, 4), z, torch.zeros(3, 4), 0.1)[0]) == pytest.approx(math.log(2))
    assert float(sdpo_loss(z, torch.zeros(3, 4), z, torch.zeros(3, 4), 0.1)[0]) == pytest.approx(math.log(4))


def test_sequence_logps_sums_labelled_positions_only():
    logits = torch.randn(2, 3, 7, generator=torch.Generator().manual_seed(1))
    labels = torch.tensor([[1, 2, -100], [-100, 4, 6]])
    total, count = sequence_logps(logits, labels)
    logp = torch.log_softmax(logits, -1)
    assert float(total[0]) == pytest.approx(float(logp[0, 0, 1] + logp[0, 1, 2]), rel=1e-6)
    assert float(total[1]) == pytest.approx(float(logp[1, 1, 4] + logp[1, 2, 6]), rel=1e-6)
    assert count.tolist() == [2, 2]


def test_shared_prefix_logps_and_gradients_equal_separate_sequences(tmp_path):
    """One prompt pass + a repeated KV cache gives each response's log-probability (and gradient) as
    if every (prompt, response) pair were its own unpadded sequence; prompts and responses of
    different lengths exercise the left / right padding."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(make_tiny_lm(tmp_path / "lm", hidden=32, layers=2)).float()
    prompts = [[5, 9, 17, 33, 40, 41, 2], [7, 8], [12, 13, 14, 15]]
    responses = [[[60, 61, 2], [62, 2], [63, 64, 65, 2]], [[70, 71, 2], [72, 73, 2], [74, 2]],
                 [[80, 2], [81, 82, 2], [83, 84, 2]]]
    batch = collate_prompt_groups(prompts, responses, pad_id=0)
    assert batch["response_ids"].shape == (9, 4) and int(batch["groups"]) == 3
    logps, counts = prompt_group_logps(model, batch)
    grads = torch.autograd.grad(logps.sum(), [p for p in model.parameters()], allow_unused=True)
    expected, expected_counts = [], []
    for g in range(3):  # group-major rows: g·B + b
        for b, prompt in enumerate(prompts):
            ids = torch.tensor([prompt + responses[b][g]])
            logits = model(input_ids=ids).logits[0, len(prompt) - 1:-1]
            expected.append(torch.log_softmax(logits, -1).gather(1, torch.tensor(responses[b][g])[:, None]).sum())
            expected_counts.append(len(responses[b][g]))
    torch.testing.assert_close(logps, torch.stack(expected), atol=1e-5, rtol=1e-5)
    assert counts.tolist() == expected_counts
    ref = torch.autograd.grad(torch.stack(expected).sum(), [p for p in model.parameters()], allow_unused=True)
    for got, want in zip(grads, ref, strict=True):
        if want is not None:
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("pref")
    make_tiny_lm(root / "lm", hidden=32, layers=2)
    chain_dataset(n_users=120, n_items=N_ITEMS, path=root / "chain")
    chain_sid_table(N_ITEMS).save(root / "sids.json")
    cfg = {"method": "sft", "dataset": str(root / "chain"), "sids": str(root / "sids.json"),
           "model": {"name_or_path": str(root / "lm")},
           "data": {"tasks": {"seqrec": 1.0, "item2sid": 0.0, "sid2item": 0.0}, "compact": True,
                    "format": "prompt", "sid_softmax": "full"},  # what DPO / S-DPO continue
           "training": {"epochs": 2, "batch_size": 16, "lr": 3e-3, "eval_samples": 20, "eval_metric": "loss",
                        "log_steps": 2, "device": "cpu"},
           "eval": {"num_beams": 10, "batch_size": 32, "max_examples": 30}}
    train_sft(cfg, root / "sft")
    return root


def _assert_no_positive(frame: pd.DataFrame, train: pd.DataFrame, k: int) -> None:
    positives = user_positives(train)
    for row, user, target, negs in zip(frame["row"], frame["user_id"], frame["target"], frame["negatives"], strict=True):
        assert train["user_id"].iat[row] == user and train["target"].iat[row] == target
        negs = list(negs)
        assert len(negs) == k and len(set(negs)) == k
        assert target not in negs and not set(negs) & positives[user]


# ----------------------------------------------------------------------------- negative samplers
@pytest.mark.parametrize("strategy", ["random", "popularity"])
def test_random_and_popularity_negatives_are_never_positives(env, strategy):
    ds = Dataset.load(env / "chain")
    train = ds.split("train")
    sample = sample_negatives(train, list(ds.item_ids), strategy, 5, seed=3)
    assert len(sample.frame) == sum(len(h) > 0 for h in train["history"])
    _assert_no_positive(sample.frame, train, 5)
    again = sample_negatives(train, list(ds.item_ids), strategy, 5, seed=3)
    assert again.frame["negatives"].map(list).tolist() == sample.frame["negatives"].map(list).tolist()


def test_popularity_negatives_follow_item_popularity():
    # "hot" is the target of 200 rows (a positive of those users only); u0 never saw it
    rows = [(f"v{k}", ["a3"], "hot") for k in range(200)] + [("u0", ["a1"], "a2")] * 300
    train = pd.DataFrame(rows, columns=["user_id", "history", "target"])
    items = ["hot"] + [f"a{k}" for k in range(1, 30)]

    def share_of_hot(strategy: str) -> float:
        frame = sample_negatives(train, items, strategy, 1, seed=0).frame
        firsts = [n[0] for n in frame["negatives"]]
        assert "hot" not in [n for n, u in zip(firsts, frame["user_id"], strict=True) if u != "u0"]
        u0 = [n for n, u in zip(firsts, frame["user_id"], strict=True) if u == "u0"]
        return u0.count("hot") / len(u0)

    assert share_of_hot("popularity") > 0.7  # weight 201 against 1 for each of the 26 other candidates
    assert share_of_hot("random") < 0.15  # 1 in 27


def test_beam_negatives_are_the_models_top_ranked_wrong_items(env, tmp_path):
    ds = Dataset.load(env / "chain")
    train = ds.split("train")
    out = tmp_path / "neg.parquet"
    meta = sample_run_negatives(out, run=env / "sft", strategy="beam", per_example=3, max_examples=40, seed=0,
                                num_beams=15, device="cpu")
    assert meta["examples"] == 40 and meta["strategy"] == "beam"
    frame = load_negatives(out, train, set(ds.item_ids))
    _assert_no_positive(frame, train, 3)
    rec = GenerativeRecommender.load(env / "sft" / "model")
    positives = user_positives(train)
    for r, negs in list(zip(frame["row"], frame["negatives"], strict=True))[:5]:
        ranked, _ = rec.recommend([list(train["history"].iat[r])], top_k=15, num_beams=15)
        wrong = [i for i in ranked[0] if i not in positives[train["user_id"].iat[r]] | {train["target"].iat[r]}]
        assert list(negs) == wrong[:3]
    assert json.loads(Path(str(out) + ".json").read_text())["run"] == str(env / "sft")


def test_a_negatives_file_with_a_positive_is_refused(env, tmp_path):
    ds = Dataset.load(env / "chain")
    train = ds.split("train")
    sample = sample_negatives(train, list(ds.item_ids), "random", 2, seed=0)
    frame = sample.frame.copy()
    frame.at[3, "negatives"] = [frame.at[3, "target"], frame.at[3, "negatives"][0]]
    sample.frame = frame
    save_negatives(sample, tmp_path / "bad.parquet")
    with pytest.raises(DataError, match=r"line 4 .*positives of user"):
        load_negatives(tmp_path / "bad.parquet", train, set(ds.item_ids))
    frame.at[3, "negatives"] = ["nope", "i1"]
    save_negatives(sample, tmp_path / "bad.parquet")
    with pytest.raises(DataError, match="not in the catalogue"):
        load_negatives(tmp_path / "bad.parquet", train, set(ds.item_ids))
    with pytest.raises(DataError, match="sidrec negatives sample"):
        load_negatives(tmp_path / "missing.parquet", train, set(ds.item_ids))


# ----------------------------------------------------------------------------- trainers
def _trainer(env: Path, tmp: Path, method: str, negatives: Path, **dpo) -> DPOTrainer:
    values = continue_from(env / "sft", method, {"dpo": {"negatives": str(negatives), **dpo}})
    trainer = DPOTrainer(sft_config(values), RunDir(tmp))
    trainer.setup()
    return trainer


def test_dpo_starts_at_log_2_and_its_gradient_favours_the_target(env, tmp_path):
    ds = Dataset.load(env / "chain")
    neg = tmp_path / "neg.parquet"
    save_negatives(sample_negatives(ds.split("train"), list(ds.item_ids), "random", 3, seed=0), neg)
    trainer = _trainer(env, tmp_path / "dpo", "dpo", neg)
    batch = trainer.collate([trainer.corpus.examples[i] for i in range(8)])
    assert int(batch["groups"]) == 2  # K = 1 for DPO by default
    assert batch["prompt_ids"].shape[0] == 8 and batch["response_ids"].shape[0] == 16  # prompts run once
    trainer.config.model.gradient_checkpointing = True  # which drops caches: concatenated sequences instead
    flat = trainer.collate([trainer.corpus.examples[i] for i in range(8)])
    trainer.config.model.gradient_checkpointing = False
    assert flat["input_ids"].shape[0] == 16
    torch.testing.assert_close(trainer._logps(trainer.model, flat)[0], trainer._logps(trainer.model, batch)[0],
                               atol=1e-5, rtol=1e-5)
    loss, logs = trainer.compute_loss(trainer.model, batch)
    assert float(loss.detach()) == pytest.approx(math.log(2), abs=1e-5)  # policy == reference at the start
    assert logs["reward_margin"] == pytest.approx(0.0, abs=1e-6)
    # one SGD step on the DPO loss raises log π(target) − log π(negative)
    pol0 = trainer._logps(trainer.model, batch)[0].view(2, -1).detach()
    opt = torch.optim.SGD([p for p in trainer.model.parameters() if p.requires_grad], lr=0.5)
    loss.backward()
    opt.step()
    pol1 = trainer._logps(trainer.model, batch)[0].view(2, -1).detach()
    assert float(((pol1[0] - pol1[1]) - (pol0[0] - pol0[1])).mean()) > 0
    ref = trainer.reference_logps(batch).view(2, -1)
    torch.testing.assert_close(ref, pol0)  # the reference stays frozen
    sdpo = _trainer(env, tmp_path / "sdpo", "sdpo", neg)
    batch = sdpo.collate([sdpo.corpus.examples[i] for i in range(4)])
    assert int(batch["groups"]) == 4  # every negative in the file
    loss, _ = sdpo.compute_loss(sdpo.model, batch)
    assert float(loss.detach()) == pytest.approx(math.log(4), abs=1e-5)


def test_lora_reference_is_the_model_with_adapters_disabled(env, tmp_path):
    ds = Dataset.load(env / "chain")
    neg = tmp_path / "neg.parquet"
    save_negatives(sample_negatives(ds.split("train"), list(ds.item_ids), "random", 1, seed=0), neg)
    values = continue_from(env / "sft", "dpo", {"dpo": {"negatives": str(neg), "sft_weight": 0.5},
                                                "model": {"finetune": "lora", "lora": {"r": 4}}})
    trainer = DPOTrainer(sft_config(values), RunDir(tmp_path / "lora"))
    trainer.setup()
    assert trainer.reference is None
    batch = trainer.collate([trainer.corpus.examples[i] for i in range(4)])
    loss, logs = trainer.compute_loss(trainer.model, batch)
    assert float(loss.detach()) == pytest.approx(math.log(2) + 0.5 * logs["nll_chosen"], abs=1e-5)


def test_train_dpo_and_sdpo_from_an_sft_run_via_the_cli(env, tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["train", "dpo", "--from", str(env / "sft"), "--out", str(tmp_path / "dpo"),
                              "--beta", "0.5", "--set", "training.lr=1e-3", "--set", "training.max_steps=6"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "dpo"
    assert (run / "negatives.parquet").is_file()  # sampled from the SFT model's beam search
    meta = json.loads((run / "negatives.parquet.json").read_text())
    assert meta["strategy"] == "beam" and meta["per_example"] == 1
    config = (run / "config.yaml").read_text()
    assert "method: dpo" in config and "beta: 0.5" in config and str(env / "sft" / "model") in config
    records = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    logged = [r for r in records if "reward_accuracy" in r]
    assert logged and all(k in logged[0] for k in ("pref_loss", "reward_chosen", "reward_rejected", "reward_margin"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "dpo" and metrics["train"]["steps"] == 6 and metrics["test"]["invalid_outputs"] == 0
    assert metrics["train"]["peak_memory_mb"] > 0
    res = runner.invoke(app, ["train", "sdpo", "--from", str(env / "sft"), "--negatives",
                              str(run / "negatives.parquet"), "--out", str(tmp_path / "sdpo"),
                              "--set", "training.max_steps=4", "--set", "dpo.num_negatives=1"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "sdpo" / "metrics.json").read_text())["method"] == "sdpo"
    # asking for more negatives than the file has is explained
    res = runner.invoke(app, ["train", "sdpo", "--from", str(env / "sft"), "--negatives",
                              str(run / "negatives.parquet"), "--out", str(tmp_path / "sdpo3"),
                              "--set", "dpo.num_negatives=3"])
    assert res.exit_code != 0 and "fewer than" in res.output
    res = runner.invoke(app, ["negatives", "sample", "--data", str(env / "chain"), "--strategy", "popularity",
                              "-k", "4", "--out", str(tmp_path / "pop.parquet")])
    assert res.exit_code == 0, res.output
    frame = pd.read_parquet(tmp_path / "pop.parquet")
    assert frame["negatives"].map(len).eq(4).all()


def test_dpo_without_negatives_is_a_config_error(env):
    with pytest.raises(ConfigError, match="dpo.negatives"):
        sft_config({"method": "sdpo", "dataset": str(env / "chain")})
    assert np.isfinite(sft_config({"method": "dpo", "dataset": str(env / "chain"),
                                   "dpo": {"negatives": "x.parquet"}}).dpo.beta)
