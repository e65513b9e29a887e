"""ILRec loss arithmetic (methods.md §5) against hand computations and brute-force loops."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sidrec.methods.ilrec.losses import (
    aggregate_layers,
    cpd_loss,
    cpo_loss,
    crr_loss,
    ilrec_position_losses,
    masked_log_softmax,
    prefix_rewards,
    self_hard_negatives,
)

NEG_INF = float("-inf")


# ----------------------------------------------------------------------------------------------
# brute-force references (plain Python over positions)
# ----------------------------------------------------------------------------------------------


def bf_softmax(values: dict[int, float]) -> dict[int, float]:
    """Softmax over a dict of finite values; {} → {}."""
    if not values:
        return {}
    top = max(values.values())
    e = {k: math.exp(v - top) for k, v in values.items()}
    s = sum(e.values())
    return {k: x / s for k, x in e.items()}


def bf_negatives(agg, final, gold, mask, phi):
    P, K = mask.shape
    neg = torch.zeros(P, K, dtype=torch.bool)
    w = torch.zeros(P, K, dtype=torch.float64)
    for p in range(P):
        thr = phi * float(final[p, gold[p]])
        chosen = {v: float(agg[p, v]) for v in range(K) if mask[p, v] and v != gold[p] and float(agg[p, v]) >= thr}
        for v, x in bf_softmax(chosen).items():
            neg[p, v] = True
            w[p, v] = x
    return neg, w


def bf_log_softmax_c(logits_row, mask_row) -> dict[int, float]:
    vals = {v: float(logits_row[v]) for v in range(len(mask_row)) if mask_row[v]}
    return {v: math.log(x) for v, x in bf_softmax(vals).items()}


def standard_case(seed: int = 0, P: int = 12, K: int = 7, layers: int = 3, V: int = 20):
    """Random logits with padded columns (full of garbage) and a gold column per row."""
    g = torch.Generator().manual_seed(seed)
    n_real = torch.randint(2, K + 1, (P,), generator=g)
    cand_mask = torch.arange(K).unsqueeze(0) < n_real.unsqueeze(1)
    gold = (torch.rand(P, generator=g) * n_real).long()
    cand_vocab_ids = torch.stack([torch.randperm(V, generator=g)[:K] for _ in range(P)])
    cand_vocab_ids[~cand_mask] = -1  # padded ids are never used
    final_full = torch.randn(P, V, generator=g, dtype=torch.float64) * 2
    gold_vocab = cand_vocab_ids.gather(1, gold.unsqueeze(1)).squeeze(1)
    inter = torch.randn(layers, P, K, generator=g, dtype=torch.float64) * 2
    return cand_mask, gold, cand_vocab_ids, final_full, gold_vocab, inter


def final_c_of(final_full, cand_vocab_ids, cand_mask):
    return final_full.gather(1, cand_vocab_ids.clamp(min=0)).masked_fill(~cand_mask, float("nan"))


# ----------------------------------------------------------------------------------------------
# self-hard negatives
# ----------------------------------------------------------------------------------------------


def test_negatives_hand_built_match_brute_force():
    #                 col: 0     1     2     3     4 (padded)
    inter = torch.tensor([
        [[1.0, 2.0, 0.5, 3.0, 50.0],   # row 0: gold 1
         [0.0, -1.0, -2.0, -3.0, 9.0],  # row 1: gold 0, nothing reaches the threshold
         [2.0, 1.0, 1.5, -1.0, 9.0],   # row 2: gold 2, negative gold logit, φ ≠ 1
         [0.2, 0.1, 0.3, 0.0, 9.0]],
        [[1.0, 0.0, 0.5, 1.0, 50.0],
         [0.0, -1.0, -2.0, -3.0, 9.0],
         [0.0, 1.0, 0.5, 0.0, 9.0],
         [0.2, 0.1, 0.3, 0.0, 9.0]],
    ])
    final = torch.tensor([[0.0, 2.0, 0.0, 0.0, 0.0],
                          [5.0, 0.0, 0.0, 0.0, 0.0],
                          [0.0, 0.0, -1.0, 0.0, 0.0],
                          [0.0, 0.0, 0.0, 0.25, 0.0]])
    gold = torch.tensor([1, 0, 2, 3])
    cand_mask = torch.tensor([[1, 1, 1, 1, 0]] * 4, dtype=torch.bool)

    agg_sum = aggregate_layers(inter, "sum")
    agg_mean = aggregate_layers(inter, "mean")
    assert torch.equal(agg_sum, inter[0] + inter[1])
    assert torch.allclose(agg_mean, (inter[0] + inter[1]) / 2)
    with pytest.raises(ValueError):
        aggregate_layers(inter, "max")  # type: ignore[arg-type]

    for agg in (agg_sum, agg_mean):
        for phi in (1.0, 0.5, 2.0):
            neg, w = self_hard_negatives(agg, final, gold, cand_mask, phi)
            ref_neg, ref_w = bf_negatives(agg, final, gold, cand_mask, phi)
            assert torch.equal(neg, ref_neg), (phi, neg, ref_neg)
            assert torch.allclose(w.double(), ref_w, atol=1e-6)
            assert not neg[:, 4].any()                        # padded column: never a negative
            assert not neg[torch.arange(4), gold].any()       # gold: never a negative
            assert not neg[1].any() and (w[1] == 0).all()     # row without negatives: zeros
            assert torch.isfinite(w).all()
            rows = neg.any(1)
            assert torch.allclose(w.sum(1)[rows], torch.ones(int(rows.sum())))

    # explicit values: row 0 sum-aggregation, φ = 1: threshold 2 → columns 0 (2.0), 3 (4.0)
    neg, w = self_hard_negatives(agg_sum, final, gold, cand_mask, 1.0)
    assert neg[0].tolist() == [True, False, False, True, False]
    assert w[0, 0].item() == pytest.approx(math.exp(2) / (math.exp(2) + math.exp(4)))
    # row 2 (gold logit −1, ž = [2, 2, 2, −1]): φ = 2 → threshold −2, φ = 1 → −1 (ties count), φ = 0.5 → −0.5
    assert self_hard_negatives(agg_sum, final, gold, cand_mask, 2.0)[0][2].tolist() == [True, True, False, True, False]
    assert self_hard_negatives(agg_sum, final, gold, cand_mask, 1.0)[0][2].tolist() == [True, True, False, True, False]
    assert self_hard_negatives(agg_sum, final, gold, cand_mask, 0.5)[0][2].tolist() == [True, True, False, False, False]
    # mean aggregation differs from sum: row 3 (threshold 0.25): sum → {0, 1, 2}, mean → {2}
    assert self_hard_negatives(agg_sum, final, gold, cand_mask, 1.0)[0][3].tolist() == [True, False, True, False, False]
    assert self_hard_negatives(agg_mean, final, gold, cand_mask, 1.0)[0][3].tolist() == [False, False, True, False, False]


@pytest.mark.parametrize("phi", [1.0, 0.8, 1.3])
@pytest.mark.parametrize("how", ["sum", "mean"])
def test_negatives_random_match_brute_force(phi, how):
    cand_mask, gold, ids, final_full, _, inter = standard_case(seed=1, P=40, K=9)
    final_c = final_c_of(final_full, ids, cand_mask)
    agg = aggregate_layers(inter.masked_fill(~cand_mask, 1e6), how)  # huge padded logits
    neg, w = self_hard_negatives(agg, final_c, gold, cand_mask, phi)
    ref_neg, ref_w = bf_negatives(agg, final_c, gold, cand_mask, phi)
    assert torch.equal(neg, ref_neg)
    assert torch.allclose(w, ref_w, atol=1e-12)
    assert 0 < neg.any(1).sum() < 40  # both kinds of rows occur


def test_negatives_carry_no_gradient():
    cand_mask, gold, ids, final_full, _, inter = standard_case(seed=2)
    inter.requires_grad_(True)
    final_c = final_c_of(final_full, ids, cand_mask).requires_grad_(True)
    neg, w = self_hard_negatives(aggregate_layers(inter), final_c, gold, cand_mask, 1.0)
    assert not w.requires_grad and w.grad_fn is None and not neg.requires_grad


# ----------------------------------------------------------------------------------------------
# CPO
# ----------------------------------------------------------------------------------------------


def test_cpo_hand_computed_additive_abs_form():
    z = torch.tensor([[2.0, 1.0, -0.5, 0.3]], dtype=torch.float64)
    gold_vocab = torch.tensor([0])
    ids = torch.tensor([[0, 1, 2, 3]])
    neg = torch.tensor([[False, True, True, False]])
    w = torch.tensor([[0.0, 0.6, 0.4, 0.0]], dtype=torch.float64)
    alpha = 0.5
    # ẑ = [2, 1 + 0.5·0.6·1, −0.5 + 0.5·0.4·0.5, 0.3] = [2, 1.3, −0.4, 0.3]
    expected = -(2.0 - math.log(math.exp(2.0) + math.exp(1.3) + math.exp(-0.4) + math.exp(0.3)))
    loss = cpo_loss(z, gold_vocab, ids, neg, w, alpha)
    assert loss.shape == (1,)
    assert loss.item() == pytest.approx(expected, abs=1e-12)

    ce = F.cross_entropy(z, gold_vocab).item()
    # only the negative-valued negative (logit −0.5): the additive form raises it → loss above CE
    only_neg = torch.tensor([[False, False, True, False]])
    additive = cpo_loss(z, gold_vocab, ids, only_neg, w, alpha).item()
    assert additive == pytest.approx(-(2.0 - math.log(math.exp(2.0) + math.exp(1.0) + math.exp(-0.4) + math.exp(0.3))))
    assert additive > ce
    # the reference code's multiplicative (1 + αw)·z lowers it to −0.6 → loss below CE (rewards the negative)
    z_mult = z.clone()
    z_mult[0, 2] = z[0, 2] * (1 + alpha * 0.4)
    assert z_mult[0, 2].item() == pytest.approx(-0.6)
    assert F.cross_entropy(z_mult, gold_vocab).item() < ce < additive

    # no negatives / α = 0: plain cross-entropy
    none = torch.zeros_like(neg)
    assert cpo_loss(z, gold_vocab, ids, none, torch.zeros_like(w), alpha).item() == pytest.approx(ce, abs=1e-12)
    assert cpo_loss(z, gold_vocab, ids, neg, w, 0.0).item() == pytest.approx(ce, abs=1e-12)


def test_cpo_gradient_flows_through_z_only():
    cand_mask, gold, ids, final_full, gold_vocab, inter = standard_case(seed=3)
    neg, w = self_hard_negatives(aggregate_layers(inter), final_c_of(final_full, ids, cand_mask), gold, cand_mask, 0.9)
    assert neg.any()
    z = final_full.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x: cpo_loss(x, gold_vocab, ids, neg, w, 0.3), (z,))
    # hand derivative: ∂L/∂z_v = softmax(ẑ)_v · ∂ẑ_v/∂z_v − [v = y], ∂ẑ_v/∂z_v = 1 + α w sign z_v on N
    loss = cpo_loss(z, gold_vocab, ids, neg, w, 0.3).sum()
    (grad,) = torch.autograd.grad(loss, z)
    with torch.no_grad():
        factor = torch.ones_like(z)
        bump = torch.zeros_like(z)
        for p in range(z.shape[0]):
            for k in range(ids.shape[1]):
                if neg[p, k]:
                    v = int(ids[p, k])
                    factor[p, v] = 1 + 0.3 * w[p, k] * torch.sign(z[p, v])
                    bump[p, v] = 0.3 * w[p, k] * z[p, v].abs()
        ref = torch.softmax(z + bump, -1) * factor
        ref[torch.arange(z.shape[0]), gold_vocab] -= 1
    assert torch.allclose(grad, ref, atol=1e-12)


def test_cpo_sgd_step_pushes_self_hard_negatives_down_more_than_ce():
    g = torch.Generator().manual_seed(4)
    P, H, V, K, lr, alpha = 16, 8, 30, 6, 0.5, 1.0
    hidden = torch.randn(P, H, generator=g)
    W0 = torch.randn(V, H, generator=g) * 0.5 + 0.3 * torch.randn(1, H, generator=g) * hidden.mean(0)
    ids = torch.stack([torch.randperm(V, generator=g)[:K] for _ in range(P)])
    cand_mask = torch.ones(P, K, dtype=torch.bool)
    gold = torch.randint(0, K, (P,), generator=g)
    gold_vocab = ids.gather(1, gold.unsqueeze(1)).squeeze(1)
    with torch.no_grad():
        z0 = hidden @ W0.t()
        # "intermediate" logits: a noisy copy of the final ones, so the negatives are real confusions
        inter = (z0.gather(1, ids) + 0.5 * torch.randn(P, K, generator=g)).unsqueeze(0)
        neg, w = self_hard_negatives(aggregate_layers(inter), z0.gather(1, ids), gold, cand_mask, 0.8)
    assert neg.any(1).sum() >= P // 2

    def neg_prob(W):
        with torch.no_grad():
            prob = torch.softmax(hidden @ W.t(), -1).gather(1, ids)
        return (prob * neg).sum()

    def step(use_cpo: bool):
        W = W0.clone().requires_grad_(True)
        logits = hidden @ W.t()
        if use_cpo:
            loss = cpo_loss(logits, gold_vocab, ids, neg, w, alpha).mean()
        else:
            loss = F.cross_entropy(logits, gold_vocab)
        loss.backward()
        with torch.no_grad():
            return W - lr * W.grad

    before, after_ce, after_cpo = neg_prob(W0), neg_prob(step(False)), neg_prob(step(True))
    assert after_ce < before
    assert before - after_cpo > 2 * (before - after_ce)


# ----------------------------------------------------------------------------------------------
# CPD
# ----------------------------------------------------------------------------------------------


def test_cpd_matches_brute_force_and_teacher_is_stop_gradient():
    cand_mask, gold, ids, final_full, _, inter = standard_case(seed=5, P=10, K=6, layers=3)
    final_c = final_c_of(final_full, ids, cand_mask).requires_grad_(True)  # NaN in padded columns
    inter = inter.masked_fill(~cand_mask, 1e9).requires_grad_(True)       # huge padded logits
    loss = cpd_loss(final_c, inter, cand_mask)
    assert loss.shape == (10,) and torch.isfinite(loss).all()

    for p in range(10):
        log_t = bf_log_softmax_c(final_c[p].detach(), cand_mask[p])
        ref = 0.0
        for layer in range(3):
            log_s = bf_log_softmax_c(inter[layer, p].detach(), cand_mask[p])
            ref += sum(math.exp(log_t[v]) * (log_t[v] - log_s[v]) for v in log_t)
        assert loss[p].item() == pytest.approx(ref, abs=1e-10)
    assert (loss >= -1e-12).all()

    # gradient: exactly zero on the final logits (teacher), non-zero on the intermediate ones,
    # exactly zero on masked candidates
    total = loss.sum() + 0.0 * final_c.nan_to_num().sum()
    g_final, g_inter = torch.autograd.grad(total, (final_c, inter))
    assert (g_final == 0).all()
    assert (g_inter[:, ~cand_mask] == 0).all()
    assert (g_inter[:, cand_mask] != 0).any() and torch.isfinite(g_inter).all()
    # analytic: ∂KL_l/∂z^l = softmax_C(z^l) − softmax_C(z^L) on real candidates
    t = torch.softmax(final_c.detach().masked_fill(~cand_mask, NEG_INF), -1)
    s = torch.softmax(inter.detach().masked_fill(~cand_mask, NEG_INF), -1)
    assert torch.allclose(g_inter, (s - t).masked_fill(~cand_mask, 0.0), atol=1e-12)


def test_cpd_zero_when_layers_agree():
    cand_mask, _, ids, final_full, _, _ = standard_case(seed=6)
    final_c = final_c_of(final_full, ids, cand_mask)
    inter = torch.stack([final_c.nan_to_num(), final_c.nan_to_num() + 3.0])  # a shift changes nothing
    assert torch.allclose(cpd_loss(final_c, inter, cand_mask), torch.zeros(final_c.shape[0], dtype=torch.float64), atol=1e-12)


# ----------------------------------------------------------------------------------------------
# CRR
# ----------------------------------------------------------------------------------------------


def bf_prefix_rewards(scores, codes, level, prefix, K, T):
    P = scores.shape[0]
    out = torch.full((P, K), NEG_INF, dtype=torch.float64)
    for p in range(P):
        lv = int(level[p])
        for v in range(K):
            xs = [float(scores[p, i]) / T for i in range(codes.shape[0])
                  if codes[i, :lv].tolist() == prefix[p, :lv].tolist() and int(codes[i, lv]) == v]
            if xs:
                top = max(xs)
                out[p, v] = top + math.log(sum(math.exp(x - top) for x in xs))
    return out


def test_prefix_rewards_match_brute_force():
    g = torch.Generator().manual_seed(7)
    sizes, n_items, P, K, T = (3, 4, 5), 40, 14, 5, 0.5
    codes = torch.stack([torch.randint(0, s, (n_items,), generator=g) for s in sizes], 1)
    scores = torch.randn(P, n_items, generator=g, dtype=torch.float64) * 3
    level = torch.randint(0, 3, (P,), generator=g)
    prefix = codes[torch.randint(0, n_items, (P,), generator=g)].clone()  # real items' prefixes
    prefix[-1, 2] = 4                            # garbage beyond the level: ignored
    level[-1] = 2
    # a prefix no item has → the whole row is −inf
    present = {tuple(c) for c in codes[:, :2].tolist()}
    missing = next((a, b) for a in range(3) for b in range(4) if (a, b) not in present)
    prefix[0, :2] = torch.tensor(missing)
    level[0] = 2
    level[1] = 0  # level 0: only the first codebook (3 codes) → columns 3, 4 are −inf
    r = prefix_rewards(scores, codes, level, prefix, K, T)
    ref = bf_prefix_rewards(scores, codes, level, prefix, K, T)
    assert r.shape == (P, K) and not r.requires_grad
    assert torch.equal(torch.isinf(r), torch.isinf(ref)) and (r[torch.isinf(r)] < 0).all()
    fin = torch.isfinite(ref)
    assert torch.allclose(r[fin], ref[fin], atol=1e-10)
    assert torch.isinf(r[0]).all()
    assert torch.isinf(r[1, 3:]).all() and torch.isfinite(r[1, :3]).all()
    assert fin.sum() > P  # a real mix of finite and −inf rewards


def test_prefix_rewards_stable_for_large_scores_and_float32():
    codes = torch.tensor([[0, 0], [0, 1], [0, 1], [1, 0]])
    scores = torch.tensor([[1000.0, 2000.0, 2000.0, -1000.0]])
    r = prefix_rewards(scores, codes, torch.tensor([1]), torch.tensor([[0, 0]]), 3, 1.0)
    assert r.dtype == torch.float32
    assert r[0, 0].item() == pytest.approx(1000.0)
    assert r[0, 1].item() == pytest.approx(2000.0 + math.log(2))
    assert r[0, 2].item() == NEG_INF


def test_crr_matches_brute_force():
    cand_mask, gold, ids, final_full, _, inter = standard_case(seed=8, P=12, K=7)
    final_c = final_c_of(final_full, ids, cand_mask).requires_grad_(True)
    neg, _ = self_hard_negatives(aggregate_layers(inter), final_c, gold, cand_mask, 0.7)
    g = torch.Generator().manual_seed(9)
    rewards = torch.randn(12, 7, generator=g, dtype=torch.float64)
    rewards[torch.rand(12, 7, generator=g) < 0.3] = NEG_INF
    rewards[~cand_mask] = 123.0                # garbage in padded columns
    neg[0] = False                             # a row with no negative
    neg[1, :] = False
    neg[1, [c for c in range(7) if cand_mask[1, c] and c != gold[1]][:1]] = True
    rewards[1] = NEG_INF                       # a row whose negatives all have r = −∞
    assert neg[2:].any(1).sum() >= 3
    loss = crr_loss(final_c, rewards, neg, cand_mask)
    assert loss.shape == (12,) and torch.isfinite(loss).all()
    for p in range(12):
        pi = bf_softmax({v: float(rewards[p, v]) for v in range(7) if neg[p, v] and math.isfinite(rewards[p, v])})
        log_p = bf_log_softmax_c(final_c[p].detach(), cand_mask[p])
        ref = sum(x * (math.log(x) - log_p[v]) for v, x in pi.items() if x > 0)
        assert loss[p].item() == pytest.approx(ref, abs=1e-10)
    assert loss[0] == 0 and loss[1] == 0

    (grad,) = torch.autograd.grad(loss.sum(), final_c)
    assert (grad[~cand_mask] == 0).all() and torch.isfinite(grad).all()
    assert (grad[0] == 0).all() and (grad[1] == 0).all() and (grad[2:] != 0).any()


# ----------------------------------------------------------------------------------------------
# everything together
# ----------------------------------------------------------------------------------------------


def run_all(final_full, inter, gold, gold_vocab, ids, cand_mask, rewards, **kw):
    settings = dict(alpha=0.1, lam=1.0, beta=0.5, phi=0.9, aggregate="sum", use_cpo=True, use_cpd=True, use_crr=True)
    settings.update(kw)
    return ilrec_position_losses(final_full, inter, gold, gold_vocab, ids, cand_mask, rewards, **settings)


def test_position_losses_compose_and_ablate():
    cand_mask, gold, ids, final_full, gold_vocab, inter = standard_case(seed=10)
    rewards = torch.randn(*cand_mask.shape, dtype=torch.float64)
    final_c = final_c_of(final_full, ids, cand_mask)
    neg, w = self_hard_negatives(aggregate_layers(inter), final_c, gold, cand_mask, 0.9)
    cpo = cpo_loss(final_full, gold_vocab, ids, neg, w, 0.1)
    cpd = cpd_loss(final_c, inter, cand_mask)
    crr = crr_loss(final_c, rewards, neg, cand_mask)
    ce = F.cross_entropy(final_full, gold_vocab, reduction="none")

    total, stats = run_all(final_full, inter, gold, gold_vocab, ids, cand_mask, rewards)
    assert torch.allclose(total, cpo + 1.0 * cpd + 0.5 * crr, atol=1e-12)
    total_c, _ = run_all(final_full, inter, gold, gold_vocab, ids, cand_mask, rewards, final_c=final_c)
    assert torch.allclose(total_c, total, atol=1e-12)
    no_cpo, s2 = run_all(final_full, inter, gold, gold_vocab, ids, cand_mask, rewards, use_cpo=False)
    assert torch.allclose(no_cpo, ce + cpd + 0.5 * crr, atol=1e-12)
    only, s3 = run_all(final_full, inter, gold, gold_vocab, ids, cand_mask, None, use_cpd=False, use_crr=False)
    assert torch.allclose(only, cpo, atol=1e-12)
    assert s3["cpd"] == 0 and s3["crr"] == 0
    with pytest.raises(ValueError):
        run_all(final_full, inter, gold, gold_vocab, ids, cand_mask, None)

    n = neg.sum(1).double()
    assert stats["frac_with_negative"].item() == pytest.approx((n > 0).double().mean().item())
    assert stats["mean_negatives"].item() == pytest.approx(n.mean().item())
    assert stats["cpo"].item() == pytest.approx(cpo.mean().item())
    assert stats["cpd"].item() == pytest.approx(cpd.mean().item())
    assert stats["crr"].item() == pytest.approx(crr.mean().item())
    assert stats["ce"].item() == pytest.approx(ce.mean().item()) == pytest.approx(s2["ce"].item())
    assert all(v.dim() == 0 and not v.requires_grad for v in stats.values())
    assert 0 < stats["frac_with_negative"] < 1


def test_intermediate_gradient_comes_from_cpd_only():
    cand_mask, gold, ids, final_full, gold_vocab, inter0 = standard_case(seed=11)
    rewards = torch.randn(*cand_mask.shape, dtype=torch.float64)

    def grads(**kw):
        ff = final_full.clone().requires_grad_(True)
        it = inter0.clone().requires_grad_(True)
        total, _ = run_all(ff, it, gold, gold_vocab, ids, cand_mask, rewards, **kw)
        g_ff, g_it = torch.autograd.grad(total.sum(), (ff, it), allow_unused=True)
        return g_ff, g_it

    _, g0 = grads(lam=0.0)
    assert g0 is not None and (g0 == 0).all()                   # λ = 0: nothing reaches the layers
    _, g_none = grads(use_cpd=False)
    assert g_none is None                                        # no path at all without CPD
    _, g1 = grads(lam=2.0)
    it = inter0.clone().requires_grad_(True)
    (g_ref,) = torch.autograd.grad(2.0 * cpd_loss(final_c_of(final_full, ids, cand_mask), it, cand_mask).sum(), it)
    assert torch.allclose(g1, g_ref, atol=1e-12) and (g1 != 0).any()
    # the final-logit gradient is the same with λ = 0 and with CPD off: CPD's teacher is detached
    g_ff0, _ = grads(lam=0.0)
    g_ff1, _ = grads(lam=5.0)
    assert torch.allclose(g_ff0, g_ff1, atol=1e-12)


def test_no_nan_without_negatives_and_with_padded_columns():
    P, K, V = 4, 6, 10
    cand_mask = torch.zeros(P, K, dtype=torch.bool)
    cand_mask[:, :2] = True
    cand_mask[0, :] = True                      # one full row
    gold = torch.zeros(P, dtype=torch.long)
    ids = torch.full((P, K), -1)
    ids[:, :2] = torch.tensor([3, 7])
    ids[0] = torch.tensor([3, 7, 1, 2, 4, 5])
    gold_vocab = torch.full((P,), 3)
    final_full = torch.zeros(P, V)
    final_full[:, 3] = 10.0                     # gold far above everything: no negatives anywhere
    final_full.requires_grad_(True)
    inter = torch.full((2, P, K), NEG_INF)
    inter[:, :, :2] = torch.tensor([0.0, -5.0])
    inter[:, 0] = 0.0
    inter[:, 1:, 2:] = float("nan")              # garbage in padded columns
    inter.requires_grad_(True)
    rewards = torch.full((P, K), NEG_INF)
    total, stats = run_all(final_full, inter, gold, gold_vocab, ids, cand_mask, rewards, phi=1.0)
    assert stats["frac_with_negative"] == 0 and stats["mean_negatives"] == 0
    assert torch.isfinite(total).all() and all(torch.isfinite(v) for v in stats.values())
    total.sum().backward()
    assert torch.isfinite(final_full.grad).all() and torch.isfinite(inter.grad).all()
    assert (inter.grad[:, ~cand_mask] == 0).all()
    assert stats["crr"] == 0 and stats["cpo"].item() == pytest.approx(stats["ce"].item())


def test_low_precision_inputs_are_widened():
    cand_mask, gold, ids, final_full, gold_vocab, inter = standard_case(seed=12)
    rewards = torch.randn(*cand_mask.shape)
    ref, _ = run_all(final_full.float(), inter.float(), gold, gold_vocab, ids, cand_mask, rewards)
    low, _ = run_all(final_full.bfloat16(), inter.bfloat16(), gold, gold_vocab, ids, cand_mask, rewards)
    assert low.dtype == torch.float32
    assert torch.allclose(low, ref, atol=0.1, rtol=0.05)
    lsm = masked_log_softmax(torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.bfloat16), torch.tensor([[True, True, False]]))
    assert lsm.dtype == torch.float32 and lsm[0, 2] == 0
