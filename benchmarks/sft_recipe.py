"""On / off ablation of each part of the SFT recipe, on the demo's synthetic data (or industrial-partial).

Every arm is the dataset's packaged CPU config's `sft` entry (the recipe) with one change, trained
for the same number of optimizer steps as the recipe (so the same compute budget: the question is
what the machine gets out of a fixed time), on the same split, seed and SIDs; all arms are
evaluated on the whole test split and compared with the recipe by a paired bootstrap.

| arm | change |
|---|---|
| recipe | the config's `sft` entry |
| prompt_format | `data.format: prompt` (one target per example, the LC-Rec / MiniOneRec form) |
| full_softmax | `data.sid_softmax: full` |
| mean_init | `model.sid_init: mean` (the library's resize: every SID row starts as one vector) |
| tfidf_init / sampled_init | the other distinct initialisation |
| one_lr | `training.sid_lr` unset: one learning rate for every weight |
| bucket_by_length | `training.bucket_by_length: true` (batches of similar-length examples: less padding) |
| old | the previous demo recipe: prompt, full softmax, mean init, one lr of 2e-3, 230 steps |

    python benchmarks/sft_recipe.py --epochs 4 --set model.sid_init=sampled   # the demo, as in docs/llm.md
    python benchmarks/sft_recipe.py --arms recipe tfidf_init
    python benchmarks/sft_recipe.py --collect
    python benchmarks/sft_recipe.py --key demo_config --arms recipe bucket_by_length   # the config as it is
    python benchmarks/sft_recipe.py --dataset industrial --key industrial_6layers --epochs 6 --arms recipe \
        --set model.num_layers=6 'eval.splits=[valid, test]' \
        --against sasrec=benchmarks/results/quality-runs/industrial-cpu/seed0/sasrec \
                  sft=benchmarks/results/quality-runs/industrial-cpu/seed0/sft
        # a deeper recipe on industrial-partial, paired with quality.py's seed-0 SASRec and 4-layer SFT

Writes benchmarks/results/sft_recipe.json: summary `<key>.<arm>.ndcg@10`, `<key>.<arm>.ndcg@10_vs_recipe`
(`_lo` / `_hi`), `<key>.<arm>.train_seconds`, `<key>.<arm>.targets_per_second`; `<key>` is the dataset
unless `--key` names the setting (another recipe length or override set keeps its own rows and runs).
`--against NAME=RUN` pairs every arm with another finished run of the same split (e.g. an archived run
of `quality.py`) on the test rows both ranked, matched by (user, target, occurrence):
`<key>.<arm>.ndcg@10_vs_<NAME>` with `_lo` / `_hi`.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rich.table import Table

from _common import METRICS, RESULTS, ROOT, console, paired_ci, paired_runs, rel, write_result
from sidrec.evaluation.metrics import per_example_metrics
from sidrec.pipelines.run import load_pipeline_config, run_pipeline
from sidrec.utils.io import merge_config, read_json

CONFIGS = {"demo": "demo-cpu", "industrial": "industrial-partial-cpu"}
ARMS = ("recipe", "prompt_format", "full_softmax", "mean_init", "tfidf_init", "sampled_init", "one_lr",
        "bucket_by_length", "old")


def arm_config(base: dict[str, Any], arm: str, steps: int | None) -> dict[str, Any] | None:
    """The recipe's sft entry with one change (None when the change is a no-op for this config)."""
    cfg = copy.deepcopy(base)
    model, data, training = cfg.setdefault("model", {}), cfg.setdefault("data", {}), cfg.setdefault("training", {})
    if arm == "prompt_format":
        data["format"] = "prompt"
    elif arm == "full_softmax":
        data["sid_softmax"] = "full"
    elif arm in ("mean_init", "tfidf_init", "sampled_init"):
        init = arm.removesuffix("_init")
        if model.get("sid_init", "mean") == init:
            return None
        model["sid_init"] = init
    elif arm == "one_lr":
        training.pop("sid_lr", None)
    elif arm == "bucket_by_length":
        training["bucket_by_length"] = True
    elif arm == "old":
        model.pop("sid_init", None)
        for key in ("format", "sid_softmax", "separator"):
            data.pop(key, None)
        data["tasks"] = {"seqrec": 0.35, "item2sid": 1.0}
        data["max_history"] = 10
        training.pop("sid_lr", None)
        training["lr"] = 0.002
        return cfg | {"training": {**training, "epochs": 1}}
    if arm != "recipe" and steps is not None:
        training["max_steps"] = steps
        training["epochs"] = 1000  # max_steps decides
    return cfg


