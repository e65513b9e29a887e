"""TIGER: the SID-only vocabulary and collator, the seq2seq stepper against brute force, a tiny run end to end."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from sidrec.errors import ConfigError
from sidrec.llm.decoding import beam_search, exact_item_scores
from sidrec.llm.recommender import GenerativeRecommender, sid_maps
from sidrec.llm.sft_data import IGNORE_INDEX
from sidrec.methods.tiger.model import (
    EOS_ID,
    PAD_ID,
    Seq2SeqStepper,
    TigerCollator,
    TigerExample,
    TigerRecommender,
    build_t5,
    build_tiger_corpus,
    tiger_sid_tokens,
)
from sidrec.methods.tiger.config import TigerConfig, TigerSettings, tiger_settings
from sidrec.methods.tiger.trainer import TigerTrainer
from sidrec.sids.table import SIDTable
from sidrec.utils.runs import RunDir

from .conftest import chain_dataset

N_ITEMS = 40
TINY = {"d_model": 32, "d_ff": 64, "num_layers": 2, "num_decoder_layers": 2, "num_heads": 2, "d_kv": 16}


def make_table() -> SIDTable:
    """3 levels of sizes (4, 4, 3); unique for 40 items."""
    i = np.arange(N_ITEMS)
    table = SIDTable([f"i{k}" for k in range(N_ITEMS)], np.stack([i // 10, (i // 3) % 4, i % 3], axis=1))
    return table.with_dedup()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiger")
    ds = chain_dataset(n_users=150, n_items=N_ITEMS, path=root / "chain")
    table = make_table()
    table.save(root / "sids.json")
    return root, ds, table


def tiny_model(table: SIDTable, seed: int = 0):
    settings = TigerSettings(**TINY, dropout=0.0, max_history=5)
    sid_tokens = tiger_sid_tokens(table)
    return build_t5(settings, sid_tokens, seed=seed).eval(), settings, sid_tokens


def test_vocabulary_and_settings():
    table = make_table()
    tokens = tiger_sid_tokens(table)
    assert tokens.per_level == [[2, 3, 4, 5], [6, 7, 8, 9], [10, 11, 12]]
    assert tokens.strings == table.vocab()
    model, _, _ = tiny_model(table)
    assert model.config.vocab_size == 13
    assert model.config.decoder_start_token_id == PAD_ID == model.config.pad_token_id
    assert TigerSettings().model_dump()["d_model"] == 128
    with pytest.raises(ConfigError, match="tiger.bogus"):
        tiger_settings({"bogus": 1})


def test_corpus_and_collator(data):
    _, ds, table = data
    _, ids = sid_maps(table, tiger_sid_tokens(table))
    empty = pd.DataFrame({"user_id": ["new1", "new2"], "history": [[], []], "target": ["i0", "i1"]})
    train = pd.concat([empty, ds.split("train")], ignore_index=True)
    corpus = build_tiger_corpus(train, ids, max_items=3, tasks={"seqrec": 1.0, "item2sid": 1.0})
    n_empty = int(sum(len(h) == 0 for h in train["history"]))
    assert n_empty == 2 and corpus.skipped["seqrec: examples with an empty history"] == 2
    assert corpus.skipped["item2sid: not used by TIGER (SID tokens only, no text)"] == 0
    assert corpus.sizes() == {"seqrec": len(train) - n_empty}
    nonempty = [(list(h), str(t)) for h, t in zip(train["history"], train["target"], strict=True) if len(h)]
    for ex, (hist, target) in zip(corpus.examples, nonempty, strict=True):
        assert ex.input_ids == [tok for item in hist[-3:] for tok in ids[str(item)]] + [EOS_ID]
        assert ex.labels == ids[target] + [EOS_ID]
    assert len(corpus.epoch_order({"seqrec": 1.0}, 0, 0)) == len(corpus.examples)

    batch = TigerCollator()([TigerExample("seqrec", [2, 6, 10, 1], 4, labels=[3, 7, 11, 1]),
                             TigerExample("seqrec", [4, 8, 1], 3, labels=[5, 1])])
    assert batch["input_ids"].tolist() == [[2, 6, 10, 1], [4, 8, 1, PAD_ID]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 1, 0]]
    assert batch["labels"].tolist() == [[3, 7, 11, 1], [5, 1, IGNORE_INDEX, IGNORE_INDEX]]
    model, _, _ = tiny_model(table)
    assert torch.isfinite(model(**batch).loss)


def brute_force_scores(model, table: SIDTable, sid_tokens, history: list[str], max_items: int) -> torch.Tensor:
    """log p(SID | history) for every item: one teacher-forced T5 pass per item, no cache."""
    _, ids = sid_maps(table, sid_tokens)
    enc = [t for item in history[-max_items:] for t in ids[item]] + [EOS_ID]
    labels = torch.tensor([ids[i] for i in table.item_ids])
    inp = torch.tensor(enc).unsqueeze(0).expand(len(labels), -1)
    with torch.no_grad():
        logits = model(input_ids=inp, attention_mask=torch.ones_like(inp), labels=labels).logits
    return logits.float().log_softmax(-1).gather(2, labels.unsqueeze(-1)).squeeze(-1).sum(1)


def test_stepper_matches_brute_force(data):
    _, _, table = data
    model, settings, sid_tokens = tiny_model(table, seed=3)
    rec = TigerRecommender(model, table, sid_tokens, settings)
    histories = [["i1", "i2", "i3"], ["i7"], [f"i{k}" for k in range(10, 18)]]  # different lengths: padding
    ids, mask = rec.inputs(histories)
    exact = exact_item_scores(Seq2SeqStepper(model), rec.token_trie, ids, mask, node_chunk=5)
    brute = torch.stack([brute_force_scores(model, table, sid_tokens, h, settings.max_history) for h in histories])
    assert torch.allclose(exact, brute, atol=1e-4)
    assert torch.allclose(rec.exact_scores(histories), brute, atol=1e-4)

    k = 10
    items, scores = beam_search(rec.stepper(), rec.token_trie, ids, mask, num_beams=N_ITEMS, top_k=k)
    top = brute.topk(k, dim=1)
    assert items.tolist() == top.indices.tolist()
    assert torch.allclose(scores, top.values, atol=1e-4)


def test_tiny_tiger_run(data, tmp_path):
    root, ds, table = data
    cfg = TigerConfig(dataset=root / "chain", sids=root / "sids.json",
                    tiger={**TINY, "max_history": 6},
                    training={"epochs": 3, "batch_size": 32, "lr": 3e-3, "device": "cpu", "eval_samples": 50,
                              "log_steps": 5},
                    eval={"num_beams": 10})
    run = RunDir(tmp_path / "run")
    trainer = TigerTrainer(cfg, run)
    metrics = trainer.train()
    run.close()

    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["method"] == "tiger" and saved["train"]["steps"] > 0
    for split in ("valid", "test"):
        assert saved[split]["invalid_outputs"] == 0 and saved[split]["n"] == len(ds.split(split))
    assert metrics["test"]["hr@10"] > 0.5  # the chain i → i+1 is easy; random is 10/40
    meta = json.loads((tmp_path / "run" / "model" / "sidrec.json").read_text())
    assert meta["kind"] == "tiger" and meta["tiger"]["max_history"] == 6
    assert math.isfinite(trainer.validation_loss()) and trainer.validation_loss() > 0

    loaded = GenerativeRecommender.load(tmp_path / "run" / "model")
    assert isinstance(loaded, TigerRecommender)
    live = trainer.make_recommender()
    histories = [list(map(str, h)) for h in ds.split("test")["history"][:8]]
    a_items, a_scores = live.recommend(histories, top_k=10, num_beams=10)
    b_items, b_scores = loaded.recommend(histories, top_k=10, num_beams=10)
    assert a_items == b_items
    np.testing.assert_allclose(a_scores, b_scores, atol=1e-5)


class Interrupted(Exception):
    """Raised by the trainer below after a checkpoint, as a crash would."""


class InterruptedTiger(TigerTrainer):
    def after_checkpoint(self, state):
        if state["global_step"] == 20:
            raise Interrupted


def test_resume_continues_exactly(data, tmp_path):
    root, _, _ = data
    cfg = TigerConfig(dataset=root / "chain", sids=root / "sids.json", tiger=TINY,
                    training={"epochs": 2, "batch_size": 32, "lr": 3e-3, "device": "cpu", "eval_samples": 20,
                              "eval_steps": 10, "eval_metric": "loss"},
                    eval={"num_beams": 10, "splits": ["test"], "max_examples": 20})
    whole = TigerTrainer(cfg, RunDir(tmp_path / "whole")).train()
    with pytest.raises(Interrupted):
        InterruptedTiger(cfg, RunDir(tmp_path / "cut")).train()
    resumed = TigerTrainer(cfg, RunDir(tmp_path / "cut", resume=True)).train(resume=True)
    assert resumed["param_checksums"] == whole["param_checksums"]
    assert resumed["test"]["ndcg@10"] == whole["test"]["ndcg@10"]
