"""One `run(queries)` for every run kind: what the micro-batcher calls with a batch of requests.

    engine = GenerativeEngine(SIDRecommender.load("runs/demo/sft/model"))   # SFT, TS-Rec, ILRec, DPO, TIGER …
    engine = ScoringEngine(load_model("runs/demo/sasrec/model")[0])        # SASRec, GRU4Rec, popularity
    [ranked] = engine.run([Query(history=[3, 17], k=10, num_beams=20, allowed=None)])

A query's answer never depends on the other queries of its batch: generative queries are grouped
by beam width (beam search is then the same per row; only float rounding of the padded batch can
differ), every query's filter is its own row of the `allowed` mask, and each answer is cut to its
own k.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch


@dataclass(frozen=True)
class Query:
    """One history to answer: item indices (oldest first), k, beam width, allowed items (None: all)."""

    history: tuple[int, ...]
    k: int
    num_beams: int
    allowed: np.ndarray | None = None  # bool [n_items]


@dataclass(frozen=True)
class Ranked:
    """The answer: item indices, best first, and their scores (at most k; fewer when fewer are allowed)."""

    items: list[int]
    scores: list[float]


class Engine(Protocol):
    kind: str          # "generative" | "scoring"
    item_ids: list[str]
    uses_beams: bool

    def run(self, queries: Sequence[Query]) -> list[Ranked]: ...


def _allowed_tensor(queries: Sequence[Query], n_items: int) -> torch.Tensor | None:
    if all(q.allowed is None for q in queries):
        return None
    rows = [np.ones(n_items, dtype=bool) if q.allowed is None else q.allowed for q in queries]
    return torch.from_numpy(np.stack(rows))


def _cut(items: torch.Tensor, scores: torch.Tensor, k: int) -> Ranked:
    keep = (items[:k] >= 0) & torch.isfinite(scores[:k])
    return Ranked(items[:k][keep].tolist(), scores[:k][keep].float().tolist())


class GenerativeEngine:
    """A generative run (any `SIDRecommender`): trie-constrained beam search with the filters inside decoding.

    A batch is decoded in calls of at most `chunk_size` histories of similar length (sorted by
    length): left-padding every prompt to the batch's longest one wastes work on short histories, and
    the KV cache every beam copies grows with it. On the demo's model (2 CPU threads, 32 test
    histories of 4–20 items, beam 20) chunks of 8 took 859 ms against 1,157 ms for one call.
    """

    kind = "generative"
    uses_beams = True

    def __init__(self, recommender: Any, *, chunk_size: int = 8) -> None:
        self.rec = recommender
        self.item_ids = list(recommender.item_ids)
        self.chunk_size = chunk_size

    def run(self, queries: Sequence[Query]) -> list[Ranked]:
        out: list[Ranked | None] = [None] * len(queries)
        by_beams: dict[int, list[int]] = {}
        for j in sorted(range(len(queries)), key=lambda j: len(queries[j].history)):
            by_beams.setdefault(queries[j].num_beams, []).append(j)
        chunks = [(beams, idx[a:a + self.chunk_size]) for beams, idx in by_beams.items()
                  for a in range(0, len(idx), self.chunk_size)]
        for beams, idx in chunks:
            group = [queries[j] for j in idx]
            histories = [[self.item_ids[i] for i in q.history] for q in group]
            items, scores = self.rec.recommend_indices(histories, top_k=beams, num_beams=beams,
                                                       allowed=_allowed_tensor(group, len(self.item_ids)))
            items, scores = items.cpu(), scores.cpu()
            for row, (j, q) in enumerate(zip(idx, group, strict=True)):
                out[j] = _cut(items[row], scores[row], q.k)
        return [r for r in out if r is not None]


class ScoringEngine:
    """A classic run (SASRec, GRU4Rec, popularity): every item scored, forbidden items masked, top-k."""

    kind = "scoring"
    uses_beams = False

    def __init__(self, model: Any) -> None:
        self.model = model
        self.item_ids = list(model.item_ids)

    def run(self, queries: Sequence[Query]) -> list[Ranked]:
        histories = [[self.item_ids[i] for i in q.history] for q in queries]
        scores = self.model.score_item_ids(histories).float().cpu()
        allowed = _allowed_tensor(queries, len(self.item_ids))
        if allowed is not None:
            scores = scores.masked_fill(~allowed, float("-inf"))
        k = min(max(q.k for q in queries), scores.shape[1])
        top, items = torch.sort(scores, dim=1, descending=True, stable=True)  # ties: lower item index first
        return [_cut(items[row, :k], top[row, :k], q.k) for row, q in enumerate(queries)]
