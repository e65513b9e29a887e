"""Semantic-ID quantizers: quality on real items and cost at scale.

1. Real items (Industrial 3,686 products, ml-100k 1,682 movies): MiniLM embeddings of the item text
   (cached), then RQ-KMeans, balanced RQ-KMeans and RQ-VAE (3 × 256) on the SAME embeddings (plus
   Industrial's shipped SIDs as "external"): collision rate before de-dup, unique SIDs, utilisation,
   normalised entropy, largest clusters, reconstruction / prefix error, time.
2. Scale: synthetic clustered embeddings (384-d, L2-normalised; topic + sub-topic + noise) at 10k,
   100k, 1M items. Every
   (method, size) runs in a fresh subprocess that reports its wall time and peak resident memory
   (VmHWM of that process: interpreter + libraries + embedding matrix + the method's working
   memory), and the increase of that peak over the peak right after the embeddings were made.
3. k-means backends: faiss vs scikit-learn on 65,536 × 384 → 256 clusters, 1 and 2 threads.

    python benchmarks/sids.py                          # everything (the 1M runs take minutes)
    python benchmarks/sids.py --sizes 10000 100000 --skip-real

Writes benchmarks/results/sids.json (summary + raw figures + machine) and prints tables.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from _common import ROOT, SHARED_DATA, write_result

console = Console()
METHODS = ("rqkmeans", "balanced", "rqvae")
REAL = {"industrial": ("minionerec", SHARED_DATA / "amazon18-industrial"),
        "ml100k": ("recbole", SHARED_DATA / "ml-100k")}


def synthetic(n: int, d: int = 384, centers: int = 1000, offsets: int = 1000, seed: int = 0,
              chunk: int = 65536) -> np.ndarray:
    """Clustered float32 embeddings, L2-normalised, made chunk by chunk: topic (Zipf-sized) + a shared
    sub-topic offset (half the scale) + noise, so residual levels have structure to find."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, d)).astype(np.float32)
    s = 0.5 * rng.standard_normal((offsets, d)).astype(np.float32)
    p = 1.0 / np.arange(1, centers + 1) ** 0.8
    p /= p.sum()
    x = np.empty((n, d), dtype=np.float32)
    for start in range(0, n, chunk):
        m = min(chunk, n - start)
        r = np.random.default_rng([seed, start])
        block = c[r.choice(centers, size=m, p=p)] + s[r.integers(0, offsets, size=m)]
        block += 0.3 * r.standard_normal((m, d), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        x[start:start + m] = block
    return x


def _maxrss_mb() -> float:
    """Peak resident memory of this process (VmHWM: reset at exec, unlike ru_maxrss, which a child
    inherits from the process that forked it); ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def scale_child(method: str, n: int, options: dict[str, Any]) -> dict[str, Any]:
    """Runs inside the subprocess: make the embeddings, quantize, report time / memory / quality."""
    import faiss  # noqa: F401  (load every library before the baseline)
    import torch  # noqa: F401

    from sidrec.sids.build import METHODS as QUANTIZERS
    from sidrec.sids.build import method_config
    from sidrec.sids.report import sid_report
    from sidrec.sids.table import SIDTable

    rss_libs = _maxrss_mb()
    x = synthetic(n)
    rss_base = _maxrss_mb()
    cfg = method_config(method, levels=3, codebook=256, seed=0, options=options)
    t0 = time.perf_counter()
    res = QUANTIZERS[method][1](x, cfg, show_progress=False)
    seconds = time.perf_counter() - t0
    peak = _maxrss_mb()
    table = SIDTable([str(i) for i in range(n)], res.codes, codebook_sizes=res.codebook_sizes, method=method,
                     diagnostics=res.diagnostics).with_dedup()
    rep = sid_report(table)
    return {"method": method, "n_items": n, "dim": int(x.shape[1]), "options": options,
            "seconds": round(seconds, 2), "peak_mb": round(peak, 1), "libs_mb": round(rss_libs, 1),
            "embedding_mb": round(x.nbytes / 2**20, 1), "extra_peak_mb": round(peak - rss_base, 1),
            "collision_rate": rep["collisions"]["collision_rate"], "utilization": rep["utilization"],
            "max_items_per_sid": rep["largest_cluster"]["full_sid"], "unique_sids": rep["unique_sids"],
            "reconstruction_relative": (res.diagnostics.get("reconstruction") or {}).get("relative"),
            "levels": res.diagnostics.get("levels")}


def run_scale(method: str, n: int, options: dict[str, Any], timeout: int) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", method, str(n), json.dumps(options)]
    t0 = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT / "benchmarks")
    except subprocess.TimeoutExpired:
        return {"method": method, "n_items": n, "error": f"timed out after {timeout} s"}
    if out.returncode != 0:
        return {"method": method, "n_items": n, "error": out.stderr.strip().splitlines()[-1] if out.stderr else "failed"}
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row["process_seconds"] = round(time.perf_counter() - t0, 1)
    return row


def kmeans_backends(threads: list[int]) -> list[dict[str, Any]]:
    """faiss vs scikit-learn Lloyd iterations on 65,536 × 384 → 256 (same data, same init kind)."""
    import faiss
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits

    x = synthetic(65536, seed=1)
    rows = []
    for nt in threads:
        with threadpool_limits(nt):
            faiss.omp_set_num_threads(nt)
            t = time.perf_counter()
            km = faiss.Kmeans(384, 256, niter=20, seed=0, max_points_per_centroid=256, min_points_per_centroid=1)
            km.train(x)
            tf = time.perf_counter() - t
            t = time.perf_counter()
            sk = KMeans(256, n_init=1, init="random", max_iter=20, tol=0, random_state=0, algorithm="lloyd").fit(x)
            ts = time.perf_counter() - t
        _, idx = km.index.search(x, 1)
        inertia_f = float(((x - km.centroids[idx[:, 0]]) ** 2).sum())
        rows.append({"threads": nt, "faiss_seconds": round(tf, 2), "faiss_iters": 20,
                     "faiss_ms_per_iter": round(tf / 20 * 1000, 1), "faiss_inertia": round(inertia_f, 1),
                     "sklearn_seconds": round(ts, 2), "sklearn_iters": int(sk.n_iter_),
                     "sklearn_ms_per_iter": round(ts / sk.n_iter_ * 1000, 1), "sklearn_inertia": round(float(sk.inertia_), 1)})
    faiss.omp_set_num_threads(max(threads))
    return rows


def run_real(name: str, rqvae_epochs: int | None) -> dict[str, Any]:
    from sidrec.data.importers import import_dataset
    from sidrec.sids.build import build_sids, compare_methods
    from sidrec.sids.embed import EmbedConfig, encode_items
    from sidrec.sids.report import sid_report

    fmt, src = REAL[name]
    ds = import_dataset(fmt, src)
    emb = encode_items(ds, EmbedConfig())
    methods = (["external"] if ds.external_sids else []) + list(METHODS)
    opts = {"epochs": rqvae_epochs} if rqvae_epochs else {}
    reports = compare_methods(ds, methods, embeddings=emb, options=opts, show_progress=False)
    for scope in ("level", "node"):  # the other balance scopes, for the gain of each
        table = build_sids(ds, "balanced", embeddings=emb, options={"scope": scope}, show_progress=False)
        reports[f"balanced[{scope}]"] = sid_report(table, emb.vectors)
    return {"n_items": ds.n_items, "embedding": {k: emb.info.get(k) for k in ("encoder", "dim", "max_length",
                                                                             "seconds", "template")},
            "embedding_cache_hit": emb.cache_hit, "reports": reports}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(scale_child(sys.argv[2], int(sys.argv[3]), json.loads(sys.argv[4]))))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--rqvae-max-items", type=int, default=100_000, help="skip RQ-VAE scale runs above this size")
    ap.add_argument("--rqvae-scale-epochs", type=int, default=5)
    ap.add_argument("--rqvae-epochs", type=int, default=None, help="RQ-VAE epochs on the real data (default: its default)")
    ap.add_argument("--balanced-scopes", nargs="+", default=["last", "node"],
                    help="scale runs of balanced with these scopes (the first is the summary's)")
    ap.add_argument("--skip-real", action="store_true")
    ap.add_argument("--skip-backends", action="store_true")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--name", default="sids")
    args = ap.parse_args()

    summary: dict[str, Any] = {}
    raw: dict[str, Any] = {"real": {}, "scale": [], "kmeans_backends": []}
    if not args.skip_real:
        for name in REAL:
            if not REAL[name][1].exists():
                console.print(f"[yellow]skipping {name}: {REAL[name][1]} not found[/]")
                continue
            res = run_real(name, args.rqvae_epochs)
            raw["real"][name] = res
            for method, r in res["reports"].items():
                if "[" in method:
                    continue
                summary[f"{name}.{method}.unique_sids"] = r["unique_sids"]
                summary[f"{name}.{method}.collision_rate"] = r["collisions"]["collision_rate"]
                summary[f"{name}.{method}.utilization"] = r["utilization"]
            print_real(name, res)
    if not args.skip_backends:
        raw["kmeans_backends"] = kmeans_backends([1, 2])
        print_backends(raw["kmeans_backends"])
    for n in args.sizes:
        runs: list[tuple[str, str, dict[str, Any]]] = []
        for method in args.methods:
            if method == "rqvae" and n > args.rqvae_max_items:
                continue
            if method == "balanced":
                runs += [("balanced" if i == 0 else f"balanced[{sc}]", method, {"scope": sc})
                         for i, sc in enumerate(args.balanced_scopes)]
            else:
                runs.append((method, method, {"epochs": args.rqvae_scale_epochs} if method == "rqvae" else {}))
        for label, method, options in runs:
            row = run_scale(method, n, options, args.timeout)
            row["label"] = label
            raw["scale"].append(row)
            console.print(f"  {escape(label)} × {n:,}: " + (row.get("error") or f"{row['seconds']} s, peak {row['peak_mb']} MB"))
            if "error" not in row and "[" not in label:
                summary[f"scale.{method}.{n}.seconds"] = row["seconds"]
                summary[f"scale.{method}.{n}.peak_mb"] = row["peak_mb"]
    print_scale(raw["scale"])
    config = {"levels": 3, "codebook": 256, "sizes": args.sizes, "methods": args.methods, "dim": 384,
              "rqvae_scale_epochs": args.rqvae_scale_epochs, "rqvae_max_items": args.rqvae_max_items,
              "memory": "peak_mb = VmHWM (peak RSS) of a fresh subprocess per (method, size); extra_peak_mb = its increase "
                        "over the peak right after the embeddings were generated"}
    path = write_result(args.name, summary=summary, config=config, raw=raw)
    console.print(f"wrote [bold]{path}[/]")


def print_real(name: str, res: dict[str, Any]) -> None:
    t = Table(title=f"{name}: {res['n_items']:,} items, MiniLM {res['embedding']['dim']}-d, 3 × 256")
    for c in ("method", "collision rate", "unique SIDs", "SID length", "utilisation", "entropy", "max/SID",
              "max/level-1", "recon. rel.", "prefix err. rel. (l1/l2/l3)", "seconds"):
        t.add_column(c, justify="right")
    for method, r in res["reports"].items():
        rec = (r.get("reconstruction") or {}).get("relative")
        pe = "/".join(f"{p['relative']:.3f}" for p in r["prefix_error"]["per_level"])
        t.add_row(escape(method), f"{r['collisions']['collision_rate']:.2%}", f"{r['unique_sids']:,}", str(r["sid_length"]),
                  f"{r['utilization']:.3f}", f"{r['entropy_normalized']:.3f}", str(r["largest_cluster"]["full_sid"]),
                  str(r["largest_cluster"]["level1"]), "" if rec is None else f"{rec:.3f}", pe,
                  "" if r.get("seconds") is None else f"{r['seconds']:.1f}")
    console.print(t)


def print_backends(rows: list[dict[str, Any]]) -> None:
    t = Table(title="k-means 65,536 × 384 → 256 clusters")
    for c in ("threads", "faiss s (20 it)", "faiss ms/it", "sklearn s (iters)", "sklearn ms/it", "inertia faiss / sklearn"):
        t.add_column(c, justify="right")
    for r in rows:
        t.add_row(str(r["threads"]), f"{r['faiss_seconds']}", f"{r['faiss_ms_per_iter']}",
                  f"{r['sklearn_seconds']} ({r['sklearn_iters']})", f"{r['sklearn_ms_per_iter']}",
                  f"{r['faiss_inertia']:.0f} / {r['sklearn_inertia']:.0f}")
    console.print(t)


def print_scale(rows: list[dict[str, Any]]) -> None:
    t = Table(title="scale: synthetic 384-d embeddings, 3 × 256")
    for c in ("method", "items", "seconds", "peak MB", "embeddings MB", "extra MB", "collision rate", "utilisation"):
        t.add_column(c, justify="right")
    for r in rows:
        if "error" in r:
            t.add_row(r["method"], f"{r['n_items']:,}", r["error"], "", "", "", "", "")
            continue
        t.add_row(escape(r.get("label", r["method"])), f"{r['n_items']:,}", f"{r['seconds']:.1f}", f"{r['peak_mb']:.0f}",
                  f"{r['embedding_mb']:.0f}", f"{r['extra_peak_mb']:.0f}", f"{r['collision_rate']:.2%}",
                  f"{r['utilization']:.3f}")
    console.print(t)


if __name__ == "__main__":
    main()
