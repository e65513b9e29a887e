"""ILRec loss arithmetic (methods.md §5) as pure, vectorised torch functions.

Everything works on the P target positions (SID tokens of `seqrec` responses, flattened over the
batch) and, except for the CPO cross-entropy, in *candidate space*: position p has a candidate set
C_p of SID tokens padded to K columns.

    cand_mask      [P, K] bool   real candidates (padded columns are False)
    gold           [P]    long   the gold token's column (always a real candidate)
    cand_vocab_ids [P, K] long   vocabulary id of each column (any value where cand_mask is False)
    final_full     [P, V]        final-layer logits over the full vocabulary
    final_c        [P, K]        final-layer logits of the candidates (= final_full gathered)
    inter          [Λ, P, K]     intermediate ("logit lens") logits of the candidates, Λ layers
    rewards        [P, K]        CRR token rewards r_p(v) (−inf where no item has that prefix)

    loss, stats = ilrec_position_losses(final_full, inter, gold, gold_vocab, cand_vocab_ids, cand_mask,
                                        rewards, alpha=0.1, lam=1.0, beta=0.1, phi=1.0, aggregate="sum",
                                        use_cpo=True, use_cpd=True, use_crr=True)
    (loss.sum() / n_targets).backward()

Notation: softmax_C is the softmax restricted to the real candidates of a row; softmax_N the
softmax restricted to the self-hard negatives N_p of a row. There is no Python loop over positions
(or items) anywhere; the arithmetic is done in float32 (float64 inputs stay float64; half / bfloat16 are widened). Padded candidate
columns never become negatives, never carry probability mass and receive exactly zero gradient.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "aggregate_layers",
    "cpd_loss",
    "cpo_loss",
    "crr_loss",
    "ilrec_position_losses",
    "masked_log_softmax",
    "masked_softmax",
    "prefix_rewards",
    "self_hard_negatives",
]

Aggregate = Literal["sum", "mean"]


def _wide(x: Tensor) -> Tensor:
    """x in float32, or float64 when it already is (half / bfloat16 are widened)."""
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


# ----------------------------------------------------------------------------------------------
# masked softmax helpers
# ----------------------------------------------------------------------------------------------


def masked_log_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """log softmax over the columns where `mask` is True, per row; 0 where `mask` is False.

    Rows with no True column are all 0 (no NaN). Masked columns receive exactly zero gradient.
    """
    x = _wide(logits).masked_fill(~mask, float("-inf"))
    top = x.amax(dim=-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top)).detach()
    shifted = torch.where(mask, x - top, torch.zeros_like(x))
    lse = torch.where(mask, shifted.exp(), torch.zeros_like(x)).sum(dim=-1, keepdim=True)
    lse = torch.where(lse > 0, lse, torch.ones_like(lse)).log()
    return torch.where(mask, shifted - lse, torch.zeros_like(x))


def masked_softmax(logits: Tensor, mask: Tensor) -> Tensor:
    """softmax over the columns where `mask` is True, per row; 0 elsewhere and on empty rows."""
    log_p = masked_log_softmax(logits, mask)
    return torch.where(mask, log_p.exp(), torch.zeros_like(log_p))


# ----------------------------------------------------------------------------------------------
# self-hard negatives
# ----------------------------------------------------------------------------------------------


def aggregate_layers(inter: Tensor, how: Aggregate = "sum") -> Tensor:
    """ž_p = Σ_{l∈Λ} z_p^l ("sum") or (1/|Λ|) Σ_{l∈Λ} z_p^l ("mean"): [Λ, P, K] → [P, K]."""
    if inter.dim() != 3:
        raise ValueError(f"inter must be [layers, P, K], got shape {tuple(inter.shape)}")
    if how == "sum":
        return inter.sum(dim=0)
    if how == "mean":
        return inter.mean(dim=0)
    raise ValueError(f"aggregate must be 'sum' or 'mean', got {how!r}")


@torch.no_grad()
def self_hard_negatives(
    agg: Tensor, final: Tensor, gold: Tensor, cand_mask: Tensor, phi: float = 1.0
) -> tuple[Tensor, Tensor]:
    """Self-hard negatives and their weights, under stop-gradient.

        N_p = { v ∈ C_p, v ≠ y_p : ž_p(v) ≥ φ · z_p(y_p) }
        w_p(v) = exp ž_p(v) / Σ_{u∈N_p} exp ž_p(u)   for v ∈ N_p,  0 otherwise

    ž = `agg` (aggregated intermediate logits [P, K]); z_p(y_p) = the FINAL logit of the gold
    column (`final` [P, K], `gold` [P]). Rows without negatives get all-zero weights.
    Returns (neg_mask [P, K] bool, weights [P, K] float32 or float64), both detached.
    """
    agg, final = _wide(agg.detach()), _wide(final.detach())
    cols = torch.arange(agg.shape[-1], device=agg.device)
    threshold = phi * final.gather(1, gold.long().unsqueeze(1))  # [P, 1]
    neg_mask = cand_mask & (cols.unsqueeze(0) != gold.long().unsqueeze(1)) & (agg >= threshold)
    return neg_mask, masked_softmax(agg, neg_mask)


# ----------------------------------------------------------------------------------------------
# CPO / CPD / CRR
# ----------------------------------------------------------------------------------------------


def cpo_loss(
    final_full: Tensor,
    gold_vocab: Tensor,
    cand_vocab_ids: Tensor,
    neg_mask: Tensor,
    weights: Tensor,
    alpha: float = 0.1,
) -> Tensor:
    """Cross-layer preference optimisation, per position [P].

        ẑ_p(v) = z_p(v) + α · w_p(v) · |z_p(v)|   for v ∈ N_p,   z_p(v) otherwise
        L_CPO(p) = −log softmax_V(ẑ_p)[y_p]       (full vocabulary V)

    The additive |z| form raises every negative's logit, whatever its sign (the reference code's
    (1 + αw)·z lowers a negative logit and so rewards the negative). `neg_mask` and `weights` are
    constants; gradient flows through z, including the |z| of the bump (∂ẑ/∂z = 1 + α·w·sign z).
    With no negatives (or α = 0) this is the plain cross-entropy.
    """
    z = _wide(final_full)
    ids = torch.where(neg_mask, cand_vocab_ids.long(), torch.zeros_like(cand_vocab_ids, dtype=torch.long))
    w = torch.where(neg_mask, weights.detach().to(z.dtype), torch.zeros((), dtype=z.dtype, device=z.device))
    bump = alpha * w * z.gather(1, ids).abs()  # 0 outside N_p (ids there point at column 0, harmlessly)
    z_hat = z.scatter_add(1, ids, bump)
    return F.cross_entropy(z_hat, gold_vocab.long(), reduction="none")


def cpd_loss(final_c: Tensor, inter: Tensor, cand_mask: Tensor) -> Tensor:
    """Cross-layer preference distillation, per position [P].

        L_CPD(p) = Σ_{l∈Λ} KL( sg(P_p^L|C) ‖ P_p^l|C )
                 = Σ_l Σ_{v∈C_p} P^L(v) · (log P^L(v) − log P^l(v))

    P|C = softmax over the real candidates (masked columns excluded from both softmaxes; terms
    with P^L(v) = 0 contribute 0). The teacher (final layer) is detached: the gradient reaches only
    `inter`, and never its masked columns.
    """
    log_t = masked_log_softmax(final_c.detach(), cand_mask)  # [P, K]
    t = torch.where(cand_mask, log_t.exp(), torch.zeros_like(log_t))
    mask = cand_mask.unsqueeze(0).expand_as(inter)
    log_s = masked_log_softmax(inter, mask)  # [Λ, P, K]
    kl = t.unsqueeze(0) * (log_t.unsqueeze(0) - log_s)  # 0 where t == 0 (log terms are finite)
    return kl.sum(dim=-1).sum(dim=0)


def crr_loss(final_c: Tensor, rewards: Tensor, neg_mask: Tensor, cand_mask: Tensor) -> Tensor:
    """Collaborative reward regularisation, per position [P].

        π_p = softmax over N_p of r_p  (0 outside N_p; negatives with r = −∞ get π = 0)
        L_CRR(p) = KL(π_p ‖ P_p^L|C) = Σ_{v∈N_p} π_p(v) · (log π_p(v) − log softmax_C(z_p)(v))

    Rows with no negative, or whose negatives all have r = −∞, contribute 0. π is a constant;
    the gradient reaches `final_c` (real candidate columns only).
    """
    with torch.no_grad():
        valid = neg_mask & cand_mask & torch.isfinite(rewards)
        log_pi = masked_log_softmax(rewards.detach(), valid)
        pi = torch.where(valid, log_pi.exp(), torch.zeros_like(log_pi))
    log_p = masked_log_softmax(final_c, cand_mask)
    return (pi * (log_pi - log_p)).sum(dim=-1)


# ----------------------------------------------------------------------------------------------
# CRR token rewards from a CF model's item scores
# ----------------------------------------------------------------------------------------------


@torch.no_grad()
def prefix_rewards(
    scores: Tensor, item_codes: Tensor, level: Tensor, prefix: Tensor, K: int, temperature: float = 1.0
) -> Tensor:
    """CRR token rewards [P, K] from CF item scores (a constant: computed without gradient).

        r_p(v) = log Σ_{i : codes[i, :ℓ_p] = prefix[p, :ℓ_p], codes[i, ℓ_p] = v} exp(s_p(i) / T)

    with ℓ_p = `level[p]` (0-based SID level of the target) and −∞ where no item has that prefix.
    `scores` [P, n_items] are the CF scores s_u(i) of the user of position p; `item_codes`
    [n_items, m] the items' codes (level ℓ_p's codes of the matching items must lie in [0, K));
    `prefix` [P, m] the gold codes (entries ≥ ℓ_p are ignored). Column v is code v of level ℓ_p.
    Vectorised: a loop over the m SID levels builds the prefix match [P, n_items]; the per-code
    logsumexp is a scatter_reduce("amax") followed by a scatter_add of the shifted exponentials.
    """
    P, n_items = scores.shape
    codes = item_codes.to(scores.device).long()
    level = level.to(scores.device).long()
    prefix = prefix.to(scores.device).long()
    m = codes.shape[1]
    match = torch.ones(P, n_items, dtype=torch.bool, device=scores.device)
    for j in range(m):  # loop over SID levels only
        same = codes[:, j].unsqueeze(0) == prefix[:, j].unsqueeze(1)  # [P, n_items]
        match &= same | (level <= j).unsqueeze(1)
    code_at = codes.t()[level]  # [P, n_items]: each item's code at level ℓ_p (needs 0 ≤ ℓ_p < m)
    index = torch.where(match, code_at, torch.zeros_like(code_at))
    s = _wide(scores) / temperature
    s = torch.where(match, s, torch.full_like(s, float("-inf")))
    top = torch.full((P, K), float("-inf"), dtype=s.dtype, device=s.device)
    top = top.scatter_reduce(1, index, s, reduce="amax", include_self=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    e = torch.where(match, (s - top.gather(1, index)).exp(), torch.zeros_like(s))
    total = torch.zeros_like(top).scatter_add(1, index, e)
    return torch.where(total > 0, top + total.clamp(min=1.0).log(), torch.full_like(total, float("-inf")))


# ----------------------------------------------------------------------------------------------
# everything for one batch of target positions
# ----------------------------------------------------------------------------------------------


def ilrec_position_losses(
    final_full: Tensor,
    inter: Tensor,
    gold: Tensor,
    gold_vocab: Tensor,
    cand_vocab_ids: Tensor,
    cand_mask: Tensor,
    rewards: Tensor | None = None,
    *,
    final_c: Tensor | None = None,
    alpha: float,
    lam: float,
    beta: float,
    phi: float,
    aggregate: Aggregate,
    use_cpo: bool,
    use_cpd: bool,
    use_crr: bool,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Per-position ILRec loss [P] and detached 0-dim statistics.

        L(p) = L_CPO(p) + λ · L_CPD(p) + β · L_CRR(p)

    with L_CPO replaced by the plain full-vocabulary cross-entropy when `use_cpo` is False
    (ablation "without CPO" = CE + λ·CPD + β·CRR); a disabled CPD / CRR term is 0. Negatives and
    weights are computed from `aggregate_layers(inter)` under stop-gradient, so the intermediate
    logits learn through CPD only. `final_c` defaults to `final_full` gathered at `cand_vocab_ids`.

    stats (0-dim, detached): frac_with_negative (share of positions with |N_p| ≥ 1),
    mean_negatives (mean |N_p|), ce (plain cross-entropy, always), cpo, cpd, crr (means over
    positions; 0 for a disabled term).
    """
    if use_crr and rewards is None:
        raise ValueError("use_crr needs rewards (see prefix_rewards)")
    if final_c is None:
        safe_ids = torch.where(cand_mask, cand_vocab_ids.long(), torch.zeros_like(cand_vocab_ids, dtype=torch.long))
        final_c = final_full.gather(1, safe_ids)
    zero = torch.zeros((), dtype=_wide(final_full).dtype, device=final_full.device)

    neg_mask, weights = self_hard_negatives(aggregate_layers(inter.detach(), aggregate), final_c, gold, cand_mask, phi)
    if use_cpo:
        main = cpo_loss(final_full, gold_vocab, cand_vocab_ids, neg_mask, weights, alpha)
        with torch.no_grad():
            ce = F.cross_entropy(_wide(final_full.detach()), gold_vocab.long(), reduction="none")
    else:
        main = F.cross_entropy(_wide(final_full), gold_vocab.long(), reduction="none")
        ce = main.detach()
    total = main
    cpd = cpd_loss(final_c, inter, cand_mask) if use_cpd else None
    if cpd is not None:
        total = total + lam * cpd
    crr = crr_loss(final_c, rewards, neg_mask, cand_mask) if use_crr and rewards is not None else None
    if crr is not None:
        total = total + beta * crr

    n_neg = neg_mask.sum(dim=-1).float()
    stats = {
        "frac_with_negative": (n_neg > 0).float().mean(),
        "mean_negatives": n_neg.mean(),
        "ce": ce.mean(),
        "cpo": main.detach().mean() if use_cpo else zero,
        "cpd": cpd.detach().mean() if cpd is not None else zero,
        "crr": crr.detach().mean() if crr is not None else zero,
    }
    return total, stats
