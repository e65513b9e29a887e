"""The LM loss with a level softmax on SID positions (`data.sid_softmax: level`).

Constrained decoding only ever compares a level's SID tokens with each other, so a SID position
needs the scores of that level's tokens only: `h · W[level ids]ᵀ` (a few dozen rows) instead of
the vocabulary-sized LM head (49k rows for SmolLM2). Positions whose label is not a SID token
(the EOS after an item2sid response, title tokens) keep the full head. The decoder normalises the
same way (`decoding.beam_search(..., normalize="level")`), so training and ranking agree.

    levels = SIDLevels(sid_tokens.per_level, vocab_size)
    loss, out = sid_aware_loss(model, batch, levels)        # model: the module to call (DDP or not)

The head rows come from the input embedding module when the model ties them (SmolLM2, and peft's
trainable SID rows under LoRA), else from the output head's weight.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from sidrec.errors import ConfigError
from sidrec.llm.sft_data import IGNORE_INDEX


class SIDLevels:
    """Per-level SID token ids and, for every vocabulary token, its level and index in the level (-1: none)."""

    def __init__(self, per_level: Sequence[Sequence[int]], vocab_size: int) -> None:
        self.ids = [torch.as_tensor(list(lvl), dtype=torch.long) for lvl in per_level]
        self.all_ids = torch.cat(self.ids)  # one head lookup for every level (one embedding gradient, not L)
        self.offsets = [0]
        for ids in self.ids:
            self.offsets.append(self.offsets[-1] + len(ids))
        self.level_of = torch.full((int(vocab_size),), -1, dtype=torch.long)
        self.index_in_level = torch.full((int(vocab_size),), -1, dtype=torch.long)
        for lvl, ids in enumerate(self.ids):
            if bool((self.level_of[ids] >= 0).any()):
                raise ConfigError("data.sid_softmax: level needs each SID token to belong to one level; these "
                                  "SIDs share tokens across levels: use data.sid_softmax: full")
            self.level_of[ids] = lvl
            self.index_in_level[ids] = torch.arange(len(ids))

    def to(self, device: torch.device | str) -> SIDLevels:
        self.ids = [t.to(device) for t in self.ids]
        self.all_ids = self.all_ids.to(device)
        self.level_of = self.level_of.to(device)
        self.index_in_level = self.index_in_level.to(device)
        return self


def unwrap(model: Any) -> Any:
    """The model under a DDP / accelerate wrapper."""
    return getattr(model, "module", model)


def head_rows(model: Any, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(output-head rows [K, H], bias [K] or None) of tokens `ids`, differentiable."""
    core = unwrap(model)
    head = core.get_output_embeddings()
    bias = getattr(head, "bias", None)
    if getattr(core.config, "tie_word_embeddings", False):
        rows = core.get_input_embeddings()(ids)
    else:
        rows = head.weight[ids]
    return rows, (bias[ids] if bias is not None else None)


def sid_aware_loss(model: Any, batch: dict[str, torch.Tensor], levels: SIDLevels) -> tuple[torch.Tensor, Any]:
    """Mean cross-entropy over labelled positions: a level softmax where the label is a SID token,
    the full vocabulary elsewhere. Returns (loss, model output)."""
    keep = int(batch["response_width"])
    out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                position_ids=batch["position_ids"], logits_to_keep=1, use_cache=False, output_hidden_states=True)
    hidden = out.hidden_states[-1][:, -keep:-1] if keep > 1 else out.hidden_states[-1][:, :0]
    labels = batch["labels"][:, -keep + 1:] if keep > 1 else batch["labels"][:, :0]
    return level_loss(model, hidden, labels, levels), out


def level_loss(model: Any, hidden: torch.Tensor, labels: torch.Tensor, levels: SIDLevels) -> torch.Tensor:
    """The loss of `sid_aware_loss` from final hidden states [B, T, H] and their next-token labels [B, T]."""
    mask = labels != IGNORE_INDEX
    h, y = hidden[mask], labels[mask]
    if y.numel() == 0:
        return hidden.sum() * 0.0
    level = levels.level_of[y]
    total = h.new_zeros((), dtype=torch.float32)
    all_rows, all_bias = head_rows(model, levels.all_ids)
    for lvl in range(len(levels.ids)):
        sel = level == lvl
        if bool(sel.any()):
            a, b = levels.offsets[lvl], levels.offsets[lvl + 1]
            logits = h[sel] @ all_rows[a:b].T
            if all_bias is not None:
                logits = logits + all_bias[a:b]
            total = total + F.cross_entropy(logits.float(), levels.index_in_level[y[sel]], reduction="sum")
    other = level < 0
    if bool(other.any()):
        logits = unwrap(model).get_output_embeddings()(h[other])
        total = total + F.cross_entropy(logits.float(), y[other], reduction="sum")
    return total / y.numel()
