"""LLM teachers that describe a SID token's cluster: one prompt, one reply validator, two back-ends.

    messages = cluster_prompt("<b_17>", titles, descriptions, n_items=312)
    description, keywords = parse_reply(reply_text)          # ValueError when malformed

    teacher = OpenAITeacher("http://127.0.0.1:8000/v1", "qwen2.5-7b-instruct", concurrency=8)
    for token, outcome in teacher.run({"<b_17>": messages, ...}):
        ...                                                  # TeacherReply or TeacherFailure

`OpenAITeacher` talks to any OpenAI-compatible `POST {base_url}/chat/completions` (vLLM, Ollama,
llama.cpp server, hosted APIs, `sidrec semantics serve`) with httpx, asking for a JSON object
(`response_format`). The API key comes from an environment variable (`OPENAI_API_KEY` by
default; unset → no Authorization header, fine for local servers). Requests run `concurrency` at
a time; HTTP errors (429, 5xx), timeouts, connection errors and malformed replies are retried
`max_retries` times with exponential back-off and jitter; a token that still fails is reported
as a `TeacherFailure` with its last error — never dropped. After `abort_after` tokens in a row
have failed the endpoint is taken as down and the remaining tokens are reported as failures
without being sent.

The local back-end (`HFTeacher`, `LocalChatModel`) is in `sidrec.semantics.local_model`.
"""

from __future__ import annotations

import json
import os
import random
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from sidrec.errors import ConfigError

Messages = list[dict[str, str]]

SYSTEM_PROMPT = (
    "You are a product catalogue analyst. You are shown a sample of the products that share one "
    "semantic ID token of a recommender system, and you summarise what they have in common. "
    "Answer with one JSON object and nothing else."
)
MAX_KEYWORDS = 30
MIN_KEYWORDS = 3
DESCRIPTION_CHARS = 150
# HTTP status codes worth retrying: timeouts, conflicts, rate limits and server errors.
RETRY_STATUS = {408, 409, 425, 429}


# ----------------------------------------------------------------------------- prompt and validator
def _shorten(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0] or text[:limit]
    return cut.rstrip(" ,;:.") + "…"


def cluster_prompt(
    token: str,
    titles: Sequence[str],
    descriptions: Sequence[str] | None = None,
    n_items: int | None = None,
    *,
    n_keywords: int = 20,
    description_chars: int = DESCRIPTION_CHARS,
) -> Messages:
    """Chat messages asking for `{"description": ..., "keywords": [...]}` about one token's cluster.

    `titles` (and `descriptions`, truncated to `description_chars`) are a sample of the cluster's
    items; `n_items` is the cluster's full size."""
    descriptions = list(descriptions) if descriptions is not None else [""] * len(titles)
    if len(descriptions) != len(titles):
        raise ValueError(f"{len(titles)} titles but {len(descriptions)} descriptions")
    lines = []
    for title, desc in zip(titles, descriptions, strict=True):
        title = _shorten(title or "", 120) or "(untitled)"
        desc = _shorten(desc or "", description_chars)
        lines.append(f"- {title}" + (f" — {desc}" if desc else ""))
    n_total = len(titles) if n_items is None else int(n_items)
    sample = (f"Here is a sample of {len(titles)} of them" if n_total > len(titles)
              else f"Here {'are all' if n_total > 1 else 'is'} {n_total} of them" if n_total > 0 else "Here they are")
    user = (
        f"The semantic ID token {token} is shared by {n_total} products. {sample}:\n"
        + "\n".join(lines)
        + "\n\nDescribe what these products have in common. Reply with a JSON object with two fields:\n"
        '- "description": one paragraph on the shared scope, product types, features and uses of these products;\n'
        f'- "keywords": a list of about {n_keywords} short keywords (one to three words each) that characterise them.\n'
        "Reply with the JSON object only."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)


