"""The sample-efficient SFT recipe: stream examples (one forward pass, a target at every item), the
level softmax on SID positions, separate learning rates for the SID rows, and their guards."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from sidrec.data.dataset import Dataset
from sidrec.llm.backbone import BackboneConfig, load_backbone
from sidrec.llm.decoding import CausalLMStepper, beam_search, exact_item_scores
from sidrec.llm.param_groups import param_groups
from sidrec.llm.recommender import sid_maps
from sidrec.llm.sft_data import (
    IGNORE_INDEX,
    PromptBuilder,
    SFTCollator,
    SFTDataConfig,
    build_corpus,
    left_pad,
    train_streams,
)
from sidrec.llm.sid_head import SIDLevels, sid_aware_loss
from sidrec.llm.trainer import SFTConfig, SFTTrainer
from sidrec.sids.trie import SIDTrie, TokenTrie
from sidrec.utils.runs import RunDir

from .conftest import chain_dataset, chain_sid_table, shared_path, tiny_lm_env
from .test_llm import _Interrupt, _InterruptingTrainer

N_ITEMS = 40


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return tiny_lm_env(tmp_path_factory.mktemp("recipe"), n_items=N_ITEMS)


def _setup(env: Path, **data):
    table = chain_sid_table(N_ITEMS)
    model, tok, sid = load_backbone(BackboneConfig(name_or_path=str(env / "lm"), sid_init="sampled"), table.vocab())
    model.eval()
    strings, ids = sid_maps(table, sid)
    cfg = SFTDataConfig(tasks={"seqrec": 1.0}, compact=True, format="stream", **data)
    return model, tok, sid, table, PromptBuilder(tok, strings, ids, cfg)


def _token_logprobs(model, ids: list[int], positions: list[int], levels: SIDLevels | None) -> list[float]:
    """log p(ids[p] | ids[:p]) for p in positions, over the full vocabulary or the token's level."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    out = []
    for p in positions:
        row = logits[p - 1]
        if levels is not None:
            lvl = int(levels.level_of[ids[p]])
            row = row[levels.ids[lvl]]
            out.append(float(F.log_softmax(row, -1)[levels.index_in_level[ids[p]]]))
        else:
            out.append(float(F.log_softmax(row, -1)[ids[p]]))
    return out


# ----------------------------------------------------------------------------- packed = windows
@pytest.mark.parametrize("softmax", ["full", "level"])
def test_stream_targets_equal_single_window_prompts(env, softmax):
    """Each item of a stream is predicted exactly as from its own window's evaluation prompt."""
    model, tok, sid, table, builder = _setup(env, separator=", ")
    levels = SIDLevels(sid.per_level, model.get_output_embeddings().weight.shape[0]) if softmax == "level" else None
    items = ["i3", "i4", "i17", "i5", "i30", "i31"]
    ex = builder.stream_example(items)
    assert len(ex.spans) == len(items) - 1
    packed = []
    for a, b in ex.spans:
        packed.append(_token_logprobs(model, ex.input_ids, list(range(a, b)), levels))
    for j, (a, b) in enumerate(ex.spans, start=1):
        prompt = builder.seqrec_prompts([items[:j]])[0]
        assert ex.input_ids[:a] == prompt  # the stream up to item j is item j's evaluation prompt
        alone = _token_logprobs(model, prompt + builder.sid_ids[items[j]],
                                list(range(len(prompt), len(prompt) + b - a)), levels)
        assert alone == pytest.approx(packed[j - 1], abs=1e-5)


def test_collated_stream_loss_is_the_mean_over_every_target_token(env):
    model, tok, sid, table, builder = _setup(env, separator="")
    streams = [builder.stream_example(["i1", "i2", "i3"]), builder.stream_example(["i7", "i8", "i9", "i10", "i11"])]
    batch = SFTCollator(tok.pad_token_id)(streams)
    n_labels = int((batch["labels"] != IGNORE_INDEX).sum())
    assert n_labels == 3 * (2 + 4)  # three SID tokens (+ the dedupe level is 0 here) per target
    levels = SIDLevels(sid.per_level, model.get_output_embeddings().weight.shape[0])
    with torch.no_grad():
        loss, _ = sid_aware_loss(model, batch, levels)
    expect = []
    for ex in streams:
        for a, b in ex.spans:
            expect += _token_logprobs(model, ex.input_ids, list(range(a, b)), levels)
    assert float(loss) == pytest.approx(-sum(expect) / len(expect), abs=1e-5)


