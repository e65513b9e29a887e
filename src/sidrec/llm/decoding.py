"""Trie-constrained beam search and exact ranking over semantic IDs (methods.md §6).

    stepper = CausalLMStepper(model)            # or sidrec.methods.tiger.model.Seq2SeqStepper(t5) for TIGER
    items, scores = beam_search(stepper, token_trie, input_ids, attention_mask, num_beams=20, top_k=10)
    scores_all = exact_item_scores(stepper, token_trie, input_ids, attention_mask)   # [B, n_items]
    sampled, sampled_scores = stochastic_beam_search(stepper, token_trie, input_ids, attention_mask,
                                                     num_samples=16, generator=torch.Generator().manual_seed(0))

Both score a SID by the sum of its tokens' log-probabilities under the model's full-vocabulary
softmax (what `generate(prefix_allowed_tokens_fn=...)` ranks by), so beam search is an
approximation of the exact ranking and nothing else.

Beam search: one prefill of the (left-padded) prompts with a KV cache, then one single-token
forward per further SID level for all prompts × beams at once. Allowed tokens come from the
trie as padded id lists (a gather of the allowed logits, no full-vocabulary mask); the top
`num_beams` (prompt, beam, token) candidates per prompt are picked with one `topk` over
[B, beams × children]; the cache rows are reordered with one index_select. There is no Python
loop over prompts or beams, no sampling and no inherited generation config: nothing here reads
`model.generation_config`. Every returned item is a real item, by construction (invalid = 0).

Stochastic beam search (`stochastic_beam_search`, GRPO's exploratory rollouts): the same walk with
each candidate ranked by a Gumbel-perturbed log-probability conditioned on its parent's (Gumbel
top-k over the trie), which draws K distinct items without replacement from the trie-constrained
model; its randomness comes from a caller's generator only.

Exact ranking: the prompt's KV cache is computed once and shared; the trie is walked depth-first
in chunks of nodes, each node's cache being its parent's extended by one token (one single-token
forward per trie node), and each item's score is the sum of its levels' log-probabilities.
"""

from __future__ import annotations

import copy
from typing import Any, Literal, Protocol

import torch

from sidrec.llm.kv_cache import cache_of, with_cache
from sidrec.sids.trie import TokenTrie

NEG_INF = float("-inf")


class Stepper(Protocol):
    """A model seen as: prefill prompts, then extend each row by one token."""

    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, Any]:
        """(next-token logits [B, V], state)."""

    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        """Feed tokens [N] (one per state row) → (logits [N, V], new state)."""

    def select(self, state: Any, rows: torch.Tensor) -> Any:
        """A state whose row i is row `rows[i]` of `state` (reorder / repeat / shrink)."""


class CausalLMStepper:
    """Any Hugging Face causal LM (or peft wrapper) with a KV cache; left-padded prompts."""

    def __init__(self, model: Any) -> None:
        self.model = model

    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, Any]:
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         use_cache=True, logits_to_keep=1)
        next_pos = attention_mask.long().sum(-1)
        return out.logits[:, -1, :], (cache_of(out), attention_mask, next_pos)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        past, mask, next_pos = state
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = self.model(input_ids=tokens.view(-1, 1), attention_mask=mask, position_ids=next_pos.view(-1, 1),
                         **with_cache(past), use_cache=True, logits_to_keep=1)
        return out.logits[:, -1, :], (cache_of(out), mask, next_pos + 1)

    def select(self, state: Any, rows: torch.Tensor) -> Any:
        past, mask, next_pos = state
        past.reorder_cache(rows)
        return past, mask[rows], next_pos[rows]


class SIDRowsStepper(CausalLMStepper):
    """A causal LM that scores only the SID tokens: the decoder's last hidden state times the SID rows
    of the LM head, so logits are [N, n_sid] (column j = row j of `rows`) instead of [N, vocabulary].

    For level-normalised decoding (`normalize="level"`, models trained with `data.sid_softmax: level`),
    which never reads another column; pair it with a `TokenTrie` whose token ids are those columns
    (`step` is fed columns and maps them back to vocabulary ids with `token_ids`).
    """

    def __init__(self, model: Any, token_ids: torch.Tensor, rows: torch.Tensor,
                 bias: torch.Tensor | None = None) -> None:
        super().__init__(model)
        base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft
        self.decoder = base.get_decoder()
        self.token_ids = token_ids  # column j → vocabulary id
        self.rows = rows
        self.bias = bias

    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits = hidden @ self.rows.T.to(hidden.dtype)
        return logits if self.bias is None else logits + self.bias

    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, Any]:
        position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        out = self.decoder(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                           use_cache=True)
        next_pos = attention_mask.long().sum(-1)
        return self._logits(out.last_hidden_state[:, -1]), (cache_of(out), attention_mask, next_pos)

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        past, mask, next_pos = state
        mask = torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)
        out = self.decoder(input_ids=self.token_ids[tokens.view(-1, 1)], attention_mask=mask,
                           position_ids=next_pos.view(-1, 1), **with_cache(past), use_cache=True)
        return self._logits(out.last_hidden_state[:, -1]), (cache_of(out), mask, next_pos + 1)


