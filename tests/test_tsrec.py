"""TS-Rec on a tiny random Llama: SA-Init arithmetic (exact), untouched rows, levels, untied heads,
LoRA, TS-Align examples, the config switches, and a full training run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from sidrec.errors import ConfigError, DataError
from sidrec.llm.backbone import BackboneConfig, load_backbone
from sidrec.llm.recommender import sid_maps
from sidrec.llm.sft_data import SFTCollator, SFTDataConfig, PromptBuilder
from sidrec.llm.tiny import make_tiny_lm
from sidrec.llm.trainer import SFTConfig
from sidrec.methods.tsrec.config import TSRecConfig
from sidrec.llm.sid_init import resolve_levels, sa_init
from sidrec.methods.tsrec.align import align_examples
from sidrec.methods.tsrec.trainer import TSRecTrainer
from sidrec.pipelines.llm import sft_config
from sidrec.semantics.format import TokenSemantics, load_semantics, save_semantics
from sidrec.sids.table import SIDTable
from sidrec.utils.runs import RunDir

from .conftest import chain_dataset, chain_sid_table

N_ITEMS = 40
WORDS = ["hair", "skin", "cream", "face", "oil", "brush", "nail", "polish", "lotion", "soap", "tool", "kit"]


def make_semantics(table: SIDTable, skip: tuple[str, ...] = ("<b_3>",)) -> list[TokenSemantics]:
    out = []
    for lvl in range(3):
        for k, tok in enumerate(table.vocab()[lvl]):
            if tok in skip:
                continue
            kws = [WORDS[(3 * lvl + k) % len(WORDS)], f"{WORDS[(k + 5) % len(WORDS)]} {WORDS[(lvl + 7) % len(WORDS)]}"]
            out.append(TokenSemantics(token=tok, description=f"items about {' and '.join(kws)}", keywords=kws))
    return out


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("tsrec")
    make_tiny_lm(root / "lm", hidden=32)
    untied = make_tiny_lm(root / "lm-untied", hidden=32)
    cfg = json.loads((untied / "config.json").read_text())
    cfg["tie_word_embeddings"] = False
    (untied / "config.json").write_text(json.dumps(cfg))
    chain_dataset(n_users=150, n_items=N_ITEMS, path=root / "chain")
    table = chain_sid_table(N_ITEMS)
    table.save(root / "sids.json")
    save_semantics(root / "semantics.json", make_semantics(table))
    return root


def load(root: Path, name: str = "lm", hook=None, **cfg):
    torch.manual_seed(0)
    return load_backbone(BackboneConfig(name_or_path=str(root / name), **cfg), chain_sid_table(N_ITEMS).vocab(), init_sid_rows=hook)


def expected_row(weight: torch.Tensor, tokenizer, sem: TokenSemantics, sid_ids: list[int]) -> torch.Tensor:
    """SA-Init by hand: mean of the keyword string's rows, rescaled to the mean norm of the non-SID rows."""
    ids = tokenizer(" ".join(sem.keywords), add_special_tokens=False)["input_ids"]
    keep = torch.ones(weight.shape[0], dtype=torch.bool)
    keep[sid_ids] = False
    target = weight[keep].norm(dim=1).mean()
    v = weight[ids].mean(0)
    return v / v.norm() * target


