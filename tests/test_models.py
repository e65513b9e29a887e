"""Models: scoring API, causality, padding, the fused loss, saved-model format."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from sidrec.errors import ConfigError, DataError
from sidrec.models import (
    GRU4Rec,
    PopularityModel,
    SASRec,
    left_align,
    linear_cross_entropy,
    load_model,
    model_class,
)


def tiny_models(n_items: int = 12) -> list:
    torch.manual_seed(0)
    return [
        SASRec(n_items, hidden_size=16, num_layers=2, num_heads=2, dropout=0.1, max_len=6),
        SASRec(n_items, hidden_size=16, num_layers=1, num_heads=1, dropout=0.1, max_len=6, norm_first=False),
        GRU4Rec(n_items, hidden_size=16, num_layers=2, dropout=0.1, max_len=6),
        GRU4Rec(n_items, hidden_size=16, dropout=0.1, max_len=6, tie_weights=False, embedding_size=8),
    ]


def test_left_align_moves_padding_to_the_end_and_truncates():
    x = torch.tensor([[0, 0, 3, 4], [1, 2, 3, 4], [0, 0, 0, 0], [5, 0, 0, 0], [0, 7, 0, 8]])
    seqs, lengths = left_align(x)
    assert seqs.tolist() == [[3, 4, 0, 0], [1, 2, 3, 4], [0, 0, 0, 0], [5, 0, 0, 0], [7, 8, 0, 0]]
    assert lengths.tolist() == [2, 4, 0, 1, 2]
    seqs, lengths = left_align(x, max_len=2)
    assert seqs.tolist() == [[3, 4], [3, 4], [0, 0], [5, 0], [7, 8]]
    assert lengths.tolist() == [2, 2, 0, 1, 2]


@pytest.mark.parametrize("index", range(4))
def test_scores_do_not_depend_on_padding(index):
    model = tiny_models()[index].eval()
    a = model.score(torch.tensor([[0, 0, 0, 3, 4, 9]]))
    b = model.score(torch.tensor([[3, 4, 9]]))
    c = model.score(torch.tensor([[3, 4, 9, 0, 0, 0, 0, 0]]))
    assert a.shape == (1, 12)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(a, c, rtol=0, atol=1e-6)
    # a history longer than the window keeps its most recent max_len items
    long = model.score(torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]]))
    torch.testing.assert_close(long, model.score(torch.tensor([[3, 4, 5, 6, 7, 8]])), rtol=0, atol=1e-6)


@pytest.mark.parametrize("index", range(4))
def test_encoder_is_causal(index):
    model = tiny_models()[index].eval()
    seqs = torch.tensor([[3, 4, 9, 1, 2, 5], [7, 7, 1, 0, 0, 0]])
    changed = seqs.clone()
    changed[:, 3] = 11
    h1, h2 = model.encode(seqs), model.encode(changed)
    torch.testing.assert_close(h1[:, :3], h2[:, :3], rtol=0, atol=1e-6)
    assert not torch.allclose(h1[0, 3:], h2[0, 3:])


def test_one_pass_predicts_every_prefix():
    """The hidden state at position t equals the last hidden state of the prefix 0…t alone."""
    for model in tiny_models():
        model.eval()
        seq = torch.tensor([[3, 4, 9, 1, 2]])
        hidden = model.encode(seq)
        for t in range(5):
            last = model.last_hidden(seq[:, : t + 1])
            torch.testing.assert_close(hidden[:, t], last, rtol=0, atol=1e-6)


def test_linear_cross_entropy_matches_pytorch():
    torch.manual_seed(0)
    h = torch.randn(150, 8, requires_grad=True)
    w = torch.randn(30, 8, requires_grad=True)
    t = torch.randint(0, 30, (150,))
    loss = linear_cross_entropy(h, w, t, chunk_size=16)
    loss.backward()
    gh, gw = h.grad.clone(), w.grad.clone()
    h.grad = w.grad = None
    ref = F.cross_entropy(h @ w.T, t)
    ref.backward()
    torch.testing.assert_close(loss, ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(gh, h.grad, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(gw, w.grad, rtol=1e-5, atol=1e-7)
    h.grad = w.grad = None
    loss_bf16 = linear_cross_entropy(h, w, t, chunk_size=16, matmul_dtype=torch.bfloat16)
    loss_bf16.backward()
    assert abs(loss_bf16.item() - ref.item()) < 0.05
    assert (h.grad - gh).norm() / gh.norm() < 0.05
    with torch.no_grad():  # no gradient wanted: loss only
        torch.testing.assert_close(linear_cross_entropy(h, w, t), ref.detach(), rtol=1e-6, atol=1e-6)


def test_loss_equals_per_position_cross_entropy():
    model = tiny_models()[0].eval()
    seqs = torch.tensor([[3, 4, 9, 0], [1, 2, 0, 0]])
    targets = torch.tensor([[3, -1, 0, -1], [-1, 5, -1, -1]])
    loss = model.loss(seqs, targets)
    logits = model.encode(seqs) @ model.item_weights().T
    ref = F.cross_entropy(logits[targets >= 0], targets[targets >= 0])
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("index", range(4))
def test_save_load_round_trip_gives_identical_scores(tmp_path, index):
    model = tiny_models()[index].eval()
    ids = [f"item{j}" for j in range(12)]
    model.save_pretrained(tmp_path / "m", ids)
    model.save_pretrained(tmp_path / "m", ids)  # overwriting an existing folder is fine
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["items.json", "model.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left behind
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["kind"] == model.kind and meta["n_items"] == 12 and "sidrec_version" in meta
    loaded, item_ids = load_model(tmp_path / "m", device="cpu")
    assert item_ids == ids and type(loaded) is type(model) and not loaded.training
    hist = torch.tensor([[0, 1, 2, 3], [5, 6, 7, 8]])
    assert torch.equal(loaded.score(hist), model.score(hist))
    by_id = loaded.score_item_ids([["item0", "item1", "item2"], ["item4", "item5", "item6", "item7"]])
    assert torch.equal(by_id, model.score(hist))


def test_score_item_ids_errors_and_skips_unknown_ids():
    model = tiny_models()[0].eval()
    with pytest.raises(ConfigError):
        model.score_item_ids([["a"]])
    model.set_item_ids([f"item{j}" for j in range(12)])
    with pytest.raises(DataError, match="nope"):
        model.score_item_ids([["item1", "nope"]])
    skipped = model.score_item_ids([["item1", "nope"]], unknown="skip")
    assert torch.equal(skipped, model.score(torch.tensor([[2]])))
    with pytest.raises(ConfigError):
        model.set_item_ids(["just one"])


def test_popularity_scores_are_counts_and_round_trip(tmp_path):
    model = PopularityModel(4)
    model.counts.copy_(torch.tensor([3.0, 0.0, 7.0, 1.0]))
    scores = model.score(torch.zeros(2, 5, dtype=torch.long))
    assert scores.tolist() == [[3.0, 0.0, 7.0, 1.0]] * 2
    model.save_pretrained(tmp_path / "pop", ["a", "b", "c", "d"])
    loaded, ids = load_model(tmp_path / "pop")
    assert ids == ["a", "b", "c", "d"]
    assert torch.equal(loaded.score(torch.zeros(1, 3, dtype=torch.long)), scores[:1])


def test_load_model_rejects_non_model_folders(tmp_path):
    with pytest.raises(DataError, match="model.json"):
        load_model(tmp_path)
    with pytest.raises(ConfigError):
        model_class("nope")