def test_level_softmax_loss_equals_restricted_full_logits_and_keeps_full_head_elsewhere(env):
    """SID labels: CE over their level's logits; EOS / title labels: CE over the whole vocabulary."""
    model, tok, sid, table, _ = _setup(env)
    strings, ids = sid_maps(table, sid)
    ds = chain_dataset(n_users=20, n_items=N_ITEMS)
    items = ds.items.assign(title=[f"the blue item {k}" for k in range(N_ITEMS)])
    builder = PromptBuilder(tok, strings, ids, SFTDataConfig(tasks={"seqrec": 1.0, "sid2item": 1.0, "item2sid": 1.0},
                                                             compact=True, format="stream"))
    corpus = build_corpus(builder, ds.split("train"), items)
    assert set(corpus.sizes()) == {"seqrec", "item2sid", "sid2item"}  # the item tasks mix in
    picks = [int(corpus.task_index[t][0]) for t in ("seqrec", "item2sid", "sid2item")]
    batch = SFTCollator(tok.pad_token_id)([corpus.examples[i] for i in picks])
    levels = SIDLevels(sid.per_level, model.get_output_embeddings().weight.shape[0])
    with torch.no_grad():
        loss, _ = sid_aware_loss(model, batch, levels)
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                       position_ids=batch["position_ids"]).logits
    lp, n = 0.0, 0
    for r, c in (batch["labels"][:, 1:] != IGNORE_INDEX).nonzero().tolist():
        y = int(batch["labels"][r, c + 1])
        row = logits[r, c]
        if int(levels.level_of[y]) >= 0:
            lvl_ids = levels.ids[int(levels.level_of[y])]
            lp += float(F.log_softmax(row[lvl_ids], -1)[levels.index_in_level[y]])
        else:
            lp += float(F.log_softmax(row, -1)[y])
        n += 1
    assert float(loss) == pytest.approx(-lp / n, abs=1e-5)


def test_level_normalised_beam_search_matches_exact_ranking(env):
    model, tok, sid, table, builder = _setup(env)
    tt = TokenTrie(SIDTrie.from_codes(table.codes, codebook_sizes=table.codebook_sizes), sid.per_level,
                   model.get_output_embeddings().weight.shape[0])
    ids, mask = left_pad(builder.seqrec_prompts([["i1", "i2"], ["i20"]]), tok.pad_token_id)
    exact = exact_item_scores(CausalLMStepper(model), tt, ids, mask, normalize="level")
    full = exact_item_scores(CausalLMStepper(model), tt, ids, mask, normalize="full")
    assert not torch.allclose(exact, full)
    items, scores = beam_search(CausalLMStepper(model), tt, ids, mask, num_beams=N_ITEMS, top_k=N_ITEMS,
                                normalize="level")
    best = exact.argsort(dim=1, descending=True)
    assert torch.equal(items, best)
    torch.testing.assert_close(scores, exact.gather(1, best), atol=1e-5, rtol=0)
    # level-normalised probabilities sum to at most one (not every code path is an item), above full's
    assert (exact.exp().sum(1) <= 1 + 1e-5).all() and (exact.exp().sum(1) > full.exp().sum(1)).all()


# ----------------------------------------------------------------------------- the protocol
def _check_streams(train, max_history: int) -> None:
    streams = train_streams(train, max_history)
    rows = Counter()
    history_of: dict[tuple[str, str], list[list[str]]] = {}
    for u, h, t in zip(train["user_id"].astype(str), train["history"], train["target"].astype(str), strict=True):
        if len(h):
            rows[(u, t)] += 1
            history_of.setdefault((u, t), []).append([str(i) for i in h])
    supervised = Counter()
    for user, items, mask in streams:
        assert len(items) <= max_history + 1  # item 0 is context (stream_example never supervises it)
        for j in range(1, len(items)):
            if not mask[j]:
                continue
            supervised[(user, items[j])] += 1
            context = items[:j]
            # the context is the tail of the target's own train window: only earlier train-split items
            assert any(h[len(h) - len(context):] == context or context[len(context) - len(h):] == h
                       for h in history_of[(user, items[j])])
    assert supervised == rows  # every train target exactly once, and nothing else


def test_streams_cover_each_train_target_once_from_its_own_history_chain():
    ds = chain_dataset(n_users=60, n_items=N_ITEMS, lengths=(3, 30), max_history=6)
    _check_streams(ds.split("train"), max_history=6)
    _check_streams(ds.split("train"), max_history=3)


@pytest.mark.integration
def test_streams_keep_the_industrial_partial_protocol(tmp_path):
    """On the real industrial-partial train split: each stream target is a train-split target, after
    only the items of its own train window (no valid / test period item, no later item)."""
    src = shared_path("amazon18-industrial")
    from sidrec.data.importers import import_dataset

    ds = import_dataset("minionerec", src)
    train = ds.split("train")
    _check_streams(train, max_history=10)
    train_items = {str(i) for h in train["history"] for i in h} | set(train["target"].astype(str))
    for _, items, _ in train_streams(train, 10):
        assert set(items) <= train_items


