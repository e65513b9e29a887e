"""GRPO's rewards for the G rollouts of each prompt (pure tensor code on [B, G] item indices).

Every reward is computed on the group `items` [B, G] (item indices, all valid and distinct) given each
prompt's target item `targets` [B]; the trainer's reward is Σ_k weight_k · reward_k (`grpo.rewards`).

- `rule`:     1 for the target item, else 0.
- `ranking`:  rule plus an NDCG-shaped penalty on the wrong rollouts: the rollout at policy rank ρ
              (1 = the policy's most likely of the G, by log-probability) gets −(1/log2(ρ+1)) / Z, with Z
              the sum of 1/log2(ρ'+1) over the group's wrong rollouts, so the penalties of a group sum to
              −1 and a confident mistake costs most (MiniOneRec's ranking reward, normalised).
- `prefix`:   the number of leading SID levels the rollout shares with the target, over the number of
              levels (1 for the target; partial credit for a near miss in the SID tree).
- `cf`:       softmax over the group of a trained SASRec's scores s_u(i) / T for the user's history
              (sums to 1 per group: the CF model's preference among the rollouts).
- `semantic`: the cosine between the item text embeddings of the rollout and of the target.
"""

from __future__ import annotations

import torch


def rule_reward(items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, G]: 1.0 where the rollout is the target."""
    return (items == targets[:, None]).float()


def policy_ranks(scores: torch.Tensor) -> torch.Tensor:
    """[B, G] 1-based rank of each rollout within its group by the policy's log-probability (ties: the
    earlier rollout first)."""
    order = scores.argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(1, scores.shape[1] + 1, device=scores.device).expand_as(order).contiguous())
    return ranks


def ranking_reward(items: torch.Tensor, targets: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """[B, G]: rule + the normalised NDCG-shaped penalty on wrong rollouts (module docstring)."""
    hit = rule_reward(items, targets)
    wrong = 1.0 - hit
    weight = 1.0 / torch.log2(policy_ranks(scores).double() + 1.0)
    weight = weight * wrong.double()
    z = weight.sum(dim=1, keepdim=True)
    penalty = torch.where(z > 0, -weight / z.clamp(min=1e-12), torch.zeros_like(weight))
    return hit + penalty.float()


def prefix_reward(items: torch.Tensor, targets: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """[B, G]: leading SID levels shared with the target / levels; `codes` [n_items, L]."""
    got = codes[items]  # [B, G, L]
    want = codes[targets][:, None, :]  # [B, 1, L]
    shared = (got == want).long().cumprod(dim=-1).sum(dim=-1)
    return shared.float() / codes.shape[1]


def cf_reward(cf_scores: torch.Tensor, items: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """[B, G]: softmax over the group of the CF scores [B, n_items] of the rollouts, / temperature."""
    return torch.softmax(cf_scores.float().gather(1, items) / temperature, dim=1)


def semantic_reward(embeddings: torch.Tensor, items: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, G]: cosine between the embeddings [n_items, d] of each rollout and of the target."""
    e = torch.nn.functional.normalize(embeddings.float(), dim=-1)
    return (e[items] * e[targets][:, None, :]).sum(dim=-1)


__all__ = ["cf_reward", "policy_ranks", "prefix_reward", "ranking_reward", "rule_reward", "semantic_reward"]
