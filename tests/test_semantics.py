"""TS-Rec token semantics: clusters, the c-TF-IDF teacher, the LLM teachers' prompt / validator /
retries, the per-token cache, importing the released file, the CLI, and (slow) the local chat
server end to end with the real SmolLM2."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sidrec.errors import ConfigError, DataError
from sidrec.semantics.clusters import semantic_levels, token_clusters
from sidrec.semantics.extract import (
    SemanticsCache,
    cluster_prompts,
    extract_semantics,
    import_semantics,
    parse_levels,
    resolve_run,
)
from sidrec.semantics.format import coverage, load_semantics
from sidrec.semantics.teacher import (
    OpenAITeacher,
    TeacherFailure,
    TeacherReply,
    cluster_prompt,
    parse_reply,
)
from sidrec.semantics.tfidf import tfidf_extract, tfidf_semantics
from sidrec.sids.table import SIDTable

from .conftest import shared_path

GOOD = {"description": "Power tools for drilling.", "keywords": ["drill", "cordless", "battery", "chuck"]}


# ----------------------------------------------------------------------------- helpers
def completion(content: str) -> dict:
    return {"id": "x", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant",
                                                                                          "content": content}}]}


def token_of(request: httpx.Request) -> str:
    """The SID token a teacher request is about (named in the user message)."""
    body = json.loads(request.content)
    return body["messages"][1]["content"].split("The semantic ID token ", 1)[1].split(" ", 1)[0]


VOCAB = {
    0: ["cordless drill", "drill bits", "impact driver", "hammer drill", "drill chuck"],
    1: ["nitrile gloves", "safety goggles", "ear plugs", "hard hat", "face shield"],
    2: ["glass pipette", "lab beaker", "test tube", "petri dish", "graduated cylinder"],
}
SHARED = "premium quality product"


def distinct_items(per_cluster: int = 8) -> tuple[pd.DataFrame, SIDTable]:
    """Three level-1 clusters with their own vocabulary (plus words every item shares); level 2 crosses them."""
    rows, codes = [], []
    for c, words in VOCAB.items():
        for k in range(per_cluster):
            a, b = words[k % 5], words[(k + 2) % 5]
            rows.append({"item_id": f"i{c}_{k}", "title": f"{a.title()} {k + 1} with {b}",
                         "description": f"A {SHARED} featuring {a} and {b}.", "brand": "Acme",
                         "categories": ["Industrial", "Shop"]})
            codes.append([c, k % 2])
    items = pd.DataFrame(rows)
    return items, SIDTable(items["item_id"].tolist(), np.array(codes), codebook_sizes=[4, 2])


def synthetic_with_sids(n_items: int = 120, seed: int = 0):
    """A small synthetic dataset and a 2-level SID table (level 1 = department, level 2 = two halves)."""
    from sidrec.data.synthetic import SyntheticConfig, generate_synthetic

    ds = generate_synthetic(SyntheticConfig(n_items=n_items, n_users=60, seed=seed))
    dept = ds.items["categories"].map(lambda c: c[0]).astype("category").cat.codes.to_numpy()
    codes = np.stack([dept, np.arange(ds.n_items) % 2], axis=1)
    return ds, SIDTable(ds.item_ids, codes)


# ----------------------------------------------------------------------------- clusters
def test_clusters_are_per_level_and_code_regardless_of_other_codes() -> None:
    codes = np.array([[0, 0], [0, 1], [1, 0], [1, 1], [2, 1]])
    table = SIDTable([f"i{k}" for k in range(5)], codes, codebook_sizes=[4, 3])
    clusters = token_clusters(table)
    assert {t: r.tolist() for t, r in clusters.items()} == {
        "<a_0>": [0, 1], "<a_1>": [2, 3], "<a_2>": [4], "<b_0>": [0, 2], "<b_1>": [1, 3, 4]}
    assert "<a_3>" not in clusters and "<b_2>" not in clusters  # unused codes have no cluster
    assert list(token_clusters(table, [1])) == ["<b_0>", "<b_1>"]
    dup = SIDTable(["x", "y", "z"], np.array([[0, 0], [0, 0], [1, 0]])).with_dedup()
    assert dup.dedup_level and semantic_levels(dup) == [0, 1]
    assert not any(t.startswith("<c_") for t in token_clusters(dup))  # no clusters for the dedup level


# ----------------------------------------------------------------------------- tf-idf
def test_tfidf_keywords_are_each_clusters_own_words() -> None:
    items, table = distinct_items()
    sem = {s.token: s for s in tfidf_semantics(items, table)}
    assert coverage(sem, table).missing == []  # every used token has semantics
    shared = set(SHARED.split()) | {"acme", "industrial", "shop"}
    for c, words in VOCAB.items():
        s = sem[f"<a_{c}>"]
        # its five phrases first (their words alone are dropped: the bigrams hold them), shared words after
        assert set(s.keywords[:5]) == set(words), (c, s.keywords)
        first_shared = min(k for k, kw in enumerate(s.keywords) if shared & set(kw.split()))
        assert first_shared >= 5, (c, s.keywords)
        # the description names the cluster's size and titles of its own items
        assert s.description.startswith(f"Items under <a_{c}> (8 items) are mostly about ")
        titles = set(items["title"][items["item_id"].str.startswith(f"i{c}_")])
        quoted = [t for t in titles if f'"{t}"' in s.description]
        assert 2 <= len(quoted) <= 3, s.description
    # level 2 crosses every level-1 cluster: its tokens are described too, against each other only
    assert {"<b_0>", "<b_1>"} <= set(sem)


def test_tfidf_is_deterministic_drops_numbers_and_reports_textless_clusters() -> None:
    items, table = distinct_items()
    a = [s.model_dump() for s in tfidf_semantics(items, table, n_keywords=6)]
    b = [s.model_dump() for s in tfidf_semantics(items.sample(frac=1, random_state=1), table, n_keywords=6)]
    assert a == b and all(len(s["keywords"]) == 6 for s in a)
    assert not any(k.isdigit() for s in a for k in s["keywords"])
    textless = pd.DataFrame({"item_id": ["x", "y"], "title": ["", ""]})
    sem, failures = tfidf_extract(textless, SIDTable(["x", "y"], np.array([[0], [1]])))
    assert sem == [] and set(failures) == {"<a_0>", "<a_1>"} and "no" in failures["<a_0>"]


def test_tfidf_is_fast_on_20k_items() -> None:
    from sidrec.data.synthetic import SyntheticConfig, generate_synthetic

    ds = generate_synthetic(SyntheticConfig(n_items=20_000, n_users=30, min_length=3, mean_length=4, max_length=6))
    rng = np.random.default_rng(0)
    product = ds.items["categories"].map(lambda c: c[-1]).astype("category").cat.codes.to_numpy()
    codes = np.stack([product % 64, rng.integers(0, 256, ds.n_items), rng.integers(0, 256, ds.n_items)], axis=1)
    table = SIDTable(ds.item_ids, codes, codebook_sizes=[64, 256, 256])
    t0 = time.perf_counter()
    sem = tfidf_semantics(ds, table)
    seconds = time.perf_counter() - t0
    assert len(sem) == len(token_clusters(table))
    assert seconds < 20, f"{seconds:.1f} s for 20k items"


# ----------------------------------------------------------------------------- prompt and validator
def test_prompt_carries_the_sample_and_asks_for_json() -> None:
    msgs = cluster_prompt("<b_17>", ["Drill A", "Drill B"], ["x" * 400, ""], n_items=312)
    assert [m["role"] for m in msgs] == ["system", "user"]
    user = msgs[1]["content"]
    assert "<b_17>" in user and "312" in user and "- Drill A — " in user and "- Drill B\n" in user
    assert '"description"' in user and '"keywords"' in user and "x" * 160 not in user  # descriptions truncated


def test_parse_reply_accepts_fenced_json_and_rejects_bad_replies() -> None:
    text = 'Sure!\n```json\n{"description": " Tools  for drilling. ", "keywords": ["Drill", "drill", " cordless ", "", "battery"]}\n```'
    assert parse_reply(text) == ("Tools for drilling.", ["Drill", "cordless", "battery"])
    assert parse_reply('noise {"description": "d", "keywords": ["a","b","c"]} tail')[1] == ["a", "b", "c"]
    assert len(parse_reply(json.dumps({"description": "d", "keywords": [f"k{i}" for i in range(50)]}))[1]) == 30
    for bad, why in [("no json here", "no JSON"), ('{"keywords": ["a", "b", "c"]}', "description"),
                     ('{"description": "  ", "keywords": ["a", "b", "c"]}', "description"),
                     ('{"description": "d"}', "keywords"), ('{"description": "d", "keywords": ["a", "A", "b"]}', "at least 3"),
                     ("", "empty")]:
        with pytest.raises(ValueError, match=why):
            parse_reply(bad)


# ----------------------------------------------------------------------------- OpenAI teacher
def test_openai_teacher_retries_malformed_and_500_then_reports_failures(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    calls: dict[str, int] = {}
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        tok = token_of(request)
        calls[tok] = calls.get(tok, 0) + 1
        bodies.append(json.loads(request.content))
        assert "authorization" not in request.headers
        n = calls[tok]
        if tok == "<a_0>" and n == 1:
            return httpx.Response(200, json=completion("I think these are drills."))  # malformed
        if tok == "<a_1>" and n == 1:
            return httpx.Response(500, text="overloaded")
        if tok == "<a_2>":
            return httpx.Response(200, json=completion('{"description": "d", "keywords": ["only one"]}'))
        if tok == "<a_3>":
            return httpx.Response(404, text="model not found")
        return httpx.Response(200, json=completion(json.dumps(GOOD)))

    teacher = OpenAITeacher("http://test/v1/", "m", transport=httpx.MockTransport(handler), max_retries=2, backoff=0)
    prompts = {t: cluster_prompt(t, ["Drill"], None, 1) for t in ("<a_0>", "<a_1>", "<a_2>", "<a_3>")}
    out = dict(teacher.run(prompts))
    assert isinstance(out["<a_0>"], TeacherReply) and out["<a_0>"].attempts == 2
    assert isinstance(out["<a_1>"], TeacherReply) and out["<a_1>"].attempts == 2
    assert out["<a_0>"].keywords == GOOD["keywords"]
    fail = out["<a_2>"]
    assert isinstance(fail, TeacherFailure) and fail.attempts == 3 and "malformed reply" in fail.error
    assert calls["<a_2>"] == 3  # 1 + max_retries
    assert isinstance(out["<a_3>"], TeacherFailure) and calls["<a_3>"] == 1 and "404" in out["<a_3>"].error
    assert all(b["model"] == "m" and b["response_format"] == {"type": "json_object"} and b["temperature"] == 0
               for b in bodies)


def test_openai_teacher_respects_concurrency_and_sends_the_api_key(monkeypatch) -> None:
    monkeypatch.setenv("SIDREC_TEST_KEY", "sk-test-123")
    lock = threading.Lock()
    state = {"now": 0, "max": 0}
    headers: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
            headers.append(request.headers.get("authorization"))
        time.sleep(0.03)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json=completion(json.dumps(GOOD)))

    teacher = OpenAITeacher("http://test/v1", "m", api_key_env="SIDREC_TEST_KEY", concurrency=3,
                            transport=httpx.MockTransport(handler), backoff=0)
    out = list(teacher.run({f"<a_{k}>": cluster_prompt(f"<a_{k}>", ["x"], None, 1) for k in range(12)}))
    assert len(out) == 12 and all(isinstance(o, TeacherReply) for _, o in out)
    assert 2 <= state["max"] <= 3
    assert headers == ["Bearer sk-test-123"] * 12


def test_openai_teacher_gives_up_on_a_dead_endpoint_and_reports_every_token() -> None:
    sent = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(1)
        raise httpx.ConnectError("connection refused", request=request)

    teacher = OpenAITeacher("http://test/v1", "m", transport=httpx.MockTransport(handler), max_retries=1, backoff=0,
                            concurrency=1, abort_after=3)
    out = dict(teacher.run({f"<a_{k}>": cluster_prompt(f"<a_{k}>", ["x"], None, 1) for k in range(10)}))
    assert len(out) == 10 and all(isinstance(o, TeacherFailure) for o in out.values())
    assert len(sent) == 3 * 2  # three tokens tried (1 + 1 retry each), the rest not sent
    assert "connection error" in out["<a_0>"].error and "not sent" in out["<a_9>"].error


# ----------------------------------------------------------------------------- extraction, cache, resume
def test_extract_caches_per_token_and_a_rerun_asks_only_unfinished_tokens(tmp_path) -> None:
    items, table = distinct_items()
    calls: list[str] = []
    broken = {"<b_1>"}

    def handler(request: httpx.Request) -> httpx.Response:
        tok = token_of(request)
        calls.append(tok)
        if tok in broken:
            return httpx.Response(200, json=completion("sorry"))
        return httpx.Response(200, json=completion(json.dumps({**GOOD, "description": f"About {tok}."})))

    def teacher() -> OpenAITeacher:
        return OpenAITeacher("http://test/v1", "m", transport=httpx.MockTransport(handler), max_retries=1, backoff=0)

    out = tmp_path / "run" / "semantics.json"
    r1 = extract_semantics(items, table, teacher(), out, sample_items=3, show_progress=False)
    assert r1.asked == 5 and r1.from_cache == 0 and set(r1.failures) == {"<b_1>"}
    assert r1.failures["<b_1>"]["attempts"] == 2 and "malformed" in r1.failures["<b_1>"]["error"]
    saved = load_semantics(out, table)
    assert set(saved) == {"<a_0>", "<a_1>", "<a_2>", "<b_0>"} and saved["<a_1>"].description == "About <a_1>."
    report = json.loads((tmp_path / "run" / "semantics_report.json").read_text())
    assert report["n_failures"] == 1 and "<b_1>" in report["failures"] and report["coverage"]["covered"] == 4
    assert (tmp_path / "run" / "semantics_cache" / "cache.jsonl").is_file()

    calls.clear()
    broken.clear()
    r2 = extract_semantics(items, table, teacher(), out, sample_items=3, show_progress=False)
    assert calls == ["<b_1>"] and r2.asked == 1 and r2.from_cache == 4 and r2.ok
    assert set(load_semantics(out, table)) == {"<a_0>", "<a_1>", "<a_2>", "<b_0>", "<b_1>"}
    calls.clear()
    r3 = extract_semantics(items, table, teacher(), out, sample_items=3, show_progress=False)
    assert calls == [] and r3.from_cache == 5
    # another prompt (sample size) or another model is another cache key
    extract_semantics(items, table, teacher(), out, sample_items=2, show_progress=False)
    assert len(calls) == 5


class _CrashingTeacher:
    """Answers `n_ok` tokens, then the process 'dies'."""

    def __init__(self, n_ok: int) -> None:
        self.n_ok = n_ok
        self.asked: list[str] = []

    def identity(self) -> dict:
        return {"teacher": "fake"}

    def run(self, prompts):
        for k, tok in enumerate(prompts):
            if k == self.n_ok:
                raise KeyboardInterrupt
            self.asked.append(tok)
            yield tok, TeacherReply(f"About {tok}.", ["a", "b", "c"])


def test_an_interrupted_run_resumes_from_the_cache(tmp_path) -> None:
    items, table = distinct_items()
    out = tmp_path / "semantics.json"
    with pytest.raises(KeyboardInterrupt):
        extract_semantics(items, table, _CrashingTeacher(2), out, show_progress=False)
    assert len(SemanticsCache(tmp_path / "semantics_cache").entries) == 2 and not out.exists()
    second = _CrashingTeacher(99)
    r = extract_semantics(items, table, second, out, show_progress=False)
    assert len(second.asked) == 3 and r.from_cache == 2 and r.ok and len(load_semantics(out)) == 5


def test_prompts_sample_the_cluster_with_a_seed() -> None:
    items, table = distinct_items(per_cluster=30)
    clusters = token_clusters(table)
    p1 = cluster_prompts(items, table, clusters, sample_items=5, seed=0)
    assert p1 == cluster_prompts(items, table, clusters, sample_items=5, seed=0)
    assert p1 != cluster_prompts(items, table, clusters, sample_items=5, seed=1)
    user = p1["<a_1>"][1]["content"]
    lines = [line for line in user.splitlines() if line.startswith("- ") and not line.startswith('- "')]
    assert len(lines) == 5 and "shared by 30 products. Here is a sample of 5 of them:" in user
    own = [w.split()[0].title() for w in VOCAB[1]]
    assert all(any(line.startswith(f"- {w}") for w in own) for line in lines)


def test_levels_and_teacher_options_are_checked() -> None:
    _, table = distinct_items()
    assert parse_levels("b", table) == [1] and parse_levels("1,2", table) == [0, 1] and parse_levels(None, table) is None
    with pytest.raises(ConfigError, match="neither"):
        parse_levels("z", table)
    dup = SIDTable(["x", "y"], np.array([[0], [0]])).with_dedup()
    with pytest.raises(ConfigError, match="de-duplication"):
        parse_levels("2", dup)
    with pytest.raises(ConfigError, match="base-url"):
        extract_semantics(pd.DataFrame({"item_id": ["x"]}), dup, "openai", None)


# ----------------------------------------------------------------------------- import, run folders, CLI
@pytest.fixture(scope="module")
def industrial():
    from sidrec.data.importers.minionerec import import_minionerec
    from sidrec.sids.load import load_sid_table

    ds = import_minionerec(shared_path("amazon18-industrial"))
    return ds, load_sid_table(ds, None)


RELEASED = ("amazon18-industrial", "semantics", "Industrial_and_Scientific.description_keywords.json")


@pytest.mark.integration
def test_the_released_industrial_semantics_map_onto_its_sids(industrial, tmp_path) -> None:
    _, table = industrial
    result = import_semantics(shared_path(*RELEASED), table, tmp_path / "semantics.json")
    assert result.coverage.covered == result.coverage.used == 560
    assert result.coverage.per_level["a"]["used_tokens"] == 48 and "d" not in result.coverage.per_level
    again = load_semantics(tmp_path / "semantics.json", table)
    assert again == result.semantics and all(len(s.keywords) >= 18 for s in again.values())
    assert json.loads((tmp_path / "semantics_report.json").read_text())["coverage"]["covered"] == 560


def test_importing_a_file_with_a_foreign_token_names_the_file(tmp_path) -> None:
    _, table = distinct_items()
    bad = tmp_path / "other.json"
    bad.write_text(json.dumps([{"token": "<a_0>", "description": "d", "keywords": ["k"]},
                               {"token": "<a_9>", "description": "d", "keywords": ["k"]}]))
    with pytest.raises(DataError, match="other.json") as e:
        import_semantics(bad, table, tmp_path / "semantics.json")
    assert "<a_9>" in str(e.value)
    assert not (tmp_path / "semantics.json").exists()


def test_resolve_run_reads_the_runs_dataset_and_sids(tmp_path) -> None:
    ds, table = synthetic_with_sids()
    ds.save(tmp_path / "data")
    table.save(tmp_path / "sids" / "sids.json")
    sft = tmp_path / "sft"
    sft.mkdir()
    (sft / "config.yaml").write_text(f"dataset: {tmp_path / 'data'}\nsids: {tmp_path / 'sids' / 'sids.json'}\n")
    r = resolve_run(sft)
    assert r.dataset == tmp_path / "data" and r.sids == tmp_path / "sids" / "sids.json"
    assert r.out == sft / "semantics.json" and r.report == sft / "semantics_report.json"
    folder = tmp_path / "built"
    table.save(folder / "sids.json")
    (folder / "config.yaml").write_text("dataset: ../data\n")  # relative to the folder
    assert resolve_run(folder).sids == folder / "sids.json" and resolve_run(folder).dataset == folder / "../data"
    (folder / "config.yaml").write_text("method: sft\n")
    with pytest.raises(DataError, match="dataset"):
        resolve_run(folder)
    with pytest.raises(ConfigError, match="config.yaml"):
        resolve_run(tmp_path / "sids")


def test_cli_extract_tfidf_and_import(tmp_path) -> None:
    from sidrec.cli.main import app

    ds, table = synthetic_with_sids()
    ds.save(tmp_path / "data")
    table.save(tmp_path / "sids.json")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(f"dataset: {tmp_path / 'data'}\nsids: {tmp_path / 'sids.json'}\n")
    runner = CliRunner()
    r = runner.invoke(app, ["semantics", "extract", "--run", str(run), "--levels", "a"])
    assert r.exit_code == 0, r.output
    sem = load_semantics(run / "semantics.json", table)
    assert sem and all(t.startswith("<a_") for t in sem)
    assert json.loads((run / "semantics_report.json").read_text())["teacher"]["teacher"] == "tfidf"
    r = runner.invoke(app, ["semantics", "extract", "--data", str(tmp_path / "data"), "--sids",
                            str(tmp_path / "sids.json"), "--import", str(run / "semantics.json"), "--out",
                            str(tmp_path / "copy.json")])
    assert r.exit_code == 0, r.output
    assert load_semantics(tmp_path / "copy.json") == sem
    r = runner.invoke(app, ["semantics", "extract", "--data", str(tmp_path / "data"), "--sids",
                            str(tmp_path / "sids.json"), "--teacher", "openai"])
    assert r.exit_code == 2 and "--base-url" in r.output and "Traceback" not in r.output
    r = runner.invoke(app, ["semantics", "extract", "--teacher", "tfidf"])
    assert r.exit_code == 2 and "--run" in r.output


# ----------------------------------------------------------------------------- local model
def test_local_json_mode_always_assembles_valid_json(tmp_path) -> None:
    """Even a random tiny model (no chat template) yields a JSON object; the validator then judges it."""
    from sidrec.llm.tiny import make_tiny_lm
    from sidrec.semantics.local_model import HFTeacher, LocalChatModel

    lm = LocalChatModel(str(make_tiny_lm(tmp_path / "tiny")), device="cpu")
    msgs = cluster_prompt("<a_0>", ["the blue brush", "a red brush"], None, 2)
    assert lm.prompt_text(msgs).endswith("Assistant: ")
    obj = json.loads(lm.complete(msgs, json_mode=True, max_tokens=24))
    assert isinstance(obj["description"], str) and isinstance(obj["keywords"], list)
    outcome = HFTeacher("tiny", model=lm, max_new_tokens=24).describe(msgs)
    assert isinstance(outcome, (TeacherReply, TeacherFailure))
    too_long = cluster_prompt("<a_0>", ["zqxjv wkpfy " * 10] * 20, None, 20)  # > the tiny model's 1024 positions
    fail = HFTeacher("tiny", model=lm).describe(too_long)
    assert isinstance(fail, TeacherFailure) and "positions" in fail.error


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_end_to_end_with_the_local_chat_server(tmp_path) -> None:
    """Real SmolLM2 behind the OpenAI-compatible server; extraction through HTTP; a rerun is all cache."""
    import uvicorn

    from sidrec.semantics.server import create_app

    app = create_app("smollm2-135m", device="cpu")
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 20
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        assert server.started
        base = f"http://127.0.0.1:{port}/v1"
        assert httpx.get(f"{base}/models").json()["data"][0]["id"] == "smollm2-135m"

        items, table = distinct_items(per_cluster=4)
        items, table = items.iloc[:8], SIDTable(table.item_ids[:8], table.codes[:8])  # <a_0> <a_1> <b_0> <b_1>
        teacher = OpenAITeacher(base, "smollm2-135m", max_tokens=40, max_retries=0, concurrency=2, backoff=0)
        out = tmp_path / "semantics.json"
        r1 = extract_semantics(items, table, teacher, out, sample_items=4, show_progress=False)
        assert app.state.requests == 4 and r1.asked == 4
        released = json.loads(out.read_text())
        assert isinstance(released, list) and all(set(e) == {"token", "description", "keywords"} for e in released)
        sem = load_semantics(out, table)
        for tok in ("<a_0>", "<a_1>", "<b_0>", "<b_1>"):
            if tok in sem:
                assert sem[tok].description and all(isinstance(k, str) and k for k in sem[tok].keywords)
            else:
                assert r1.failures[tok]["error"]
        assert len(sem) + len(r1.failures) == 4
        r2 = extract_semantics(items, table, OpenAITeacher(base, "smollm2-135m", max_tokens=40, max_retries=0),
                               out, sample_items=4, show_progress=False)
        assert app.state.requests == 4 + len(r1.failures) and r2.from_cache == len(sem)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
