"""`sidrec serve`: catalogue filters inside decoding (against brute force), micro-batching that never
changes an answer, limits and errors, metrics and access logs, graceful shutdown, the client and CLI."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from sidrec.errors import DataError, SidrecError
from sidrec.llm.recommender import SIDRecommender
from sidrec.serving.app import create_app
from sidrec.serving.batching import MicroBatcher
from sidrec.serving.catalogue import Catalogue, UnknownEntries
from sidrec.serving.client import RecommendClient
from sidrec.serving.config import ServeConfig
from sidrec.serving.engines import Query
from sidrec.serving.loading import load_served
from sidrec.sids.trie import SIDTrie

from .conftest import free_port, running_server

N_ITEMS = 40


@pytest.fixture(scope="module")
def runs(serving_runs):
    return serving_runs


@pytest.fixture(scope="module")
def sft(runs):
    return load_served(runs["sft"], device="cpu")


def random_masks(rng, n: int, rows: int) -> np.ndarray:
    """Filters of every density, from a single item to nearly everything."""
    out = np.zeros((rows, n), dtype=bool)
    for r in range(rows):
        share = [0.03, 0.1, 0.3, 0.7, 0.95][r % 5]
        out[r] = rng.random(n) < share
        out[r, rng.integers(n)] = True
    return out


# ----------------------------------------------------------------------------- the trie filter
def test_has_allowed_matches_brute_force():
    rng = np.random.default_rng(0)
    codes = np.unique(rng.integers(0, 5, size=(300, 3)), axis=0)
    trie = SIDTrie.from_codes(codes, codebook_sizes=[5, 5, 5])
    allowed = torch.from_numpy(random_masks(rng, len(codes), 10))
    counts = trie.allowed_counts(allowed)
    for depth in range(trie.depth + 1):
        nodes = torch.arange(trie.num_nodes(depth))
        for row in range(allowed.shape[0]):
            got = trie.has_allowed(depth, nodes, torch.tensor(row), counts)
            start, end = trie.item_range(depth, nodes)
            want = [bool(allowed[row, trie.order[s:e]].any()) for s, e in zip(start.tolist(), end.tolist(), strict=True)]
            assert got.tolist() == want
    with pytest.raises(ValueError, match="bool tensor"):
        trie.allowed_counts(allowed.long())


def test_filtered_beam_search_is_the_restricted_exact_ranking(sft):
    """Restricting inside decoding = filtering the exact ranking: beam search over the open trie with
    as many beams as allowed items returns the restricted exact top-k; with few beams, never a
    forbidden item; and the exact scores of allowed items are those of the unrestricted ranking."""
    rec: SIDRecommender = sft.engine.rec
    rng = np.random.default_rng(1)
    histories = [[f"i{(s + j) % N_ITEMS}" for j in range(3)] for s in range(0, 40, 4)]
    masks = random_masks(rng, N_ITEMS, len(histories))
    allowed = torch.from_numpy(masks)
    exact = rec.exact_scores(histories)
    restricted = rec.exact_scores(histories, allowed=allowed)
    assert torch.equal(restricted, exact.masked_fill(~allowed, float("-inf")))
    k = 5
    items, scores = rec.recommend_indices(histories, top_k=k, num_beams=N_ITEMS, allowed=allowed)
    for row in range(len(histories)):
        n_allowed = int(masks[row].sum())
        want = torch.sort(restricted[row], descending=True, stable=True).indices[: min(k, n_allowed)]
        got = items[row][items[row] >= 0]
        assert got.tolist() == want.tolist()
        assert torch.allclose(scores[row][: len(got)], restricted[row][want], atol=1e-5)
        assert (items[row][min(k, n_allowed):] == -1).all()  # fewer allowed than k: padded, never filled
    for beams in (2, 5):
        items, _ = rec.recommend_indices(histories, top_k=2, num_beams=beams, allowed=allowed)
        for row in range(len(histories)):
            got = [i for i in items[row].tolist() if i >= 0]
            assert got and all(masks[row][i] for i in got)
    # a filter that allows few items spends no beam elsewhere: all of them come back even with few beams
    few = torch.zeros(1, N_ITEMS, dtype=torch.bool)
    few[0, [3, 17, 31]] = True
    items, _ = rec.recommend_indices(histories[:1], top_k=3, num_beams=3, allowed=few)
    assert sorted(items[0].tolist()) == [3, 17, 31]


# ----------------------------------------------------------------------------- batching
def test_an_answer_does_not_depend_on_its_batch(runs):
    """Alone or in a mixed batch (other filters, k and beam widths), a query gets the same answer."""
    rng = np.random.default_rng(2)
    for name in ("sft", "tiger", "sasrec", "gru4rec", "pop"):
        engine = load_served(runs[name], device="cpu").engine
        queries = []
        for j in range(12):
            history = tuple(int(x) for x in rng.integers(0, N_ITEMS, size=int(rng.integers(1, 6))))
            allowed = None if j % 3 == 0 else random_masks(rng, N_ITEMS, 1)[0]
            queries.append(Query(history, k=int(rng.integers(1, 8)), num_beams=[8, 12][j % 2], allowed=allowed))
        alone = [engine.run([q])[0] for q in queries]
        together = engine.run(queries)
        for a, b, q in zip(alone, together, queries, strict=True):
            assert a.items == b.items, name
            assert np.allclose(a.scores, b.scores, atol=1e-5), name
            assert len(a.items) <= q.k and (q.allowed is None or all(q.allowed[i] for i in a.items))


def test_micro_batcher_gathers_concurrent_requests_and_answers_each_in_order():
    calls: list[list[int]] = []

    def run(batch):
        calls.append(list(batch))
        time.sleep(0.05)
        return [x * 10 for x in batch]

    async def main():
        b = MicroBatcher(run, max_batch_size=4, max_wait_ms=20)
        await b.start()
        results = await asyncio.gather(*(b.submit(i) for i in range(10)))
        await b.stop()
        return results

    results = asyncio.run(main())
    assert [r for r, _ in results] == [i * 10 for i in range(10)]
    assert max(len(c) for c in calls) == 4 and sum(len(c) for c in calls) == 10
    assert all(t.batch_size == len(next(c for c in calls if i in c)) for i, (_, t) in enumerate(results))


def test_stop_answers_what_is_queued_and_refuses_new_requests():
    from sidrec.serving.batching import BatcherClosed

    async def main():
        b = MicroBatcher(lambda xs: [x + 1 for x in xs], max_batch_size=2, max_wait_ms=50)
        await b.start()
        pending = [asyncio.ensure_future(b.submit(i)) for i in range(5)]
        await asyncio.sleep(0)
        await b.stop()
        with pytest.raises(BatcherClosed):
            await b.submit(9)
        return [p.result()[0] for p in pending]

    assert asyncio.run(main()) == [1, 2, 3, 4, 5]


# ----------------------------------------------------------------------------- the HTTP API
def test_every_run_kind_answers_through_one_api(runs):
    from fastapi.testclient import TestClient

    for name, method, engine in (("sft", "sft", "generative"), ("tiger", "tiger", "generative"),
                                 ("sasrec", "sasrec", "scoring"), ("gru4rec", "gru4rec", "scoring"),
                                 ("pop", "popularity", "scoring")):
        with TestClient(create_app(load_served(runs[name], device="cpu"))) as c:
            info = c.get("/v1/model").json()
            assert (info["method"], info["engine"], info["n_items"], info["dataset"]) == (method, engine, N_ITEMS, "chain")
            assert info["sid_levels"] == (3 if engine == "generative" else None)
            r = c.post("/v1/recommend", json={"history": ["i4", "Chain item 5"], "k": 4, "categories": ["group 1"],
                                              "exclude_history": True, "user_id": "u9"})
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["history"] == ["i4", "i5"] and body["user_id"] == "u9" and body["allowed_items"] == 10
            ids = [x["item_id"] for x in body["items"]]
            assert len(ids) == 4 and len(set(ids)) == 4 and all(10 <= int(i[1:]) < 20 for i in ids)
            assert [x["rank"] for x in body["items"]] == [1, 2, 3, 4]
            assert all(x["title"] == f"Chain item {x['item_id'][1:]}" for x in body["items"])
            scores = [x["score"] for x in body["items"]]
            assert scores == sorted(scores, reverse=True)
            assert (body["items"][0]["sid"] is not None) == (engine == "generative")
            assert body["model"] == {"run": str(runs[name]), "method": method, "engine": engine}
            assert body["timings"]["batch_size"] == 1 and body["timings"]["total_ms"] >= body["timings"]["model_ms"]


def test_the_server_answers_as_the_engine_and_sidrec_recommend_do(runs, sft):
    from fastapi.testclient import TestClient

    from sidrec.serving.local import recommend_local

    body = {"history": ["i1", "i2", "i3"], "k": 5, "exclude_items": ["i4"], "num_beams": 10}
    with TestClient(create_app(sft)) as c:
        served = c.post("/v1/recommend", json=body).json()
    local = recommend_local(runs["sft"], body, device="cpu")
    assert [x["item_id"] for x in served["items"]] == [x["item_id"] for x in local["items"]]
    assert "i4" not in [x["item_id"] for x in served["items"]]
    [ranked] = sft.engine.run([Query((1, 2, 3), 5, 10, np.arange(N_ITEMS) != 4)])
    assert [f"i{i}" for i in ranked.items] == [x["item_id"] for x in served["items"]]


def test_bad_requests_get_a_422_naming_the_field_and_the_fix(sft, runs):
    from fastapi.testclient import TestClient

    config = ServeConfig(max_k=20, max_history=5, max_num_beams=30, max_batch_requests=3, max_body_bytes=2048)
    with TestClient(create_app(sft, config)) as c:
        def problem(body, path="/v1/recommend"):
            r = c.post(path, json=body)
            assert r.status_code == 422, r.text
            return r.json()["detail"][0]

        d = problem({"history": ["i1", "nope", "Nope either"]})
        assert d["loc"] == ["body", "history"] and d["unknown"] == ["nope", "Nope either"] and "'nope'" in d["msg"]
        assert problem({"history": ["i1"], "include_items": ["i2", "zz"]})["unknown"] == ["zz"]
        assert problem({"history": ["i1"], "categories": ["group 9"]})["unknown"] == ["group 9"]
        assert "at most 20" in problem({"history": ["i1"], "k": 21})["msg"]
        assert "at most 5 items" in problem({"history": ["i1"] * 6})["msg"]
        assert "at least k" in problem({"history": ["i1"], "k": 10, "num_beams": 5})["msg"]
        assert "at most 30" in problem({"history": ["i1"], "num_beams": 31})["msg"]
        assert problem({"history": ["i1"], "kk": 3})["type"] == "extra_forbidden"
        assert problem({"history": []})["loc"] == ["body", "history"]
        assert problem({"history": ["i1"], "include_items": []})["loc"] == ["body", "include_items"]
        assert problem({"history": ["i1"], "k": 0})["loc"] == ["body", "k"]
        d = problem({"requests": [{"history": ["i1"]}, {"history": ["bad"]}]}, "/v1/recommend/batch")
        assert d["loc"] == ["body", "requests", 1, "history"] and d["unknown"] == ["bad"]
        assert "at most 3 requests" in problem({"requests": [{"history": ["i1"]}] * 4}, "/v1/recommend/batch")["msg"]
        r = c.post("/v1/recommend", content=b'{"history": ["i1"], "user_id": "' + b"x" * 3000 + b'"}',
                   headers={"content-type": "application/json"})
        assert r.status_code == 413
        # an empty filter result is an answer, not an error
        r = c.post("/v1/recommend", json={"history": ["i1"], "include_items": ["i1"], "exclude_history": True})
        assert r.status_code == 200 and r.json()["items"] == [] and r.json()["allowed_items"] == 0
    # a dataset without categories refuses the filter (the tiny chain dataset of another test has none)
    bare = Catalogue([f"i{j}" for j in range(N_ITEMS)])
    with pytest.raises(DataError, match="no item categories"):
        bare.category_mask(["x"])


class SlowEngine:
    """An engine whose model call takes `seconds` (timeouts, queue limits, graceful shutdown)."""

    kind, uses_beams = "scoring", False

    def __init__(self, inner, seconds: float) -> None:
        self.inner, self.seconds, self.item_ids = inner, seconds, inner.item_ids
        self.running = threading.Event()  # set once a model call has started

    def run(self, queries):
        self.running.set()
        time.sleep(self.seconds)
        return self.inner.run(queries)


def slow(served, seconds: float):
    import copy

    out = copy.copy(served)
    out.engine = SlowEngine(served.engine, seconds)
    return out


def test_timeouts_and_a_full_queue_are_refused_not_hung(runs):
    from fastapi.testclient import TestClient

    pop = load_served(runs["pop"], device="cpu")
    with TestClient(create_app(slow(pop, 0.6), ServeConfig(request_timeout_s=0.2))) as c:
        r = c.post("/v1/recommend", json={"history": ["i1"]})
        assert r.status_code == 504 and "0.2 s" in r.json()["detail"]

    async def flood():
        import httpx

        app = create_app(slow(pop, 0.3), ServeConfig(max_queue=2, max_batch_size=1, max_wait_ms=0))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                rs = await asyncio.gather(*(client.post("/v1/recommend", json={"history": ["i1"]}) for _ in range(8)))
        return [r.status_code for r in rs]

    codes = asyncio.run(flood())
    assert codes.count(200) >= 2 and codes.count(503) >= 1 and set(codes) <= {200, 503}

    class Broken(SlowEngine):
        def run(self, queries):
            raise RuntimeError("out of memory on the device")

    broken = slow(pop, 0)
    broken.engine = Broken(pop.engine, 0)
    with TestClient(create_app(broken)) as c:
        r = c.post("/v1/recommend", json={"history": ["i1"]})
        assert r.status_code == 500 and "out of memory on the device" in r.json()["detail"]
        assert c.get("/health").status_code == 200  # the server lives on


def test_concurrent_requests_are_batched_and_answered_as_alone(runs, sft):
    import httpx

    rng = np.random.default_rng(3)
    bodies = []
    for j in range(24):
        body = {"history": [f"i{int(x)}" for x in rng.integers(0, N_ITEMS, size=int(rng.integers(1, 5)))],
                "k": int(rng.integers(1, 9)), "num_beams": 10}
        if j % 2:
            body["categories"] = [["group 0", "odd"], ["group 3"], ["even"]][j % 3]
        if j % 5 == 0:
            body["exclude_history"] = True
        bodies.append(body)
    with running_server(create_app(sft, ServeConfig(max_batch_size=1))) as (url, _):
        alone = [httpx.post(f"{url}/v1/recommend", json=b).json() for b in bodies]

    async def concurrent(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            return await asyncio.gather(*(client.post("/v1/recommend", json=b) for b in bodies))

    with running_server(create_app(sft, ServeConfig(max_batch_size=16, max_wait_ms=50))) as (url, _):
        together = [r.json() for r in asyncio.run(concurrent(url))]
        metrics = httpx.get(f"{url}/metrics").text
    assert max(t["timings"]["batch_size"] for t in together) > 1
    for a, b in zip(alone, together, strict=True):
        assert [x["item_id"] for x in a["items"]] == [x["item_id"] for x in b["items"]]
        assert np.allclose([x["score"] for x in a["items"]], [x["score"] for x in b["items"]], atol=1e-4)
    assert 'sidrec_requests_total{path="/v1/recommend",status="200"} 24.0' in metrics
    assert "sidrec_batch_size_count" in metrics and "sidrec_request_latency_seconds_bucket" in metrics
    batches = float(next(line.split()[-1] for line in metrics.splitlines() if line.startswith("sidrec_batch_size_count")))
    assert batches < 24  # fewer model calls than requests


def test_batch_endpoint_health_items_categories_and_access_log(sft, caplog):
    from fastapi.testclient import TestClient

    with TestClient(create_app(sft)) as c, caplog.at_level(logging.INFO, logger="sidrec.serve.access"):
        r = c.post("/v1/recommend/batch", json={"requests": [{"history": ["i1"], "k": 2},
                                                             {"history": ["i2"], "k": 3, "categories": ["odd"]}]})
        assert r.status_code == 200
        res = r.json()["results"]
        assert [len(x["items"]) for x in res] == [2, 3]
        assert all(int(x["item_id"][1:]) % 2 == 1 for x in res[1]["items"])
        assert c.get("/health").json()["status"] == "ok"
        hits = c.get("/v1/items", params={"q": "item 3", "limit": 5}).json()["items"]
        assert hits[0] == {"item_id": "i3", "title": "Chain item 3", "categories": ["group 0", "odd"]}
        assert all("item" in h["title"].lower() and "3" in h["title"] for h in hits) and len(hits) == 5
        cats = c.get("/v1/categories").json()["categories"]
        assert cats[0] == {"name": "even", "items": 20} and {"name": "group 2", "items": 10} in cats
        r = c.get("/health", headers={"X-Request-ID": "abc123"})
        assert r.headers["x-request-id"] == "abc123"
        assert c.get("/").headers["content-type"].startswith("text/html")
        assert "/v1/recommend" in c.get("/openapi.json").json()["paths"]
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "sidrec.serve.access"]
    assert {"request_id", "method", "path", "status", "ms", "client"} <= set(lines[0])
    assert any(x["path"] == "/v1/recommend/batch" and x["status"] == 200 for x in lines)
    assert any(x["request_id"] == "abc123" for x in lines)


def test_catalogue_resolves_ids_then_exact_titles():
    cat = Catalogue(["a", "b", "c"], ["Blue Lotion", "Red Soap", "Blue Lotion"], [["x"], ["y"], []])
    assert cat.resolve(["b", "Blue Lotion", "red soap"], "history") == [1, 0, 1]
    with pytest.raises(UnknownEntries, match="'Green'"):
        cat.resolve(["Green", "a"], "history")
    assert cat.search("blue") == [0, 2] and cat.search("") == []
    assert cat.category_mask(["x", "y"]).tolist() == [True, True, False]


# ----------------------------------------------------------------------------- shutdown, client, CLI
def test_shutdown_finishes_the_requests_in_flight(runs):
    import httpx

    served = slow(load_served(runs["pop"], device="cpu"), 1.0)
    with running_server(create_app(served)) as (url, server):
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("r", httpx.post(f"{url}/v1/recommend",
                                                                              json={"history": ["i1"]}, timeout=30)))
        t.start()
        assert served.engine.running.wait(30)  # the request is now inside the model call
        server.should_exit = True  # what SIGTERM / Ctrl-C does
        t.join(timeout=30)
    assert result["r"].status_code == 200 and len(result["r"].json()["items"]) == 10


def test_client_and_cli_against_a_real_server_process(runs, tmp_path):
    """`sidrec serve` in its own process: the client and `sidrec recommend --url` get the local answer;
    errors are one line; SIGTERM stops it cleanly."""
    from typer.testing import CliRunner

    from sidrec.cli.main import app

    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sidrec", "serve", "--run", str(runs["sft"]), "--port", str(port),
                             "--device", "cpu", "--threads", "1", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        client = RecommendClient(url, timeout_s=30)
        deadline = time.time() + 120
        while True:
            try:
                client.health()
                break
            except SidrecError:
                assert proc.poll() is None and time.time() < deadline, proc.stderr.read() if proc.poll() else "slow start"
                time.sleep(0.2)
        answer = client.recommend(["i1", "i2"], k=3, categories=["odd"])
        assert [x["rank"] for x in answer["items"]] == [1, 2, 3]
        with pytest.raises(DataError, match="history: .*'zz'"):
            client.recommend(["zz"])
        assert client.recommend_batch([{"history": ["i1"], "k": 2}])[0]["k"] == 2
        r = CliRunner().invoke(app, ["recommend", "--url", url, "--history", "i1,i2", "-k", "3", "--category", "odd",
                                     "--json"])
        assert r.exit_code == 0, r.output
        assert [x["item_id"] for x in json.loads(r.output)["items"]] == [x["item_id"] for x in answer["items"]]
        r = CliRunner().invoke(app, ["recommend", "--run", str(runs["sft"]), "--history", "i1,i2", "-k", "3",
                                     "--category", "odd", "--json", "--device", "cpu"])
        assert r.exit_code == 0, r.output
        assert [x["item_id"] for x in json.loads(r.output)["items"]] == [x["item_id"] for x in answer["items"]]
        r = CliRunner().invoke(app, ["recommend", "--url", url, "--history", "i1", "--category", "nope"])
        assert r.exit_code != 0 and "nope" in r.output and "Traceback" not in r.output
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    logged = [json.loads(x) for x in err.splitlines() if x.startswith("{")]
    assert any(x["path"] == "/v1/recommend" and x["status"] == 422 for x in logged)
    with pytest.raises(SidrecError, match="no sidrec server answers at .*sidrec serve --run"):
        RecommendClient(url, timeout_s=2).health()
    r = CliRunner().invoke(app, ["recommend", "--history", "i1"])
    assert r.exit_code != 0 and "exactly one of --run" in r.output


def test_a_folder_without_a_model_is_one_line_naming_the_fix(tmp_path):
    with pytest.raises(DataError, match="no such run folder; train one first"):
        load_served(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    with pytest.raises(DataError, match="has no trained model .*--resume"):
        load_served(tmp_path / "half")


def test_a_relative_dataset_path_is_found_from_above_the_run(tmp_path, monkeypatch):
    from sidrec.serving.loading import _dataset_folder

    (tmp_path / "runs" / "demo" / "data").mkdir(parents=True)
    run = tmp_path / "runs" / "demo" / "sft"
    run.mkdir()
    monkeypatch.chdir(tmp_path / "runs")  # not where the run was started
    assert _dataset_folder("runs/demo/data", run) == tmp_path / "runs" / "demo" / "data"
    assert _dataset_folder("runs/demo/missing", run) is None and _dataset_folder(None, run) is None
