"""Recommendation quality of the LLM recommender (SFT recipe), TIGER, SASRec and popularity, per seed.

Each dataset runs its pipeline config `configs/<config>-<scale>.yaml` once per seed (every stage
cached, so re-running only collects): popularity, SASRec, the SFT run and TIGER (where the config
has one) are trained on the same split in the same invocation, with the seed set for every model.
All models are evaluated on the whole test split (or, where a config evaluates the generative models
on a fixed sample, every model is compared on exactly those rows). Per-example metrics are averaged
over seeds, and the paired bootstrap (10,000 resamples) compares SFT with SASRec and with
popularity on the same rows.

    python benchmarks/quality.py --datasets demo --seeds 0 1 2          # the demo (synthetic)
    python benchmarks/quality.py --datasets industrial --seeds 0        # industrial-partial
    python benchmarks/quality.py --collect                              # only read finished runs
    python benchmarks/quality.py --datasets industrial --models tiger   # retrain TIGER only, keep SFT's seeds
    python benchmarks/quality.py --scale gpu --datasets industrial --seeds 0 --models sft sasrec pop \
        --set train.sft.training.epochs=4                               # a budget: recorded in the JSON

`--set KEY=VALUE` overrides the pipeline config (dotted keys, YAML values, as `sidrec run --set`) and
`--models` trains only some of its models; either is recorded under `config.overrides` / `config.models`.
Runs with overrides live (and are archived) in a folder of their own, `<ds>-<scale>-set<hash>`, so that a
budget-limited run never mixes with the config's own seeds; a `--models` subset alone trains the config's
own models, in its own folders, and the models it leaves out keep their earlier (archived) runs.

Each finished seed's per-example ranks and metrics are archived under
benchmarks/results/quality-runs/<ds>-<scale>/seed<N>/<model>/ (committed, a few hundred KB), so the
summary is re-collected from every seed ever measured even where the run folders are gone: seeds
accumulate across machines and sessions.

Writes benchmarks/results/quality.json: summary keys `<ds>.<model>.<metric>` (mean over seeds of
hr@5 / ndcg@5 / hr@10 / ndcg@10, and recall@K = hr@K), `<ds>.sft.ndcg@10_vs_sasrec` and
`<ds>.sft.ndcg@10_vs_pop` with `_lo` / `_hi` (95% CI), `<ds>.sft.train_seconds`, `<ds>.seeds`,
`<ds>.test_rows`; `sft.targets_per_second.old` / `.new` and `sft.targets_per_second_ratio`, copied from
benchmarks/results/sft_profile.json (`python benchmarks/sft_profile.py`: both recipes side by side in one
run, industrial-partial, the CPU config's depth).
Published context: ../shared/data/README.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.table import Table

from _common import (METRICS, RESULTS, ROOT, SHARED_DATA, console, override_suffix, paired_ci, parse_sets, rel,
                     write_result)
from sidrec.evaluation.metrics import metrics_from_ranks, per_example_metrics
from sidrec.pipelines.run import load_pipeline_config, run_pipeline
from sidrec.utils.io import read_json

CONFIGS = {"demo": "demo", "industrial": "industrial-partial", "beauty": "beauty"}
MODELS = ("sft", "tiger", "sasrec", "pop")
PUBLISHED = {
    "industrial": {"note": "MiniOneRec paper, FULL protocol (not industrial-partial), Qwen2.5 backbones",
                   "sasrec": {"hr@10": 0.1088, "ndcg@10": 0.0806}, "tiger": {"hr@10": 0.1321, "ndcg@10": 0.0908},
                   "lc-rec": {"hr@10": 0.1332, "ndcg@10": 0.0952}, "minionerec": {"hr@10": 0.1586, "ndcg@10": 0.1167}},
    "beauty": {"note": "TIGER paper, same split", "sasrec": {"hr@5": 0.0387, "ndcg@5": 0.0249, "hr@10": 0.0605,
                                                            "ndcg@10": 0.0318},
               "tiger": {"hr@5": 0.0454, "ndcg@5": 0.0321, "hr@10": 0.0648, "ndcg@10": 0.0384},
               "lc-rec (public re-implementation)": {"hr@10": 0.079}},
}


def seed_overrides(cfg: Any, seed: int) -> dict[str, Any]:
    """The seed of every trained model of a pipeline config."""
    out: dict[str, Any] = {}
    for name in cfg.baselines:
        if name != "pop":
            out[f"baselines.{name}.seed"] = seed
    for name in cfg.train:
        out[f"train.{name}.training.seed"] = seed
    return out


def select_models(cfg: Any, models: list[str]) -> Any:
    """The pipeline config with only `models` among its baselines and train entries."""
    if set(models) >= set(MODELS):
        return cfg
    return cfg.model_copy(update={"baselines": {k: v for k, v in cfg.baselines.items() if k in models},
                                  "train": {k: v for k, v in cfg.train.items() if k in models}})


ARCHIVE = RESULTS / "quality-runs"
ARCHIVED = ("ranks_test.parquet", "metrics.json", "config.yaml")  # config.yaml: runs archived before it lack it
PER_SEED_KEYS = {"dataset", "sids", "training.seed", "training.device"}  # settings that may differ between seeds


def archive(out: Path, dest: Path) -> None:
    """Copy each finished model's ranks, metrics and resolved config of one seed folder into the archive."""
    for m in MODELS:
        if (out / m / "ranks_test.parquet").is_file():
            (dest / m).mkdir(parents=True, exist_ok=True)
            for name in ARCHIVED:
                if (out / m / name).is_file():
                    shutil.copyfile(out / m / name, dest / m / name)