def _logprobs_of(logits: torch.Tensor, token_ids: torch.Tensor, valid: torch.Tensor,
                 norm_ids: torch.Tensor | None = None) -> torch.Tensor:
    """log softmax(logits)[token_ids] over the full vocabulary (or over `norm_ids` only); -inf where not valid."""
    logits = logits.float()
    lse = torch.logsumexp(logits if norm_ids is None else logits[:, norm_ids], dim=-1, keepdim=True)
    out = logits.gather(1, token_ids) - lse
    return out.masked_fill(~valid, NEG_INF)


@torch.no_grad()
def beam_search(
    stepper: Stepper,
    token_trie: TokenTrie,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    num_beams: int = 20,
    top_k: int | None = None,
    normalize: Literal["full", "level"] = "full",
    allowed: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-`top_k` distinct items per prompt: (item indices [B, K], log-prob scores [B, K]), best first.

    Deterministic. Rows with fewer than K reachable items are padded with item -1 / score -inf.
    `normalize="level"`: each token's log-probability is taken over its level's SID tokens only
    (models trained with `data.sid_softmax: level`). `allowed` (bool [B, n_items], optional): a
    catalogue filter per prompt. A trie node stays open only while an allowed item lies under it,
    so no beam is ever spent on a prefix that leads to forbidden items only, and every returned
    item is allowed; the scores are unchanged (the model's own log-probabilities).
    """
    trie = token_trie.trie
    device = input_ids.device
    top_k = num_beams if top_k is None else top_k
    if top_k > num_beams:
        raise ValueError(f"top_k={top_k} cannot exceed num_beams={num_beams}")
    batch = input_ids.shape[0]
    logits, state = stepper.prefill(input_ids, attention_mask)
    nodes = torch.zeros(batch, dtype=torch.long, device=device)  # the root, per prompt
    scores = torch.zeros(batch, 1, device=device)
    width = 1  # beams per prompt so far
    tokens = None
    counts = None if allowed is None else trie.allowed_counts(allowed)
    for depth in range(trie.depth):
        if depth > 0:
            logits, state = stepper.step(tokens.reshape(-1), state)
        flat_nodes = nodes.reshape(-1)
        child, _, valid = trie.allowed_children(depth, flat_nodes)  # [B*width, C]
        tok, _ = token_trie.allowed_token_ids(depth, flat_nodes)
        if counts is not None:  # close the children under which no allowed item lies
            prompt = torch.arange(batch, device=device).repeat_interleave(width).unsqueeze(1)
            valid = valid & trie.has_allowed(depth + 1, child, prompt, counts)
        n_children = child.shape[1]
        norm_ids = token_trie.token_ids[depth] if normalize == "level" else None
        cand = scores.reshape(-1, 1) + _logprobs_of(logits, tok, valid, norm_ids)  # [B*width, C]
        cand = cand.view(batch, width * n_children)
        k = min(num_beams, width * n_children)
        scores, pos = cand.topk(k, dim=1)  # sorted, deterministic
        src_beam = torch.div(pos, n_children, rounding_mode="floor")
        flat_pos = (torch.arange(batch, device=device).unsqueeze(1) * width + src_beam) * n_children + pos % n_children
        alive = torch.isfinite(scores)
        nodes = torch.where(alive, child.reshape(-1)[flat_pos], torch.full_like(flat_pos, -1))
        tokens = tok.reshape(-1)[flat_pos]
        if depth + 1 < trie.depth:
            rows = (torch.arange(batch, device=device).unsqueeze(1) * width + src_beam).reshape(-1)
            state = stepper.select(state, rows)
        width = k
    items = trie.leaf_items(nodes.reshape(-1)).view(batch, width)
    items = torch.where(torch.isfinite(scores), items, torch.full_like(items, -1))
    if width < top_k:  # fewer items reachable than asked
        pad = top_k - width
        items = torch.cat([items, items.new_full((batch, pad), -1)], dim=1)
        scores = torch.cat([scores, scores.new_full((batch, pad), NEG_INF)], dim=1)
    return items[:, :top_k], scores[:, :top_k]


@torch.no_grad()
def exact_item_scores(
    stepper: Stepper,
    token_trie: TokenTrie,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    node_chunk: int = 256,
    normalize: Literal["full", "level"] = "full",
) -> torch.Tensor:
    """log p(SID of item | prompt) for every item: [B, n_items] (the exact full ranking).

    Depth-first over the trie in chunks of at most `node_chunk` nodes per prompt: a node's cache is
    its parent's cache extended by one token, so every trie node costs exactly one single-token
    forward (the prompt itself is encoded once and shared).
    """
    trie = token_trie.trie
    batch = input_ids.shape[0]
    logits, prompt_state = stepper.prefill(input_ids, attention_mask)
    codes_sorted = trie.codes[trie.order]  # [n, L] in sorted-rank order
    total = torch.zeros(batch, trie.n_items, device=input_ids.device)
    _score_subtree(stepper, token_trie, codes_sorted, total, 0, 0, 1, prompt_state, logits, batch, node_chunk,
                   normalize == "level")
    return total[:, trie.rank_of_item]


def _score_subtree(stepper: Stepper, token_trie: TokenTrie, codes_sorted: torch.Tensor, total: torch.Tensor,
                   depth: int, lo: int, hi: int, state: Any, logits: torch.Tensor, batch: int, chunk: int,
                   level_norm: bool = False) -> None:
    """Add the level-`depth` log-probs of the items under depth-`depth` nodes [lo, hi), then recurse.

    `state` / `logits` rows are (prompt b, node j) in prompt-major order: row = b * (hi - lo) + (j - lo).
    """
    trie = token_trie.trie
    device = total.device
    n = hi - lo
    ids = token_trie.token_ids[depth]
    lp = _logprobs_of(logits, ids.unsqueeze(0).expand(logits.shape[0], -1),
                      torch.ones(logits.shape[0], ids.numel(), dtype=torch.bool, device=device),
                      ids if level_norm else None).view(batch, n, -1)
    r0, r1 = int(trie.item_indptr[depth][lo]), int(trie.item_indptr[depth][hi])
    local = (trie.node_of_rank[depth][r0:r1] - lo) if depth > 0 else torch.zeros(r1 - r0, dtype=torch.long, device=device)
    total[:, r0:r1] += lp[:, local, codes_sorted[r0:r1, depth]]
    if depth + 1 >= trie.depth:
        return
    c0, c1 = int(trie.child_indptr[depth][lo]), int(trie.child_indptr[depth][hi])
    for a in range(c0, c1, chunk):
        b = min(c1, a + chunk)
        children = torch.arange(a, b, device=device)
        parent_local = trie.parent(depth + 1, children) - lo
        rows = (torch.arange(batch, device=device).unsqueeze(1) * n + parent_local.unsqueeze(0)).reshape(-1)
        child_state = stepper.select(_clone_state(state), rows)
        tokens = ids[trie.child_codes[depth][a:b]].repeat(batch)
        child_logits, child_state = stepper.step(tokens, child_state)
        _score_subtree(stepper, token_trie, codes_sorted, total, depth + 1, a, b, child_state, child_logits, batch, chunk,
                       level_norm)


def _fork_cache(cache: Any) -> Any:
    """A shallow copy of a transformers cache whose `reorder_cache` leaves the original intact
    (reordering rebinds each layer's key/value tensors; it never writes into them)."""
    new = copy.copy(cache)
    if isinstance(getattr(cache, "layers", None), list):
        new.layers = [copy.copy(layer) for layer in cache.layers]
    for attr in ("self_attention_cache", "cross_attention_cache"):
        if hasattr(cache, attr):
            setattr(new, attr, _fork_cache(getattr(cache, attr)))
    return new


def _clone_state(state: Any) -> Any:
    """A stepper state that can be `select`-ed without changing `state` (tensors are shared, not copied)."""
    if isinstance(state, tuple):
        return tuple(_fork_cache(x) if hasattr(x, "reorder_cache") else x for x in state)
    return _fork_cache(state)


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 − exp(x)) for x ≤ 0, accurate near 0 (−inf at x = 0)."""
    return torch.where(x > -0.6931, torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def _conditioned_gumbels(parent: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Children's Gumbels `g` [R, C] (−inf: closed) shifted so that each row's maximum equals its
    parent's perturbed value `parent` [R, 1] (Kool et al., 2019, the numerically stable form)."""
    z = g.max(dim=1, keepdim=True).values
    v = parent - g + _log1mexp(g - z)
    out = parent - v.clamp(min=0) - torch.log1p(torch.exp(-v.abs()))
    return out.masked_fill(~torch.isfinite(g), NEG_INF)


@torch.no_grad()
def stochastic_beam_search(
    stepper: Stepper,
    token_trie: TokenTrie,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    num_samples: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    normalize: Literal["full", "level"] = "full",
) -> tuple[torch.Tensor, torch.Tensor]:
    """`num_samples` distinct items per prompt sampled without replacement (Gumbel top-k over the trie,
    i.e. stochastic beam search, Kool et al. 2019): (item indices [B, K], log-prob scores [B, K]).

    The sampling distribution is the model's, with logits divided by `temperature` and each level's
    probabilities renormalised over the valid children of the prefix (what constrained sampling
    draws from). Every returned item is a real item; rows are sorted by score, best first, and the
    scores are those `beam_search` gives (untempered, `normalize` as there), so a caller can rank the
    samples by the policy. All randomness comes from `generator` (seed it for a reproducible draw).
    Rows with fewer than K reachable items are padded with item -1 / score -inf.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    trie = token_trie.trie
    device = input_ids.device
    batch = input_ids.shape[0]
    logits, state = stepper.prefill(input_ids, attention_mask)
    nodes = torch.zeros(batch, dtype=torch.long, device=device)
    scores = torch.zeros(batch, 1, device=device)  # the model's log-probabilities (what beam_search reports)
    phi = torch.zeros(batch, 1, device=device)  # log-probabilities of the sampling distribution
    keys = torch.zeros(batch, 1, device=device)  # perturbed phi (the root's Gumbel is conditioned to 0)
    width = 1
    tokens = None
    for depth in range(trie.depth):
        if depth > 0:
            logits, state = stepper.step(tokens.reshape(-1), state)
        flat_nodes = nodes.reshape(-1)
        child, _, valid = trie.allowed_children(depth, flat_nodes)
        tok, _ = token_trie.allowed_token_ids(depth, flat_nodes)
        n_children = child.shape[1]
        norm_ids = token_trie.token_ids[depth] if normalize == "level" else None
        lp = _logprobs_of(logits, tok, valid, norm_ids)  # [B*width, C]
        picked = logits.float().gather(1, tok) / temperature
        sample_lp = torch.log_softmax(picked.masked_fill(~valid, NEG_INF), dim=1).masked_fill(~valid, NEG_INF)
        child_phi = phi.reshape(-1, 1) + sample_lp
        u = torch.rand(child_phi.shape, generator=generator, device=generator.device).to(device)
        gumbel = child_phi - torch.log(-torch.log(u.clamp(min=1e-20, max=1 - 1e-7)))
        child_keys = _conditioned_gumbels(keys.reshape(-1, 1), gumbel.masked_fill(~valid, NEG_INF))
        cand_keys = child_keys.view(batch, width * n_children)
        k = min(num_samples, width * n_children)
        keys, pos = cand_keys.topk(k, dim=1)
        src_beam = torch.div(pos, n_children, rounding_mode="floor")
        flat_pos = (torch.arange(batch, device=device).unsqueeze(1) * width + src_beam) * n_children + pos % n_children
        scores = (scores.reshape(-1, 1) + lp).reshape(-1)[flat_pos]
        phi = child_phi.reshape(-1)[flat_pos]
        alive = torch.isfinite(keys)
        nodes = torch.where(alive, child.reshape(-1)[flat_pos], torch.full_like(flat_pos, -1))
        tokens = tok.reshape(-1)[flat_pos]
        if depth + 1 < trie.depth:
            rows = (torch.arange(batch, device=device).unsqueeze(1) * width + src_beam).reshape(-1)
            state = stepper.select(state, rows)
        width = k
    alive = torch.isfinite(keys)
    items = trie.leaf_items(nodes.reshape(-1)).view(batch, width)
    scores = scores.masked_fill(~alive, NEG_INF)
    items = torch.where(alive, items, torch.full_like(items, -1))
    scores, order = scores.sort(dim=1, descending=True, stable=True)
    items = items.gather(1, order)
    if width < num_samples:
        pad = num_samples - width
        items = torch.cat([items, items.new_full((batch, pad), -1)], dim=1)
        scores = torch.cat([scores, scores.new_full((batch, pad), NEG_INF)], dim=1)
    return items, scores
