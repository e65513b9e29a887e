"""GRPO: the advantages and each loss variant against values computed by hand, the rewards against
their definitions, rollouts (distinct, valid, the exact top-G; Gumbel top-k draws from the constrained
model), the policy's log-probabilities against decoding's scores, the trainer through the CLI and a
pipeline, exact resume, and the config errors."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from sidrec.cli.main import app
from sidrec.errors import ConfigError
from sidrec.llm.decoding import exact_item_scores, stochastic_beam_search
from sidrec.llm.shared_prefix import collate_prompt_groups, prompt_group_logps
from sidrec.llm.sid_head import SIDLevels
from sidrec.llm.tiny import make_tiny_lm
from sidrec.methods.grpo.losses import group_advantages, k3_kl, policy_loss
from sidrec.methods.grpo.rewards import (
    cf_reward,
    policy_ranks,
    prefix_reward,
    ranking_reward,
    rule_reward,
    semantic_reward,
)
from sidrec.methods.grpo.rollouts import rollout_token_logps
from sidrec.methods.grpo.trainer import GRPOTrainer
from sidrec.methods.method import RunInputs
from sidrec.pipelines.llm import continue_from, prepare_run, sft_config, train_sft
from sidrec.sids.trie import SIDTrie, TokenTrie
from sidrec.utils.runs import RunDir

from .conftest import chain_dataset, chain_sid_table

N_ITEMS = 40


# ----------------------------------------------------------------------------- advantages and losses by hand
REWARDS = [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5]]  # prompt 2: zero variance
LOGPS = [[[-1.0, -0.5], [-2.0, -0.1], [-0.3, -0.7]], [[-1.2, -0.2], [-0.4, -0.9], [-1.5, -0.6]]]
OLD = [[[-1.1, -0.5], [-1.7, -0.1], [-0.3, -0.9]], [[-1.2, -0.3], [-0.4, -0.9], [-1.0, -0.6]]]
REF = [[[-1.3, -0.4], [-2.2, -0.3], [-0.2, -0.7]], [[-1.0, -0.2], [-0.6, -0.8], [-1.5, -0.5]]]
MASK = [[[1, 1], [1, 0], [1, 1]], [[1, 1], [1, 1], [0, 1]]]


def _hand_advantages(scale: bool) -> list[list[float]]:
    out = []
    for group in REWARDS:
        mean = sum(group) / len(group)
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / (len(group) - 1))
        out.append([0.0 if std == 0 else (r - mean) / (std + 1e-4) if scale else r - mean for r in group])
    return out


def _hand_loss(variant: str, beta: float, skip_zero: bool, lo: float = 0.2, hi: float = 0.28) -> float:
    """The GRPO objective of docs/grpo.md, in plain Python over the lists above."""
    adv = _hand_advantages(scale=variant != "dr_grpo")
    seq_losses, token_sum, token_count, kept = [], 0.0, 0, 0
    for b in range(2):
        if skip_zero and len(set(REWARDS[b])) == 1:
            continue
        for g in range(3):
            a = adv[b][g]
            toks = [t for t in range(2) if MASK[b][g][t]]
            kls = [math.exp(REF[b][g][t] - LOGPS[b][g][t]) - (REF[b][g][t] - LOGPS[b][g][t]) - 1 for t in toks]
            kept += 1
            if variant == "gspo":
                s = math.exp(sum(LOGPS[b][g][t] - OLD[b][g][t] for t in toks) / len(toks))
                seq_losses.append(-min(s * a, min(max(s, 1 - lo), 1 + hi) * a) + beta * sum(kls) / len(toks))
                continue
            per_tok = []
            for t, kl in zip(toks, kls):
                r = math.exp(LOGPS[b][g][t] - OLD[b][g][t])
                per_tok.append(-min(r * a, min(max(r, 1 - lo), 1 + hi) * a) + beta * kl)
            seq_losses.append(sum(per_tok) / len(per_tok))
            token_sum += sum(per_tok)
            token_count += len(per_tok)
    if variant in ("grpo", "gspo"):
        return sum(seq_losses) / len(seq_losses)
    if variant == "dr_grpo":
        return token_sum / (kept * 2)
    return token_sum / token_count  # dapo


def test_group_advantages_match_the_hand_values():
    adv, zero = group_advantages(torch.tensor(REWARDS))
    torch.testing.assert_close(adv, torch.tensor(_hand_advantages(True)))
    assert zero.tolist() == [False, True]
    # 1 − 1/3 over the unbiased std 0.57735: 1.1545; the two zeros −0.5773
    assert float(adv[0, 0]) == pytest.approx(2 / 3 / (math.sqrt(1 / 3) + 1e-4), rel=1e-6)
    unscaled, _ = group_advantages(torch.tensor(REWARDS), scale=False)
    torch.testing.assert_close(unscaled, torch.tensor(_hand_advantages(False)))


@pytest.mark.parametrize("variant", ["grpo", "dr_grpo", "dapo", "gspo"])
@pytest.mark.parametrize("beta", [0.0, 0.1])
@pytest.mark.parametrize("skip_zero", [True, False])
def test_each_loss_variant_matches_the_hand_value(variant, beta, skip_zero):
    rewards = torch.tensor(REWARDS)
    adv, zero = group_advantages(rewards, scale=variant != "dr_grpo")
    logps = torch.tensor(LOGPS).flatten(0, 1).requires_grad_()
    out = policy_loss(logps, torch.tensor(OLD).flatten(0, 1), adv.flatten(), torch.tensor(MASK).flatten(0, 1).bool(),
                      variant=variant, epsilon_low=0.2, epsilon_high=0.28, beta=beta,
                      ref_logps=torch.tensor(REF).flatten(0, 1),
                      keep=(~zero).repeat_interleave(3) if skip_zero else None, max_length=2)
    assert float(out.loss.detach()) == pytest.approx(_hand_loss(variant, beta, skip_zero), rel=1e-5, abs=1e-7)
    assert out.kept == (3 if skip_zero else 6)
    out.loss.backward()  # differentiable in the policy's log-probabilities
    assert logps.grad is not None and torch.isfinite(logps.grad).all()


def test_ratio_one_gives_the_advantage_weighted_likelihood_gradient_and_clipping_is_counted():
    adv = torch.tensor([1.0, -1.0])
    logps = torch.tensor([[-1.0], [-1.0]], requires_grad=True)
    out = policy_loss(logps, logps.detach(), adv, torch.ones(2, 1, dtype=torch.bool))
    out.loss.backward()
    torch.testing.assert_close(logps.grad, torch.tensor([[-0.5], [0.5]]))  # −A_i / N at ratio 1
    assert out.clip_fraction == 0.0
    # ratio e^0.5 > 1.2 with A > 0, ratio e^-0.5 < 0.8 with A < 0: both clipped, no gradient
    logps = torch.tensor([[-0.5], [-1.5]], requires_grad=True)
    out = policy_loss(logps, torch.tensor([[-1.0], [-1.0]]), adv, torch.ones(2, 1, dtype=torch.bool))
    out.loss.backward()
    assert out.clip_fraction == 1.0 and float(logps.grad.abs().sum()) == 0.0
    assert float(k3_kl(torch.tensor(-1.0), torch.tensor(-1.0))) == 0.0
    assert float(k3_kl(torch.tensor(-1.0), torch.tensor(-2.0))) == pytest.approx(math.exp(-1) + 1 - 1)


def test_a_batch_of_only_zero_variance_groups_skipped_gives_a_zero_loss_with_a_graph():
    logps = torch.zeros(3, 2, requires_grad=True)
    out = policy_loss(logps, logps.detach(), torch.zeros(3), torch.ones(3, 2, dtype=torch.bool),
                      keep=torch.zeros(3, dtype=torch.bool))
    assert float(out.loss) == 0.0 and out.kept == 0
    out.loss.backward()


# ----------------------------------------------------------------------------- rewards
def test_rewards_match_their_definitions():
    items = torch.tensor([[3, 7, 5], [1, 2, 4]])
    targets = torch.tensor([7, 9])
    scores = torch.tensor([[-1.0, -2.0, -3.0], [-2.0, -1.0, -3.0]])
    assert rule_reward(items, targets).tolist() == [[0, 1, 0], [0, 0, 0]]
    assert policy_ranks(scores).tolist() == [[1, 2, 3], [2, 1, 3]]
    rank = ranking_reward(items, targets, scores)
    w1, w3 = 1 / math.log2(2), 1 / math.log2(4)
    torch.testing.assert_close(rank[0], torch.tensor([-w1 / (w1 + w3), 1.0, -w3 / (w1 + w3)]))
    w2 = 1 / math.log2(3)
    torch.testing.assert_close(rank[1], torch.tensor([-w2, -w1, -w3]) / (w1 + w2 + w3))
    assert rank[rule_reward(items, targets) == 0].view(-1).sum().item() == pytest.approx(-2.0, rel=1e-6)
    codes = torch.tensor([[0, 0, 0], [0, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 2], [9, 9, 9], [0, 0, 0], [0, 0, 1],
                          [5, 5, 5], [0, 1, 1]])
    torch.testing.assert_close(prefix_reward(items, targets, codes),
                               torch.tensor([[0.0, 1.0, 0.0], [1 / 3, 2 / 3, 1 / 3]]))
    cf_scores = torch.randn(2, 10, generator=torch.Generator().manual_seed(0))
    got = cf_reward(cf_scores, items, temperature=0.5)
    torch.testing.assert_close(got[1], torch.softmax(cf_scores[1, [1, 2, 4]] / 0.5, 0))
    emb = torch.randn(10, 4, generator=torch.Generator().manual_seed(1))
    sem = semantic_reward(emb, items, targets)
    assert float(sem[0, 1]) == pytest.approx(1.0, rel=1e-6)
    assert float(sem[1, 0]) == pytest.approx(float(torch.nn.functional.cosine_similarity(emb[1], emb[9], dim=0)), rel=1e-5)


# ----------------------------------------------------------------------------- Gumbel top-k over the trie
class _FixedStepper:
    """Logits that depend on the level only (the same for every prefix)."""

    def __init__(self, per_level: list[torch.Tensor]) -> None:
        self.per_level = per_level

    def prefill(self, input_ids, attention_mask):
        return self.per_level[0].expand(input_ids.shape[0], -1), 0

    def step(self, tokens, state):
        return self.per_level[state + 1].expand(tokens.shape[0], -1), state + 1

    def select(self, state, rows):
        return state


def _small_trie() -> tuple[TokenTrie, np.ndarray]:
    codes = np.array([[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [2, 0]])
    trie = SIDTrie.from_codes(codes, codebook_sizes=[3, 3])
    return TokenTrie(trie, [[0, 1, 2], [3, 4, 5]], 8), codes


def test_gumbel_top_k_samples_the_renormalised_constrained_model_without_replacement():
    token_trie, codes = _small_trie()
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(1, 8, generator=g), torch.randn(1, 8, generator=g)]
    stepper = _FixedStepper(logits)
    n = 6000
    ids, mask = torch.zeros(n, 1, dtype=torch.long), torch.ones(n, 1, dtype=torch.long)
    items, scores = stochastic_beam_search(stepper, token_trie, ids, mask, num_samples=1,
                                           generator=torch.Generator().manual_seed(1), temperature=0.7)
    # the exact distribution: level-0 softmax over the codes that exist, then level 1 over each prefix's codes
    p0 = torch.softmax(logits[0][0, [0, 1, 2]] / 0.7, 0)
    probs = []
    for a, b in codes:
        children = [c for x, c in codes if x == a]
        p1 = torch.softmax(logits[1][0, [3 + c for c in children]] / 0.7, 0)
        probs.append(float(p0[a] * p1[children.index(b)]))
    freq = np.bincount(items[:, 0].numpy(), minlength=6) / n
    assert np.abs(freq - np.array(probs)).max() < 0.025
    # K = all items: every item once per row, sorted by the model's (untempered, full-softmax) score
    items, scores = stochastic_beam_search(stepper, token_trie, ids[:50], mask[:50], num_samples=6,
                                           generator=torch.Generator().manual_seed(2))
    assert all(sorted(r) == list(range(6)) for r in items.tolist())
    lp0, lp1 = torch.log_softmax(logits[0][0], 0), torch.log_softmax(logits[1][0], 0)
    exact = torch.tensor([float(lp0[a] + lp1[3 + b]) for a, b in codes])
    torch.testing.assert_close(scores[0], exact.sort(descending=True).values)
    # the same generator seed draws the same items; another seed others; padding beyond the catalogue
    a, _ = stochastic_beam_search(stepper, token_trie, ids[:20], mask[:20], num_samples=3,
                                  generator=torch.Generator().manual_seed(5))
    b, _ = stochastic_beam_search(stepper, token_trie, ids[:20], mask[:20], num_samples=3,
                                  generator=torch.Generator().manual_seed(5))
    c, _ = stochastic_beam_search(stepper, token_trie, ids[:20], mask[:20], num_samples=3,
                                  generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert all(len(set(r)) == 3 for r in a.tolist())
    pad, pad_scores = stochastic_beam_search(stepper, token_trie, ids[:2], mask[:2], num_samples=8,
                                             generator=torch.Generator().manual_seed(0))
    assert (pad[:, 6:] == -1).all() and torch.isinf(pad_scores[:, 6:]).all()


# ----------------------------------------------------------------------------- a trained SFT run
def _sft_values(root: Path, fmt: str, softmax: str) -> dict:
    return {"method": "sft", "dataset": str(root / "chain"), "sids": str(root / "sids.json"),
            "model": {"name_or_path": str(root / "lm")},
            "data": {"tasks": {"seqrec": 1.0}, "compact": True, "format": fmt, "sid_softmax": softmax},
            "training": {"epochs": 1, "max_steps": 25, "batch_size": 16, "lr": 3e-3, "eval_samples": 10,
                         "eval_metric": "loss", "log_steps": 5, "device": "cpu"},
            "eval": {"num_beams": 10, "batch_size": 32, "max_examples": 12, "splits": ["test"]}}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The chain dataset, a tiny LM, and two short SFT runs: the default recipe (stream, level softmax)
    and the prompt / full-softmax form."""
    root = tmp_path_factory.mktemp("grpo")
    make_tiny_lm(root / "lm", hidden=32, layers=2)
    chain_dataset(n_users=80, n_items=N_ITEMS, path=root / "chain")
    chain_sid_table(N_ITEMS).save(root / "sids.json")
    train_sft(_sft_values(root, "stream", "level"), root / "sft")
    train_sft(_sft_values(root, "prompt", "full"), root / "sft_full")
    return root