def check_same_settings(model: str, runs: dict[int, Path]) -> None:
    """Refuse to average seeds of one model that were trained with different settings (e.g. TIGER's seed 0
    at 5 epochs beside seed 1 at 30), where their resolved configs are archived."""
    from sidrec.utils.fingerprint import flatten
    from sidrec.utils.io import read_yaml

    seen: dict[int, dict[str, Any]] = {}
    for seed, run in runs.items():
        if (run / "config.yaml").is_file():
            seen[seed] = {k: v for k, v in flatten(read_yaml(run / "config.yaml")).items() if k not in PER_SEED_KEYS}
    if not seen:
        return
    first, ref = next(iter(seen.items()))
    for seed, values in seen.items():
        differ = sorted(k for k in set(ref) | set(values) if ref.get(k) != values.get(k))
        if differ:
            raise SystemExit(f"{model}: seeds {first} and {seed} were trained with different settings "
                             f"({', '.join(differ[:5])}): retrain the stale seeds with the same config "
                             f"(quality.py --models {model} --seeds …) before collecting")


def seed_folders(work: Path, archived: Path) -> dict[int, Path]:
    """Seed → the archived folder holding its finished runs. Each live seed folder is archived first,
    model by model, so a seed's folder holds every model's latest finished run: the ones a `--models`
    subset retrained (live) beside the ones it left out (archived earlier)."""
    for d in sorted(work.glob("seed*")) if work.is_dir() else []:
        if d.name[4:].isdigit():
            archive(d, archived / d.name)
    found = {int(d.name[4:]): d for d in (sorted(archived.glob("seed*")) if archived.is_dir() else [])
             if d.name[4:].isdigit() and (d / "sft" / "ranks_test.parquet").is_file()}
    return dict(sorted(found.items()))


def ranks_of(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "ranks_test.parquet")


def common_rows(runs: list[Path]) -> pd.DataFrame:
    """(user_id, target) rows every run was evaluated on (a sample when any model used one)."""
    keys = None
    for run in runs:
        r = ranks_of(run)[["user_id", "target"]]
        keys = r if keys is None else keys.merge(r, on=["user_id", "target"])
    assert keys is not None
    return keys.drop_duplicates()


