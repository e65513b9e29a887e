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
chat requests served. Needs the `serve` extra: `pip install 'sidrec[serve]'` (fastapi, uvicorn).
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict

from sidrec.errors import ConfigError
from sidrec.semantics.local_model import LocalChatModel

DEFAULT_MAX_TOKENS = 512


class Message(BaseModel):
    """One chat message (content: a string or OpenAI's list of text parts)."""

    model_config = ConfigDict(extra="allow")
    role: str
    content: Any = ""


class ChatRequest(BaseModel):
    """The fields of an OpenAI chat completion request this server reads (others are accepted)."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[Message]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    response_format: dict[str, Any] | None = None
    stream: bool = False


def _fastapi() -> Any:
    try:
        import fastapi
    except ImportError:
        raise ConfigError("the chat server needs fastapi and uvicorn: pip install 'sidrec[serve]'") from None
    return fastapi


def create_app(name_or_path: str = "smollm2-135m", *, device: str = "auto", model: LocalChatModel | None = None) -> Any:
    """A FastAPI app answering chat completions with the local model `name_or_path` (loaded now)."""
    fastapi = _fastapi()
    lm = model or LocalChatModel(name_or_path, device=device)
    app = fastapi.FastAPI(title="sidrec chat server", version="1")
    app.state.model = lm
    app.state.requests = 0
    counter = threading.Lock()
    model_id = name_or_path

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": 0, "owned_by": "sidrec"}]}

    @app.post("/v1/chat/completions")
    def chat(req: ChatRequest) -> dict[str, Any]:
        with counter:
            app.state.requests += 1
        if req.stream:
            raise fastapi.HTTPException(status_code=400, detail="streaming is not supported by this server")
        if not req.messages:
            raise fastapi.HTTPException(status_code=400, detail="messages is empty")
        json_mode = (req.response_format or {}).get("type") == "json_object"
        max_tokens = req.max_tokens or req.max_completion_tokens or DEFAULT_MAX_TOKENS
        messages = [{"role": m.role, "content": m.content} for m in req.messages]
        try:
            text = lm.complete(messages, json_mode=json_mode, max_tokens=max_tokens)
        except ValueError as e:  # the prompt does not fit the model's context
            raise fastapi.HTTPException(status_code=400, detail=str(e)) from None
        n_prompt = len(lm.tokenizer(lm.prompt_text(messages), add_special_tokens=False)["input_ids"])
        n_out = len(lm.tokenizer(text, add_special_tokens=False)["input_ids"])
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model_id,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": n_prompt, "completion_tokens": n_out, "total_tokens": n_prompt + n_out},
        }

    return app


def serve(name_or_path: str = "smollm2-135m", host: str = "127.0.0.1", port: int = 8000, *, device: str = "auto",
          log_level: str = "info") -> None:
    """Run the chat server with uvicorn until interrupted."""
    _fastapi()
    try:
        import uvicorn
    except ImportError:
        raise ConfigError("the chat server needs fastapi and uvicorn: pip install 'sidrec[serve]'") from None
    uvicorn.run(create_app(name_or_path, device=device), host=host, port=port, log_level=log_level)
