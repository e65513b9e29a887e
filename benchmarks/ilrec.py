"""ILRec quality: stage 2 from one SFT checkpoint against the plain-CE control, with ablations.

Per dataset (Beauty with its given SIDs, industrial-partial with its given SIDs):

1. a SASRec (CRR's CF model) and one stage-1 SFT run (early stopping on validation NDCG@10);
2. from that checkpoint, the same number of extra steps with the same schedule, per seed:
   `sft_continued` (plain CE: the fair control), `ilrec` (CPO + CPD + CRR), `ilrec_no_cpo`,
   `ilrec_no_cpd`, `ilrec_no_crr`, and the preference baselines `dpo`, `sdpo` (β = 1), `dpo_sft`,
   `sdpo_sft` (+ the target's CE), `dpo_beta0.1`, `sdpo_beta0.1`, `dpo_lr1e-5`, `sdpo_lr1e-5`, and
   `dpo_pop`, `sdpo_pop`, `dpo_random`, `sdpo_random` (popularity / uniform negatives, not beam);
3. test HR/NDCG@5/10 on a fixed sample of the test split (beam 20), paired bootstrap against the
   control over test examples (per-example metrics averaged over seeds first);
4. `--sweep`: layer choice and α / β sensitivity on validation (seed 0);
5. diagnostics from the training logs: share of target positions with a negative, mean |N_t|, loss
   terms (benchmarks/results/ilrec_curves_<dataset>.png), and the false-negative rate of the self-hard
   negatives against each user's test item (sidrec.pipelines.ilrec_diagnostics), for the stage-1 model
   and the seed-0 ILRec model.

    python benchmarks/ilrec.py                                   # cpu scale, both datasets, 3 seeds
    python benchmarks/ilrec.py --datasets industrial --seeds 0   # a quicker look
    python benchmarks/ilrec.py --sweep                           # + layer / α / β sensitivity
    python benchmarks/ilrec.py --scale recipe --datasets industrial --workers 1 --threads 2
                                                                 # stage 1 on the SFT recipe, whole splits
                                                                 # (benchmarks/results/ilrec-recipe.json)
    python benchmarks/ilrec.py --scale gpu                       # 30 layers, whole test split (GPU)
    python benchmarks/ilrec.py --collect                         # only read finished runs
    python benchmarks/ilrec.py --scale gpu --datasets industrial --seeds 0 --arms sft_continued ilrec \
        --set stage1.epochs=1 stage2.max_steps=200                # a budget: `--set` overrides the scale's
                                                                  # settings (recorded; runs in <scale>-set<hash>/)

The preference-learning baselines sit in the same table: `dpo` and `sdpo` train from the same
checkpoint for the same steps on the stage-1 model's beam-search hard negatives (one file per
dataset, 3 per example: DPO takes the hardest, S-DPO all three); the `_pop` / `_random` arms on
popularity-weighted / uniform samples for the same examples (a file per strategy).

Runs live in runs/bench-ilrec/<scale>/<dataset>/…, each a normal run folder. `--arms` and `--seeds`
say what to train; every finished run of every arm is collected. A dataset not named in
`--datasets` keeps its figures from the existing results file (each dataset's entry records its own
seeds, arms, environment and wall time), and so does an arm with no finished run here when the
stage-1 model is the same (equal checksums), so datasets and arms can be run in separate invocations.
Plots are per dataset: benchmarks/results/ilrec_curves_<dataset>.png and, with `--sweep`,
ilrec_sensitivity_<dataset>.png. Writes benchmarks/results/ilrec.json with summary keys `<dataset>.{sft,sft_continued,ilrec,ilrec_no_cpo,
ilrec_no_cpd,ilrec_no_crr,dpo,sdpo}.{ndcg@10,hr@10,ndcg@5,hr@5}` for `beauty` and `industrial`,
`<dataset>.<arm>.time_ratio` (median training time over the control's),
`<dataset>.<arm>.ndcg@10_vs_control` and `.valid_ndcg@10_vs_control` (paired differences on test
and validation, each with `_lo` / `_hi`: the 95% CI), `<dataset>.test_rows` (the rows every arm was
tested on), and `seeds`. `--scale recipe` writes benchmarks/results/ilrec-recipe.json (and its plots
under that name) instead.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from _common import (METRICS, RESULTS, ROOT, SHARED_DATA, archive_run, console, eval_run, finished_runs, is_finished,
                     mean_ci, override_suffix, paired_ci, paired_runs, parse_sets, rel, seed_mean_per_example,
                     train_run, write_result)
from sidrec.utils.io import merge_config, read_json
from sidrec.utils.runs import environment_info

# tasks / sid_init: the cpu and gpu scales' stage 1 (measured before the SFT recipe); recipe_*: the recipe
# scale's (the packaged CPU configs' choices: tfidf rows where items have text, item2sid mixed in; Beauty's
# given SIDs have no text, so sampled rows and seqrec only, a tenth of its windows per epoch)
DATASETS = {
    "industrial": {"format": "minionerec", "path": SHARED_DATA / "amazon18-industrial", "options": {},
                   "tasks": {"seqrec": 1.0}, "max_history": 10,
                   "recipe_tasks": {"seqrec": 1.0, "item2sid": 0.5}, "recipe_init": "tfidf"},
    "beauty": {"format": "lcrec", "path": SHARED_DATA / "amazon14-beauty", "options": {"max_history": 20},
               "tasks": {"seqrec": 0.05}, "max_history": 20,
               "recipe_tasks": {"seqrec": 0.1}, "recipe_init": "sampled"},
}
STAGE2_ARMS: dict[str, dict[str, Any]] = {
    "sft_continued": {"method": "sft"},
    "ilrec": {"method": "ilrec", "ilrec": {}},
    "ilrec_no_cpo": {"method": "ilrec", "ilrec": {"use_cpo": False}},
    "ilrec_no_cpd": {"method": "ilrec", "ilrec": {"use_cpd": False}},
    "ilrec_no_crr": {"method": "ilrec", "ilrec": {"use_crr": False}},
    # the layers' mean, not their sum, against φ·z(y): fewer negatives where the summed logits of Λ layers
    # outweigh one final logit (on the recipe's stage 1 the sum makes ~100 of a level's codes negatives)
    # (measured on the recipe, seed 0: 3-5 negatives a position, and it still hurts as much as the sum)
    "ilrec_mean": {"method": "ilrec", "ilrec": {"aggregate": "mean"}},
    # less of CPD, which on the recipe falls while the targets' CE rises: it distils into 4 of the 6 layers
    "ilrec_lam0.1": {"method": "ilrec", "ilrec": {"lam": 0.1}},
    "ilrec_last_layer": {"method": "ilrec", "ilrec": {"layers": [-2]}},
    # the preference-learning baselines (sequence-level, offline beam-search hard negatives)
    "dpo": {"method": "dpo", "dpo": {"num_negatives": 1}},  # β = 1: the S-DPO reference setting (our default)
    "sdpo": {"method": "sdpo", "dpo": {"num_negatives": 3}},
    # the usual remedy for DPO's falling target likelihood: + the target's cross-entropy
    "dpo_sft": {"method": "dpo", "dpo": {"num_negatives": 1, "sft_weight": 1.0}},
    "sdpo_sft": {"method": "sdpo", "dpo": {"num_negatives": 3, "sft_weight": 1.0}},
    # β = 0.1 (the usual setting for long text; the default before 2026-12-01): they collapse
    "dpo_beta0.1": {"method": "dpo", "dpo": {"num_negatives": 1, "beta": 0.1}},
    "sdpo_beta0.1": {"method": "sdpo", "dpo": {"num_negatives": 3, "beta": 0.1}},
    # the S-DPO reference learning rate (a fifth of the stage-2 schedule's), with β = 1
    "dpo_lr1e-5": {"method": "dpo", "dpo": {"num_negatives": 1}, "training": {"lr": 1e-5}},
    "sdpo_lr1e-5": {"method": "sdpo", "dpo": {"num_negatives": 3}, "training": {"lr": 1e-5}},
    # the negatives' source (default: the stage-1 model's beam search): popularity-weighted or uniform
    # samples of items the user never had, for the same examples (the beam negatives are popular items)
    "dpo_pop": {"method": "dpo", "dpo": {"num_negatives": 1}, "negatives": "popularity"},
    "sdpo_pop": {"method": "sdpo", "dpo": {"num_negatives": 3}, "negatives": "popularity"},
    "dpo_random": {"method": "dpo", "dpo": {"num_negatives": 1}, "negatives": "random"},
    "sdpo_random": {"method": "sdpo", "dpo": {"num_negatives": 3}, "negatives": "random"},
}
NEGATIVES_PER_EXAMPLE = 3  # one file per dataset: DPO takes the hardest, S-DPO all three
SWEEP: dict[str, dict[str, Any]] = {
    "default": {},  # layers -2..-5, α 0.1, β 0.1: the reference point of every panel
    "layers_-2": {"layers": [-2]}, "alpha_1.0": {"alpha": 1.0}, "beta_1.0": {"beta": 1.0},
}
SCALES: dict[str, dict[str, Any]] = {
    # 2 cores: SmolLM2-135M cut to 6 layers (ILRec's default layers need ≥ 5), short stages
    "cpu": {"model": {"name_or_path": "smollm2-135m", "num_layers": 6},
            "stage1": {"epochs": 1, "max_steps": 400, "batch_size": 16, "lr": 1e-3, "warmup_ratio": 0.05,
                       "eval_steps": 100, "eval_samples": 150, "patience": 3, "device": "cpu"},
            "stage2": {"epochs": 1, "max_steps": 120, "batch_size": 16, "lr": 5e-5, "warmup_ratio": 0.05,
                       "scheduler": "cosine", "eval_steps": 60, "eval_samples": 150, "patience": 100, "device": "cpu"},
            "eval": {"num_beams": 20, "batch_size": 32, "max_examples": 500, "splits": ["test"]},
            "sasrec": {"epochs": 30, "patience": 3, "device": "cpu"}, "result": "ilrec"},
    # 2 cores, stage 1 on the SFT recipe as far as ILRec, DPO and S-DPO allow: their losses read one prompt →
    # response per example over the full vocabulary, so the prompt form and the full softmax stay; the
    # recipe's initialisation, task mixture, learning rates and SID-row lr (10x) come in; 3 epochs with early
    # stopping; every run evaluated on the whole validation and test splits (benchmarks/results/ilrec-recipe.json)
    "recipe": {"model": {"name_or_path": "smollm2-135m", "num_layers": 6}, "recipe": True,
               "stage1": {"epochs": 3, "batch_size": 16, "lr": 5e-4, "sid_lr": 5e-3, "warmup_ratio": 0.03,
                          "eval_samples": 500, "patience": 3, "device": "cpu"},
               "stage2": {"epochs": 1, "max_steps": 150, "batch_size": 16, "lr": 5e-5, "sid_lr": 5e-4,
                          "warmup_ratio": 0.05, "scheduler": "cosine", "eval_steps": 75, "eval_samples": 150,
                          "patience": 100, "device": "cpu"},
               "eval": {"num_beams": 20, "batch_size": 32, "splits": ["valid", "test"]},
               "sasrec": {"epochs": 30, "patience": 3, "device": "cpu"}, "result": "ilrec-recipe"},
    "gpu": {"model": {"name_or_path": "smollm2-135m"},
            "stage1": {"epochs": 3, "batch_size": 32, "lr": 5e-4, "warmup_ratio": 0.03, "eval_steps": 500,
                       "eval_samples": 500, "patience": 3},
            "stage2": {"epochs": 1, "batch_size": 32, "lr": 5e-5, "warmup_ratio": 0.05, "scheduler": "cosine",
                       "eval_steps": 500, "eval_samples": 500, "patience": 100},
            "eval": {"num_beams": 20, "batch_size": 64, "splits": ["test"]},
            "sasrec": {"epochs": 200, "patience": 10}, "result": "ilrec"},
}


def prepare(name: str, work: Path, scale: dict[str, Any]) -> tuple[Path, Path]:
    """The imported dataset and its SASRec run."""
    from sidrec.pipelines.classic import train_classic

    spec = DATASETS[name]
    data = work / "data"
    if not (data / "dataset.json").is_file():
        from sidrec.data.importers import import_dataset

        import_dataset(spec["format"], spec["path"], **spec["options"]).save(data)
    sasrec = work / "sasrec"
    if not (sasrec / "metrics.json").is_file():
        train_classic("sasrec", data, sasrec, overrides=scale["sasrec"], overwrite=True)
    return data, sasrec


def stage1_config(name: str, data: Path, scale: dict[str, Any]) -> dict[str, Any]:
    spec = DATASETS[name]
    recipe = scale.get("recipe", False)
    # the prompt form and full softmax ILRec needs; mean init and seqrec only before the recipe
    return {"method": "sft", "dataset": str(data),
            "model": {"sid_init": spec["recipe_init"] if recipe else "mean", **scale["model"]},
            "data": {"tasks": spec["recipe_tasks"] if recipe else spec["tasks"], "compact": True,
                     "max_history": spec["max_history"], "format": "prompt", "sid_softmax": "full"},
            "training": {**scale["stage1"], "seed": 0},
            "eval": {**scale["eval"], "splits": ["valid", "test"]}}


def negatives_strategy(arm: str) -> str | None:
    """Where a stage-2 arm's negatives come from (`beam`, `popularity`, `random`); None: it needs none."""
    spec = STAGE2_ARMS[arm]
    return spec.get("negatives", "beam") if spec["method"] in ("dpo", "sdpo") else None