def collect(outs: dict[int, Path]) -> dict[str, Any]:
    """Per-seed figures, seed-averaged per-example metrics, and the paired comparisons of SFT."""
    finished = {s: {m: o / m for m in MODELS if (o / m / "ranks_test.parquet").is_file()} for s, o in outs.items()}
    models = [m for m in MODELS if all(m in runs for runs in finished.values())]
    if "sft" not in models or not finished:
        raise SystemExit(f"no finished SFT run in every seed folder of {sorted(map(str, outs.values()))}: "
                         "run without --collect first")
    rows = common_rows([run for runs in finished.values() for m, run in runs.items() if m in models])
    per_seed: dict[str, dict[int, Any]] = {m: {} for m in models}
    per_example: dict[str, dict[str, np.ndarray]] = {}
    for m in models:
        check_same_settings(m, {seed: runs[m] for seed, runs in finished.items()})
        values = []
        for seed, runs in finished.items():
            r = rows.merge(ranks_of(runs[m]), on=["user_id", "target"], how="left")
            ranks = r["rank"].to_numpy()
            values.append(per_example_metrics(ranks))
            info = read_json(runs[m] / "metrics.json")
            train = info.get("train", {})
            per_seed[m][seed] = {"metrics": {k: v for k, v in metrics_from_ranks(ranks, (5, 10, 20)).items()
                                             if k != "ci95"},
                                 "train_time_s": train.get("time_s", info.get("train_time_s")),
                                 "steps": train.get("steps"), "stopped": train.get("stopped"),
                                 "targets_per_second": train.get("targets_per_second"),
                                 "invalid_outputs": info.get("test", {}).get("invalid_outputs")}
        per_example[m] = {k: np.mean([v[k] for v in values], axis=0) for k in values[0]}
    means = {m: {k: float(per_example[m][k].mean()) for k in METRICS} for m in models}
    paired = {}
    for other in ("sasrec", "pop"):
        if other in per_example:
            paired[f"sft_vs_{other}"] = paired_ci(per_example[other], per_example["sft"])
    if "tiger" in per_example and "sasrec" in per_example:
        paired["tiger_vs_sasrec"] = paired_ci(per_example["sasrec"], per_example["tiger"])
    n_rows = int(len(per_example["sft"]["ndcg@10"]))  # test rows (a repeated user + target pair counts each time)
    return {"seeds": sorted(finished), "rows": n_rows, "means": means, "per_seed": per_seed,
            "paired": paired}