def _first_json_object(text: str) -> Any:
    """The first JSON object in `text` (inside ``` fences first, then anywhere)."""
    decoder = json.JSONDecoder()
    candidates = [m.group(1) for m in _FENCE_RE.finditer(text)] + [text]
    for chunk in candidates:
        for m in re.finditer(r"\{", chunk):
            try:
                obj, _ = decoder.raw_decode(chunk, m.start())
            except json.JSONDecodeError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def parse_reply(text: str) -> tuple[str, list[str]]:
    """(description, keywords) from a teacher's reply; ValueError saying what is wrong otherwise.

    Takes the first JSON object in the text (also inside ``` fences); needs a non-empty
    "description" string and a "keywords" list with at least 3 distinct non-empty strings; keeps
    at most 30 keywords, whitespace-normalised, first occurrence of each (case-insensitive)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty reply")
    obj = _first_json_object(text)
    if obj is None:
        raise ValueError(f"no JSON object in the reply: {_shorten(text, 120)!r}")
    description = obj.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ValueError('the reply has no non-empty "description" string')
    keywords = obj.get("keywords")
    if isinstance(keywords, str):  # "a, b, c" — tolerated
        keywords = keywords.split(",")
    if not isinstance(keywords, list):
        raise ValueError('the reply has no "keywords" list')
    out: list[str] = []
    seen: set[str] = set()
    for k in keywords:
        if not isinstance(k, (str, int, float)) or isinstance(k, bool):
            continue
        k = " ".join(str(k).split()).strip(" .,;:")
        if k and k.lower() not in seen:
            seen.add(k.lower())
            out.append(k)
    if len(out) < MIN_KEYWORDS:
        raise ValueError(f'the reply has {len(out)} distinct keywords; at least {MIN_KEYWORDS} are needed')
    return " ".join(description.split()), out[:MAX_KEYWORDS]


# ----------------------------------------------------------------------------- outcomes
@dataclass
class TeacherReply:
    """A validated answer for one token."""

    description: str
    keywords: list[str]
    attempts: int = 1
    seconds: float = 0.0


@dataclass
class TeacherFailure:
    """A token the teacher could not describe: the last error and how many attempts were made."""

    error: str
    attempts: int = 0
    seconds: float = 0.0


Outcome = TeacherReply | TeacherFailure


class _Retryable(Exception):
    """An error worth another attempt."""


class _Fatal(Exception):
    """An error no retry will fix (e.g. 401, 404)."""


# ----------------------------------------------------------------------------- OpenAI-compatible
class OpenAITeacher:
    """A teacher behind an OpenAI-compatible `/chat/completions` endpoint (see the module docstring).

    `transport` (an `httpx.BaseTransport`, e.g. `httpx.MockTransport`) or `client` replace the
    network for tests. `backoff` is the base delay in seconds (attempt k waits about
    backoff · 2^(k-1), plus up to `backoff` of jitter, at most `max_backoff`)."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        max_retries: int = 3,
        timeout: float = 120.0,
        temperature: float = 0.0,
        max_tokens: int = 1024,
        json_mode: bool = True,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        abort_after: int = 10,
        transport: Any = None,
        client: Any = None,
    ) -> None:
        import httpx

        if not base_url:
            raise ConfigError("the openai teacher needs a base URL, e.g. --base-url http://127.0.0.1:8000/v1")
        if not model:
            raise ConfigError("the openai teacher needs the endpoint's model name (--model)")
        if concurrency < 1 or max_retries < 0:
            raise ConfigError("concurrency must be ≥ 1 and max_retries ≥ 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.concurrency = int(concurrency)
        self.max_retries = int(max_retries)
        self.temperature = float(temperature)
        self.max_tokens = int(max_tokens)
        self.json_mode = json_mode
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        self.abort_after = int(abort_after)
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env) if api_key_env else None
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
                                             headers=headers, transport=transport)
        if client is not None and key:
            self.client.headers.setdefault("Authorization", f"Bearer {key}")

    def identity(self) -> dict[str, Any]:
        """What determines the replies (the cache key), never the API key."""
        return {"teacher": self.name, "base_url": self.base_url, "model": self.model,
                "temperature": self.temperature, "max_tokens": self.max_tokens, "json_mode": self.json_mode}

    # one request ----------------------------------------------------------------
    def complete(self, messages: Messages) -> str:
        """One chat completion; the reply's text. Raises _Retryable / _Fatal."""
        import httpx

        body: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": self.temperature,
                                "max_tokens": self.max_tokens}
        if self.json_mode:
            body["response_format"] = {"type": "json_object"}
        try:
            r = self.client.post(f"{self.base_url}/chat/completions", json=body)
        except httpx.TimeoutException as e:
            raise _Retryable(f"timeout: {type(e).__name__}") from None
        except httpx.TransportError as e:
            raise _Retryable(f"connection error: {type(e).__name__}: {e}") from None
        if r.status_code != 200:
            detail = _shorten(r.text, 200)
            msg = f"HTTP {r.status_code} from {self.base_url}/chat/completions: {detail}"
            if r.status_code >= 500 or r.status_code in RETRY_STATUS:
                raise _Retryable(msg)
            raise _Fatal(msg)
        try:
            data = r.json()
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise _Retryable(f"not a chat completion response: {_shorten(r.text, 200)!r}") from None
        if not isinstance(content, str):
            raise _Retryable("the completion has no text content")
        return content

    def _sleep(self, attempt: int) -> None:
        if self.backoff <= 0:
            return
        delay = min(self.max_backoff, self.backoff * 2 ** (attempt - 1)) + random.uniform(0, self.backoff)
        time.sleep(delay)

    def describe(self, messages: Messages) -> Outcome:
        """Ask until a reply validates (1 + max_retries attempts); a TeacherFailure otherwise."""
        t0 = time.perf_counter()
        error = "no attempt"
        attempts = 0
        for attempt in range(1, self.max_retries + 2):
            attempts = attempt
            try:
                description, keywords = parse_reply(self.complete(messages))
                return TeacherReply(description, keywords, attempts=attempt, seconds=time.perf_counter() - t0)
            except _Fatal as e:
                error = str(e)
                break
            except (_Retryable, ValueError) as e:
                error = str(e) if isinstance(e, _Retryable) else f"malformed reply: {e}"
            if attempt <= self.max_retries:
                self._sleep(attempt)
        return TeacherFailure(error, attempts=attempts, seconds=time.perf_counter() - t0)

    # many tokens ----------------------------------------------------------------
    def run(self, prompts: Mapping[str, Messages]) -> Iterator[tuple[str, Outcome]]:
        """(token, outcome) for every prompt, in completion order, `concurrency` requests at a time."""
        todo = list(prompts.items())
        streak = 0
        last_error = ""
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="teacher") as pool:
            running: dict[Future[Outcome], str] = {}
            position = 0
            while position < len(todo) or running:
                while position < len(todo) and len(running) < self.concurrency:
                    if self.abort_after and streak >= self.abort_after:
                        break
                    token, messages = todo[position]
                    running[pool.submit(self.describe, messages)] = token
                    position += 1
                if not running:  # aborted: report the rest without sending them
                    for token, _ in todo[position:]:
                        yield token, TeacherFailure(f"not sent: the last {streak} tokens failed, the endpoint "
                                                    f"looks unusable (last error: {last_error})", attempts=0)
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    token = running.pop(fut)
                    outcome = fut.result()
                    if isinstance(outcome, TeacherFailure):
                        streak += 1
                        last_error = outcome.error
                    else:
                        streak = 0
                    yield token, outcome

    def close(self) -> None:
        if self._own_client:
            self.client.close()
