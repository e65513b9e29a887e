"""A minimal OpenAI-compatible chat server around a local HF causal LM (greedy decoding).

    sidrec semantics serve --model smollm2-135m --port 8000
    sidrec semantics extract --run RUN --teacher openai --base-url http://127.0.0.1:8000/v1 --model smollm2-135m

or in Python:

    app = create_app("smollm2-135m")          # FastAPI app; run it with uvicorn
    serve("smollm2-135m", host="127.0.0.1", port=8000)

Endpoints: `POST /v1/chat/completions` (messages, max_tokens; temperature and sampling options
are accepted and ignored — decoding is greedy; `response_format: {"type": "json_object"}` turns
on the local JSON mode of `LocalChatModel`) and `GET /v1/models`. The model name in a request is
not checked: the server answers with the one model it holds. `app.state.requests` counts the
chat requests served (fastapi and uvicorn are sidrec dependencies).

Limits (`ServerLimits`): the body size is checked from Content-Length before anything is read
(413), a malformed Content-Length is refused (400) and a body that does not arrive in time is
dropped (408), so no client can hold a worker; requests are strict (unknown fields, bad message
content, `max_tokens` ≤ 0 or above the cap: 422); prompts are tokenised outside the model lock;
a request waits at most `queue_timeout_s` for the model (503) and a generation stops after
`generate_timeout_s`.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from sidrec.errors import ConfigError
from sidrec.semantics.local_model import LocalChatModel, ModelBusy
from sidrec.utils.asgi import BodyLimit

DEFAULT_MAX_TOKENS = 512


@dataclass(frozen=True)
class ServerLimits:
    """What one request may ask for and how long anything may wait.

    max_body_bytes:   request bodies above this are refused (413) before they are read or tokenised
    body_timeout_s:   a client that announces a body and does not send it is dropped (408) after this
    max_messages:     messages per request
    max_tokens:       the largest `max_tokens` a request may ask for (1 … this)
    queue_timeout_s:  a request waits at most this long for the model (503 after)
    generate_timeout_s: one generation stops after this many seconds (finish_reason "length")
    """

    max_body_bytes: int = 1 << 20
    body_timeout_s: float = 10.0
    max_messages: int = 64
    max_tokens: int = 2048
    queue_timeout_s: float = 120.0
    generate_timeout_s: float = 120.0


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]
    text: str


class Message(BaseModel):
    """One chat message: content is a string or a list of OpenAI text parts."""

    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None


class ChatRequest(BaseModel):
    """An OpenAI chat completion request. Unknown fields are refused (422); the sampling fields
    OpenAI clients send are accepted and ignored (decoding is greedy)."""

    model_config = ConfigDict(extra="forbid")
    model: str | None = None
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    n: Literal[1] = 1
    stop: str | list[str] | None = None
    seed: int | None = None
    user: str | None = None
    presence_penalty: float | None = Field(None, ge=-2, le=2)
    frequency_penalty: float | None = Field(None, ge=-2, le=2)
    response_format: dict[str, Any] | None = None
    stream: Literal[False] = False


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise ConfigError("the chat server needs fastapi and uvicorn (sidrec dependencies): reinstall sidrec") from None
    return fastapi


def create_app(name_or_path: str = "smollm2-135m", *, device: str = "auto", model: LocalChatModel | None = None,
               limits: ServerLimits = ServerLimits()) -> Any:  # noqa: B008 - frozen dataclass
    """A FastAPI app answering chat completions with the local model `name_or_path` (loaded now)."""
    fastapi = _fastapi()
    lm = model or LocalChatModel(name_or_path, device=device)
    lm.lock_timeout, lm.max_time = limits.queue_timeout_s, limits.generate_timeout_s
    app = fastapi.FastAPI(title="sidrec chat server", version="1")
    app.state.model = lm
    app.state.limits = limits
    app.state.requests = 0
    counter = threading.Lock()
    model_id = name_or_path
    context = getattr(lm.model.config, "max_position_embeddings", None)

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "sidrec"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict[str, Any]:
        with counter:
            app.state.requests += 1
        if len(req.messages) > limits.max_messages:
            raise fastapi.HTTPException(status_code=422, detail=f"at most {limits.max_messages} messages per request")
        max_tokens = req.max_tokens or req.max_completion_tokens or min(DEFAULT_MAX_TOKENS, limits.max_tokens)
        if max_tokens > limits.max_tokens:
            raise fastapi.HTTPException(status_code=422, detail=f"max_tokens: at most {limits.max_tokens}")
        json_mode = (req.response_format or {}).get("type") == "json_object"
        messages = [{"role": m.role, "content": m.content if isinstance(m.content, str) else
                     "".join(p.text for p in m.content)} for m in req.messages]
        n_prompt = lm.count_tokens(lm.prompt_text(messages))  # tokenised outside the model lock
        if context and n_prompt + max_tokens > context:
            raise fastapi.HTTPException(status_code=400, detail=f"the prompt has {n_prompt} tokens and {max_tokens} "
                                        f"more were asked for, but the model takes at most {context}")
        started = time.time()
        try:
            text = lm.complete(messages, json_mode=json_mode, max_tokens=max_tokens)
        except ModelBusy as e:
            raise fastapi.HTTPException(status_code=503, detail=str(e)) from None
        except ValueError as e:  # the prompt does not fit the model's context
            raise fastapi.HTTPException(status_code=400, detail=str(e)) from None
        n_out = lm.count_tokens(text)
        timed_out = time.time() - started >= limits.generate_timeout_s
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "length" if timed_out else "stop"}],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out},
        }

    app.add_middleware(BodyLimit, limits=limits)
    return app


def serve(name_or_path: str = "smollm2-135m", host: str = "127.0.0.1", port: int = 8000, *, device: str = "auto",
          log_level: str = "info", limits: ServerLimits = ServerLimits()) -> None:  # noqa: B008
    """Run the chat server with uvicorn until interrupted (in-flight requests finish on Ctrl-C)."""
    _fastapi()
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the chat server needs fastapi and uvicorn (sidrec dependencies): reinstall sidrec") from None
    uvicorn.run(create_app(name_or_path, device=device, limits=limits), host=host, port=port, log_level=log_level,
                timeout_keep_alive=5, timeout_graceful_shutdown=int(limits.generate_timeout_s) + 5,
                h11_max_incomplete_event_size=64 * 1024)