def _grpo_values(env: Path, run: str = "sft", **grpo) -> dict:
    values = continue_from(env / run, "grpo", {"grpo": {"num_generations": 4, **grpo},
                                               "training": {"batch_size": 4, "max_steps": 3, "eval_steps": 3,
                                                            "lr": 1e-3, "log_steps": 1},
                                               "eval": {"max_examples": 8}})
    return values


def _trainer(env: Path, tmp: Path, run: str = "sft", **grpo) -> GRPOTrainer:
    trainer = GRPOTrainer(sft_config(_grpo_values(env, run, **grpo)), RunDir(tmp))
    trainer.setup()
    return trainer


@pytest.mark.parametrize("run", ["sft", "sft_full"])
def test_policy_logps_are_decodings_scores_with_one_prompt_pass(env, tmp_path, run):
    trainer = _trainer(env, tmp_path / run, run)
    rec = trainer.rollout_rec
    batch = trainer.collate([trainer.corpus.examples[i] for i in range(3)])
    items = torch.tensor([[0, 5, 17, 39], [1, 2, 3, 4], [38, 12, 0, 7]])
    responses = trainer.item_tokens[items].flatten(0, 1)
    logps = trainer.token_logps(trainer.model, batch, responses)  # [12, L]
    assert logps.shape == (12, trainer.item_tokens.shape[1]) and logps.requires_grad
    stepper, trie = rec.decoding()
    exact = exact_item_scores(stepper, trie, batch["prompt_ids"], batch["prompt_mask"], normalize=rec.normalize)
    torch.testing.assert_close(logps.sum(1).view(3, 4), exact.gather(1, items), atol=1e-4, rtol=1e-4)
    if rec.normalize == "full":  # the sums are prompt_group_logps' (the shared-prefix forward of DPO)
        prompts = [ex.input_ids[:ex.n_prompt] for ex in trainer.corpus.examples[:3]]
        groups = [[trainer.item_tokens[i].tolist() for i in row] for row in items.tolist()]
        summed, _ = prompt_group_logps(trainer.model, collate_prompt_groups(prompts, groups, 0))
        torch.testing.assert_close(logps.sum(1), summed.view(4, 3).T.flatten(), atol=1e-5, rtol=1e-5)
    else:  # level softmax: each token over its level only
        assert isinstance(trainer.levels, SIDLevels)
        full = rollout_token_logps(trainer.model, batch["prompt_ids"], batch["prompt_mask"], responses, 4, None)
        assert bool((logps > full + 1e-6).all())  # a level is a subset of the vocabulary
    # the concatenated form (gradient checkpointing: no cache) gives the same per-token values
    concatenated = rollout_token_logps(trainer.model, batch["prompt_ids"], batch["prompt_mask"], responses, 4,
                                       trainer.levels, shared_prefix=False)
    torch.testing.assert_close(concatenated, logps, atol=1e-5, rtol=1e-5)
    logps.sum().backward()
    grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(x).all() for x in grads)


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_rollouts_are_distinct_valid_and_the_exact_top_g_with_wide_beams(env, tmp_path):
    trainer = _trainer(env, tmp_path / "r", num_beams=N_ITEMS, num_generations=6)
    batch = trainer.collate([trainer.corpus.examples[i] for i in range(5)])
    items, scores = trainer.rollouts(batch)
    rec = trainer.rollout_rec
    stepper, trie = rec.decoding()
    exact = exact_item_scores(stepper, trie, batch["prompt_ids"], batch["prompt_mask"], normalize=rec.normalize)
    top = exact.topk(6, dim=1)
    assert torch.equal(items, top.indices)
    torch.testing.assert_close(scores, top.values, atol=1e-4, rtol=1e-4)
    sampled = _trainer(env, tmp_path / "s", rollout="sample", temperature=1.5, num_generations=8)
    many = sampled.collate([sampled.corpus.examples[i] for i in range(16)])
    items, scores = sampled.rollouts(many)
    assert items.shape == (16, 8) and bool((items >= 0).all()) and bool((items < N_ITEMS).all())
    assert all(len(set(r)) == 8 for r in items.tolist())
    again, _ = sampled.rollouts(many)
    assert torch.equal(items, again)  # seeded by (seed, step, rows)
    sampled.scheduler.step()
    assert not torch.equal(items, sampled.rollouts(many)[0])  # the next step draws afresh
    # the loss at the start: ratio 1, policy = reference → KL 0
    loss, logs = sampled.compute_loss(sampled.model, many)
    assert torch.isfinite(loss) and logs["kl"] == pytest.approx(0.0, abs=1e-6)
    for key in ("reward_mean", "reward_std", "reward_rule", "zero_variance_share", "groups_in_loss", "clip_fraction",
                "target_in_rollouts"):
        assert key in logs