def parse_against(pairs: list[str]) -> dict[str, Path]:
    """`NAME=RUN` pairs → {name: run folder}; a run without test ranks is refused in one line."""
    out: dict[str, Path] = {}
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--against {pair!r}: give NAME=RUN_FOLDER, e.g. sasrec=runs/industrial-cpu/sasrec")
        run = Path(path) if Path(path).is_absolute() else ROOT / path
        if not (run / "ranks_test.parquet").is_file():
            raise SystemExit(f"--against {name}: {run} has no ranks_test.parquet (a finished, evaluated run folder)")
        out[name] = run
    return out


def versus(run: Path, against: dict[str, Path]) -> dict[str, Any]:
    """The run's paired difference (run − other) with each run of `against`, on the test rows both ranked."""
    return {name: paired_runs(other, run, "test") for name, other in against.items()}


def per_example(run: Path) -> dict[str, np.ndarray]:
    import pandas as pd

    return per_example_metrics(pd.read_parquet(run / "ranks_test.parquet")["rank"].to_numpy())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=list(CONFIGS), default="demo")
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-recipe")
    ap.add_argument("--collect", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=None, help="the recipe's epochs (default: the config's)")
    ap.add_argument("--key", default=None, help="the results' key and work folder (default: the dataset's name)")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                    help="overrides of the recipe (the config's sft entry), e.g. model.sid_init=sampled")
    ap.add_argument("--against", nargs="*", default=[], metavar="NAME=RUN",
                    help="pair every arm with these finished runs of the same split (test rows matched by user, "
                         "target and occurrence)")
    args = ap.parse_args()
    against = parse_against(args.against)
    import torch

    torch.set_num_threads(args.threads)
    base_cfg = load_pipeline_config(CONFIGS[args.dataset])
    recipe = copy.deepcopy(base_cfg.train["sft"])
    if args.epochs is not None:
        recipe.setdefault("training", {})["epochs"] = args.epochs
    recipe = merge_config(recipe, {k: yaml.safe_load(v) for k, v in (kv.split("=", 1) for kv in args.set)})
    key = args.key or args.dataset
    out = args.work / key
    arms = ["recipe"] + [a for a in args.arms if a != "recipe"]
    steps = None
    done: dict[str, Path] = {}
    for arm in arms:
        run = out / arm
        if arm != "recipe" and steps is None and (out / "recipe" / "metrics.json").is_file():
            steps = int(read_json(out / "recipe" / "metrics.json")["train"]["steps"])
        cfg = arm_config(recipe, arm, steps)
        if cfg is None:
            console.print(f"{arm}: the recipe already uses it; skipped")
            continue
        if not args.collect:
            pipe = load_pipeline_config(CONFIGS[args.dataset]).model_copy(update={"train": {arm: cfg}})
            run_pipeline(pipe, out)
        if (run / "ranks_test.parquet").is_file():
            done[arm] = run
            if arm == "recipe":
                steps = int(read_json(run / "metrics.json")["train"]["steps"])
    for arm in ARMS:  # arms of this setting measured by an earlier invocation keep their rows
        if arm not in done and (out / arm / "ranks_test.parquet").is_file():
            done[arm] = out / arm
    path = RESULTS / "sft_recipe.json"
    old = read_json(path) if path.is_file() else {}
    raw = dict(old.get("raw", {}))
    summary = {k: v for k, v in old.get("summary", {}).items() if not k.startswith(f"{key}.")}
    if "recipe" not in done:
        raise SystemExit(f"no finished recipe run under {out}: run without --collect first")
    ref = per_example(done["recipe"])
    rows = {}
    for arm, run in done.items():
        m = read_json(run / "metrics.json")
        pe = per_example(run)
        rows[arm] = {"test": {k: float(pe[k].mean()) for k in METRICS}, "config": yaml.safe_load((run / "config.yaml").read_text()),
                     "steps": m["train"]["steps"], "train_seconds": m["train"]["time_s"],
                     "targets_per_second": m["train"].get("targets_per_second"),
                     "best_step": m["train"]["best_step"], "n": int(len(pe["ndcg@10"]))}
        if arm != "recipe":
            rows[arm]["vs_recipe"] = paired_ci(ref, pe)
        summary[f"{key}.{arm}.ndcg@10"] = rows[arm]["test"]["ndcg@10"]
        summary[f"{key}.{arm}.train_seconds"] = rows[arm]["train_seconds"]
        summary[f"{key}.{arm}.targets_per_second"] = rows[arm]["targets_per_second"]
        if against:
            rows[arm]["versus"] = versus(run, against)
        pairs = {"recipe": rows[arm].get("vs_recipe"), **rows[arm].get("versus", {})}
        for name, pv in pairs.items():
            if pv is not None:
                k = f"{key}.{arm}.ndcg@10_vs_{name}"
                summary[k], summary[f"{k}_lo"], summary[f"{k}_hi"] = (pv["ndcg@10"]["diff"], *pv["ndcg@10"]["ci95"])
    for arm in arms:  # validation curves of every arm, finished or not (an interrupted arm resumes on the next run)
        hist = out / arm / "history.jsonl"
        if hist.is_file():
            curve = [(r["step"], r["valid"]["ndcg@10"]) for r in map(json.loads, hist.read_text().splitlines())
                     if "valid" in r]
            rows.setdefault(arm, {"finished": False})["valid_curve"] = curve
    raw[key] = rows
    t = Table(title=f"SFT recipe ablation · {key} · test ({rows['recipe']['n']:,} rows), one seed")
    for col in ("arm", "steps", "NDCG@10", "Δ vs recipe [95% CI]", "HR@10", "train s", "targets/s"):
        t.add_column(col, justify="right")
    for arm, r in rows.items():
        if "test" not in r:
            console.print(f"{arm}: not finished; validation NDCG@10 by step {r['valid_curve']}")
            continue
        d = r.get("vs_recipe", {}).get("ndcg@10")
        t.add_row(arm, str(r["steps"]), f"{r['test']['ndcg@10']:.4f}",
                  f"{d['diff']:+.4f} [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}]" if d else "—",
                  f"{r['test']['hr@10']:.4f}", f"{r['train_seconds']:.0f}", f"{r['targets_per_second'] or 0:.0f}")
    console.print(t)
    for arm, r in rows.items():
        for name, pv in r.get("versus", {}).items():
            d = pv["ndcg@10"]
            console.print(f"{arm} − {name} ({rel(against[name])}): NDCG@10 {d['diff']:+.4f} "
                          f"[{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}], p = {d['p']:.3f}")
    old_config = old.get("config", {})
    settings = dict(old_config.get("settings", {}))
    if "datasets" in old_config:  # a results file from before --key: one setting, named by its dataset
        for name, config_name in old_config["datasets"].items():
            settings.setdefault(name, {"dataset": config_name, **{k: old_config.get(k) for k in (
                "arms", "recipe_epochs", "recipe_overrides", "recipe")}})
    settings[key] = {"dataset": CONFIGS[args.dataset], "arms": list(done), "recipe_epochs": args.epochs,
                     "recipe_overrides": args.set, "recipe": recipe,
                     "against": {name: rel(run) for name, run in against.items()}}
    path = write_result("sft_recipe", summary=summary, config={"settings": settings}, raw=raw)
    console.print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
