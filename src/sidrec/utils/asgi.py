"""ASGI plumbing the servers share (the chat server of `sidrec.semantics.server`, `sidrec serve`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any


class BodyLimit:
    """ASGI middleware (`limits` has `max_body_bytes` and `body_timeout_s`): a malformed or too large Content-Length is refused before the body is read;
    the body is read with a deadline per chunk and refused once it exceeds the limit."""

    def __init__(self, app: Any, limits: Any) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        lengths = [v for k, v in scope.get("headers", []) if k.lower() == b"content-length"]
        if len(lengths) > 1 or (lengths and not lengths[0].strip().isdigit()):
            await _reply(send, 400, "malformed Content-Length header")
            return
        if lengths and int(lengths[0]) > self.limits.max_body_bytes:
            await _reply(send, 413, f"request body above {self.limits.max_body_bytes} bytes")
            return
        chunks, size, more = [], 0, scope["method"] in ("POST", "PUT", "PATCH")
        while more:
            try:
                message = await asyncio.wait_for(receive(), timeout=self.limits.body_timeout_s)
            except TimeoutError:
                await _reply(send, 408, f"request body not received within {self.limits.body_timeout_s:g} s")
                return
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.limits.max_body_bytes:
                await _reply(send, 413, f"request body above {self.limits.max_body_bytes} bytes")
                return
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
