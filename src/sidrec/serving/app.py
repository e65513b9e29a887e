"""The FastAPI app of `sidrec serve` and the uvicorn runner.

    app = create_app(load_served("runs/demo/sft"), ServeConfig())
    serve("runs/demo/sft", host="127.0.0.1", port=8000)

Endpoints: `POST /v1/recommend`, `POST /v1/recommend/batch`, `GET /v1/model`, `GET /v1/items?q=`
(title search), `GET /v1/categories`, `GET /health`, `GET /metrics` (Prometheus text), `GET /`
(the web page), `/docs` (OpenAPI). Every request is logged as one JSON line on the
`sidrec.serve.access` logger and counted in the metrics.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from sidrec.errors import ConfigError
from sidrec.serving.batching import BatcherClosed, MicroBatcher, QueueFull
from sidrec.serving.config import ServeConfig
from sidrec.serving.engines import Query, Ranked
from sidrec.serving.loading import Served
from sidrec.serving.queries import RequestProblem, answer, build_query
from sidrec.serving.schemas import (
    BatchRequest,
    BatchResponse,
    RecommendRequest,
    RecommendResponse,
)
from sidrec.utils.asgi import BodyLimit

access_log = logging.getLogger("sidrec.serve.access")
error_log = logging.getLogger("sidrec.serve")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _imports() -> tuple[Any, Any]:
    try:
        import fastapi
        import prometheus_client
    except ImportError:
        raise ConfigError("sidrec serve needs fastapi, uvicorn and prometheus-client (sidrec dependencies): reinstall sidrec") from None
    return fastapi, prometheus_client


def create_app(served: Served, config: ServeConfig = ServeConfig()) -> Any:  # noqa: B008 - frozen
    """The FastAPI app answering from `served` (the model is loaded already)."""
    fastapi, prom = _imports()
    from fastapi.responses import FileResponse, JSONResponse, Response

    registry = prom.CollectorRegistry()
    requests_total = prom.Counter("sidrec_requests", "HTTP requests by path and status", ["path", "status"],
                                  registry=registry)
    latency = prom.Histogram("sidrec_request_latency_seconds", "HTTP request latency by path", ["path"],
                             buckets=LATENCY_BUCKETS, registry=registry)
    batch_sizes = prom.Histogram("sidrec_batch_size", "requests per model call", buckets=BATCH_BUCKETS,
                                 registry=registry)
    model_seconds = prom.Histogram("sidrec_model_call_seconds", "seconds per batched model call",
                                   buckets=LATENCY_BUCKETS, registry=registry)
    recommended = prom.Counter("sidrec_recommendations", "histories answered", registry=registry)

    def on_batch(size: int, seconds: float) -> None:
        batch_sizes.observe(size)
        model_seconds.observe(seconds)

    batcher: MicroBatcher[Query, Ranked] = MicroBatcher(
        served.engine.run, max_batch_size=config.max_batch_size, max_wait_ms=config.max_wait_ms,
        max_queue=config.max_queue, on_batch=on_batch)
    prom.Gauge("sidrec_queue_depth", "requests waiting for the model", registry=registry).set_function(
        lambda: batcher.queued)

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await batcher.start()
        yield
        await batcher.stop()  # after uvicorn has let in-flight requests finish

    app = fastapi.FastAPI(title="sidrec", version="1", lifespan=lifespan,
                          description="Recommendations from a trained sidrec run.")
    app.state.served, app.state.config, app.state.batcher = served, config, batcher
    cat = served.catalogue

    @app.exception_handler(RequestProblem)
    async def _problem(request: Any, exc: RequestProblem) -> Any:
        return JSONResponse(status_code=422, content={"detail": [exc.detail()]})

    async def submit_all(queries: list[Query]) -> list[tuple[Ranked, Any]]:
        try:
            return await asyncio.wait_for(asyncio.gather(*(batcher.submit(q) for q in queries)),
                                          config.request_timeout_s)
        except TimeoutError:
            raise fastapi.HTTPException(504, f"not answered within {config.request_timeout_s:g} s "
                                        "(request_timeout_s)") from None
        except QueueFull as e:
            raise fastapi.HTTPException(503, str(e), headers={"Retry-After": "1"}) from None
        except BatcherClosed as e:
            raise fastapi.HTTPException(503, str(e)) from None
        except Exception as e:  # noqa: BLE001 - a model failure is this request's 500, logged once
            error_log.exception("the model call failed")
            raise fastapi.HTTPException(500, f"the model call failed: {type(e).__name__}: {e}") from None

    @app.post("/v1/recommend", response_model=RecommendResponse)
    async def recommend(req: RecommendRequest) -> RecommendResponse:
        """The top-k items for one history, restricted by the request's filters inside decoding."""
        arrived = time.perf_counter()
        query, n_allowed = build_query(req, served, config)
        [(ranked, timing)] = await submit_all([query])
        recommended.inc()
        return answer(served, req, query, ranked, timing, n_allowed, arrived)

    @app.post("/v1/recommend/batch", response_model=BatchResponse)
    async def recommend_batch(batch: BatchRequest) -> BatchResponse:
        """Many histories in one call (each micro-batched like a single request; answers in order)."""
        arrived = time.perf_counter()
        if len(batch.requests) > config.max_batch_requests:
            raise RequestProblem(["body", "requests"], f"at most {config.max_batch_requests} requests per batch")
        built = [build_query(r, served, config, ("body", "requests", j)) for j, r in enumerate(batch.requests)]
        results = await submit_all([q for q, _ in built])
        recommended.inc(len(built))
        out = [answer(served, r, q, ranked, timing, n, arrived)
               for r, (q, n), (ranked, timing) in zip(batch.requests, built, results, strict=True)]
        return BatchResponse(results=out, total_ms=round((time.perf_counter() - arrived) * 1000, 3))

    @app.get("/v1/model")
    def model_info() -> dict[str, Any]:
        """What is served: run, method, dataset, catalogue size, SID levels, limits and batching."""
        beams = (config.default_num_beams or served.default_num_beams) if served.engine.uses_beams else None
        return {**served.info, "default_num_beams": beams,
                "limits": config.model_dump(exclude={"device", "default_num_beams"})}

    @app.get("/v1/items")
    def items(q: str = "", limit: int = fastapi.Query(20, ge=1, le=200)) -> dict[str, Any]:
        """Items whose title contains every word of `q` (for building a history by title)."""
        return {"items": [cat.describe(i) for i in cat.search(q, limit)]}

    @app.get("/v1/categories")
    def categories(limit: int = fastapi.Query(200, ge=1, le=100_000)) -> dict[str, Any]:
        """Item categories, most common first (what the `categories` filter accepts)."""
        return {"categories": [{"name": c, "items": n} for c, n in cat.category_counts()[:limit]]}

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "queued": batcher.queued, "method": served.info["method"]}

    @app.get("/metrics")
    def metrics() -> Any:
        return Response(prom.generate_latest(registry), media_type=prom.CONTENT_TYPE_LATEST)

    page = resources.files("sidrec.serving") / "static" / "index.html"

    @app.get("/", include_in_schema=False)
    def index() -> Any:
        return FileResponse(str(page), media_type="text/html")

    routes = {r.path for r in app.routes if hasattr(r, "path")}
    app.add_middleware(BodyLimit, limits=config)
    app.add_middleware(AccessLog, routes=routes, counter=requests_total, latency=latency)
    return app