def test_sa_init_arithmetic_is_exact_and_other_rows_untouched(env):
    semantics = load_semantics(env / "semantics.json", chain_sid_table(N_ITEMS))
    base, _, _ = load(env)
    reports = []
    model, tok, sid = load(env, hook=lambda m, t, s: reports.append(sa_init(m, t, s, semantics)))
    before = base.get_input_embeddings().weight.detach()
    after = model.get_input_embeddings().weight.detach()
    sid_ids = sid.all_ids
    # every non-SID row is exactly the pretrained one
    other = torch.ones(after.shape[0], dtype=torch.bool)
    other[sid_ids] = False
    assert torch.equal(before[other], after[other])
    # each SID token with semantics: the keyword mean, rescaled; its norm is the mean pretrained norm
    target = before[other].norm(dim=1).mean()
    for lvl in range(3):
        for tid, text in zip(sid.per_level[lvl], sid.strings[lvl], strict=True):
            if text in semantics:
                want = expected_row(before, tok, semantics[text], sid_ids)
                assert torch.allclose(after[tid], want, atol=1e-6), text
                assert float(after[tid].norm()) == pytest.approx(float(target), rel=1e-5)
            else:  # no semantics (<b_3>): the default init, as without SA-Init
                assert torch.equal(after[tid], before[tid]), text
    r = reports[0]
    assert r.initialised == {"a": 4, "b": 3, "c": 3}
    assert r.without_semantics["b"] == 1 and r.tied and not r.output_rows
    # before SA-Init the new rows were nearly identical; after, they differ as their keywords do
    a0, a1 = sid.per_level[0][:2]
    assert not torch.allclose(after[a0], after[a1], atol=1e-3)


def test_sa_init_levels_limit_what_is_written(env):
    semantics = load_semantics(env / "semantics.json", chain_sid_table(N_ITEMS))
    base, _, sid = load(env)
    assert resolve_levels(["a", 1], ["a", "b", "c", "d"]) == [0, 1]
    with pytest.raises(ConfigError, match="prefix 'z'"):
        resolve_levels(["z"], ["a", "b"])
    model, _, _ = load(env, hook=lambda m, t, s: sa_init(m, t, s, semantics, levels=[0]))
    before, after = base.get_input_embeddings().weight, model.get_input_embeddings().weight
    changed = {lvl: any(not torch.equal(before[t], after[t]) for t in sid.per_level[lvl]) for lvl in range(3)}
    assert changed == {0: True, 1: False, 2: False}


@pytest.mark.parametrize("init_output", [True, False])
def test_sa_init_untied_head_rows(env, init_output):
    semantics = load_semantics(env / "semantics.json", chain_sid_table(N_ITEMS))
    base, _, _ = load(env, "lm-untied")
    reports = []
    model, tok, sid = load(env, "lm-untied",
                           hook=lambda m, t, s: reports.append(sa_init(m, t, s, semantics, init_output=init_output)))
    head_before = base.get_output_embeddings().weight.detach()
    head_after = model.get_output_embeddings().weight.detach()
    assert head_after.data_ptr() != model.get_input_embeddings().weight.data_ptr()
    assert reports[0].output_rows is init_output and not reports[0].tied
    tid, text = sid.per_level[1][0], sid.strings[1][0]
    if init_output:  # the same arithmetic on the head's own rows
        want = expected_row(head_before, tok, semantics[text], sid.all_ids)
        assert torch.allclose(head_after[tid], want, atol=1e-6)
    else:
        assert torch.equal(head_after, head_before)


def test_sa_init_survives_lora_wrapping(env):
    """LoRA's trainable SID rows start from what SA-Init wrote (SA-Init runs before peft)."""
    semantics = load_semantics(env / "semantics.json", chain_sid_table(N_ITEMS))
    full, _, sid = load(env, hook=lambda m, t, s: sa_init(m, t, s, semantics))
    lora, _, _ = load(env, hook=lambda m, t, s: sa_init(m, t, s, semantics), finetune="lora")
    ids = torch.tensor(sid.per_level[0])
    with torch.no_grad():
        assert torch.allclose(lora.get_input_embeddings()(ids), full.get_input_embeddings()(ids), atol=1e-6)


