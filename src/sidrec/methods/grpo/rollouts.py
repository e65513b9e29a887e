"""GRPO's rollouts: G distinct, valid items per prompt from the trie, and the policy's per-token
log-probabilities of them with one prompt pass.

    items, scores = generate_rollouts(stepper, trie, prompt_ids, prompt_mask, g=16, normalize="level")
    logps = rollout_token_logps(model, prompt_ids, prompt_mask, item_tokens[items].flatten(0, 1), 16, levels)

Rollouts come from `sidrec.llm.decoding`: `beam_search` (the policy's top-G, deterministic) or
`stochastic_beam_search` (G items drawn without replacement by Gumbel top-k over the trie), so a
rollout is never an invalid SID and the G of a prompt are distinct. A rollout is the item's SID
tokens only (no EOS): what decoding scores an item by.

`rollout_token_logps` is the shared-prefix forward of `sidrec.llm.shared_prefix.prompt_group_logps`
(the B prompts once with a KV cache, repeated G times, the B·G responses on it, gradients flowing
into the one prompt pass) returning per-token log-probabilities, normalised as decoding normalises
them: over the full vocabulary (`data.sid_softmax: full`), or over the level's SID tokens only
(`level`: the final hidden state against that level's head rows, as `sidrec.llm.sid_head` trains).
Its sum over the tokens equals the item's score in `exact_item_scores` (tested). Rows are
prompt-major: row b·G + g is rollout g of prompt b.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from sidrec.llm.decoding import Stepper, beam_search, stochastic_beam_search
from sidrec.llm.kv_cache import cache_of, with_cache
from sidrec.llm.sid_head import SIDLevels, head_rows
from sidrec.sids.trie import TokenTrie


@torch.no_grad()
def generate_rollouts(stepper: Stepper, trie: TokenTrie, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, *,
                      g: int, normalize: Literal["full", "level"] = "full", rollout: str = "beam",
                      num_beams: int | None = None, temperature: float = 1.0,
                      generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(item indices [B, G], the policy's log-probability scores [B, G]), best first."""
    if rollout == "beam":
        return beam_search(stepper, trie, prompt_ids, prompt_mask, num_beams=max(g, num_beams or g), top_k=g,
                           normalize=normalize)
    if generator is None:
        raise ValueError("sampled rollouts need a generator")
    return stochastic_beam_search(stepper, trie, prompt_ids, prompt_mask, num_samples=g, generator=generator,
                                  temperature=temperature, normalize=normalize)


def rollout_token_logps(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, responses: torch.Tensor,
                        groups: int, levels: SIDLevels | None = None, *, shared_prefix: bool = True) -> torch.Tensor:
    """log π(token | prompt, earlier tokens) [B·G, L] of responses [B·G, L] (SID token ids, prompt-major:
    row b·G + g answers prompt b); `levels`: level-normalised (None: full vocabulary).

    shared_prefix: the B prompts are encoded once and their KV cache, repeated G times, serves the
    rollouts. False: each rollout is one concatenated sequence, prompt + response (G× the prompt compute,
    no cache: what gradient checkpointing needs)."""
    level = levels is not None
    states = (_shared_prefix_states if shared_prefix else _concatenated_states)(
        model, prompt_ids, prompt_mask, responses, groups, level)
    if not level:
        return torch.log_softmax(states.float(), dim=-1).gather(-1, responses.unsqueeze(-1)).squeeze(-1)
    assert levels is not None
    rows, bias = head_rows(model, levels.all_ids)
    columns = []
    for j in range(responses.shape[1]):
        a, b = levels.offsets[j], levels.offsets[j + 1]
        logits = states[:, j] @ rows[a:b].T
        if bias is not None:
            logits = logits + bias[a:b]
        code = levels.index_in_level[responses[:, j]]
        columns.append(torch.log_softmax(logits.float(), dim=-1).gather(1, code[:, None]).squeeze(1))
    return torch.stack(columns, dim=1)


def _concatenated_states(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, responses: torch.Tensor,
                         groups: int, level: bool) -> torch.Tensor:
    """[B·G, L, ·] the logits (or, `level`, final hidden states) that predict each response token, from
    B·G full sequences: the left-padded prompt, then the response but its last token."""
    tile = torch.arange(prompt_ids.shape[0], device=prompt_ids.device).repeat_interleave(groups)
    width = responses.shape[1]
    ids = torch.cat([prompt_ids.index_select(0, tile), responses[:, :-1]], dim=1)
    mask = torch.cat([prompt_mask.index_select(0, tile), torch.ones_like(responses[:, :-1])], dim=1)
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=position_ids, use_cache=False,
                output_hidden_states=level, **({"logits_to_keep": 1} if level else {"logits_to_keep": width}))
    return out.hidden_states[-1][:, -width:] if level else out.logits[:, -width:]


def _shared_prefix_states(model: Any, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, responses: torch.Tensor,
                          groups: int, level: bool) -> torch.Tensor:
    """As `_concatenated_states`, the prompts encoded once: their KV cache, repeated G times, serves every rollout."""
    n_prompts = prompt_ids.shape[0]
    position_ids = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=prompt_ids, attention_mask=prompt_mask, position_ids=position_ids, use_cache=True,
                logits_to_keep=1, output_hidden_states=level)
    cache = cache_of(out)
    if cache is None:
        raise RuntimeError("the model returned no KV cache for the prompts (gradient checkpointing?): "
                           "score the rollouts with shared_prefix=False")
    tile = torch.arange(n_prompts, device=prompt_ids.device).repeat_interleave(groups)
    cache.reorder_cache(tile)
    states = (out.hidden_states[-1][:, -1:] if level else out.logits[:, -1:]).index_select(0, tile)
    width = responses.shape[1]
    if width > 1:
        feed = responses[:, :-1]
        mask = torch.cat([prompt_mask.index_select(0, tile), torch.ones_like(feed)], dim=1)
        start = prompt_mask.sum(-1).index_select(0, tile)
        positions = start[:, None] + torch.arange(width - 1, device=feed.device)[None, :]
        rest = model(input_ids=feed, attention_mask=mask, position_ids=positions, **with_cache(cache),
                     use_cache=True, output_hidden_states=level, **({"logits_to_keep": 1} if level else {}))
        states = torch.cat([states, rest.hidden_states[-1] if level else rest.logits], dim=1)
    return states


__all__ = ["generate_rollouts", "rollout_token_logps"]