def negatives_file(work: Path, sft: Path, scale: dict[str, Any], strategy: str = "beam") -> Path:
    """Negatives for the examples stage 2 can see (with max_steps: a seeded sample of max_steps ×
    batch_size train rows, i.e. one epoch of DPO is the step budget; the same rows for every strategy):
    the stage-1 model's beam-search hard negatives, or popularity / uniform samples."""
    from sidrec.methods.preference.negatives import sample_run_negatives

    path = work / f"negatives-{strategy}.parquet"
    if not path.is_file():
        t = scale["stage2"]
        n = t["max_steps"] * t["batch_size"] if t.get("max_steps") else None
        t0 = time.perf_counter()
        meta = sample_run_negatives(path, run=sft, strategy=strategy, per_example=NEGATIVES_PER_EXAMPLE,
                                    max_examples=n, seed=0, num_beams=NEGATIVES_PER_EXAMPLE + 10,
                                    device=t.get("device", "auto"))
        console.print(f"{rel(path)}: {meta['examples']} examples in {time.perf_counter() - t0:.0f} s")
    return path


def stage2_config(sft_run: Path, arm: dict[str, Any], seed: int, sasrec: Path, scale: dict[str, Any],
                  ilrec_extra: dict[str, Any] | None = None, splits: list[str] | None = None,
                  negatives: Path | None = None) -> dict[str, Any]:
    from sidrec.pipelines.llm import continue_from

    cfg = continue_from(sft_run, arm["method"])
    cfg["training"] = {**cfg["training"], **scale["stage2"], **arm.get("training", {}), "seed": seed}
    cfg["eval"] = {**scale["eval"], **({"splits": splits} if splits else {})}
    if arm["method"] == "ilrec":
        cfg["ilrec"] = {**cfg.get("ilrec", {}), "cf_run": str(sasrec), **arm.get("ilrec", {}), **(ilrec_extra or {})}
    if arm["method"] in ("dpo", "sdpo"):
        cfg["dpo"] = {**arm.get("dpo", {}), "negatives": str(negatives)}
    return cfg


