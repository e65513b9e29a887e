"""Log-probabilities of several responses to one prompt, with the prompt run through the model once.

DPO and S-DPO score G = 1 + K responses per prompt (the target SID and K negatives). A response is
a few SID tokens; a prompt is a user's history, tens to hundreds of tokens. Scoring each (prompt,
response) pair as its own sequence repeats the prompt's forward and backward G times. Here:

1. the B left-padded prompts go through the model once with a KV cache (only the last position
   reaches the LM head: it predicts every response's first token);
2. the cache is repeated G times along the batch (`index_select`: the gradient of the G copies flows
   back into the one prompt pass);
3. the B·G responses (right-padded, all but their last token) go through the model on that cache.

The summed log-probabilities equal those of the concatenated sequences (tested, with gradients).
Rows are group-major: row g·B + b is response g of prompt b (g = 0: the chosen one).

Under gradient checkpointing a layer drops its cache (transformers re-runs layers in the backward
pass), so the caller falls back to concatenated sequences there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from sidrec.llm.kv_cache import cache_of, with_cache
from sidrec.llm.sft_data import IGNORE_INDEX, left_pad, sequence_logps


def collate_prompt_groups(prompts: Sequence[Sequence[int]], responses: Sequence[Sequence[Sequence[int]]],
                          pad_id: int) -> dict[str, torch.Tensor]:
    """B prompts and, per prompt, G responses (token ids, EOS included) → tensors for
    `prompt_group_logps`: prompt_ids / prompt_mask [B, P] (left-padded), response_ids [G·B, R]
    (right-padded, group-major) and response_labels (IGNORE_INDEX on padding)."""
    groups = {len(r) for r in responses}
    if len(groups) != 1:
        raise ValueError(f"every prompt needs the same number of responses, got {sorted(groups)}")
    g = groups.pop()
    prompt_ids, prompt_mask = left_pad(prompts, pad_id)
    rows = [responses[b][j] for j in range(g) for b in range(len(prompts))]
    width = max(len(r) for r in rows)
    if min(len(r) for r in rows) < 1:
        raise ValueError("a response has no token")
    response_ids = torch.full((len(rows), width), int(pad_id), dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, r in enumerate(rows):
        response_ids[i, :len(r)] = torch.tensor(list(r), dtype=torch.long)
        labels[i, :len(r)] = response_ids[i, :len(r)]
    return {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "response_ids": response_ids,
            "response_labels": labels, "groups": torch.tensor(g)}


def prompt_group_logps(model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed log-probability [G·B], labelled-token count [G·B]) of each response given its prompt."""
    groups = int(batch["groups"])
    prompt_mask = batch["prompt_mask"]
    position_ids = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=batch["prompt_ids"], attention_mask=prompt_mask, position_ids=position_ids,
                use_cache=True, logits_to_keep=1)
    cache = cache_of(out)
    if cache is None:
        raise RuntimeError("the model returned no KV cache for the prompts (gradient checkpointing?); "
                           "use concatenated sequences instead")
    n = prompt_mask.shape[0]
    tile = torch.arange(n, device=prompt_mask.device).repeat(groups)  # row g·B + b ← prompt b
    cache.reorder_cache(tile)
    first = out.logits[:, -1:, :].index_select(0, tile)  # predicts each response's first token
    response_ids = batch["response_ids"]
    labels = batch["response_labels"]
    if response_ids.shape[1] == 1:
        return sequence_logps(first, labels)
    feed = response_ids[:, :-1]  # the last token predicts nothing that is scored
    mask = torch.cat([prompt_mask.index_select(0, tile), (labels[:, :-1] != IGNORE_INDEX).long()], dim=1)
    start = prompt_mask.sum(-1).index_select(0, tile)
    positions = start[:, None] + torch.arange(feed.shape[1], device=feed.device)[None, :]
    rest = model(input_ids=feed, attention_mask=mask, position_ids=positions, **with_cache(cache),
                 use_cache=True).logits
    return sequence_logps(torch.cat([first, rest], dim=1), labels)


__all__ = ["collate_prompt_groups", "prompt_group_logps"]
