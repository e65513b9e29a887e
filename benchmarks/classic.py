"""Classic baselines on real data: popularity, GRU4Rec and SASRec on Beauty and ml-100k.

Protocol: leave-one-out, history ≤ 20, full ranking over all items, 3 seeds, mean and 95% CI.
Published SASRec on Beauty (TIGER paper, same split): Recall@10 .0605, NDCG@10 .0318.

    python benchmarks/classic.py                 # all datasets, models, 3 seeds
    python benchmarks/classic.py --seeds 0 --datasets ml100k

Writes benchmarks/results/classic.json (summary + raw per-run figures) and prints a table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from _common import ROOT, SHARED_DATA, mean_ci, write_result
from sidrec.data.dataset import Dataset
from sidrec.data.importers import import_dataset
from sidrec.pipelines.classic import train_classic
from sidrec.utils.io import read_json, read_yaml, write_json

PUBLISHED = {"beauty": {"sasrec": {"hr@5": 0.0387, "ndcg@5": 0.0249, "hr@10": 0.0605, "ndcg@10": 0.0318}}}
DATASETS = {
    "beauty": ("lcrec", SHARED_DATA / "amazon14-beauty"),
    "ml100k": ("recbole", SHARED_DATA / "ml-100k"),
}
METRICS = ("hr@5", "ndcg@5", "hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr")
console = Console()


def prepare(name: str, work: Path) -> Path:
    """Import the shared dataset once into the benchmark's work folder."""
    out = work / "data" / name
    if not (out / "dataset.json").exists():
        fmt, src = DATASETS[name]
        import_dataset(fmt, src, max_history=20).save(out)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS))
    ap.add_argument("--models", nargs="+", default=["pop", "gru4rec", "sasrec"])
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-classic")
    ap.add_argument("--set", nargs="*", default=[], help="training overrides key=value for sasrec/gru4rec")
    ap.add_argument("--name", default="classic")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 avoids oversubscription when "
                    "several benchmark processes share the CPU)")
    ap.add_argument("--reuse", action="store_true", help="reuse finished runs in --work (their bench_row.json)")
    ap.add_argument("--collect", action="store_true", help="only collect finished runs in --work; train nothing")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    overrides: dict[str, Any] = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        import yaml

        overrides[k] = yaml.safe_load(v)

    raw: list[dict[str, Any]] = []
    for ds_name in args.datasets:
        data_dir = prepare(ds_name, args.work)
        stats = Dataset.load(data_dir, validate=False).info.stats
        console.print(f"[bold]{ds_name}[/]: {stats['users']:,} users, {stats['items']:,} items")
        for model in args.models:
            seeds = [0] if model == "pop" else args.seeds  # popularity is deterministic
            for seed in seeds:
                out = args.work / ds_name / f"{model}-s{seed}"
                if (args.reuse or args.collect) and (out / "bench_row.json").exists():
                    row = read_json(out / "bench_row.json")
                    row["config"] = read_yaml(out / "config.yaml")
                    raw.append(row)
                    console.print(f"  {model} seed {seed}: reused {out}")
                    continue
                if args.collect:
                    continue
                t0 = time.perf_counter()
                m = train_classic(model, data_dir, out, overrides={**overrides, "seed": seed} if model != "pop" else None,
                                  overwrite=True)
                wall = time.perf_counter() - t0
                row = {"dataset": ds_name, "model": model, "seed": seed, "wall_seconds": round(wall, 1),
                       "test": {k: m["test"][k] for k in METRICS}, "valid": {k: m["valid"][k] for k in METRICS},
                       "epochs": m.get("epochs_trained"), "best_epoch": m.get("best_epoch"),
                       "config": read_yaml(out / "config.yaml")}
                raw.append(row)
                write_json(out / "bench_row.json", row)
                console.print(f"  {model} seed {seed}: test NDCG@10 {row['test']['ndcg@10']:.4f} "
                              f"HR@10 {row['test']['hr@10']:.4f} ({wall:.0f} s)")

    summary: dict[str, Any] = {}
    table = Table(title="classic baselines · leave-one-out, history ≤ 20, full ranking (test; mean ± 95% CI over seeds)")
    for c in ("dataset", "model", "seeds", *METRICS[:4], "wall s (median)", "HR@10 / published"):
        table.add_column(c, justify="right")
    for ds_name in args.datasets:
        for model in args.models:
            rows = [r for r in raw if r["dataset"] == ds_name and r["model"] == model]
            if not rows:
                continue
            agg = {k: mean_ci([r["test"][k] for r in rows]) for k in METRICS}
            wall = mean_ci([r["wall_seconds"] for r in rows])
            key = "ml100k" if ds_name == "ml100k" else ds_name
            summary[f"{key}.{model}.seeds"] = len(rows)
            for k in METRICS:
                summary[f"{key}.{model}.{k.replace('hr@', 'recall@') if k.startswith('hr@') else k}"] = agg[k]["mean"]
                if k.startswith("hr@"):
                    summary[f"{key}.{model}.{k}"] = agg[k]["mean"]
            pub = PUBLISHED.get(ds_name, {}).get(model)
            ratio = f"{agg['hr@10']['mean'] / pub['hr@10']:.2f}×" if pub else ""
            if pub:
                summary[f"{key}.{model}.recall@10_vs_published"] = agg["hr@10"]["mean"] / pub["hr@10"]
                summary[f"{key}.{model}.ndcg@10_vs_published"] = agg["ndcg@10"]["mean"] / pub["ndcg@10"]
            cells = [f"{agg[k]['mean']:.4f}" + (f" ±{agg[k]['ci95_half']:.4f}" if len(rows) > 1 else "") for k in METRICS[:4]]
            table.add_row(ds_name, model, str(len(rows)), *cells, f"{wall['median']:.0f}", ratio)
    console.print(table)
    path = write_result(args.name, summary=summary, config={"models": args.models, "seeds": args.seeds,
                                                              "threads": args.threads,
                                                              "overrides": overrides, "protocol": "leave-one-out, history<=20, full ranking"},
                        raw=raw, published=PUBLISHED)
    console.print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