def test_train_grpo_via_the_cli_logs_and_evaluates(env, tmp_path):
    emb = tmp_path / "emb.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(N_ITEMS, 8)).astype(np.float32))
    out = tmp_path / "grpo"
    rewards = "{rule: 1.0, ranking: 0.5, prefix: 0.5, cf: 0.5, semantic: 0.2}"
    from sidrec.pipelines.classic import train_classic

    train_classic("sasrec", env / "chain", tmp_path / "sasrec", overrides={"epochs": 1, "device": "cpu", "seed": 0})
    res = CliRunner().invoke(app, ["train", "grpo", "--from", str(env / "sft"), "--out", str(out), "-g", "4",
                                   "--cf-run", str(tmp_path / "sasrec"),
                                   "--set", f"grpo.rewards={rewards}", "--set", f"grpo.embeddings={emb}",
                                   "--set", "training.max_steps=3", "--set", "training.batch_size=4",
                                   "--set", "training.log_steps=1", "--set", "eval.max_examples=8"])
    assert res.exit_code == 0, res.output
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["method"] == "grpo" and saved["grpo"]["from_run"] == str(env / "sft")
    assert saved["data"]["format"] == "stream" and saved["training"]["lr"] == 5e-5  # the stage-2 schedule
    records = [json.loads(x) for x in (out / "history.jsonl").read_text().splitlines()]
    steps = [r for r in records if "reward_mean" in r]
    assert len(steps) == 3
    for key in ("reward_rule", "reward_ranking", "reward_prefix", "reward_cf", "reward_semantic", "kl",
                "clip_fraction", "zero_variance_share", "target_in_rollouts", "rollout_s", "update_s"):
        assert key in steps[0], key
    assert steps[0]["rollout_s"] > 0 and steps[0]["update_s"] > 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "grpo" and metrics["train"]["steps"] == 3 and metrics["test"]["invalid_outputs"] == 0
    sft = json.loads((env / "sft" / "metrics.json").read_text())
    assert metrics["param_checksums"] != pytest.approx(sft["param_checksums"], rel=1e-9)  # it trained


