"""ILRec in the trainer, on a tiny random Llama: the loss reduces to SFT's when switched off, CPD's
gradient reaches only the layers below the chosen ones, CRR rewards equal a brute force over the
CF model's item scores, stage 2 from an SFT run via the CLI, and config errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from sidrec.cli.main import app
from sidrec.errors import ConfigError
from sidrec.methods.ilrec.lens import resolve_layers
from sidrec.methods.ilrec.trainer import ILRecTrainer
from sidrec.llm.tiny import make_tiny_lm
from sidrec.llm.trainer import SFTConfig
from sidrec.methods.ilrec.config import ILRecConfig
from sidrec.pipelines.classic import train_classic
from sidrec.pipelines.llm import sft_config, train_sft
from sidrec.utils.runs import RunDir

from .conftest import chain_dataset, chain_sid_table

N_ITEMS = 40


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("ilrec")
    make_tiny_lm(root / "lm", hidden=32, layers=4)
    chain_dataset(n_users=150, n_items=N_ITEMS, path=root / "chain")
    chain_sid_table(N_ITEMS).save(root / "sids.json")
    train_classic("sasrec", root / "chain", root / "sasrec", overrides={"epochs": 3, "device": "cpu"}, overwrite=True)
    return root


def ilrec_config(root: Path, **ilrec) -> SFTConfig:
    return ILRecConfig(dataset=root / "chain", sids=root / "sids.json",
                     model={"name_or_path": str(root / "lm")}, data={"tasks": {"seqrec": 1.0, "item2sid": 0.0,
                                                                               "sid2item": 0.0}, "compact": True},
                     training={"epochs": 1, "batch_size": 8, "lr": 3e-3, "eval_samples": 20, "eval_metric": "loss",
                               "log_steps": 2, "device": "cpu"},
                     eval={"num_beams": 10, "batch_size": 32, "max_examples": 30},
                     ilrec={"cf_run": root / "sasrec", "layers": [-2, -3], **ilrec})


def setup_trainer(root: Path, tmp: Path, **ilrec) -> tuple[ILRecTrainer, dict[str, torch.Tensor]]:
    trainer = ILRecTrainer(ilrec_config(root, **ilrec), RunDir(tmp))
    trainer.setup()
    examples = [trainer.corpus.examples[i] for i in trainer.corpus.task_index["seqrec"][:8]]
    return trainer, trainer.collate(examples)


def test_layers_resolve_and_bad_layers_are_explained():
    assert resolve_layers([-2, -3, -4, -5], 30) == [29, 28, 27, 26]
    assert resolve_layers([1, -2], 4) == [1, 3]
    with pytest.raises(ConfigError, match="-1 is the last layer"):
        resolve_layers([-1], 4)
    with pytest.raises(ConfigError, match="not an intermediate layer"):
        resolve_layers([-5], 4)


def test_switched_off_ilrec_is_exactly_the_sft_loss(env, tmp_path):
    trainer, batch = setup_trainer(env, tmp_path, alpha=0.0, lam=0.0, beta=0.0)
    loss, logs = trainer.compute_loss(trainer.model, batch)
    assert float(loss.detach()) == pytest.approx(float(trainer.lm_loss(trainer.model, batch).detach()), rel=1e-6)
    assert logs["target_positions"] == 8 * 3  # 8 seqrec rows × 3 SID tokens (EOS excluded)
    assert 0.0 <= logs["frac_with_negative"] <= 1.0
    trainer, batch = setup_trainer(env, tmp_path / "b", alpha=0.5)
    loss_cpo, logs = trainer.compute_loss(trainer.model, batch)
    if logs["frac_with_negative"] > 0:  # raising negatives' logits can only raise the loss
        assert float(loss_cpo.detach()) > float(trainer.lm_loss(trainer.model, batch).detach())


def _grads(trainer: ILRecTrainer, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    trainer.model.zero_grad(set_to_none=True)
    loss, _ = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
            for n, p in trainer.model.named_parameters()}


def test_cpd_gradient_reaches_only_layers_below_the_chosen_ones(env, tmp_path):
    """layers [-2, -3] of 4 = layers 3 and 2: CPD moves layers 1–3, never layer 4, the final norm or the head."""
    off, batch = setup_trainer(env, tmp_path / "a", lam=0.0, use_crr=False)
    on, _ = setup_trainer(env, tmp_path / "b", lam=1.0, use_crr=False)
    g_off, g_on = _grads(off, batch), _grads(on, batch)
    diff = {n: float((g_on[n] - g_off[n]).abs().max()) for n in g_on}
    last = [n for n in diff if ".layers.3." in n]
    assert last and all(diff[n] == 0.0 for n in last)
    assert diff["model.norm.weight"] == 0.0
    assert diff.get("lm_head.weight", 0.0) == 0.0  # absent when tied to the embeddings
    assert diff["model.embed_tokens.weight"] > 0  # tied with the head: CPD reaches it only as the input embedding
    for layer in (0, 1, 2):
        assert max(diff[n] for n in diff if f".layers.{layer}." in n) > 0


def test_crr_rewards_equal_brute_force_over_sasrec_scores(env, tmp_path):
    trainer, batch = setup_trainer(env, tmp_path, temperature=0.5)
    labels = batch["labels"][:, -int(batch["response_width"]) + 1:]
    _, (b_idx, _, _, lvl, _, prefix) = trainer.target_positions(labels, batch["seqrec_row"])
    rewards = trainer.token_rewards(batch, b_idx, lvl, prefix)
    table = trainer.table
    examples = [trainer.corpus.examples[i] for i in trainer.corpus.task_index["seqrec"][:8]]
    scores = trainer.cf.score_item_ids([list(ex.history) for ex in examples])  # columns in the CF model's order
    cf_items = trainer.cf.item_ids
    for p in range(len(b_idx)):
        b, level = int(b_idx[p]), int(lvl[p])
        for v in range(rewards.shape[1]):
            under = [table.item_ids[i] for i in range(table.n_items)
                     if list(table.codes[i, :level]) == prefix[p, :level].tolist() and table.codes[i, level] == v]
            if not under:
                assert rewards[p, v] == float("-inf")
                continue
            s = torch.stack([scores[b, cf_items.index(iid)] for iid in under]) / 0.5
            assert float(rewards[p, v]) == pytest.approx(float(torch.logsumexp(s, 0)), rel=1e-5, abs=1e-5)


def sft_values(env: Path) -> dict:
    """The same run as `ilrec_config` as a plain SFT config (an SFT config has no ilrec section)."""
    values = {**ilrec_config(env).model_dump(mode="json"), "method": "sft"}
    values.pop("ilrec")
    return values


def test_stage_two_from_an_sft_run_via_the_cli(env, tmp_path):
    sft = tmp_path / "sft"
    train_sft(sft_values(env), sft)
    runner = CliRunner()
    res = runner.invoke(app, ["train", "ilrec", "--from", str(sft), "--cf-run", str(env / "sasrec"), "--out",
                              str(tmp_path / "ilrec"), "--set", "ilrec.layers=[-2,-3]", "--set", "training.lr=1e-3"])
    assert res.exit_code == 0, res.output
    run = tmp_path / "ilrec"
    config = (run / "config.yaml").read_text()
    assert "method: ilrec" in config and str(sft / "model") in config and "from_run" in config
    records = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines()]
    logged = [r for r in records if "cpd" in r]
    assert logged and all(k in logged[0] for k in ("cpo", "cpd", "crr", "frac_with_negative", "mean_negatives"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["method"] == "ilrec" and metrics["test"]["invalid_outputs"] == 0
    # the plain-CE control continues the same model with the same schedule
    res = runner.invoke(app, ["train", "sft", "--from", str(sft), "--out", str(tmp_path / "cont")])
    assert res.exit_code == 0, res.output
    cont = json.loads((tmp_path / "cont" / "metrics.json").read_text())
    assert cont["method"] == "sft" and cont["train"]["steps"] == metrics["train"]["steps"]


def test_crr_without_a_cf_run_is_a_config_error(env):
    with pytest.raises(ConfigError, match="ilrec.cf_run"):
        sft_config({"method": "ilrec", "dataset": str(env / "chain")})
    sft_config({"method": "ilrec", "dataset": str(env / "chain"), "ilrec": {"use_crr": False}})


def test_false_negative_counts_by_hand():
    from sidrec.pipelines.ilrec_diagnostics import false_negative_counts, summarise

    neg = torch.tensor([[0, 0, 1, 1], [0, 1, 0, 0], [1, 1, 1, 1]], dtype=torch.bool)
    cand = torch.ones((3, 4), dtype=torch.bool)
    code, lvl = torch.tensor([1, 2, 2]), torch.tensor([0, 1, 1])
    prefix = torch.tensor([[1, 2], [1, 2], [1, 2]])
    test = torch.tensor([[3, 0], [1, 0], [0, 2]])  # a negative; not a negative; another prefix (not comparable)
    rewards = torch.tensor([[0.0, 0.0, 5.0, 1.0], [0.0] * 4, [0.0] * 4])
    c = false_negative_counts(neg, cand, code, lvl, prefix, test, rewards)
    assert (c["comparable"], c["false_negatives"], c["negatives_at_comparable"]) == (2, 1, 3)
    assert c["chance_sum"] == pytest.approx(2 / 3 + 1 / 3)
    assert (c["reward_pct_sum"], c["reward_pct_n"]) == (0.0, 1.0)  # the false negative has the lowest reward
    s = summarise(c)
    assert s["fn_rate"] == 0.5 and s["chance"] == pytest.approx(0.5) and s["fn_share_of_negatives"] == pytest.approx(1 / 3)


def test_false_negative_report_on_an_sft_run(env, tmp_path):
    from sidrec.pipelines.ilrec_diagnostics import false_negative_report

    sft = tmp_path / "sft"
    train_sft(sft_values(env), sft)
    rep = false_negative_report(sft, env / "sasrec", max_examples=40, ilrec={"layers": [-2, -3]})
    assert rep["examples"] == 40 and rep["positions"] % 40 == 0 and rep["positions"] > 0
    assert 0 < rep["comparable_positions"] <= rep["positions"]
    assert 0.0 <= rep["fn_rate"] <= 1.0 and 0.0 <= rep["chance"] <= 1.0
    assert rep["false_negatives"] == round(rep["fn_rate"] * rep["comparable_positions"])