# ----------------------------------------------------------------------------- parameter groups
def test_sid_rows_get_their_own_learning_rate_exactly():
    """A matrix whose last rows use sid_lr / sid_weight_decay behaves as two separate AdamW parameters."""
    torch.manual_seed(0)
    base = torch.randn(12, 5)
    sid_ids = [9, 10, 11]

    class M(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(12, 5)
            self.emb.weight.data.copy_(base)
            self.norm = torch.nn.Parameter(torch.ones(5))

        def get_input_embeddings(self):
            return self.emb

        def get_output_embeddings(self):
            return None

    m = M()
    groups, rows = param_groups(m, sid_ids, lr=1e-3, weight_decay=0.1, sid_lr=5e-2, sid_weight_decay=0.0)
    assert rows is not None
    opt = torch.optim.AdamW(groups, lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0 / (1 + s))
    pre = torch.nn.Parameter(base[:9].clone())
    new = torch.nn.Parameter(base[9:].clone())
    ref = torch.optim.AdamW([{"params": [pre], "weight_decay": 0.1}, {"params": [new], "lr": 5e-2, "weight_decay": 0.0}],
                            lr=1e-3)
    ref_sched = torch.optim.lr_scheduler.LambdaLR(ref, lambda s: 1.0 / (1 + s))
    for step in range(5):
        g = torch.randn(12, 5)
        m.emb.weight.grad = g.clone()
        m.norm.grad = torch.zeros(5)
        pre.grad, new.grad = g[:9].clone(), g[9:].clone()
        rows.before_step(opt)
        opt.step()
        rows.after_step(opt)
        sched.step()
        ref.step()
        ref_sched.step()
    torch.testing.assert_close(m.emb.weight.data[:9], pre.data, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(m.emb.weight.data[9:], new.data, atol=1e-6, rtol=1e-5)


def test_no_sid_lr_keeps_the_previous_groups():
    m = torch.nn.Linear(3, 4)
    groups, rows = param_groups(m, [0], lr=1e-3, weight_decay=0.1)
    assert rows is None and [g["weight_decay"] for g in groups] == [0.1, 0.0]


def test_lora_sid_rows_form_the_sid_group(env):
    table = chain_sid_table(N_ITEMS)
    lora, _, sid = load_backbone(BackboneConfig(name_or_path=str(env / "lm"), finetune="lora",
                                                lora={"r": 4, "alpha": 8}), table.vocab())
    groups, rows = param_groups(lora, sid.all_ids, lr=1e-4, weight_decay=0.0, sid_lr=1e-2, sid_weight_decay=0.01)
    assert rows is None
    names = {id(p): n for n, p in lora.named_parameters()}
    sid_groups = [g for g in groups if g.get("lr") == 1e-2]
    assert len(sid_groups) == 1 and sid_groups[0]["weight_decay"] == 0.01
    assert all("trainable_tokens_delta" in names[id(p)] for p in sid_groups[0]["params"])
    others = [p for g in groups if g.get("lr") is None for p in g["params"]]
    assert others and all("lora_" in names[id(p)] for p in others)


def _config(env: Path, **training) -> SFTConfig:
    t = {"epochs": 3, "batch_size": 8, "lr": 1e-3, "eval_samples": 20, "patience": 50, "log_steps": 5,
         "device": "cpu", "eval_steps": 4, "eval_metric": "loss", **training}
    return SFTConfig(dataset=env / "chain", sids=env / "sids.json",
                     model={"name_or_path": str(env / "lm"), "sid_init": "sampled"},
                     data={"tasks": {"seqrec": 1.0}, "compact": True, "format": "stream", "sid_softmax": "level",
                           "max_history": 4},
                     training=t, eval={"num_beams": 10, "batch_size": 32, "splits": ["test"]})


def test_stream_training_with_sid_lr_learns_moves_rows_by_their_rate_and_resumes_exactly(env, tmp_path):
    cfg = _config(env, lr=1e-6, sid_lr=1e-2)
    trainer = SFTTrainer(cfg, RunDir(tmp_path / "full"))
    full = trainer.train()
    corpus = trainer.corpus
    assert full["train"]["targets"]["seqrec"] > full["train"]["corpus"]["seqrec"]  # many targets per example
    assert full["train"]["targets_per_second"] > 0
    # which rows moved by how much: pretrained rows at lr 1e-6, SID rows at 1e-2
    table = chain_sid_table(N_ITEMS)
    start, _, sid = load_backbone(BackboneConfig(name_or_path=str(env / "lm"), sid_init="sampled"), table.vocab())
    w0 = start.get_input_embeddings().weight.detach()
    w1 = trainer.accelerator.unwrap_model(trainer.model).get_input_embeddings().weight.detach()
    ids = torch.tensor(sid.all_ids)
    keep = torch.ones(w0.shape[0], dtype=torch.bool)
    keep[ids] = False
    moved_sid = float((w1[ids] - w0[ids]).abs().max())
    moved_pre = float((w1[keep] - w0[keep]).abs().max())
    steps = full["train"]["steps"]
    assert moved_pre <= 1e-6 * steps * 1.01 + 1e-7
    assert moved_sid > 100 * moved_pre
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    assert {g["initial_lr"] for g in opt.param_groups} == {1e-6}  # the matrix stays in the pretrained group
    assert trainer.sid_rows is not None and trainer.sid_rows.sid_lr == 1e-2
    assert len(corpus.examples) == full["train"]["corpus"]["seqrec"]
    # killed at step 12, resumed: identical weights and metrics
    with pytest.raises(_Interrupt):
        _InterruptingTrainer(cfg, RunDir(tmp_path / "cut")).train()
    resumed = SFTTrainer(cfg, RunDir(tmp_path / "cut", resume=True))
    again = resumed.train(resume=True)
    assert again["param_checksums"] == pytest.approx(full["param_checksums"], rel=1e-9, abs=1e-9)
    assert again["test"]["ndcg@10"] == pytest.approx(full["test"]["ndcg@10"])
    ropt = resumed.optimizer.optimizer if hasattr(resumed.optimizer, "optimizer") else resumed.optimizer
    assert {g["initial_lr"] for g in ropt.param_groups} == {1e-6} and resumed.sid_rows.sid_lr == 1e-2


def test_stream_recipe_learns_the_chain(env, tmp_path):
    """On item i → i+1 chains the recipe must rank the next item first for most users."""
    cfg = _config(env, lr=3e-3, sid_lr=1e-2, epochs=6, eval_steps=None, eval_metric="ndcg@10")
    metrics = SFTTrainer(cfg, RunDir(tmp_path / "run")).train()
    assert metrics["test"]["hr@10"] > 0.5


@pytest.mark.parametrize("method", ["ilrec", "dpo"])
def test_methods_that_need_prompt_examples_refuse_the_stream_with_a_clear_message(env, method):
    from pydantic import ValidationError

    from sidrec.methods.ilrec.config import ILRecConfig
    from sidrec.methods.preference.config import DPOConfig

    with pytest.raises(ValidationError, match="needs data.format: prompt"):
        if method == "ilrec":
            ILRecConfig(dataset=env / "chain", data={"format": "stream"}, ilrec={"use_crr": False})
        else:
            DPOConfig(dataset=env / "chain", method=method, data={"format": "stream"},
                      dpo={"negatives": str(env / "x.json")})


def test_stream_format_refuses_settings_it_cannot_honour():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="prompt_format: plain"):
        SFTDataConfig(format="stream", prompt_format="chat")
    with pytest.raises(ValidationError, match="max_prompt_tokens"):
        SFTDataConfig(format="stream", max_prompt_tokens=64)


# ----------------------------------------------------------------------------- initialisation
WORDS = ["shampoo hair", "nail polish", "face cream", "brush tool"]


def test_tfidf_sid_init_writes_sa_init_rows_where_items_have_text_and_samples_the_rest(env, tmp_path):
    """`model.sid_init: tfidf`: tokens whose items have text start as their tfidf keywords' mean
    (TS-Rec's SA-Init); the others keep distinct sampled rows."""
    from sidrec.llm.sid_init import sa_init
    from sidrec.semantics.tfidf import tfidf_semantics

    ds = chain_dataset(n_users=40, n_items=N_ITEMS)
    ds.items["title"] = [f"{WORDS[k // 10]} {['gold', 'blue', 'red', 'mini'][(k // 3) % 4]} set" if k < 30 else ""
                         for k in range(N_ITEMS)]  # the items under <a_3> have no text
    ds.save(tmp_path / "titled")
    cfg = _config(env).model_copy(update={"dataset": tmp_path / "titled"})
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"sid_init": "tfidf"})})
    trainer = SFTTrainer(cfg, RunDir(tmp_path / "run"))
    trainer.setup()
    got = trainer.accelerator.unwrap_model(trainer.model).get_input_embeddings().weight.detach()
    table = chain_sid_table(N_ITEMS)
    ref, tok, sid = load_backbone(BackboneConfig(name_or_path=str(env / "lm"), sid_init="sampled"), table.vocab())
    sampled = ref.get_input_embeddings().weight.detach().clone()
    semantics = {s.token: s for s in tfidf_semantics(Dataset.load(tmp_path / "titled"), table)}
    report = sa_init(ref, tok, sid, semantics)
    assert report.initialised == {"a": 3, "b": 4, "c": 3} and report.without_semantics["a"] == 1
    expect = ref.get_input_embeddings().weight.detach()
    torch.testing.assert_close(got, expect)
    text_rows, no_text = sid.per_level[0][:3] + sid.per_level[1], sid.per_level[0][3:]
    assert not torch.allclose(got[text_rows], sampled[text_rows])  # SA-Init wrote the tokens with text
    torch.testing.assert_close(got[no_text], sampled[no_text])  # <a_3> stays sampled
    cos = F.cosine_similarity(got[sid.all_ids][:, None], got[sid.all_ids][None], dim=-1)
    assert float(cos[~torch.eye(len(sid.all_ids), dtype=torch.bool)].max()) < 0.999  # every token distinct


