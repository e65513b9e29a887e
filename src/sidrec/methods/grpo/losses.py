"""GRPO's arithmetic on per-token log-probabilities (pure tensor code, unit-tested against hand values).

Advantages (one group = the G rollouts of one prompt, rewards r_1 … r_G):

    A_i = (r_i − mean(r)) / (std(r) + eps)      grpo, dapo, gspo (std: the unbiased sample std)
    A_i =  r_i − mean(r)                         dr_grpo (Dr. GRPO: no division by the std)

Per token t of rollout i, with ρ = exp(log π − log π_old) and the k3 estimator of KL(π ‖ π_ref),
k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1:

    ℓ_it = −min(ρ_it·A_i, clip(ρ_it, 1 − ε_low, 1 + ε_high)·A_i) + β·k3_it

and the variants aggregate it over the kept rollouts S (a zero-variance group can be left out) and
their tokens T_i:

    grpo     mean_{i∈S} ( Σ_t ℓ_it / |T_i| )                   sequence mean, then mean over sequences
    dr_grpo  Σ_{i∈S} Σ_t ℓ_it / (|S| · max_length)              token sum over a constant length
    dapo     Σ_{i∈S} Σ_t ℓ_it / Σ_{i∈S} |T_i|                   token-level (every token weighs the same)
    gspo     mean_{i∈S} ( −min(s_i·A_i, clip(s_i)·A_i) + β·mean_t k3_it ),  s_i = exp(mean_t (log π − log π_old))

(GSPO's sequence-level ratio replaces the token ratios.) The clip fraction is the share of kept tokens
(gspo: sequences) whose clipped term is the active one (ratio outside the range on the side the
advantage pushes it towards).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Variant = Literal["grpo", "dr_grpo", "dapo", "gspo"]
STD_EPS = 1e-4


def group_advantages(rewards: torch.Tensor, *, scale: bool = True, eps: float = STD_EPS
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """rewards [B, G] → (advantages [B, G], zero-variance groups [B] bool). `scale`: divide by the
    group's unbiased std + eps (every variant but dr_grpo)."""
    mean = rewards.mean(dim=1, keepdim=True)
    std = rewards.std(dim=1, keepdim=True) if rewards.shape[1] > 1 else torch.zeros_like(mean)
    centred = rewards - mean
    zero = (rewards.max(dim=1).values - rewards.min(dim=1).values) <= 1e-12
    adv = centred / (std + eps) if scale else centred
    return adv.masked_fill(zero[:, None], 0.0), zero


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """exp(ref − pol) − (ref − pol) − 1, elementwise (≥ 0, unbiased for KL(π ‖ π_ref) under π)."""
    d = ref_logps - logps
    return torch.exp(d) - d - 1


@dataclass
class PolicyLoss:
    loss: torch.Tensor
    kl: float  # mean k3 over kept tokens
    clip_fraction: float
    kept: int  # rollouts in the loss


def policy_loss(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                variant: Variant = "grpo", epsilon_low: float = 0.2, epsilon_high: float = 0.2,
                beta: float = 0.0, ref_logps: torch.Tensor | None = None, keep: torch.Tensor | None = None,
                max_length: int | None = None) -> PolicyLoss:
    """The loss of the module docstring: logps / old_logps / ref_logps [N, T] per-token log-probabilities
    of N rollouts, mask [N, T] (their tokens), advantages [N], keep [N] (rollouts in the loss; None: all),
    max_length (dr_grpo's constant; None: T)."""
    mask = mask.bool()
    if keep is not None:
        mask = mask & keep.bool()[:, None]
    seq_kept = mask.any(dim=1)
    n_kept = int(seq_kept.sum())
    if n_kept == 0:
        return PolicyLoss(loss=logps.sum() * 0.0, kl=0.0, clip_fraction=0.0, kept=0)
    m = mask.to(logps.dtype)
    n_tokens = m.sum(dim=1)
    log_ratio = (logps - old_logps) * m
    kl = k3_kl(logps, ref_logps) * m if (beta != 0 and ref_logps is not None) else None
    adv = advantages.to(logps.dtype)
    lo, hi = 1.0 - epsilon_low, 1.0 + epsilon_high
    if variant == "gspo":
        ratio = torch.exp(log_ratio.sum(dim=1) / n_tokens.clamp(min=1))  # [N]
        per_seq = -torch.minimum(ratio * adv, ratio.clamp(lo, hi) * adv)
        if kl is not None:
            per_seq = per_seq + beta * kl.sum(dim=1) / n_tokens.clamp(min=1)
        loss = per_seq[seq_kept].mean()
        clipped = ((ratio < lo) & (adv < 0)) | ((ratio > hi) & (adv > 0))
        clip_fraction = float(clipped[seq_kept].float().mean())
    else:
        ratio = torch.exp(log_ratio)  # [N, T]
        a = adv[:, None]
        per_token = -torch.minimum(ratio * a, ratio.clamp(lo, hi) * a)
        if kl is not None:
            per_token = per_token + beta * kl
        per_token = per_token * m
        if variant == "grpo":
            loss = (per_token.sum(dim=1)[seq_kept] / n_tokens[seq_kept]).mean()
        elif variant == "dr_grpo":
            loss = per_token.sum() / (n_kept * (max_length if max_length is not None else logps.shape[1]))
        elif variant == "dapo":
            loss = per_token.sum() / n_tokens.sum()
        else:
            raise ValueError(f"unknown GRPO loss variant {variant!r}")
        clipped = (((ratio < lo) & (a < 0)) | ((ratio > hi) & (a > 0))) & mask
        clip_fraction = float(clipped.sum() / mask.sum())
    mean_kl = float(kl.detach().sum() / m.sum()) if kl is not None else 0.0
    return PolicyLoss(loss=loss, kl=mean_kl, clip_fraction=clip_fraction, kept=n_kept)


__all__ = ["PolicyLoss", "group_advantages", "k3_kl", "policy_loss"]