def false_negatives(work: Path, sasrec: Path, runs: dict[str, Path], device: str = "cpu",
                    examples: int = 500) -> dict[str, Any]:
    """The false-negative diagnostic (sidrec.pipelines.ilrec_diagnostics) of the stage-1 model and of the
    seed-0 ILRec model, with ILRec's default settings, on 500 training examples (cached)."""
    from sidrec.pipelines.ilrec_diagnostics import false_negative_report
    from sidrec.utils.io import write_json

    out = {}
    for key, run in runs.items():
        cache = work / f"false_negatives.{key}.json"
        if not cache.is_file() and (run / "metrics.json").is_file():
            if not any((run / d / "sidrec.json").is_file() for d in (".", "model")):
                console.print(f"{rel(run)}: false-negative diagnostic skipped (an archived run keeps no model; "
                              "the results file keeps the last measured one)")
                continue
            write_json(cache, false_negative_report(run, sasrec, max_examples=examples, device=device))
        if cache.is_file():
            out[key] = read_json(cache)
    return out


CURVES = [("loss", "training loss"), ("ce", "target cross-entropy (ILRec)"),
          ("frac_with_negative", "positions with a negative"), ("mean_negatives", "mean |N_t|")]


def negatives_report(work: Path, data: Path) -> dict[str, Any] | None:
    """What DPO / S-DPO push down: how often the beam-search negatives hold the user's own later
    (validation or test) item, and how popular they are as train-split targets against the mean item."""
    import pandas as pd

    from sidrec.data.dataset import Dataset

    path = work / "negatives-beam.parquet"
    if not path.is_file():
        return None
    ds = Dataset.load(data)
    train = ds.split("train")
    neg = pd.read_parquet(path)
    later: dict[str, set[str]] = {}
    for split in ("valid", "test"):
        df = ds.split(split)
        for user, target in zip(df["user_id"].astype(str), df["target"].astype(str), strict=True):
            later.setdefault(user, set()).add(target)
    counts = train["target"].astype(str).value_counts()
    negs = [[str(n) for n in row] for row in neg["negatives"]]
    users = neg["user_id"].astype(str)
    return {"examples": len(neg),
            "hardest_is_later_item": float(np.mean([n[0] in later.get(u, set()) for u, n in zip(users, negs)])),
            "any_is_later_item": float(np.mean([bool(set(n) & later.get(u, set())) for u, n in zip(users, negs)])),
            "hardest_target_count": float(np.mean([counts.get(n[0], 0) for n in negs])),
            "mean_item_target_count": float(len(train) / len(ds.item_ids))}