def test_sid_rows_stepper_decodes_exactly_like_the_full_head(env):
    """Level-normalised decoding with SID-only logits equals it with the full LM head."""
    from sidrec.llm.recommender import GenerativeRecommender

    model, tok, sid, table, builder = _setup(env, separator="", sid_softmax="level")
    rec = GenerativeRecommender(model, tok, table, sid, builder.cfg)
    stepper, trie = rec.decoding()
    assert trie.vocab_size == len(sid.all_ids)
    ids, mask = rec.inputs([["i1", "i2"], ["i20", "i21", "i22"], ["i9"]])
    a_items, a_scores = beam_search(stepper, trie, ids, mask, num_beams=8, top_k=8, normalize="level")
    b_items, b_scores = beam_search(CausalLMStepper(model), rec.token_trie, ids, mask, num_beams=8, top_k=8,
                                    normalize="level")
    assert torch.equal(a_items, b_items)
    torch.testing.assert_close(a_scores, b_scores, atol=1e-5, rtol=1e-5)
    exact_a = rec.exact_scores([["i1", "i2"]])
    exact_b = exact_item_scores(CausalLMStepper(model), rec.token_trie, *rec.inputs([["i1", "i2"]]), normalize="level")
    torch.testing.assert_close(exact_a, exact_b, atol=1e-5, rtol=1e-5)