class AccessLog:
    """ASGI middleware: one JSON line per request (method, path, status, ms, client, request id), the
    request id echoed in `X-Request-ID`, and the request counted in the metrics (by route path)."""

    def __init__(self, app: Any, routes: set[str], counter: Any, latency: Any) -> None:
        self.app, self.routes, self.counter, self.latency = app, routes, counter, latency

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = [v for k, v in scope.get("headers", []) if k.lower() == b"x-request-id"]
        request_id = given[0].decode("latin-1")[:64] if given else uuid.uuid4().hex[:16]
        status = 500

        async def send_logged(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode("latin-1"))]}
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            seconds = time.perf_counter() - started
            path = scope.get("path", "")
            label = path if path in self.routes else "other"
            self.counter.labels(label, str(status)).inc()
            self.latency.labels(label).observe(seconds)
            client = scope.get("client")
            access_log.info(json.dumps({
                "ts": round(time.time(), 3), "request_id": request_id, "method": scope.get("method"), "path": path,
                "status": status, "ms": round(seconds * 1000, 3), "client": f"{client[0]}:{client[1]}" if client else None,
            }))


def serve(run: str, host: str = "127.0.0.1", port: int = 8000, *, config: ServeConfig = ServeConfig(),  # noqa: B008
          log_level: str = "info") -> None:
    """Load the run and serve it with uvicorn until interrupted (in-flight requests finish first)."""
    _imports()
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("sidrec serve needs uvicorn (a sidrec dependency): reinstall sidrec") from None
    from sidrec.serving.loading import load_served

    if not access_log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(handler)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False
    app = create_app(load_served(run, device=config.device), config)
    print(f"serving {run} on http://{host}:{port}  (web page: /, API docs: /docs)", flush=True)
    server = _Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                                    timeout_graceful_shutdown=int(config.shutdown_timeout_s), timeout_keep_alive=5,
                                    h11_max_incomplete_event_size=64 * 1024))
    server.run()


def _server_class() -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, except that Ctrl-C / SIGTERM end it as a normal exit (status 0, after the
        in-flight requests finished) instead of re-raising the signal once it has stopped."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            if threading.current_thread() is not threading.main_thread():
                yield
                return
            stops = (signal.SIGINT, signal.SIGTERM)
            previous = {s: signal.signal(s, self.handle_exit) for s in stops}
            try:
                yield
            finally:
                for s, handler in previous.items():
                    signal.signal(s, handler)

    return Server


def _Server(config: Any) -> Any:  # noqa: N802 - a class built on first use (uvicorn is imported lazily)
    return _server_class()(config)