def test_align_examples_pair_tokens_and_descriptions(env):
    table = chain_sid_table(N_ITEMS)
    semantics = load_semantics(env / "semantics.json", table)
    model, tok, sid = load(env)
    strings, ids = sid_maps(table, sid)
    builder = PromptBuilder(tok, strings, ids, SFTDataConfig(compact=True))
    tokens = [t for lvl in sid.strings for t in lvl]
    ex = align_examples(builder, semantics, tokens)
    assert len(ex["token2desc"]) == len(ex["desc2token"]) == len(semantics)  # one each per token with semantics
    first = ex["desc2token"][0]
    tid = tok.convert_tokens_to_ids("<a_0>")
    assert first.input_ids[first.n_prompt:] == [tid, tok.eos_token_id]  # the response is the token, then EOS
    assert semantics["<a_0>"].description in tok.decode(first.input_ids[:first.n_prompt])
    t2d = ex["token2desc"][0]
    assert tid in t2d.input_ids[:t2d.n_prompt]
    assert tok.decode(t2d.input_ids[t2d.n_prompt:-1]).strip() == semantics["<a_0>"].description
    batch = SFTCollator(tok.pad_token_id)([t2d, first])
    n_resp = (batch["labels"] != -100).sum(1).tolist()  # loss on the responses only
    assert n_resp == [len(t2d.input_ids) - t2d.n_prompt, 2]


def test_config_switches_are_checked(env):
    base = {"dataset": str(env / "chain"), "sids": str(env / "sids.json")}
    with pytest.raises(ConfigError, match="set method: tsrec"):
        sft_config({**base, "tsrec": {"semantics": "x.json", "sa_init": {"enabled": True}}})
    with pytest.raises(ConfigError, match="tsrec.semantics"):
        sft_config({**base, "method": "tsrec", "tsrec": {"align": {"enabled": True}}})
    bad = env / "bad.json"
    bad.write_text(json.dumps([{"token": "<z_1>", "description": "x", "keywords": ["a"]}]))
    with pytest.raises(DataError, match="bad.json"):
        load_semantics(bad, chain_sid_table(N_ITEMS))


def tsrec_config(root: Path, sa: bool, align: bool, **training) -> SFTConfig:
    t = {"epochs": 2, "batch_size": 16, "lr": 3e-3, "eval_samples": 30, "patience": 5, "log_steps": 5,
         "device": "cpu", **training}
    return TSRecConfig(dataset=root / "chain", sids=root / "sids.json",
                     model={"name_or_path": str(root / "lm")}, data={"tasks": {"seqrec": 1.0}, "compact": True},
                     training=t, eval={"num_beams": 10, "batch_size": 32},
                     tsrec={"semantics": root / "semantics.json", "sa_init": {"enabled": sa},
                            "align": {"enabled": align, "weight": 0.5}})


def test_tsrec_trainer_runs_both_parts(env, tmp_path):
    run = tmp_path / "run"
    metrics = TSRecTrainer(tsrec_config(env, True, True), RunDir(run)).train()
    corpus = metrics["train"]["corpus"]
    assert corpus["token2desc"] == corpus["desc2token"] == 10 and corpus["seqrec"] > 0
    info = json.loads((run / "tsrec.json").read_text())["sa_init"]
    assert info["initialised"]["a"] == 4
    assert metrics["test"]["invalid_outputs"] == 0
    # align tasks are mixed in at half weight: 5 of each per epoch
    trainer = TSRecTrainer(tsrec_config(env, False, True), RunDir(tmp_path / "r2"))
    trainer.setup()
    order = trainer.corpus.epoch_order(trainer.task_weights(), 0, 0)
    tasks = [trainer.corpus.examples[i].task for i in order]
    assert tasks.count("token2desc") == tasks.count("desc2token") == 5


def test_tsrec_with_both_parts_off_is_plain_sft(env, tmp_path):
    from sidrec.llm.trainer import SFTTrainer

    cfg = tsrec_config(env, False, False, epochs=1)
    a = TSRecTrainer(cfg, RunDir(tmp_path / "a")).train()
    b = SFTTrainer(cfg.model_copy(update={"method": "sft"}), RunDir(tmp_path / "b")).train()
    assert a["param_checksums"] == pytest.approx(b["param_checksums"], rel=1e-12)