class _Interrupt(Exception):
    pass


class _InterruptingGRPO(GRPOTrainer):
    def after_checkpoint(self, state):
        if state["global_step"] >= 3:
            raise _Interrupt


@pytest.mark.parametrize(("mu", "synced_cut", "synced_full"), [(1, 2, 4), (2, 4, 8)])
def test_resume_is_exact_with_sampled_rollouts_kl_and_reference_sync(env, tmp_path, mu, synced_cut, synced_full):
    """Interrupted after step 3 (the reference synced every 2 optimizer updates: μ = 1 after steps 2, 4;
    μ = 2 before every step), resumed: the same weights as an uninterrupted run, step for step."""
    values = _grpo_values(env, rollout="sample", beta=0.5, loss="dapo", rewards={"rule": 1.0, "prefix": 1.0},
                          zero_variance="keep", ref_sync_steps=2, num_iterations=mu)
    values["training"].update({"max_steps": 5, "eval_steps": 3, "patience": 50, "lr": 3e-3})
    cfg = sft_config(values)
    full = GRPOTrainer(cfg, RunDir(tmp_path / "full")).train()
    with pytest.raises(_Interrupt):
        _InterruptingGRPO(cfg, RunDir(tmp_path / "cut")).train()
    assert [p.name for p in (tmp_path / "cut" / "reference").iterdir()] == [f"synced-{synced_cut}.pt"]
    resumed = GRPOTrainer(cfg, RunDir(tmp_path / "cut", resume=True)).train(resume=True)
    assert resumed["param_checksums"] == pytest.approx(full["param_checksums"], rel=1e-9, abs=1e-9)
    assert resumed["train"]["steps"] == full["train"]["steps"] == 5
    assert [p.name for p in (tmp_path / "full" / "reference").iterdir()] == [f"synced-{synced_full}.pt"]
    log = (tmp_path / "full" / "log.txt").read_text()
    assert "reference model synced to the policy after step 2" in log and f"after step {synced_full}" in log
    a = [json.loads(x) for x in (tmp_path / "full" / "history.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (tmp_path / "cut" / "history.jsonl").read_text().splitlines()]
    assert [r.get("reward_mean") for r in a] == [r.get("reward_mean") for r in b]


def test_gradient_checkpointing_scores_concatenated_rollouts_and_trains_as_without_it(env, tmp_path):
    """model.gradient_checkpointing: the rollouts are scored as full sequences (no KV cache), and two
    steps give the weights of the same run without checkpointing."""
    plain = _grpo_values(env, rewards={"prefix": 1.0})
    plain["training"].update({"max_steps": 2, "eval_steps": 2})
    ckpt = copy.deepcopy(plain)
    ckpt["model"] = {**ckpt["model"], "gradient_checkpointing": True}
    a = GRPOTrainer(sft_config(plain), RunDir(tmp_path / "plain")).train()
    b = GRPOTrainer(sft_config(ckpt), RunDir(tmp_path / "ckpt")).train()
    assert b["param_checksums"] == pytest.approx(a["param_checksums"], rel=1e-6, abs=1e-6)
    start = json.loads((env / "sft" / "metrics.json").read_text())["param_checksums"]
    assert a["param_checksums"] != pytest.approx(start, rel=1e-9, abs=1e-9)  # the steps moved the weights


def test_num_iterations_updates_mu_times_on_one_rollout_batch_against_its_old_log_probabilities(env, tmp_path,
                                                                                                 monkeypatch):
    """μ = 3: one rollout per micro-batch per training step; every update's π_old is the first update's
    log-probabilities (ratio 1 there, not after); the schedule counts the 3 updates of each step."""
    import sidrec.methods.grpo.trainer as grpo_trainer

    trainer = _trainer(env, tmp_path / "mu", num_iterations=3, beta=0.1, rewards={"prefix": 1.0})
    for group in trainer.optimizer.param_groups:
        group["lr"] = 0.05  # a visible move between updates
    calls: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]] = []
    rollouts, loss = trainer.rollouts, grpo_trainer.policy_loss
    n_rollouts = []

    def counting_rollouts(batch):
        n_rollouts.append(1)
        return rollouts(batch)

    def recording_loss(logps, old_logps, *args, **kwargs):
        calls.append((logps.detach().clone(), old_logps.clone(), kwargs["ref_logps"]))
        return loss(logps, old_logps, *args, **kwargs)

    monkeypatch.setattr(trainer, "rollouts", counting_rollouts)
    monkeypatch.setattr(grpo_trainer, "policy_loss", recording_loss)
    logs = trainer._optimizer_step(trainer.epoch_batches(0)[:1])
    assert len(n_rollouts) == 1 and len(calls) == 3 and trainer.scheduler.last_epoch == 3
    first_logps, first_old, first_ref = calls[0]
    assert torch.equal(first_logps, first_old)  # ratio 1 on the first update
    for logps, old, ref in calls[1:]:
        assert torch.equal(old, first_old) and ref is first_ref  # the batch's π_old and reference, kept
        assert not torch.allclose(logps, old)  # the policy moved: ratio ≠ 1
    assert set(logs) >= {"clip_fraction", "clip_fraction_last", "kl", "rollout_s", "update_s"}
    assert logs["kl"] > 0  # updates 2 and 3 have moved away from the reference
    cfg = sft_config(_grpo_values(env, num_iterations=3))
    assert cfg.grpo.num_iterations == 3 and trainer.total_steps == 3


