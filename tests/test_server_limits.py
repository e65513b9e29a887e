"""The chat server's limits: body size before reading, malformed / lying Content-Length, strict requests,
bounded waits for the model, tokenising outside the model lock."""

from __future__ import annotations

import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402

from sidrec.semantics.local_model import LocalChatModel  # noqa: E402
from sidrec.semantics.server import ServerLimits, create_app  # noqa: E402

OK = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 3}


@pytest.fixture(scope="module")
def lm(tmp_path_factory):
    from sidrec.llm.tiny import make_tiny_lm

    path = make_tiny_lm(tmp_path_factory.mktemp("chat") / "lm", hidden=16)
    return LocalChatModel(str(path), device="cpu")


@pytest.fixture
def client(lm):
    app = create_app("tiny", model=lm, limits=ServerLimits(max_body_bytes=4096, max_tokens=16, max_messages=4,
                                                            queue_timeout_s=0.5, body_timeout_s=1.0))
    with TestClient(app) as c:
        yield c


def test_a_valid_request_is_answered(client):
    r = client.post("/v1/chat/completions", json={**OK, "temperature": 0.7, "top_p": 0.9, "seed": 1})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["completion_tokens"] <= 3


@pytest.mark.parametrize("body, field", [
    ({**OK, "tools": []}, "tools"),                                              # unknown field
    ({**OK, "max_tokens": 0}, "max_tokens"),                                     # ≤ 0
    ({**OK, "max_tokens": -5}, "max_tokens"),
    ({"messages": [{"role": "user", "content": {"text": "x"}}]}, "content"),    # content of the wrong type
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "url": "x"}]}]}, "content"),
    ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
    ({"messages": [{"role": "user", "content": "x", "extra": 1}]}, "extra"),
    ({"messages": []}, "messages"),
    ({**OK, "stream": True}, "stream"),
    ({**OK, "n": 3}, "n"),
])
def test_strict_requests_are_refused_with_the_field(client, lm, body, field):
    r = client.post("/v1/chat/completions", json=body)
    assert r.status_code == 422
    assert field in r.text


def test_caps_from_the_limits(client):
    assert client.post("/v1/chat/completions", json={**OK, "max_tokens": 17}).status_code == 422
    many = {"messages": [{"role": "user", "content": "x"}] * 5, "max_tokens": 2}
    r = client.post("/v1/chat/completions", json=many)
    assert r.status_code == 422 and "4 messages" in r.text


def test_a_large_body_is_refused_before_tokenising(client, lm, monkeypatch):
    calls = []
    monkeypatch.setattr(lm, "count_tokens", lambda text: calls.append(text) or 1)
    big = {"messages": [{"role": "user", "content": "x" * 10_000}], "max_tokens": 2}
    r = client.post("/v1/chat/completions", json=big)
    assert r.status_code == 413 and calls == []


def test_a_busy_model_answers_503_within_the_queue_timeout(client, lm):
    lm._lock.acquire()
    try:
        t0 = time.time()
        r = client.post("/v1/chat/completions", json=OK)
        assert r.status_code == 503 and time.time() - t0 < 5
    finally:
        lm._lock.release()
    assert client.post("/v1/chat/completions", json=OK).status_code == 200


def test_tokenising_does_not_wait_for_the_model_lock(lm):
    lm._lock.acquire()
    try:
        done = []
        t = threading.Thread(target=lambda: done.append(lm.count_tokens(lm.prompt_text([{"role": "user",
                                                                                           "content": "hi"}]))))
        t.start()
        t.join(timeout=5)
        assert done and done[0] > 0
    finally:
        lm._lock.release()


@pytest.fixture
def server(lm):
    import uvicorn

    app = create_app("tiny", model=lm, limits=ServerLimits(max_body_bytes=4096, body_timeout_s=1.0))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    yield port
    srv.should_exit = True
    thread.join(timeout=10)


def _raw(port: int, head: bytes, body: bytes = b"", wait: float = 5.0) -> tuple[str, float]:
    t0 = time.time()
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as c:
        c.sendall(head + body)
        data = b""
        try:
            while b"\r\n\r\n" not in data:
                chunk = c.recv(4096)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            pass
    return data.decode(errors="replace"), time.time() - t0


def test_malformed_or_lying_content_length_cannot_hold_a_worker(server):
    head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    reply, _ = _raw(server, head + b"Content-Length: 12abc\r\n\r\n", b"{}")
    assert reply.startswith("HTTP/1.1 400")
    reply, _ = _raw(server, head + b"Content-Length: 999999999\r\n\r\n")
    assert reply.startswith("HTTP/1.1 413")
    # announces 500 bytes, sends 10: dropped after the body timeout, not held
    reply, took = _raw(server, head + b"Content-Length: 500\r\n\r\n", b'{"messages"')
    assert reply.startswith("HTTP/1.1 408") and took < 4