def seed_folders(folder: Path, archived: Path) -> list[Path]:
    """The seed<N> run folders of an arm, live (under `folder`) or only archived, as live paths."""
    names = {d.name for base in (folder, archived) if base.is_dir()
             for d in base.glob("seed*") if d.name[4:].isdigit()}
    return [folder / n for n in sorted(names, key=lambda n: int(n[4:]))]


def diagnostics(run: Path) -> dict[str, Any]:
    rows = [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines() if x.strip()]
    train = [r for r in rows if "loss" in r and "valid" not in r]
    out: dict[str, Any] = {"loss": [r["loss"] for r in train]}
    for key in ("frac_with_negative", "mean_negatives", "cpo", "cpd", "crr", "ce", "pref_loss", "reward_accuracy",
                "reward_margin", "nll_chosen"):
        vals = [r[key] for r in train if key in r]
        if vals:
            out[key] = {"first": vals[0], "last": vals[-1], "mean": float(np.mean(vals))}
    out["valid"] = [(r["step"], r["valid"].get("ndcg@10")) for r in rows if "valid" in r]
    out["series"] = {key: [(r["step"], r[key]) for r in train if key in r] for key, _ in CURVES}  # for the plots
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=list(SCALES), default="cpu")
    ap.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=list(DATASETS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", choices=list(STAGE2_ARMS), default=list(STAGE2_ARMS))
    ap.add_argument("--sweep", action="store_true", help="layer choice and α / β sensitivity on validation (seed 0)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--valid", action="store_true",
                    help="also evaluate the finished runs of --arms and of the control on the validation sample: a "
                         "second, independent paired comparison against the control")
    ap.add_argument("--collect", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print the results file's tables as markdown (no runs needed)")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-ilrec")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", dest="sets",
                    help="override the scale's settings (dotted keys: stage1.epochs=1, stage2.max_steps=200, "
                         "model.name_or_path=DIR, diagnostics_device=auto, diagnostics_examples=500); recorded")
    args = ap.parse_args()
    if args.markdown:
        path = RESULTS / f"{SCALES[args.scale]['result']}.json"
        if not path.is_file():
            raise SystemExit(f"--markdown: no results file {rel(path)}; run the benchmark (or --collect) first")
        print_markdown(read_json(path))
        return
    overrides = parse_sets(args.sets)
    scale = merge_config(SCALES[args.scale], overrides)
    # the results file as it stood before this invocation: carried-over arms, datasets and time ratios
    result_name = scale["result"]
    old_results = read_json(RESULTS / f"{result_name}.json") if (RESULTS / f"{result_name}.json").is_file() else None
    raw: dict[str, Any] = {}
    summary: dict[str, Any] = {"scale": args.scale}
    for name in args.datasets:
        t0 = time.perf_counter()
        work = args.work / (args.scale + override_suffix(overrides)) / name
        data, sasrec = (work / "data", work / "sasrec") if args.collect else prepare(name, work, scale)
        sft = work / "sft"
        if not args.collect:  # train stage 1, then every stage-2 job (with --collect: read finished runs only)
            train_run(sft, stage1_config(name, data, scale), threads=args.workers * args.threads)
            train = {arm: [work / arm / f"seed{s}" for s in args.seeds] for arm in args.arms}
            strategies = sorted({st for a in args.arms if (st := negatives_strategy(a)) is not None})
            negatives = {st: negatives_file(work, sft, scale, st) for st in strategies}
            jobs = [(run, stage2_config(sft, STAGE2_ARMS[arm], seed, sasrec, scale,
                                        negatives=negatives.get(negatives_strategy(arm) or "")))
                    for seed_i, seed in enumerate(args.seeds) for arm in args.arms for run in [train[arm][seed_i]]]
            if args.sweep:
                for key, extra in SWEEP.items():
                    jobs.append((work / "sweep" / key,
                                 stage2_config(sft, STAGE2_ARMS["ilrec"], 0, sasrec, scale, extra, ["valid"])))
                jobs.append((work / "sweep" / "control",  # the plain-CE control on validation
                             stage2_config(sft, STAGE2_ARMS["sft_continued"], 0, sasrec, scale, None, ["valid"])))
            with ThreadPoolExecutor(args.workers) as pool:
                list(pool.map(lambda job: train_run(job[0], job[1], args.threads), jobs))
        # collect every finished run of every arm, whatever this invocation trained, live or archived
        # (benchmarks/results/ilrec-runs/: metrics, logs and ranks, committed; a live run wins)
        archive = RESULTS / "ilrec-runs" / work.relative_to(args.work)
        runs = {arm: seed_folders(work / arm, archive / arm) for arm in STAGE2_ARMS}
        runs.update({f"sweep.{key}": [work / "sweep" / key] for key in [*SWEEP, "control"]})
        if args.valid and not args.collect:
            finished = [r for arm in {"sft_continued", *args.arms} for r in runs[arm] if is_finished(r)]
            with ThreadPoolExecutor(args.workers) as pool:
                list(pool.map(lambda r: eval_run(r, "valid", args.threads), finished))
        runs = {arm: finished_runs(rs, work, archive) for arm, rs in runs.items()}
        if is_finished(sft):
            archive_run(sft, archive / "sft")
        elif is_finished(archive / "sft"):
            sft = archive / "sft"
        if is_finished(sasrec):  # its test figures sit beside the arms'
            archive_run(sasrec, archive / "sasrec")
        elif is_finished(archive / "sasrec"):
            sasrec = archive / "sasrec"
        if not is_finished(sasrec):
            if old_results and name in old_results.get("raw", {}):
                console.print(f"[yellow]{name}: no finished runs here or in {rel(archive)}; its figures stay as "
                              f"the results file has them[/yellow]")
                continue
            raise SystemExit(f"{name}: no finished SASRec run in {rel(work)} (nor archived in {rel(archive)}): "
                             "run without --collect first")
        res: dict[str, Any] = {"sft": read_json(sft / "metrics.json") if (sft / "metrics.json").is_file() else None,
                               "sasrec": read_json(sasrec / "metrics.json")["test"], "arms": {}}
        per_example: dict[str, Any] = {}
        per_example_valid: dict[str, Any] = {}
        if res["sft"]:
            _, per_example["sft"] = seed_mean_per_example([sft])
            if (sft / "ranks_valid.parquet").is_file():
                _, per_example_valid["sft"] = seed_mean_per_example([sft], "valid")
        for arm, done in runs.items():
            if not done:
                continue
            metrics = [read_json(r / "metrics.json") for r in done]
            split = "test" if "test" in metrics[0] else "valid"
            entry = {"runs": [rel(r) for r in done], "split": split,
                     split: {m: [x[split][m] for x in metrics] for m in METRICS},
                     "train_time_s": [x["train"]["time_s"] for x in metrics],
                     "peak_memory_mb": [x["train"].get("peak_memory_mb") for x in metrics],
                     "diagnostics": [diagnostics(r) for r in done]}
            entry["over_seeds"] = {m: mean_ci(entry[split][m]) for m in METRICS}
            if split == "test":
                _, per_example[arm] = seed_mean_per_example(done)
                if all((r / "ranks_valid.parquet").is_file() for r in done):
                    # evaluated on validation at the end of training (metrics.json) or later by --valid
                    valid = [m["valid"] if "valid" in m else read_json(r / "metrics_valid.json")
                             for r, m in zip(done, metrics, strict=True)]
                    entry["valid"] = {m: [x[m] for x in valid] for m in METRICS}
                    _, per_example_valid[arm] = seed_mean_per_example(done, "valid")
            res["arms"][arm] = entry
        previous = old_results["raw"].get(name, {}).get("arms", {}) if old_results else {}
        carry_over_arms(old_results, name, res)
        for arm, entry in res["arms"].items():
            if arm in per_example and arm != "sft_continued":
                # against the control on the arm's own seeds: an arm with one seed is not paired with a
                # three-seed control mean (each seed of stage 2 draws its own batches)
                entry.update(vs_control(runs, arm, "test"))
            if arm in per_example and "sft" in per_example:  # against the stage-1 model it starts from
                entry["paired_vs_stage1"] = paired_ci(per_example["sft"], per_example[arm])
            if arm in per_example_valid and arm != "sft_continued":
                entry.update(vs_control(runs, arm, "valid"))
            if arm in per_example_valid and "sft" in per_example_valid:
                entry["valid_paired_vs_stage1"] = paired_ci(per_example_valid["sft"], per_example_valid[arm])
            for key, label in (("paired_vs_control", "ndcg@10_vs_control"),
                               ("valid_paired_vs_control", "valid_ndcg@10_vs_control")):
                if key in entry:  # the paired differences the docs quote, with their 95% CI
                    pv = entry[key]["ndcg@10"]
                    summary[f"{name}.{arm}.{label}"] = pv["diff"]
                    summary[f"{name}.{arm}.{label}_lo"], summary[f"{name}.{arm}.{label}_hi"] = pv["ci95"]
            if entry["split"] == "test":
                for m in ("ndcg@10", "hr@10", "ndcg@5", "hr@5"):
                    summary[f"{name}.{arm}.{m}"] = entry["over_seeds"][m]["mean"]
                control = res["arms"].get("sft_continued")
                before = previous.get(arm, {})
                if args.collect and ("time_ratio_vs_control" in before or "time_ratio_note" in before):
                    # nothing trained now: the ratio stands as measured when the arm trained beside its control
                    # (or stays absent, with its note, where the two trained under different machine loads)
                    for key in ("time_ratio_vs_control", "time_ratio_note"):
                        if key in before:
                            entry[key] = before[key]
                elif control and arm != "sft_continued" and not entry.get("carried_over"):
                    # training cost per method, as a ratio to the control trained alongside it (a carried-over
                    # arm keeps the ratio to the control of its own invocation: machine load differs)
                    entry["time_ratio_vs_control"] = float(np.median(entry["train_time_s"]) /
                                                           np.median(control["train_time_s"]))
                if "time_ratio_vs_control" in entry:
                    summary[f"{name}.{arm}.time_ratio"] = entry["time_ratio_vs_control"]
        if res["sft"]:
            for m in ("ndcg@10", "hr@10", "ndcg@5", "hr@5"):
                summary[f"{name}.sft.{m}"] = res["sft"]["test"][m]
                summary[f"{name}.sasrec.{m}"] = res["sasrec"][m]
            # the stage-1 model against the SASRec of the same split, on the rows both ranked
            res["sft_vs_sasrec"] = {split: paired_runs(sasrec, sft, split) for split in ("test", "valid")
                                    if (sft / f"ranks_{split}.parquet").is_file()
                                    and (sasrec / f"ranks_{split}.parquet").is_file()}
            for split, pv in res["sft_vs_sasrec"].items():
                label = f"{name}.sft.{'' if split == 'test' else 'valid_'}ndcg@10_vs_sasrec"
                summary[label] = pv["ndcg@10"]["diff"]
                summary[f"{label}_lo"], summary[f"{label}_hi"] = pv["ndcg@10"]["ci95"]
        if per_example:
            summary[f"{name}.test_rows"] = min(len(v["ndcg@10"]) for v in per_example.values())
        res["false_negatives"] = {**res.get("false_negatives", {}),
                                  **false_negatives(work, sasrec, {"sft": sft, "ilrec": work / "ilrec" / "seed0"},
                                                    device=scale.get("diagnostics_device", "cpu"),
                                                    examples=scale.get("diagnostics_examples", 500))}
        for key, fn in res["false_negatives"].items():
            if fn.get("fn_rate") is not None:
                summary[f"{name}.false_negatives.{key}.fn_rate"] = fn["fn_rate"]
                summary[f"{name}.false_negatives.{key}.chance"] = fn["chance"]
        res["negatives"] = negatives_report(work, data) or res.get("negatives")
        if res["negatives"]:
            summary[f"{name}.negatives.hardest_is_later_item"] = res["negatives"]["hardest_is_later_item"]
            summary[f"{name}.negatives.popularity_ratio"] = (res["negatives"]["hardest_target_count"] /
                                                             res["negatives"]["mean_item_target_count"])
        invocation = {"seeds": args.seeds, "arms": args.arms, "sweep": args.sweep, "collect": args.collect,
                      "environment": environment_info(), "wall_seconds": round(time.perf_counter() - t0, 1)}
        res["invocation"] = invocation_record(old_results, name, invocation)
        raw[name] = res
        print_table(name, res)
        for key, fn in res["false_negatives"].items():
            console.print(f"false negatives ({key} model): {fn}")
        plot_curves(name, res, RESULTS / f"{result_name}_curves_{name}.png")
        if any(k.startswith("sweep.") for k in res["arms"]):
            plot_sensitivity(name, res, RESULTS / f"{result_name}_sensitivity_{name}.png")
    keep_other_datasets(old_results, raw, summary)
    seeds = [len(e["runs"]) for r in raw.values() for a, e in r["arms"].items() if a.startswith("ilrec")]
    summary["seeds"] = min(seeds) if seeds else 0  # the fewest seeds of any dataset's ILRec arms
    parallel = {"workers": args.workers, "threads": args.threads}
    if args.collect and old_results:  # nothing trained now: the parallelism stays as the runs were trained
        parallel = {k: old_results.get("config", {}).get(k, v) for k, v in parallel.items()}
    config = {"scale": args.scale, "overrides": overrides, "scale_settings": scale, "arms": STAGE2_ARMS, "sweep": SWEEP,
              **parallel}
    path = write_result(result_name, summary=summary, config=config, raw=raw)
    console.print(f"wrote {rel(path)}")


def vs_control(runs: dict[str, list[Path]], arm: str, split: str) -> dict[str, Any]:
    """The arm's paired difference against `sft_continued` on `split`, the control taken on the arm's
    own seeds (per-example metrics averaged over those seeds on both sides), as `[valid_]paired_vs_control`
    with the seeds it used as `[valid_]control_seeds`; empty where the control has none of those seeds."""
    seeds = {r.name for r in runs.get(arm, [])}
    control = [r for r in runs.get("sft_continued", []) if r.name in seeds]
    if not control or not all((r / f"ranks_{split}.parquet").is_file() for r in [*control, *runs[arm]]):
        return {}
    prefix = "" if split == "test" else "valid_"
    return {f"{prefix}paired_vs_control": paired_ci(seed_mean_per_example(control, split)[1],
                                                    seed_mean_per_example(runs[arm], split)[1]),
            f"{prefix}control_seeds": sorted(int(r.name.removeprefix("seed")) for r in control)}


def invocation_record(old_results: dict[str, Any] | None, name: str, invocation: dict[str, Any]) -> dict[str, Any]:
    """What a dataset's results record as their invocation. A re-collection (`--collect`) trains nothing, so
    the record of the invocation that trained stays, with the re-collection beside it as `recollected`."""
    trained = (old_results or {}).get("raw", {}).get(name, {}).get("invocation")
    if not invocation["collect"] or not trained:
        return invocation
    if trained.get("collect"):  # written by an earlier re-collection of a version without this record
        return invocation
    return {**{k: v for k, v in trained.items() if k != "recollected"}, "recollected": invocation}


def carry_over_arms(old_results: dict[str, Any] | None, name: str, res: dict[str, Any]) -> None:
    """Arms (and false-negative reports) with no finished run here keep their entries from the
    existing results file, marked `carried_over`, if the stage-1 model is the same one (equal
    parameter checksums: training is deterministic on one machine); their paired statistics are
    the ones computed when they ran."""
    if not old_results or not res["sft"]:
        return
    old = old_results["raw"].get(name)
    if not old or not old.get("sft"):
        return
    if old["sft"].get("param_checksums") != res["sft"].get("param_checksums"):
        console.print(f"[yellow]{name}: the stage-1 model differs from the results file's; nothing carried over")
        return
    for arm, entry in old["arms"].items():
        if arm not in res["arms"]:
            res["arms"][arm] = {**entry, "carried_over": True}
    res["false_negatives"] = dict(old.get("false_negatives", {}))
    res["carried_over"] = sorted(a for a, e in res["arms"].items() if e.get("carried_over"))


def keep_other_datasets(old: dict[str, Any] | None, raw: dict[str, Any], summary: dict[str, Any]) -> None:
    """Carry the datasets this invocation did not run over from the existing results file (same scale only)."""
    if not old:
        return
    if old["summary"].get("scale") != summary["scale"]:
        return
    for name, res in old["raw"].items():
        if name in raw:
            continue
        raw[name] = res
        if "invocation" not in res:  # written before per-dataset records: the file's own
            res["invocation"] = {"seeds": old["config"].get("seeds"), "environment": old.get("environment"),
                                 "wall_seconds": old.get("wall_seconds")}
        summary.update({k: v for k, v in old["summary"].items() if k.startswith(f"{name}.")})


def plot_curves(name: str, res: dict[str, Any], path: Path) -> None:
    """Seed-0 training loss and ILRec's diagnostics per step, one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(CURVES), figsize=(4.2 * len(CURVES), 3.4), squeeze=False)
    arms = [arm for arm in res["arms"] if not arm.startswith("sweep.")]
    for i, arm in enumerate(arms):  # one colour per arm on every panel, whichever panels it has data for
        series = res["arms"][arm]["diagnostics"][0].get("series", {})
        for col, (key, label) in enumerate(CURVES):
            if series.get(key):
                axes[0][col].plot(*zip(*series[key], strict=True), label=arm, lw=1.2, color=f"C{i % 10}")
            axes[0][col].set_title(f"{name}: {label}", fontsize=9)
            axes[0][col].set_xlabel("stage-2 step", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_sensitivity(name: str, res: dict[str, Any], path: Path) -> None:
    """Validation NDCG@10 of ILRec (seed 0) by layer choice, α and β; dashed: the plain-CE control."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("layers", ["layers_-2", "default"], ["−2", "−2..−5 (default)"]),
              ("α (CPO)", ["default", "alpha_1.0"], ["0.1", "1.0"]),
              ("β (CRR)", ["default", "beta_1.0"], ["0.1", "1.0"])]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4), squeeze=False)
    arms = res["arms"]
    control = arms.get("sweep.control", {}).get("valid", {}).get("ndcg@10", [None])[0]
    for col, (title, keys, labels) in enumerate(panels):
        ax = axes[0][col]
        vals = [arms.get(f"sweep.{k}", {}).get("valid", {}).get("ndcg@10", [np.nan])[0] for k in keys]
        ax.plot(range(len(keys)), vals, "o-")
        ax.set_xticks(range(len(keys)), labels, fontsize=8)
        if control is not None:
            ax.axhline(control, ls="--", c="gray", label="sft_continued")
            ax.legend(fontsize=7)
        ax.set_title(f"{name}: {title}", fontsize=9)
        ax.set_ylabel("valid NDCG@10", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def print_markdown(results: dict[str, Any]) -> None:
    """The docs' tables, from the results file: test metrics (mean over seeds), paired Δ NDCG@10 against
    the control and against stage 1, cost; then the validation sweep."""
    def delta(e: dict[str, Any], key: str) -> str:
        pv = e.get(key, {}).get("ndcg@10")
        return f"{pv['diff']:+.4f} [{pv['ci95'][0]:+.4f}, {pv['ci95'][1]:+.4f}], p = {pv['p']:.3f}" if pv else "—"

    for name, res in results["raw"].items():
        seeds = sorted({int(Path(r).name[len("seed"):]) for e in res["arms"].values() for r in e["runs"]
                        if Path(r).name.startswith("seed")})
        print(f"\n{name} (seeds {seeds}):\n")
        print("| arm | seeds | HR@5 | NDCG@5 | HR@10 | NDCG@10 | Δ NDCG@10 vs sft_continued [95% CI] | "
              "Δ NDCG@10 vs stage 1 | valid: Δ NDCG@10 vs sft_continued | train s | × control time | peak MB |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|")
        if res.get("sft"):
            m = res["sft"]["test"]
            print(f"| SFT (stage 1) | 1 | {' | '.join(f'{m[k]:.4f}' for k in METRICS)} | | | | "
                  f"{res['sft']['train']['time_s']:.0f} | | |")
        if res.get("sasrec"):
            cf = " | ".join(f"{res['sasrec'][k]:.4f}" for k in METRICS)
            print(f"| SASRec (same split) | 1 | {cf} | | | | | | |")
        for arm, e in res["arms"].items():
            if e["split"] != "test":
                continue
            mem = [m for m in e.get("peak_memory_mb", []) if m]
            ratio = e.get("time_ratio_vs_control")
            means = " | ".join(f"{e['over_seeds'][k]['mean']:.4f}" for k in METRICS)
            mark = (" †" if e.get("carried_over") else "") + (" ‡" if e.get("time_ratio_note") else "")
            print(f"| {arm}{mark} | {len(e['runs'])} | {means} | "
                  f"{delta(e, 'paired_vs_control')} | {delta(e, 'paired_vs_stage1')} | "
                  f"{delta(e, 'valid_paired_vs_control')} | "
                  f"{np.median(e['train_time_s']):.0f} | {f'{ratio:.2f}×' if ratio else '—'} | "
                  f"{f'{np.median(mem):.0f}' if mem else '—'} |")
        vs = res.get("sft_vs_sasrec", {})
        if vs:
            cis = [f"{split} {pv['diff']:+.4f} [{pv['ci95'][0]:+.4f}, {pv['ci95'][1]:+.4f}]"
                   for split, pv in ((split, v["ndcg@10"]) for split, v in vs.items())]
            print("\nStage 1 − SASRec, NDCG@10 [95% CI]: " + "; ".join(cis))
        if res.get("carried_over"):
            print("\n† carried over from an earlier invocation with the same stage-1 model (its time ratio is to "
                  "that invocation's control)")
        notes: dict[str, list[str]] = {}
        for arm, e in res["arms"].items():
            if e.get("time_ratio_note"):
                notes.setdefault(e["time_ratio_note"], []).append(arm)
        for note, arms in notes.items():
            print(f"\n‡ {', '.join(arms)}: {note}")
        sweep = {a[len("sweep."):]: e for a, e in res["arms"].items() if a.startswith("sweep.")}
        if sweep:
            print(f"\n{name}, validation NDCG@10 (seed 0): " +
                  ", ".join(f"{k} {e['valid']['ndcg@10'][0]:.4f}" for k, e in sweep.items()))


def print_table(name: str, res: dict[str, Any]) -> None:
    t = Table(title=f"ILRec · {name} (mean over seeds; Δ vs sft_continued, paired bootstrap 95% CI)")
    for c in ("arm", "split", "seeds", *METRICS, "Δ ndcg@10 [95% CI]", "negatives/pos", "train s", "peak MB"):
        t.add_column(c, justify="left" if c in ("arm", "split") else "right")
    if res["sft"]:
        t.add_row("sft (stage 1)", "test", "1", *(f"{res['sft']['test'][m]:.4f}" for m in METRICS), "—", "—",
                  f"{res['sft']['train']['time_s']:.0f}", "—")
    for arm, e in res["arms"].items():
        pv = e.get("paired_vs_control", {}).get("ndcg@10")
        delta = f"{pv['diff']:+.4f} [{pv['ci95'][0]:+.4f}, {pv['ci95'][1]:+.4f}]" if pv else "—"
        neg = [d["mean_negatives"]["mean"] for d in e["diagnostics"] if "mean_negatives" in d]
        t.add_row(arm, e["split"], str(len(e["runs"])), *(f"{e['over_seeds'][m]['mean']:.4f}" for m in METRICS),
                  delta, f"{np.mean(neg):.2f}" if neg else "—", f"{np.median(e['train_time_s']):.0f}",
                  f"{np.median(mem):.0f}" if (mem := [m for m in e.get("peak_memory_mb", []) if m]) else "—")
    console.print(t)


if __name__ == "__main__":
    main()
