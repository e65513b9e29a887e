"""Dynamic micro-batching: concurrent requests gathered into one model call.

    batcher = MicroBatcher(engine.run, max_batch_size=32, max_wait_ms=5)
    await batcher.start()
    ranked, timing = await batcher.submit(query)      # from any request handler
    await batcher.stop()                               # answers everything queued, then stops

The first request of a batch waits at most `max_wait_ms` for others; requests that queued while
the model was busy join the next batch at once. Model calls run one at a time on one worker thread,
so the event loop keeps accepting requests meanwhile. A request whose caller gave up (timeout,
disconnect) before its batch ran is dropped from the batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Q = TypeVar("Q")
R = TypeVar("R")


class QueueFull(RuntimeError):
    """More requests wait for the model than the queue holds."""


class BatcherClosed(RuntimeError):
    """The server is shutting down and takes no new request."""


@dataclass(frozen=True)
class Timing:
    queue_ms: float   # from submit until its batch started
    model_ms: float   # the batch's model call
    batch_size: int   # requests answered by that call


@dataclass
class _Pending(Generic[Q]):
    query: Q
    future: asyncio.Future[Any]
    enqueued: float


class MicroBatcher(Generic[Q, R]):
    def __init__(self, run_batch: Callable[[Sequence[Q]], list[R]], *, max_batch_size: int = 32,
                 max_wait_ms: float = 5.0, max_queue: int = 1024,
                 on_batch: Callable[[int, float], None] | None = None) -> None:
        self.run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_queue = max_queue
        self.on_batch = on_batch  # (batch size, model seconds), e.g. for metrics
        self._queue: asyncio.Queue[_Pending[Q] | None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sidrec-model")
        self._task = asyncio.create_task(self._loop())

    @property
    def queued(self) -> int:
        return self._queue.qsize() if self._queue is not None else 0

    async def submit(self, query: Q) -> tuple[R, Timing]:
        if self._closed or self._queue is None:
            raise BatcherClosed("the server is shutting down")
        if self._queue.qsize() >= self.max_queue:
            raise QueueFull(f"{self._queue.qsize()} requests are waiting for the model (max_queue {self.max_queue})")
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(query, fut, time.perf_counter()))
        return await fut

    async def stop(self) -> None:
        """Take no new request, answer every queued one, then stop the worker."""
        if self._queue is None or self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        if self._task is not None:
            await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def _collect(self, first: _Pending[Q]) -> tuple[list[_Pending[Q]], bool]:
        """The batch that starts with `first`; True when the stop marker was reached."""
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        batch, deadline = [first], loop.time() + self.max_wait_s
        while len(batch) < self.max_batch_size:
            try:
                if self._queue.qsize() or deadline <= loop.time():
                    nxt = self._queue.get_nowait()
                else:
                    nxt = await asyncio.wait_for(self._queue.get(), deadline - loop.time())
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if nxt is None:
                return batch, True
            batch.append(nxt)
        return batch, False

    async def _loop(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        done = False
        while not done:
            first = await self._queue.get()
            if first is None:
                break
            batch, done = await self._collect(first)
            batch = [p for p in batch if not p.future.done()]  # callers that gave up
            if not batch:
                continue
            started = time.perf_counter()
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, [p.query for p in batch])
            except Exception as e:  # noqa: BLE001 - every waiting caller gets the error
                for p in batch:
                    if not p.future.done():
                        p.future.set_exception(e)
                continue
            seconds = time.perf_counter() - started
            if self.on_batch is not None:
                self.on_batch(len(batch), seconds)
            for p, r in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result((r, Timing(round((started - p.enqueued) * 1000, 3), round(seconds * 1000, 3),
                                                   len(batch))))