def profile_cost() -> dict[str, Any] | None:
    """Targets per second of the old (prompt, full softmax) and new (stream, level softmax) recipe,
    measured side by side in one run at the industrial CPU config's depth by benchmarks/sft_profile.py."""
    path = RESULTS / "sft_profile.json"
    if not path.is_file():
        return None
    prof = read_json(path)
    rows = {r["recipe"]: r for r in prof["raw"]}
    if "prompt_full" not in rows or "stream_level" not in rows:
        return None
    return {"source": "benchmarks/results/sft_profile.json", "layers": prof["config"]["layers"],
            "old": rows["prompt_full"], "new": rows["stream_level"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--scale", default="cpu", choices=("cpu", "gpu"))
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-quality")
    ap.add_argument("--collect", action="store_true", help="only read finished runs")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="sets",
                    help="override the pipeline config (e.g. a time budget: train.sft.training.epochs=4); recorded")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS),
                    help="train (and compare) only these of the config's models; recorded")
    args = ap.parse_args()
    overrides = parse_sets(args.sets)
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    path = RESULTS / "quality.json"
    old = read_json(path) if path.is_file() else {}
    # other datasets' figures are kept when they were measured by this version of the benchmark
    results: dict[str, Any] = {k: v for k, v in old.get("raw", {}).items() if isinstance(v, dict) and "means" in v}
    configs: dict[str, Any] = {k: v for k, v in old.get("config", {}).get("pipelines", {}).items() if k in results}
    for ds in args.datasets:
        base = load_pipeline_config(f"{CONFIGS[ds]}-{args.scale}", overrides)
        name = f"{ds}-{args.scale}" + override_suffix(overrides)
        work, archived = args.work / name, ARCHIVE / name
        if not args.collect:
            if ds != "demo" and not SHARED_DATA.exists():
                raise SystemExit(f"the shared datasets are not at {SHARED_DATA}")
            for seed in args.seeds:
                out = work / f"seed{seed}"
                console.print(f"[bold]{ds} seed {seed}[/bold] → {out}")
                cfg = load_pipeline_config(f"{CONFIGS[ds]}-{args.scale}", {**overrides, **seed_overrides(base, seed)})
                run_pipeline(select_models(cfg, args.models), out)
                archive(out, archived / f"seed{seed}")
        folders = seed_folders(work, archived)
        if args.collect and not folders:  # nothing of this dataset here (no run folder, no archive): keep its figures
            kept = "kept its earlier figures" if ds in results else "not in the results"
            console.print(f"{ds}: no finished run under {rel(work)} nor {rel(archived)}: {kept}")
            continue
        configs[ds] = base.model_dump(mode="json", by_alias=True)
        results[ds] = collect(folders)
    summary: dict[str, Any] = {}
    for ds, res in results.items():
        if "means" not in res:
            continue
        summary[f"{ds}.seeds"] = len(res["seeds"])
        summary[f"{ds}.test_rows"] = res["rows"]
        for model, m in res["means"].items():
            for metric in METRICS:
                summary[f"{ds}.{model}.{metric}"] = m[metric]
                if metric.startswith("hr@"):
                    summary[f"{ds}.{model}.recall@{metric[3:]}"] = m[metric]
            times = [v["train_time_s"] for v in res["per_seed"][model].values() if v["train_time_s"] is not None]
            if times:
                summary[f"{ds}.{model}.train_seconds"] = float(np.median(times))
        for name, comp in res["paired"].items():
            c = comp["ndcg@10"]
            key = f"{ds}.{name.replace('_vs_', '.ndcg@10_vs_')}"
            summary[key], summary[f"{key}_lo"], summary[f"{key}_hi"] = c["diff"], c["ci95"][0], c["ci95"][1]
            summary[f"{key}_p"] = c["p"]
    cost = profile_cost()
    if cost:
        summary["sft.targets_per_second.old"] = cost["old"]["targets_per_second"]
        summary["sft.targets_per_second.new"] = cost["new"]["targets_per_second"]
        summary["sft.targets_per_second_ratio"] = cost["new"]["targets_per_second"] / cost["old"]["targets_per_second"]
    for ds, res in results.items():
        if "means" not in res:
            continue
        t = Table(title=f"{ds} ({args.scale} scale) · test, {res['rows']:,} rows, mean of {len(res['seeds'])} seed(s)")
        t.add_column("model")
        for m in METRICS:
            t.add_column(m, justify="right")
        t.add_column("train s (median)", justify="right")
        for model, m in res["means"].items():
            t.add_row(model, *[f"{m[k]:.4f}" for k in METRICS], f"{summary.get(f'{ds}.{model}.train_seconds', 0):.0f}")
        console.print(t)
        for name, comp in res["paired"].items():
            c = comp["ndcg@10"]
            console.print(f"  {name}: ΔNDCG@10 {c['diff']:+.4f} [{c['ci95'][0]:+.4f}, {c['ci95'][1]:+.4f}], p={c['p']:.4f}")
    if cost:
        console.print(f"targets / s: old recipe {cost['old']['targets_per_second']:.1f}, new "
                      f"{cost['new']['targets_per_second']:.1f} ({summary['sft.targets_per_second_ratio']:.2f}×)")
    out = write_result("quality", summary=summary, config={"scale": args.scale, "pipelines": configs,
                                                          "seeds": args.seeds, "overrides": overrides,
                                                          "models": args.models}, raw=results,
                       published=PUBLISHED, cost=cost)
    console.print(f"wrote {rel(out)}")


if __name__ == "__main__":
    main()
