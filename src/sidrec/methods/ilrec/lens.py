"""ILRec (arXiv 2602.17410, methods.md §5): self-hard negatives from the model's intermediate layers.

The batch-level mechanics the trainer uses: layer resolution, SID lookups, the candidate-only logit
lens and the CF model. Settings (`ilrec:` in a `method: ilrec` config) are in `.config`, the loss
arithmetic in `.losses`, the trainer in `.trainer`.

    ilrec:
      layers: [-2, -3, -4, -5]   # 1-based layer numbers, negative from the end: -1 is the last layer
      candidates: level          # level: every token of the target's SID level | trie: valid next codes
      aggregate: sum             # ž = Σ_l z^l (or mean)
      phi: 1.0                   # N_t = {v ≠ y : ž(v) ≥ φ·z(y)}
      alpha: 0.1                 # CPO: ẑ(v) = z(v) + α·w(v)·|z(v)| on negatives
      lam: 1.0                   # CPD weight
      beta: 0.1                  # CRR weight
      temperature: 1.0           # CRR: r(v) = logsumexp over items under the prefix of s_u(i)/T
      cf_run: runs/sasrec        # the trained SASRec run CRR scores users with
      use_cpo / use_cpd / use_crr: true   # ablations

How one batch is processed (no per-position Python loop, no [batch, seq, vocab] tensor for any
intermediate layer):

1. one forward with `output_hidden_states=True` and `logits_to_keep` = the response window: the
   final logits exist only for response positions (as in SFT);
2. target positions = response positions of `seqrec` rows whose label is a SID token; each one's
   level, gold code and gold prefix come from the labels through lookup tensors;
3. the chosen layers' hidden states are gathered at those P positions only → [Λ, P, d], passed
   through the model's final norm, and projected onto the head rows of each position's candidates
   only (`W[C]`, [P, K, d]) → [Λ, P, K]. The norm and head act as fixed read-outs on this path
   (their weights are detached), so CPD's gradient reaches the intermediate layers and nothing else;
4. CRR: SASRec scores the batch's histories once ([B, items]); token rewards are a masked
   logsumexp over the items under each candidate prefix, computed from the SID codes in the batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.func import functional_call

from sidrec.errors import ConfigError


def resolve_layers(layers: list[int], n_layers: int) -> list[int]:
    """Config layer numbers → hidden_states indices (1 … L-1; the last layer L is the final one)."""
    out = []
    for layer in layers:
        idx = n_layers + 1 + layer if layer < 0 else layer
        if not 1 <= idx <= n_layers - 1:
            raise ConfigError(
                f"ilrec.layers: layer {layer} is not an intermediate layer of this {n_layers}-layer model "
                f"(use 1 … {n_layers - 1}, or -2 … -{n_layers}; -1 is the last layer, whose logits are the final ones)")
        out.append(idx)
    if len(set(out)) != len(out):
        raise ConfigError(f"ilrec.layers: {layers} names a layer twice in a {n_layers}-layer model")
    return out


def final_norm(model: Any) -> torch.nn.Module:
    """The final normalisation before the LM head (Llama/Qwen/Mistral/SmolLM, GPT-2, GPT-NeoX, OPT)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    for path in ("model.norm", "transformer.ln_f", "gpt_neox.final_layer_norm", "model.decoder.final_layer_norm",
                 "model.final_layernorm"):
        mod: Any = base
        for part in path.split("."):
            mod = getattr(mod, part, None)
            if mod is None:
                break
        if isinstance(mod, torch.nn.Module):
            return mod
    raise ConfigError(f"ILRec: cannot find the final norm of {type(base).__name__}; "
                      "supported: model.norm, transformer.ln_f, gpt_neox.final_layer_norm")


def n_transformer_layers(model: Any) -> int:
    config = model.config if hasattr(model, "config") else model.get_base_model().config
    return int(config.num_hidden_layers)


class SIDLookup:
    """Tensors that turn SID token ids into (level, code) and levels into candidate token ids."""

    def __init__(self, per_level: list[list[int]], vocab_size: int, item_codes: np.ndarray,
                 device: torch.device | str) -> None:
        m = len(per_level)
        width = max(len(x) for x in per_level)
        self.level_of = torch.full((vocab_size,), -1, dtype=torch.long)
        self.code_of = torch.full((vocab_size,), -1, dtype=torch.long)
        self.cand_ids = torch.zeros((m, width), dtype=torch.long)
        self.cand_mask = torch.zeros((m, width), dtype=torch.bool)
        for lvl, ids in enumerate(per_level):
            t = torch.tensor(ids, dtype=torch.long)
            self.level_of[t] = lvl
            self.code_of[t] = torch.arange(len(ids))
            self.cand_ids[lvl, : len(ids)] = t
            self.cand_mask[lvl, : len(ids)] = True
        self.n_levels, self.width = m, width
        self.item_codes = torch.as_tensor(item_codes, dtype=torch.long)
        self.to(device)

    def to(self, device: torch.device | str) -> SIDLookup:
        for name in ("level_of", "code_of", "cand_ids", "cand_mask", "item_codes"):
            setattr(self, name, getattr(self, name).to(device))
        return self


def candidate_logits(norm: torch.nn.Module, head: torch.nn.Module, hidden: torch.Tensor,
                     cand_ids: torch.Tensor) -> torch.Tensor:
    """Logit lens on the candidates only: [Λ, P, d] hidden states → [Λ, P, K] = W[C]·norm(h).

    `norm` and `head` are the model's final norm and LM head (`final_norm`, `get_output_embeddings`);
    their weights are used detached (fixed read-outs), so gradients flow into `hidden` only.
    """
    params = {k: v.detach() for k, v in norm.named_parameters()}
    h = functional_call(norm, {**params, **dict(norm.named_buffers())}, (hidden,))
    weight = getattr(head, "weight", None)
    if isinstance(head, torch.nn.Linear) and isinstance(weight, torch.Tensor):
        rows = weight.detach()[cand_ids]  # [P, K, d]
        out = torch.einsum("lpd,pkd->lpk", h.to(rows.dtype), rows)
        if head.bias is not None:
            out = out + head.bias.detach()[cand_ids]
        return out
    # a wrapped head (peft trainable tokens): run it on the P positions, then keep the candidates
    full = head(h)  # [Λ, P, V]: P positions only, never the whole sequence
    return full.gather(-1, cand_ids.unsqueeze(0).expand(full.shape[0], -1, -1))


def load_cf_model(cf_run: Path, device: torch.device | str) -> tuple[Any, list[str]]:
    """The SASRec (or any sidrec sequential model) of `ilrec.cf_run`, frozen, in eval mode."""
    from sidrec.models.base import load_frozen_run_model

    return load_frozen_run_model(cf_run, device, setting="ilrec.cf_run")
