"""ServeConfig: how `sidrec serve` batches requests and what one request may ask for."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ServeConfig(BaseModel):
    """Batching, limits and timeouts of the recommendation server (every field a `sidrec serve` option).

    Requests that arrive within `max_wait_ms` of each other are answered by one batched model call
    of at most `max_batch_size` histories; `max_batch_size: 1` answers one request at a time.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_batch_size: int = Field(32, ge=1, description="histories per model call")
    max_wait_ms: float = Field(5.0, ge=0, description="how long the first request of a batch waits for others")
    max_queue: int = Field(1024, ge=1, description="requests waiting for the model; more are refused (503)")
    request_timeout_s: float = Field(30.0, gt=0, description="a request not answered by then gets 504")
    max_history: int = Field(200, ge=1, description="items per history (the model reads its own last max_history)")
    max_k: int = Field(100, ge=1, description="largest k")
    max_num_beams: int = Field(256, ge=1, description="largest num_beams (generative runs)")
    default_num_beams: int | None = Field(None, ge=1, description="None: the run's eval.num_beams (else 20)")
    max_batch_requests: int = Field(256, ge=1, description="requests in one /v1/recommend/batch call")
    max_filter_items: int = Field(100_000, ge=1, description="ids in include_items / exclude_items")
    max_body_bytes: int = Field(4 << 20, ge=1024, description="request bodies above this are refused (413)")
    body_timeout_s: float = Field(10.0, gt=0, description="a body not received by then is dropped (408)")
    shutdown_timeout_s: float = Field(30.0, ge=0, description="on Ctrl-C / SIGTERM, in-flight requests get this long")
    device: str = Field("auto", description="auto | cpu | cuda[:N]")
