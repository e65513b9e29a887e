"""Recommendation quality of the generative models against SASRec on the same split.

Industrial (industrial-partial protocol, given SIDs) and Beauty (P5/TIGER split, given SIDs):
LLM SFT (SmolLM2-135M), TIGER, SASRec and popularity, trained and evaluated by the pipeline
configs `configs/<dataset>-<scale>.yaml` (every stage cached, so re-running only collects).
When a generative model was evaluated on a fixed sample of the test split (Beauty at CPU scale),
every model is compared on exactly those rows (SASRec's per-example ranks are joined on
user_id + target), and the paired bootstrap of SFT − SASRec uses them too.

    python benchmarks/quality.py                           # cpu scale, both datasets
    python benchmarks/quality.py --scale gpu --datasets industrial
    python benchmarks/quality.py --collect                  # only read finished runs

Writes benchmarks/results/quality.json (summary keys `industrial.sft.ndcg@10`, `beauty.sft.recall@10`,
...; recall@K = hr@K with one target) and prints a table. Published context: ../shared/data/README.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from _common import RESULTS, ROOT, SHARED_DATA, write_result
from sidrec.evaluation.compare import paired_bootstrap
from sidrec.evaluation.metrics import metrics_from_ranks
from sidrec.pipelines.run import load_pipeline_config, run_pipeline
from sidrec.utils.io import read_json

CONFIGS = {"industrial": "industrial-partial", "beauty": "beauty"}
MODELS = ("sft", "tiger", "sasrec", "pop")
METRICS = ("hr@5", "ndcg@5", "hr@10", "ndcg@10")
PUBLISHED = {
    "industrial": {"note": "MiniOneRec paper, FULL protocol (not industrial-partial), Qwen2.5 backbones",
                   "sasrec": {"hr@10": 0.1088, "ndcg@10": 0.0806}, "tiger": {"hr@10": 0.1321, "ndcg@10": 0.0908},
                   "lc-rec": {"hr@10": 0.1332, "ndcg@10": 0.0952}, "minionerec": {"hr@10": 0.1586, "ndcg@10": 0.1167}},
    "beauty": {"note": "TIGER paper, same split", "sasrec": {"hr@5": 0.0387, "ndcg@5": 0.0249, "hr@10": 0.0605,
                                                            "ndcg@10": 0.0318},
               "tiger": {"hr@5": 0.0454, "ndcg@5": 0.0321, "hr@10": 0.0648, "ndcg@10": 0.0384},
               "lc-rec (public re-implementation)": {"hr@10": 0.079}},
}
console = Console()


def ranks_of(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "ranks_test.parquet")


def common_rows(runs: dict[str, Path]) -> pd.DataFrame:
    """(user_id, target) rows every model was evaluated on (a sample when any model used one)."""
    keys = None
    for run in runs.values():
        r = ranks_of(run)[["user_id", "target"]]
        keys = r if keys is None else keys.merge(r, on=["user_id", "target"])
    assert keys is not None
    return keys.drop_duplicates()


def collect(dataset: str, out: Path) -> dict[str, Any]:
    runs = {m: out / m for m in MODELS if (out / m / "ranks_test.parquet").is_file()}
    if not runs:
        raise SystemExit(f"no finished runs under {out}: run without --collect first")
    rows = common_rows(runs)
    per_model: dict[str, Any] = {}
    ranks: dict[str, np.ndarray] = {}
    for name, run in runs.items():
        r = rows.merge(ranks_of(run), on=["user_id", "target"], how="left")
        ranks[name] = r["rank"].to_numpy()
        metrics = metrics_from_ranks(ranks[name], (1, 5, 10, 20))
        m = read_json(run / "metrics.json")
        train = m.get("train", {})
        per_model[name] = {
            "metrics": metrics,
            "n": int(len(r)),
            "train_time_s": train.get("time_s", m.get("train_time_s")),
            "eval_time_s": m.get("test", {}).get("time_s"),
            "invalid_outputs": m.get("test", {}).get("invalid_outputs"),
            "stopped": train.get("stopped"),
            "steps": train.get("steps"),
        }
    comparisons = {}
    for name in ("sft", "tiger"):
        if name in ranks and "sasrec" in ranks:
            res = paired_bootstrap(ranks["sasrec"], ranks[name], metrics=list(METRICS), n_boot=2000, seed=0)
            comparisons[f"{name}_vs_sasrec"] = [r.__dict__ for r in res]
    return {"rows": int(min(r["n"] for r in per_model.values())), "models": per_model, "paired": comparisons}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--scale", default="cpu", choices=("cpu", "gpu"))
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-quality")
    ap.add_argument("--collect", action="store_true", help="only read finished runs")
    args = ap.parse_args()
    if not SHARED_DATA.exists():
        raise SystemExit(f"the shared datasets are not at {SHARED_DATA}")
    results: dict[str, Any] = {}
    configs: dict[str, Any] = {}
    summary: dict[str, float] = {}
    for ds in args.datasets:
        cfg = load_pipeline_config(f"{CONFIGS[ds]}-{args.scale}")
        out = args.work / f"{ds}-{args.scale}"
        configs[ds] = cfg.model_dump(mode="json", by_alias=True)
        if not args.collect:
            run_pipeline(cfg, out)
        results[ds] = collect(ds, out)
        for model, r in results[ds]["models"].items():
            for metric in METRICS:
                value = r["metrics"][metric]
                summary[f"{ds}.{model}.{metric}"] = value
                if metric.startswith("hr@"):
                    summary[f"{ds}.{model}.recall@{metric[3:]}"] = value
            summary[f"{ds}.{model}.train_time_s"] = r["train_time_s"]
        for name, comp in results[ds]["paired"].items():
            for c in comp:
                if c["metric"] == "ndcg@10":
                    summary[f"{ds}.{name}.ndcg@10_diff"] = c["diff"]
                    summary[f"{ds}.{name}.ndcg@10_p"] = c["p_value"]
    for ds, res in results.items():
        t = Table(title=f"{ds} ({args.scale} scale) · test, {res['rows']:,} rows common to all models")
        t.add_column("model")
        for m in METRICS:
            t.add_column(m, justify="right")
        t.add_column("train s", justify="right")
        t.add_column("invalid", justify="right")
        for model, r in res["models"].items():
            cells = []
            for m in METRICS:
                lo, hi = r["metrics"]["ci95"][m]
                cells.append(f"{r['metrics'][m]:.4f} [{lo:.3f}, {hi:.3f}]")
            t.add_row(model, *cells, f"{r['train_time_s'] or 0:.0f}", str(r["invalid_outputs"] if r["invalid_outputs"] is not None else "–"))
        console.print(t)
        for name, comp in res["paired"].items():
            c = next(c for c in comp if c["metric"] == "ndcg@10")
            console.print(f"  {name}: ΔNDCG@10 {c['diff']:+.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}], p={c['p_value']:.4f}")
    path = write_result("quality", summary=summary, config={"scale": args.scale, "pipelines": configs},
                        raw=results, published=PUBLISHED)
    console.print(f"wrote {path}")


if __name__ == "__main__":
    main()
