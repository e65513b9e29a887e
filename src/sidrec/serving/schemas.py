"""The request and response bodies of `sidrec serve` (strict: unknown fields are refused with 422)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RecommendRequest(BaseModel):
    """One user's history and what may be recommended."""

    model_config = ConfigDict(extra="forbid")

    history: list[str] = Field(min_length=1, description="item ids or exact item titles, oldest first")
    k: int = Field(10, ge=1, description="how many items")
    num_beams: int | None = Field(None, ge=1, description="beam width of generative runs (≥ k; default: the run's)")
    exclude_history: bool = Field(False, description="never recommend an item of the history")
    include_items: list[str] | None = Field(None, min_length=1, description="recommend only these items (ids or titles)")
    exclude_items: list[str] | None = Field(None, description="never recommend these items (ids or titles)")
    categories: list[str] | None = Field(None, min_length=1,
                                         description="recommend only items with at least one of these categories")
    user_id: str | None = Field(None, max_length=256, description="echoed back and logged")


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    requests: list[RecommendRequest] = Field(min_length=1)


class RecommendedItem(BaseModel):
    rank: int
    item_id: str
    title: str
    sid: str | None = Field(description="the item's semantic ID (generative runs)")
    score: float = Field(description="generative runs: log p(SID | history); classic runs: the model's score")


class Timings(BaseModel):
    queue_ms: float = Field(description="waiting for the model")
    model_ms: float = Field(description="the batched model call this request was part of")
    total_ms: float = Field(description="from the request's arrival to its answer")
    batch_size: int = Field(description="requests answered by that model call")


class ModelIdentity(BaseModel):
    run: str
    method: str
    engine: str


class RecommendResponse(BaseModel):
    user_id: str | None
    items: list[RecommendedItem]
    k: int
    num_beams: int | None
    history: list[str] = Field(description="the history as item ids")
    allowed_items: int | None = Field(description="items the filters allow (None: no filter)")
    model: ModelIdentity
    timings: Timings


class BatchResponse(BaseModel):
    results: list[RecommendResponse]
    total_ms: float