def test_bad_grpo_configs_are_one_line_errors_naming_the_field(env, tmp_path):
    base = _grpo_values(env)
    with pytest.raises(ConfigError, match="grpo.rewards.cf needs grpo.cf_run"):
        sft_config({**base, "grpo": {"rewards": {"rule": 1.0, "cf": 0.5}}})
    with pytest.raises(ConfigError, match="grpo.rewards"):
        sft_config({**base, "grpo": {"rewards": {"rule": 0.0}}})
    with pytest.raises(ConfigError, match="grpo.rewards"):
        sft_config({**base, "grpo": {"rewards": {"novelty": 1.0}}})
    with pytest.raises(ConfigError, match="num_beams"):
        sft_config({**base, "grpo": {"num_generations": 8, "num_beams": 4}})
    with pytest.raises(ConfigError, match=r"grpo.num_generations=41 exceeds the catalogue \(40 items\)"):
        _trainer(env, tmp_path / "big", num_generations=41)
    with pytest.raises(ConfigError, match="needs a finished run to continue"):
        prepare_run({**_sft_values(env, "stream", "level"), "method": "grpo"}, RunInputs(out=tmp_path / "x"))
    res = CliRunner().invoke(app, ["train", "grpo", "--from", str(env / "sft"), "--out", str(tmp_path / "cf"),
                                   "--set", "grpo.rewards={cf: 1.0}"])
    assert res.exit_code != 0 and "grpo.cf_run" in res.output and "Traceback" not in res.output


