"""A request → the engine's query, and the engine's answer → the response (shared by the server and
`sidrec recommend --run`, so both answer alike).

    query, n_allowed = build_query(request, served, config)   # RequestProblem (422) on bad input
    [ranked] = served.engine.run([query])
    response = answer(served, request, query, ranked)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from sidrec.errors import DataError
from sidrec.serving.batching import Timing
from sidrec.serving.catalogue import UnknownEntries
from sidrec.serving.config import ServeConfig
from sidrec.serving.engines import Query, Ranked
from sidrec.serving.loading import Served
from sidrec.serving.schemas import (
    ModelIdentity,
    RecommendedItem,
    RecommendRequest,
    RecommendResponse,
    Timings,
)


class RequestProblem(Exception):
    """A request that names something unknown or exceeds a limit: a 422 with the field's location."""

    def __init__(self, loc: Sequence[Any], msg: str, entries: Sequence[str] | None = None) -> None:
        super().__init__(msg)
        self.loc, self.msg, self.entries = list(loc), msg, list(entries) if entries is not None else None

    def detail(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loc": self.loc, "msg": self.msg, "type": "value_error"}
        if self.entries is not None:
            out["unknown"] = self.entries
        return out


def build_query(req: RecommendRequest, served: Served, config: ServeConfig = ServeConfig(),  # noqa: B008
                loc: Sequence[Any] = ("body",)
                ) -> tuple[Query, int | None]:
    """(the engine query, how many items the filters allow; None without a filter)."""
    loc = list(loc)
    if len(req.history) > config.max_history:
        raise RequestProblem([*loc, "history"], f"at most {config.max_history} items per history "
                             f"(got {len(req.history)})")
    if req.k > config.max_k:
        raise RequestProblem([*loc, "k"], f"k: at most {config.max_k}")
    beams = 0
    if served.engine.uses_beams:
        beams = req.num_beams or max(config.default_num_beams or served.default_num_beams, req.k)
        if beams < req.k:
            raise RequestProblem([*loc, "num_beams"], f"num_beams ({beams}) must be at least k ({req.k})")
        if beams > config.max_num_beams:
            raise RequestProblem([*loc, "num_beams"], f"num_beams: at most {config.max_num_beams}")
    for name in ("include_items", "exclude_items"):
        values = getattr(req, name)
        if values is not None and len(values) > config.max_filter_items:
            raise RequestProblem([*loc, name], f"{name}: at most {config.max_filter_items} items")
    cat = served.catalogue

    def resolve(values: list[str], name: str) -> list[int]:
        try:
            return cat.resolve(values, name)
        except UnknownEntries as e:
            raise RequestProblem([*loc, name], str(e), e.entries) from None

    history = resolve(req.history, "history")
    allowed: np.ndarray | None = None
    if req.include_items is not None:
        allowed = np.zeros(len(cat), dtype=bool)
        allowed[resolve(req.include_items, "include_items")] = True
    if req.categories is not None:
        try:
            mask = cat.category_mask(req.categories, "categories")
        except UnknownEntries as e:
            raise RequestProblem([*loc, "categories"], str(e), e.entries) from None
        except DataError as e:
            raise RequestProblem([*loc, "categories"], str(e)) from None
        allowed = mask if allowed is None else allowed & mask
    removed = list(resolve(req.exclude_items, "exclude_items")) if req.exclude_items else []
    if req.exclude_history:
        removed += history
    if removed:
        allowed = np.ones(len(cat), dtype=bool) if allowed is None else allowed
        allowed[removed] = False
    n_allowed = None if allowed is None else int(allowed.sum())
    return Query(tuple(history), req.k, beams, allowed), n_allowed




def answer(served: Served, req: RecommendRequest, query: Query, ranked: Ranked, timing: Timing | None = None,
           n_allowed: int | None = None, arrived: float | None = None) -> RecommendResponse:
    """The response body: the ranked items with titles and SIDs, the model's identity and the timings."""
    cat = served.catalogue
    items = [RecommendedItem(rank=r + 1, item_id=cat.item_ids[i], title=cat.titles[i],
                             sid=served.sid_strings.get(cat.item_ids[i]) if served.sid_strings else None,
                             score=round(s, 6))
             for r, (i, s) in enumerate(zip(ranked.items, ranked.scores, strict=True))]
    timing = timing or Timing(0.0, 0.0, 1)
    total = round((time.perf_counter() - arrived) * 1000, 3) if arrived is not None else timing.model_ms
    return RecommendResponse(
        user_id=req.user_id, items=items, k=req.k, num_beams=query.num_beams or None,
        history=[cat.item_ids[i] for i in query.history], allowed_items=n_allowed,
        model=ModelIdentity(run=served.info["run"], method=served.info["method"], engine=served.engine.kind),
        timings=Timings(queue_ms=timing.queue_ms, model_ms=timing.model_ms, total_ms=total,
                        batch_size=timing.batch_size))
