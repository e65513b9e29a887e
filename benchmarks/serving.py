"""Load test of `sidrec serve`: throughput and latency, micro-batched against one request at a time.

Each server is a real `sidrec serve` process on 127.0.0.1 (nothing else is contacted); a client in
this process sends `--requests` requests per cell at concurrency 1, 8 and 32 (each a test-split
history of the run's dataset, k 10, the run's beam width) and checks every answer: status 200, k
distinct catalogue items, and for the filtered cell every item in the request's category. Servers:

* sft, micro-batched (`--max-batch-size 32 --max-wait-ms 5`) and unbatched (`--max-batch-size 1`)
* sasrec, the same two settings
* filtered: the sft server, micro-batched, every request restricted to one category

Peak resident memory (VmHWM) of each server is read after start-up and after its load.

    python benchmarks/serving.py                       # the demo's runs (trained first if missing)
    python benchmarks/serving.py --sft RUN --sasrec RUN --requests 64 --threads 2

Writes benchmarks/results/serving.json: summary keys `serving.sft.throughput_ratio_vs_unbatched@c32`,
`serving.sft.p50_ms@c1`, `serving.sft.p99_ms@c8`, `serving.sasrec.p99_ms@c8`, `serving.errors`,
`serving.filtered.p99_ms@c8`, and for every cell `serving.<server>.<mode>.{rps,p50_ms,p99_ms}@c<N>`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.table import Table

from _common import ROOT, console, write_result

CONCURRENCY = (1, 8, 32)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_mb(pid: int) -> dict[str, float]:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024
    return {"peak_mb": round(out.get("VmHWM", 0.0), 1), "rss_mb": round(out.get("VmRSS", 0.0), 1)}


class Server:
    """A `sidrec serve` child process on a free port."""

    def __init__(self, run: Path, *, max_batch_size: int, threads: int, max_wait_ms: float = 5.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
        self.log = open(ROOT / "runs" / f"bench-serving-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sidrec", "serve", "--run", str(run), "--port", str(self.port), "--device", "cpu",
             "--threads", str(threads), "--max-batch-size", str(max_batch_size), "--max-wait-ms", str(max_wait_ms),
             "--timeout", "600", "--log-level", "warning"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
        deadline = time.time() + 300
        while True:
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the server for {run} did not start; see {self.log.name}")
            time.sleep(0.2)
        self.memory_started = peak_rss_mb(self.proc.pid)

    def stop(self) -> dict[str, float]:
        mem = peak_rss_mb(self.proc.pid)
        self.proc.terminate()
        self.proc.wait(timeout=60)
        self.log.close()
        return mem


def check(answer: dict[str, Any], body: dict[str, Any], catalogue: set[str], members: dict[str, set[str]]) -> str | None:
    """None when the answer is valid for the request, else what is wrong."""
    ids = [x["item_id"] for x in answer.get("items", [])]
    if len(ids) != body["k"] or len(set(ids)) != len(ids):
        return f"{len(ids)} items ({len(set(ids))} distinct) for k={body['k']}"
    if any(i not in catalogue for i in ids):
        return "an item outside the catalogue"
    for c in body.get("categories", []):
        if any(i not in members[c] for i in ids):
            return f"an item outside category {c!r}"
    return None


async def load(url: str, bodies: list[dict[str, Any]], concurrency: int, catalogue: set[str],
               members: dict[str, set[str]], max_seconds: float) -> dict[str, Any]:
    """Send `bodies` with `concurrency` requests in flight; latencies, throughput and every error."""
    latencies: list[float] = []
    batch_sizes: list[int] = []
    errors: list[str] = []
    queue = list(reversed(bodies))
    started = time.perf_counter()

    async def worker(client: httpx.AsyncClient) -> None:
        while queue and time.perf_counter() - started < max_seconds:
            body = queue.pop()
            t0 = time.perf_counter()
            try:
                r = await client.post("/v1/recommend", json=body)
            except httpx.HTTPError as e:
                errors.append(type(e).__name__)
                continue
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                errors.append(f"HTTP {r.status_code}: {r.text[:200]}")
                continue
            answer = r.json()
            problem = check(answer, body, catalogue, members)
            if problem:
                errors.append(problem)
            batch_sizes.append(answer["timings"]["batch_size"])

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=600, limits=limits) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    wall = time.perf_counter() - started
    lat = np.asarray(latencies)
    return {"requests": len(latencies), "wall_s": round(wall, 3), "rps": round(len(latencies) / wall, 3),
            "p50_ms": round(float(np.percentile(lat, 50)), 2), "p99_ms": round(float(np.percentile(lat, 99)), 2),
            "mean_ms": round(float(lat.mean()), 2), "mean_batch_size": round(float(np.mean(batch_sizes)), 2)
            if batch_sizes else None, "errors": errors, "latencies_ms": [round(x, 2) for x in latencies]}


def demo_runs() -> tuple[Path, Path]:
    out = ROOT / "runs" / "demo"
    if not ((out / "sft" / "model").is_dir() and (out / "sasrec" / "model").is_dir()):
        from sidrec.pipelines.run import load_pipeline_config, run_pipeline

        console.print("training the demo's runs first (`sidrec demo`)")
        run_pipeline(load_pipeline_config("demo-cpu", {}), out)
    return out / "sft", out / "sasrec"


def requests_for(run: Path, n: int, seed: int) -> tuple[list[dict[str, Any]], set[str], dict[str, set[str]]]:
    """`n` test-split histories of the run's dataset, the catalogue, and category → items."""
    from sidrec.data.dataset import Dataset
    from sidrec.utils.io import read_config

    ds = Dataset.load(read_config(run / "config.yaml")["dataset"], validate=False)
    test = ds.split("test")
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(test), size=n, replace=len(test) < n)
    bodies = [{"history": [str(x) for x in test["history"].iloc[int(r)]], "k": 10} for r in rows]
    members: dict[str, set[str]] = {}
    for iid, cats in zip(ds.items["item_id"].astype(str), ds.items["categories"], strict=True):
        for c in (cats if cats is not None else []):
            members.setdefault(str(c), set()).add(iid)
    return bodies, set(ds.items["item_id"].astype(str)), members


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sft", type=Path, default=None, help="a generative run (default: the demo's sft)")
    ap.add_argument("--sasrec", type=Path, default=None, help="a SASRec run (default: the demo's sasrec)")
    ap.add_argument("--requests", type=int, default=64, help="requests per cell")
    ap.add_argument("--max-seconds", type=float, default=120.0, help="a cell stops sending after this long")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--name", default="serving", help="results file name")
    args = ap.parse_args()
    sft, sasrec = (args.sft, args.sasrec) if args.sft and args.sasrec else demo_runs()
    (ROOT / "runs").mkdir(exist_ok=True)
    bodies, catalogue, members = requests_for(sft, args.requests, args.seed)
    rng = np.random.default_rng(args.seed + 1)
    big = sorted(c for c, items in members.items() if len(items) >= 20)  # room for k = 10 and more
    filtered = [{**b, "categories": [big[int(rng.integers(len(big)))]]} for b in bodies] if big else []

    cells: dict[str, Any] = {}
    memory: dict[str, Any] = {}
    for name, run in (("sft", sft), ("sasrec", sasrec)):
        for mode, batch in (("batched", 32), ("unbatched", 1)):
            server = Server(run, max_batch_size=batch, threads=args.threads)
            console.print(f"{name} {mode}: serving {run} at {server.url}")
            asyncio.run(load(server.url, bodies[:4], 1, catalogue, members, 60))  # warm-up, not counted
            for c in CONCURRENCY:
                cells[f"{name}.{mode}@c{c}"] = asyncio.run(load(server.url, bodies, c, catalogue, members,
                                                                args.max_seconds))
            if name == "sft" and mode == "batched" and filtered:
                for c in (1, 8):
                    cells[f"filtered.batched@c{c}"] = asyncio.run(load(server.url, filtered, c, catalogue, members,
                                                                       args.max_seconds))
            memory[f"{name}.{mode}"] = {"after_start": server.memory_started, "after_load": server.stop()}

    table = Table(title=f"sidrec serve load test · {args.requests} requests per cell · {args.threads} threads")
    for col in ("cell", "requests", "req/s", "p50 ms", "p99 ms", "mean batch", "errors"):
        table.add_column(col, justify="left" if col == "cell" else "right")
    for key, v in cells.items():
        table.add_row(key, str(v["requests"]), f"{v['rps']:.2f}", f"{v['p50_ms']:.1f}", f"{v['p99_ms']:.1f}",
                      str(v["mean_batch_size"]), str(len(v["errors"])))
    console.print(table)

    summary: dict[str, Any] = {}
    for key, v in cells.items():
        head, _, c = key.partition("@")
        for m in ("rps", "p50_ms", "p99_ms"):
            summary[f"serving.{head}.{m}@{c}"] = v[m]
    for name in ("sft", "sasrec"):
        for c in CONCURRENCY:
            summary[f"serving.{name}.throughput_ratio_vs_unbatched@c{c}"] = round(
                cells[f"{name}.batched@c{c}"]["rps"] / cells[f"{name}.unbatched@c{c}"]["rps"], 3)
    summary["serving.sft.p50_ms@c1"] = cells["sft.batched@c1"]["p50_ms"]
    summary["serving.sft.p99_ms@c8"] = cells["sft.batched@c8"]["p99_ms"]
    summary["serving.sasrec.p99_ms@c8"] = cells["sasrec.batched@c8"]["p99_ms"]
    if filtered:
        summary["serving.filtered.p99_ms@c8"] = cells["filtered.batched@c8"]["p99_ms"]
    summary["serving.errors"] = sum(len(v["errors"]) for v in cells.values())
    summary["serving.requests"] = sum(v["requests"] for v in cells.values())
    for k in ("serving.sft.throughput_ratio_vs_unbatched@c32", "serving.sft.p50_ms@c1", "serving.sft.p99_ms@c8",
              "serving.sasrec.p99_ms@c8", "serving.filtered.p99_ms@c8", "serving.errors"):
        console.print(f"{k}: {summary.get(k)}")
    config = {"sft": str(sft), "sasrec": str(sasrec), "requests_per_cell": args.requests, "threads": args.threads,
              "max_seconds": args.max_seconds, "concurrency": CONCURRENCY, "batched": {"max_batch_size": 32,
              "max_wait_ms": 5}, "unbatched": {"max_batch_size": 1}, "k": 10, "seed": args.seed,
              "filtered_categories": big}
    path = write_result(args.name, summary=summary, config=config, raw=cells, memory=memory)
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
