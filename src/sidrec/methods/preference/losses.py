"""DPO and S-DPO losses on sequence log-probabilities (pure tensor arithmetic, unit-tested by hand).

With implicit rewards h(y) = β·(log π(y|x) − log π_ref(y|x)):

- DPO (Rafailov et al., 2023), one pair (y⁺, y⁻):   L = −log σ(h(y⁺) − h(y⁻));
  with K negatives per prompt we average the K pairwise losses.
- S-DPO (Chen et al., 2024), K negatives at once:    L = −log σ(−log Σ_k exp(h(y⁻_k) − h(y⁺)));
  for K = 1 it equals DPO.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from sidrec.llm.sft_data import sequence_logps

__all__ = ["dpo_loss", "implicit_rewards", "sdpo_loss", "sequence_logps"]


def implicit_rewards(policy: torch.Tensor, reference: torch.Tensor, beta: float) -> torch.Tensor:
    """β·(log π − log π_ref), elementwise."""
    return beta * (policy - reference)


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
             beta: float) -> torch.Tensor:
    """Per-prompt DPO loss: chosen [B], rejected [K, B] (K pairs per prompt, averaged) → [B]."""
    h_pos = implicit_rewards(chosen, ref_chosen, beta)
    h_neg = implicit_rewards(rejected, ref_rejected, beta)
    return -F.logsigmoid(h_pos.unsqueeze(0) - h_neg).mean(0)


def sdpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
              beta: float) -> torch.Tensor:
    """Per-prompt S-DPO loss: chosen [B], rejected [K, B] → [B]."""
    h_pos = implicit_rewards(chosen, ref_chosen, beta)
    h_neg = implicit_rewards(rejected, ref_rejected, beta)
    return -F.logsigmoid(-torch.logsumexp(h_neg - h_pos.unsqueeze(0), dim=0))