def test_a_grpo_stage_in_a_pipeline_continues_its_from_entry(env, tmp_path):
    from sidrec.pipelines.run import load_pipeline_config, run_pipeline

    lm = env / "lm"
    cfg = {"name": "tiny-grpo", "out": str(tmp_path / "out"),
           "data": {"synthetic": {"n_items": 60, "n_users": 60, "seed": 0, "max_history": 6}},
           "sids": {"method": "rqkmeans", "levels": 2, "codebook": 8},
           "baselines": {"sasrec": {"epochs": 1, "device": "cpu"}},
           "train": {"sft": {"model": {"name_or_path": str(lm)}, "data": {"tasks": {"seqrec": 1.0}, "compact": True},
                             "training": {"epochs": 1, "batch_size": 32, "eval_samples": 10, "device": "cpu"},
                             "eval": {"num_beams": 10, "batch_size": 40, "max_examples": 10}},
                     "grpo": {"from": "sft", "method": "grpo", "grpo": {"num_generations": 4, "rewards": {"ranking": 1.0}},
                              "training": {"max_steps": 2, "batch_size": 4}}}}
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    summary = run_pipeline(load_pipeline_config(path))
    assert summary["test"]["grpo"]["invalid_outputs"] == 0
    saved = yaml.safe_load((tmp_path / "out" / "grpo" / "config.yaml").read_text())
    assert saved["model"]["name_or_path"] == str(tmp_path / "out" / "sft" / "model")
    assert saved["grpo"]["cf_run"] == str(tmp_path / "out" / "sasrec")  # offered by the pipeline (unused here)
    assert saved["grpo"]["rewards"] == {"ranking": 1.0} and saved["training"]["lr"] == 5e-5