def test_stage_two_from_a_stream_run_is_refused_naming_the_fix(env, tmp_path):
    from sidrec.errors import ConfigError
    from sidrec.pipelines.llm import continue_from, train_sft

    cfg = _config(env, epochs=1, eval_steps=None)
    train_sft(cfg.model_dump(mode="json"), tmp_path / "sft")
    with pytest.raises(ConfigError, match="method ilrec needs data.format: prompt"):
        train_sft(continue_from(tmp_path / "sft", "ilrec", {"ilrec": {"use_crr": False}}), tmp_path / "ilrec")
    assert not (tmp_path / "ilrec" / "checkpoint").exists()


def test_runs_saved_before_the_recipe_load_with_the_settings_they_trained_with():
    from sidrec.llm.config import with_legacy_defaults

    old = {"dataset": "d", "model": {"name_or_path": "m"}, "data": {"tasks": {"seqrec": 1.0}}}
    values = with_legacy_defaults(old)
    cfg = SFTConfig(**values)
    assert (cfg.data.format, cfg.data.sid_softmax, cfg.model.sid_init) == ("prompt", "full", "mean")
    assert SFTConfig(**old).data.format == "stream"  # new configs get the recipe


def test_lora_stream_recipe_trains_decodes_and_keeps_the_sid_rate(env, tmp_path):
    cfg = _config(env, epochs=1, eval_steps=None, lr=1e-3, sid_lr=1e-2)
    cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"finetune": "lora"})})
    trainer = SFTTrainer(cfg, RunDir(tmp_path / "lora"))
    metrics = trainer.train()
    assert metrics["test"]["invalid_outputs"] == 0 and metrics["test"]["n"] > 0
    opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
    assert sorted({g["initial_lr"] for g in opt.param_groups}) == [1e-3, 1e-2]
    from sidrec.llm.recommender import GenerativeRecommender

    rec = GenerativeRecommender.load(tmp_path / "lora" / "model")  # merged, plain HF folder
    assert rec.normalize == "level"
    items, _ = rec.recommend([["i1", "i2"]], top_k=3, num_beams=5)
    assert len(items[0]) == 3