@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler.step\\(\\)`")
def test_a_few_grpo_steps_raise_the_policys_expected_reward(env, tmp_path):
    """E_{i ~ π}[prefix reward] over the whole catalogue (exact ranking, softmax over items) rises under
    SGD on the GRPO loss with sampled rollouts (the group mean of top-G rollouts is no such measure)."""
    trainer = _trainer(env, tmp_path / "learn", rewards={"prefix": 1.0}, num_generations=8, beta=0.0, rollout="sample")
    batch = trainer.collate([trainer.corpus.examples[i] for i in range(8)])
    every = prefix_reward(torch.arange(N_ITEMS).expand(8, N_ITEMS), batch["targets"], trainer.codes)
    rec = trainer.rollout_rec

    def expected() -> float:
        stepper, trie = rec.decoding()
        trainer.model.eval()
        scores = exact_item_scores(stepper, trie, batch["prompt_ids"], batch["prompt_mask"], normalize=rec.normalize)
        trainer.model.train()
        return float((torch.softmax(scores, 1) * every).sum(1).mean())

    opt = torch.optim.SGD([p for p in trainer.model.parameters() if p.requires_grad], lr=0.15)
    before = expected()
    for _ in range(6):
        loss, _ = trainer.compute_loss(trainer.model, batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        trainer.scheduler.step()  # the next step's draw
    assert expected() > before + 0.05


def test_under_lora_the_reference_is_the_model_with_adapters_disabled(env, tmp_path):
    values = _grpo_values(env, beta=0.1)
    values["model"] = {**values["model"], "finetune": "lora", "lora": {"r": 4}}
    trainer = GRPOTrainer(sft_config(values), RunDir(tmp_path / "lora"))
    trainer.setup()
    assert trainer.reference is None and trainer.use_adapter_off
    batch = trainer.collate([trainer.corpus.examples[i] for i in range(4)])
    items, _ = trainer.rollouts(batch)
    responses = trainer.item_tokens[items].flatten(0, 1)
    torch.testing.assert_close(trainer.reference_logps(batch, responses),
                               trainer.token_logps(trainer.model, batch, responses).detach(), atol=1e-5, rtol=1e-5)
    loss, logs = trainer.compute_loss(trainer.model, batch)
    assert torch.isfinite(loss) and logs["kl"] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError, match="ref_sync_steps needs"):
        sft_config({**values, "grpo": {**values["grpo"], "ref_sync_steps": 2}})


def test_the_registry_and_the_cli_know_grpo(env):
    from sidrec.methods import registry
    from sidrec.methods.grpo.config import GRPOConfig

    assert type(registry.method_config(_grpo_values(env))) is GRPOConfig
    assert registry.get_method("grpo").reads == {"cf_run"}
    res = CliRunner().invoke(app, ["methods"], env={"COLUMNS": "200"})
    rows = [[c.strip() for c in line.split("│")[1:3]] for line in res.output.splitlines() if "│" in line]
    assert ["grpo", "GRPOConfig"] in rows
    res = CliRunner().invoke(app, ["train", "grpo", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "--from" in res.output and "--cf-run" in res.output


def test_item2sid_prompts_join_the_rollouts_when_weighted(env, tmp_path):
    titled = tmp_path / "chain_titled"  # the same users, items and splits, with titles
    chain_dataset(n_users=80, n_items=N_ITEMS, path=titled, titled=True)
    values = _grpo_values(env, tasks={"seqrec": 1.0, "item2sid": 0.5})
    values["dataset"] = str(titled)
    trainer = GRPOTrainer(sft_config(values), RunDir(tmp_path / "items"))
    trainer.setup()
    items = [ex for ex in trainer.corpus.examples if ex.task == "item2sid"]
    assert len(items) == N_ITEMS and trainer.task_weights() == {"seqrec": 1.0, "item2sid": 0.5}
    text = trainer.tokenizer.decode(items[7].input_ids[:items[7].n_prompt])
    assert "Chain item 7" in text and items[7].target == trainer.table.item_ids.index("i7")
    batch = trainer.collate([items[0], items[1], trainer.corpus.examples[0]])
    loss, logs = trainer.compute_loss(trainer.model, batch)
    assert torch.isfinite(loss) and "reward_rule" in logs
    with pytest.raises(ConfigError, match="grpo.tasks"):
        sft_config({**values, "grpo": {"tasks": {"seqrec": 0.0}}})
