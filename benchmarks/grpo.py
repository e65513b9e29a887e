"""GRPO quality on industrial-partial: stage 2 from the SFT recipe's run against continued SFT, per reward.

1. Stage 1 through `sidrec run` (cached): the packaged `industrial-partial-cpu` pipeline (or `-gpu`) —
   its data import, given SIDs, SASRec (the cf reward's model), the tfidf token semantics and its `sft`
   entry (the recipe: item streams, level softmax, tfidf SA-Init, SID-row lr) — plus a `tsrec` entry (the
   recipe with TS-Rec's SA-Init and TS-Align on the tfidf semantics).
2. Stage 2 from the `sft` run, the same number of optimizer steps of the same number of train windows
   (prompts) per step, with the stage-2 schedule, per seed:
   - `sft_continued`: plain CE on the seqrec windows (the fair control; as item streams, the recipe's form);
   - `grpo`: the rule, ranking and prefix rewards together (weights 1, 1, 1);
   - `grpo_<reward>`: each reward alone (rule, ranking, prefix, cf, semantic);
   - `tsrec_grpo`: `grpo`'s settings from the `tsrec` run instead;
   - `sft_continued_sidlr` / `grpo_sidlr`: the control and `grpo` with the SID rows' lr at 10× the
     stage-2 lr (the recipe's ratio) instead of stage 1's, `grpo_sidlr` paired with its own control;
   - `grpo_g32`: `grpo` with G = 32 rollouts (the group-size follow-up); `grpo_cf_rule`: cf + 0.7 rule.
3. HR/NDCG@10 on the whole test and validation splits (beam 20); paired bootstrap over examples against
   the control on the same seeds and against the stage-1 model (per-example metrics averaged over seeds first).
4. Cost and diagnostics from the runs' logs: seconds per optimizer step against the control's (training
   time without evaluation), the share of zero-variance groups, reward and KL curves.

    python benchmarks/grpo.py                       # cpu scale, 3 seeds (hours on 2 cores)
    python benchmarks/grpo.py --arms sft_continued grpo --seeds 0
    python benchmarks/grpo.py --scale gpu           # the whole model and test split (a GPU)
    python benchmarks/grpo.py --collect             # only read finished runs
    python benchmarks/grpo.py --quick               # a tiny synthetic setup end to end (minutes on 2 cores);
                                                    # writes runs/bench-grpo/quick/result.json only

Runs live in runs/bench-grpo/<scale>/… (stage 1 under seed<S>/, its stage 2 under from-seed<S>/<arm>/seed<N>;
with `--stage1 DIR`, stage 2 under from-<DIR's name>/), each a normal run folder. Each finished stage-2 run's metrics, log and per-example ranks (and stage 1's SFT
metrics and config) are archived under benchmarks/results/grpo-runs/ in the same layout (committed,
tens of KB per run), so the results are re-collected from every run ever measured even where the run
folders are gone (another session, another machine): a live run folder wins over its archived copy. Writes benchmarks/results/grpo.json (not with --quick) with summary keys
`industrial.<arm>.ndcg@10`, `.hr@10`, `.ndcg@10_vs_control` (+ `_lo` / `_hi`: the 95% CI) for `grpo`
and each `grpo_<reward>`, `industrial.tsrec_grpo.ndcg@10` / `.hr@10`, `industrial.sft.ndcg@10` (stage 1),
`industrial.tsrec.ndcg@10` (TS-Rec's stage 1), `industrial.tsrec_grpo.ndcg@10_vs_grpo` (+ `_lo` / `_hi`: the
whole TS-Rec pipeline against SFT → GRPO on the same seeds),
`industrial.<arm>.ndcg@10_vs_stage1` (+ `_lo` / `_hi`: each arm against the stage-1 model it starts from),
`grpo.step_time_ratio_vs_sft` (median seconds per step of `grpo` over the control's) and
`grpo.zero_variance_group_share` (`grpo`'s mean over its logged steps), and `seeds`.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _common import (
    RESULTS,
    ROOT,
    SHARED_DATA,
    archive_run,
    console,
    finished_runs,
    is_finished,
    mean_ci,
    paired_ci,
    rel,
    seed_mean_per_example,
    train_run,
    write_result,
)
from rich.table import Table

from sidrec.utils.io import read_json, write_json

THREE = {"rule": 1.0, "ranking": 1.0, "prefix": 1.0}
ARMS: dict[str, dict[str, Any]] = {
    "sft_continued": {"method": "sft", "data": {"tasks": {"seqrec": 1.0}}},
    "grpo": {"method": "grpo", "grpo": {"rewards": THREE}},
    "grpo_rule": {"method": "grpo", "grpo": {"rewards": {"rule": 1.0}}},
    "grpo_ranking": {"method": "grpo", "grpo": {"rewards": {"ranking": 1.0}}},
    "grpo_prefix": {"method": "grpo", "grpo": {"rewards": {"prefix": 1.0}}},
    "grpo_cf": {"method": "grpo", "grpo": {"rewards": {"cf": 1.0}}},
    "grpo_semantic": {"method": "grpo", "grpo": {"rewards": {"semantic": 1.0}}},
    "tsrec_grpo": {"method": "grpo", "grpo": {"rewards": THREE}, "from": "tsrec"},
    # the learning-rate follow-up: stage 2 keeps stage 1's SID-row lr (5e-3, 100x the stage-2 lr);
    # these two arms keep the recipe's ratio instead (SID rows at 10x the stage-2 lr), each paired
    # with its own control
    "sft_continued_sidlr": {"method": "sft", "data": {"tasks": {"seqrec": 1.0}}, "training": {"sid_lr": 5e-4}},
    "grpo_sidlr": {"method": "grpo", "grpo": {"rewards": THREE}, "training": {"sid_lr": 5e-4},
                   "control": "sft_continued_sidlr"},
    # the group-size follow-up: `grpo` with twice the rollouts (each wrong rollout's advantage is smaller
    # against the one that hits the target, and the target is among them more often)
    "grpo_g32": {"method": "grpo", "grpo": {"rewards": THREE, "num_generations": 32}},
    # cf with the target reward: rule at 0.7 so that both spread about equally within a group (the measured
    # mean within-group std: cf 0.16, rule 0.22)
    "grpo_cf_rule": {"method": "grpo", "grpo": {"rewards": {"cf": 1.0, "rule": 0.7}}},
}
CONTROLS = {"sft_continued", "sft_continued_sidlr"}
SCALES: dict[str, dict[str, Any]] = {
    # 2 cores: the packaged CPU pipeline (SmolLM2-135M cut to 4 layers), 150 stage-2 steps of 8 windows × 16 rollouts
    "cpu": {"pipeline": "industrial-partial-cpu",
            "stage2": {"epochs": 1, "max_steps": 150, "batch_size": 8, "warmup_ratio": 0.05, "eval_steps": 50,
                       "eval_samples": 150, "patience": 100, "log_steps": 5, "device": "cpu"},
            "grpo": {"num_generations": 16},
            "eval": {"num_beams": 20, "batch_size": 32, "splits": ["valid", "test"]}},
    "gpu": {"pipeline": "industrial-partial-gpu",
            "stage2": {"epochs": 1, "batch_size": 16, "warmup_ratio": 0.05, "eval_steps": 200, "eval_samples": 500,
                       "patience": 100, "log_steps": 5},
            "grpo": {"num_generations": 16},
            "eval": {"num_beams": 20, "batch_size": 64, "splits": ["valid", "test"]}},
    # a tiny random LM on the synthetic dataset: every code path, in about a minute, no real data
    "quick": {"pipeline": None,
              "stage2": {"epochs": 1, "max_steps": 6, "batch_size": 4, "lr": 1e-3, "warmup_ratio": 0.0, "eval_steps": 6,
                         "eval_samples": 20, "patience": 100, "log_steps": 1, "device": "cpu"},
              "grpo": {"num_generations": 8},
              "eval": {"num_beams": 10, "batch_size": 32, "max_examples": 60, "splits": ["valid", "test"]}},
}


# ----------------------------------------------------------------------------- stage 1
def stage1_pipeline(scale: str, out: Path, seed: int) -> dict[str, Any]:
    """The pipeline config of stage 1 (into `out`, every model with `seed`): the packaged one's data,
    SIDs, SASRec and `sft` entry, + tfidf semantics and a `tsrec` entry (or, for --quick, the same
    shape on a tiny synthetic setup). Its `sft` and `sasrec` runs are quality.py's for that seed (the
    same configs and seeds; CPU training is deterministic), so `--stage1-seed 2` re-creates the stage 1
    of the measured table."""
    from sidrec.pipelines.run import load_pipeline_config

    if scale == "quick":
        from sidrec.llm.tiny import make_tiny_lm

        lm = out.parent / "lm"
        if not (lm / "config.json").is_file():
            make_tiny_lm(lm, hidden=32, layers=2)
        sft = {"model": {"name_or_path": str(lm)}, "data": {"tasks": {"seqrec": 1.0}, "compact": True},
               "training": {"epochs": 3, "batch_size": 16, "lr": 3e-3, "eval_samples": 20, "device": "cpu"},
               "eval": SCALES["quick"]["eval"]}
        cfg: dict[str, Any] = {
            "name": "grpo-quick", "out": str(out),
            "data": {"synthetic": {"n_items": 60, "n_users": 120, "seed": 0, "max_history": 6}},
            "sids": {"method": "rqkmeans", "levels": 2, "codebook": 8},
            "baselines": {"sasrec": {"epochs": 3, "device": "cpu"}}, "train": {"sft": sft}}
    else:
        cfg = load_pipeline_config(SCALES[scale]["pipeline"]).model_dump(mode="json", by_alias=True)
        cfg["out"] = str(out)
        cfg["data"]["import"]["path"] = str(SHARED_DATA / "amazon18-industrial")
        cfg["baselines"] = {"sasrec": cfg["baselines"].get("sasrec", {})}
        cfg["train"] = {"sft": cfg["train"]["sft"]}
    cfg["semantics"] = {"teacher": "tfidf"}
    cfg["baselines"]["sasrec"]["seed"] = seed
    cfg["train"]["sft"].setdefault("training", {})["seed"] = seed
    tsrec = copy.deepcopy(cfg["train"]["sft"])
    tsrec["method"] = "tsrec"
    tsrec["model"] = {k: v for k, v in tsrec["model"].items() if k != "sid_init"}  # SA-Init sets the SID rows
    tsrec["tsrec"] = {"sa_init": {"enabled": True}, "align": {"enabled": True}}
    cfg["train"]["tsrec"] = tsrec
    return cfg


def run_stage1(scale: str, out: Path, seed: int) -> None:
    """Train (or reuse: every stage is cached) stage 1 into `out`."""
    from sidrec.pipelines.run import PipelineConfig, run_pipeline

    run_pipeline(PipelineConfig.model_validate(stage1_pipeline(scale, out, seed)))


# ----------------------------------------------------------------------------- stage 2
def stage2_config(stage1: Path, arm: str, seed: int, scale: dict[str, Any]) -> dict[str, Any]:
    from sidrec.pipelines.llm import continue_from

    spec = copy.deepcopy(ARMS[arm])
    cfg = continue_from(stage1 / spec.get("from", "sft"), spec["method"])
    if "data" in spec:
        cfg["data"] = {**cfg["data"], **spec["data"]}  # the control's tasks replace the recipe's mixture
    cfg["training"] = {**cfg["training"], **scale["stage2"], **spec.get("training", {}), "seed": seed}
    cfg["eval"] = dict(scale["eval"])
    if spec["method"] == "grpo":
        cfg["grpo"] = {**cfg.get("grpo", {}), **scale["grpo"], **spec["grpo"]}
        if "cf" in spec["grpo"]["rewards"]:
            cfg["grpo"]["cf_run"] = str(stage1 / "sasrec")
    return cfg


def train_arm(run: Path, cfg: dict[str, Any], quick: bool, threads: int) -> None:
    """--quick: in this process (no start-up per run); otherwise a resumable child process."""
    if (run / "metrics.json").is_file():
        return
    if quick:
        from sidrec.pipelines.llm import train_sft

        t0 = time.perf_counter()
        train_sft(cfg, run, overwrite=True)
        console.print(f"{rel(run)}: ok in {time.perf_counter() - t0:.0f} s")
    else:
        train_run(run, cfg, threads=threads)


def history(run: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in (run / "history.jsonl").read_text().splitlines() if x.strip()]


def seconds_per_step(run: Path) -> float:
    """Training time without evaluation, per optimizer step."""
    train = read_json(run / "metrics.json")["train"]
    return (train["time_s"] - train.get("eval_time_s", 0.0)) / max(1, train["steps"])


def diagnostics(run: Path) -> dict[str, Any]:
    rows = [r for r in history(run) if "valid" not in r]
    train = read_json(run / "metrics.json")["train"]
    out: dict[str, Any] = {"seconds_per_step": seconds_per_step(run), "train_seconds": train["time_s"],
                           "steps": train["steps"]}
    for key in ("loss", "reward_mean", "reward_std", "zero_variance_share", "groups_in_loss", "kl", "clip_fraction",
                "target_in_rollouts", "target_rank", "rollout_s", "update_s"):
        vals = [r[key] for r in rows if key in r]
        if vals:
            out[key] = {"first": vals[0], "last": vals[-1], "mean": float(np.mean(vals))}
    return out


ARCHIVE = RESULTS / "grpo-runs"


# ----------------------------------------------------------------------------- collection
def collect(stage1: dict[str, Path], runs: dict[str, list[Path]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(summary, raw) from the finished runs (folders holding metrics.json and the ranks); `stage1` maps
    each finished stage-1 entry (`sft`, and `tsrec` where it has run) to its run folder."""
    summary: dict[str, Any] = {}
    raw: dict[str, Any] = {"sft": read_json(stage1["sft"] / "metrics.json")["test"], "arms": {}}
    if "tsrec" in stage1:
        raw["tsrec"] = read_json(stage1["tsrec"] / "metrics.json")["test"]
    for entry_name, test in (("sft", raw["sft"]), ("tsrec", raw.get("tsrec"))):
        if test is not None:
            summary[f"industrial.{entry_name}.ndcg@10"] = test["ndcg@10"]
            summary[f"industrial.{entry_name}.hr@10"] = test["hr@10"]
    stage1_read = {name: seed_mean_per_example([r]) for name, r in stage1.items()}  # (row keys, per-example)
    stage1_keys = stage1_read["sft"][0]
    stage1_per_example = {name: per for name, (_, per) in stage1_read.items()}
    per_example: dict[str, Any] = {}
    per_example_valid: dict[str, Any] = {}
    for arm, done in runs.items():
        if not done:
            continue
        metrics = [read_json(r / "metrics.json")["test"] for r in done]
        entry: dict[str, Any] = {"runs": [rel(r) for r in done],
                                 "test": {m: [x[m] for x in metrics] for m in ("hr@10", "ndcg@10")},
                                 "diagnostics": [diagnostics(r) for r in done]}
        entry["over_seeds"] = {m: mean_ci(v) for m, v in entry["test"].items()}
        keys, per_example[arm] = seed_mean_per_example(done)
        if not keys.equals(stage1_keys):
            raise SystemExit(f"{arm}: its test rows are not stage 1's, in the same order ({rel(done[0])}); "
                             "every arm must be evaluated on the whole test split")
        if all((r / "ranks_valid.parquet").is_file() for r in done):
            _, per_example_valid[arm] = seed_mean_per_example(done, split="valid")
            entry["valid"] = {m: [read_json(r / "metrics.json")["valid"][m] for r in done] for m in ("hr@10", "ndcg@10")}
        raw["arms"][arm] = entry
        for m in ("ndcg@10", "hr@10"):
            summary[f"industrial.{arm}.{m}"] = entry["over_seeds"][m]["mean"]
    for arm, entry in raw["arms"].items():  # what stage 2 adds to (or takes from) the model it starts from
        start = ARMS[arm].get("from", "sft")
        if start not in stage1_per_example:
            continue
        entry["stage1"] = start
        entry["paired_vs_stage1"] = paired_ci(stage1_per_example[start], per_example[arm])
        pv = entry["paired_vs_stage1"]["ndcg@10"]
        summary[f"industrial.{arm}.ndcg@10_vs_stage1"] = pv["diff"]
        summary[f"industrial.{arm}.ndcg@10_vs_stage1_lo"] = pv["ci95"][0]
        summary[f"industrial.{arm}.ndcg@10_vs_stage1_hi"] = pv["ci95"][1]
    for arm, entry in raw["arms"].items():
        control_arm = ARMS[arm].get("control", "sft_continued")
        if control_arm not in per_example or arm in CONTROLS or arm == "tsrec_grpo" or arm not in per_example:
            continue
        # against the control on the same seeds, so that an arm with fewer finished seeds is still paired
        seeds = {r.name for r in runs[arm]}
        same = [r for r in runs[control_arm] if r.name in seeds]
        if len(same) < len(seeds):
            continue
        control = seed_mean_per_example(same)[1]
        entry["control"] = control_arm
        entry["control_seeds"] = len(same)
        entry["paired_vs_control"] = paired_ci(control, per_example[arm])
        pv = entry["paired_vs_control"]["ndcg@10"]
        summary[f"industrial.{arm}.ndcg@10_vs_control"] = pv["diff"]
        summary[f"industrial.{arm}.ndcg@10_vs_control_lo"] = pv["ci95"][0]
        summary[f"industrial.{arm}.ndcg@10_vs_control_hi"] = pv["ci95"][1]
        valid_control = (seed_mean_per_example(same, split="valid")[1] if control_arm in per_example_valid
                         else None)
        if valid_control is not None and arm in per_example_valid:
            entry["valid_paired_vs_control"] = paired_ci(valid_control, per_example_valid[arm])
            pv = entry["valid_paired_vs_control"]["ndcg@10"]
            summary[f"industrial.{arm}.valid_ndcg@10_vs_control"] = pv["diff"]
            summary[f"industrial.{arm}.valid_ndcg@10_vs_control_lo"] = pv["ci95"][0]
            summary[f"industrial.{arm}.valid_ndcg@10_vs_control_hi"] = pv["ci95"][1]
    if "tsrec_grpo" in per_example and "grpo" in per_example:  # the whole TS-Rec pipeline against SFT → GRPO
        seeds = {r.name for r in runs["tsrec_grpo"]}
        same = [r for r in runs["grpo"] if r.name in seeds]
        if len(same) == len(seeds):
            entry = raw["arms"]["tsrec_grpo"]
            entry["paired_vs_grpo"] = paired_ci(seed_mean_per_example(same)[1], per_example["tsrec_grpo"])
            pv = entry["paired_vs_grpo"]["ndcg@10"]
            summary["industrial.tsrec_grpo.ndcg@10_vs_grpo"] = pv["diff"]
            summary["industrial.tsrec_grpo.ndcg@10_vs_grpo_lo"] = pv["ci95"][0]
            summary["industrial.tsrec_grpo.ndcg@10_vs_grpo_hi"] = pv["ci95"][1]
    grpo, ctrl = raw["arms"].get("grpo"), raw["arms"].get("sft_continued")
    if grpo and ctrl:
        summary["grpo.step_time_ratio_vs_sft"] = float(
            np.median([d["seconds_per_step"] for d in grpo["diagnostics"]]) /
            np.median([d["seconds_per_step"] for d in ctrl["diagnostics"]]))
    if grpo:
        shares = [d["zero_variance_share"]["mean"] for d in grpo["diagnostics"] if "zero_variance_share" in d]
        if shares:
            summary["grpo.zero_variance_group_share"] = float(np.mean(shares))
    seeds = [len(e["runs"]) for a, e in raw["arms"].items() if a.startswith("grpo")]
    summary["seeds"] = min(seeds) if seeds else 0
    test_rows = [len(v["ndcg@10"]) for v in per_example.values()]
    if test_rows:
        summary["test_rows"] = min(test_rows)
    return summary, raw


def _mean_of(diagnostics: list[dict[str, Any]], key: str) -> str:
    vals = [x[key]["mean"] for x in diagnostics if key in x]
    return f"{np.mean(vals):.2f}" if vals else "—"


def print_table(raw: dict[str, Any]) -> None:
    t = Table(title="GRPO · industrial test (mean over seeds; Δ NDCG@10, paired bootstrap 95% CI)")
    for c in ("arm", "seeds", "HR@10", "NDCG@10", "Δ vs its control", "Δ vs stage 1", "s/step", "zero-var groups",
              "target in G"):
        t.add_column(c, justify="left" if c == "arm" else "right")
    for name in ("sft", "tsrec"):
        if name in raw:
            t.add_row(f"{name} (stage 1)", "1", f"{raw[name]['hr@10']:.4f}", f"{raw[name]['ndcg@10']:.4f}", "—", "—",
                      "—", "—", "—")

    def ci(pv: dict[str, Any] | None) -> str:
        return f"{pv['diff']:+.4f} [{pv['ci95'][0]:+.4f}, {pv['ci95'][1]:+.4f}]" if pv else "—"

    for arm, e in raw["arms"].items():
        d = e["diagnostics"]
        t.add_row(arm, str(len(e["runs"])), f"{e['over_seeds']['hr@10']['mean']:.4f}",
                  f"{e['over_seeds']['ndcg@10']['mean']:.4f}", ci(e.get("paired_vs_control", {}).get("ndcg@10")),
                  ci(e.get("paired_vs_stage1", {}).get("ndcg@10")),
                  f"{np.median([x['seconds_per_step'] for x in d]):.2f}", _mean_of(d, "zero_variance_share"),
                  _mean_of(d, "target_in_rollouts"))
    console.print(t)


def print_markdown(raw: dict[str, Any]) -> None:
    """The docs' table from a results file: per arm, test HR / NDCG@10 (mean over seeds), the paired
    Δ NDCG@10 against its control on test and validation and against stage 1, and the diagnostics."""
    def ci(pv: dict[str, Any] | None) -> str:
        return f"{pv['diff']:+.4f} [{pv['ci95'][0]:+.4f}, {pv['ci95'][1]:+.4f}]" if pv else ""

    print("| arm | seeds | test HR@10 | test NDCG@10 | Δ vs control, test | Δ vs control, validation | Δ vs stage 1, test "
          "| s / step | train s | KL | zero-variance groups | target in G |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, label in (("sft", "stage 1 (SFT)"), ("tsrec", "stage 1 (TS-Rec SFT)")):
        if name in raw:
            print(f"| {label} | 1 | {raw[name]['hr@10']:.4f} | {raw[name]['ndcg@10']:.4f} | | | | | | | | |")
    for arm, e in raw["arms"].items():
        d = e["diagnostics"]

        def mean(key: str, fmt: str = ".2f") -> str:
            vals = [x[key]["mean"] for x in d if key in x]
            return format(float(np.mean(vals)), fmt) if vals else ""

        control = f" (vs `{e['control']}`)" if e.get("control", "sft_continued") != "sft_continued" else ""
        times = [x["train_seconds"] for x in d if "train_seconds" in x]  # training without the final evaluation
        train_s = f"{np.median(times):.0f}" if times else ""
        vs_control = e.get("paired_vs_control", {}).get("ndcg@10")
        if "paired_vs_grpo" in e:  # the TS-Rec pipeline: its control is SFT → GRPO, its stage 1 TS-Rec's
            control, vs_control = " (vs `grpo`; stage 1: TS-Rec)", e["paired_vs_grpo"]["ndcg@10"]
        print(f"| `{arm}`{control} | {len(e['runs'])} | {e['over_seeds']['hr@10']['mean']:.4f} | "
              f"{e['over_seeds']['ndcg@10']['mean']:.4f} | {ci(vs_control)} | "
              f"{ci(e.get('valid_paired_vs_control', {}).get('ndcg@10'))} | "
              f"{ci(e.get('paired_vs_stage1', {}).get('ndcg@10'))} | "
              f"{np.median([x['seconds_per_step'] for x in d]):.2f} | {train_s} | {mean('kl')} | "
              f"{mean('zero_variance_share')} | "
              f"{mean('target_in_rollouts')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--quick", action="store_true", help="a tiny synthetic setup end to end (a smoke run)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--arms", nargs="+", choices=list(ARMS), default=list(ARMS))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--collect", action="store_true", help="only read finished runs")
    ap.add_argument("--markdown", action="store_true", help="print the results file's table as markdown (no runs needed)")
    ap.add_argument("--stage1-seed", type=int, default=2,
                    help="the seed of the stage 1 this script trains (into WORK/<scale>/seed<N>; default 2, the "
                         "measured table's)")
    ap.add_argument("--stage1", type=Path, default=None,
                    help="a finished pipeline output folder (with sft/ and sasrec/, e.g. a quality.py seed) to use as "
                         "stage 1 instead of training one; arms from a missing entry (tsrec/) are skipped, said so")
    ap.add_argument("--work", type=Path, default=ROOT / "runs" / "bench-grpo")
    ap.add_argument("--result", type=Path, default=None,
                    help="where to write the results (default: benchmarks/results/grpo.json; --quick: WORK/quick/result.json)")
    args = ap.parse_args()
    if args.markdown:
        path = args.result or RESULTS / "grpo.json"
        if not path.is_file():
            raise SystemExit(f"--markdown: no results file {path}; run the benchmark (or --collect) first")
        print_markdown(read_json(path)["raw"])
        return
    scale_name = "quick" if args.quick else args.scale
    scale = SCALES[scale_name]
    work = args.work / scale_name
    t0 = time.perf_counter()
    if args.stage1 is not None:
        stage1 = args.stage1.resolve()
        missing = [e for e in ("sft", "sasrec") if not (stage1 / e / "metrics.json").is_file()]
        if missing and not args.collect:
            raise SystemExit(f"--stage1 {args.stage1}: no finished {' or '.join(missing)} run in it; "
                             "give a pipeline output folder whose sft and sasrec stages have finished")
    else:
        stage1 = work / f"seed{args.stage1_seed}"
        if not args.collect:
            run_stage1(scale_name, stage1, args.stage1_seed)
    work = work / f"from-{stage1.name}"  # stage 2 of this stage 1 (its archive: grpo-runs/<scale>/from-<name>)
    archive = None if args.quick else ARCHIVE / work.relative_to(args.work)
    arms = [a for a in args.arms if (stage1 / ARMS[a].get("from", "sft") / "metrics.json").is_file()
            or not args.stage1 or args.collect]
    for a in sorted(set(args.arms) - set(arms)):
        console.print(f"[yellow]skipping {a}: {rel(stage1)} has no finished {ARMS[a]['from']} run[/yellow]")
    runs = {arm: [work / arm / f"seed{s}" for s in args.seeds] for arm in arms}
    if not args.collect:
        for arm, rs in runs.items():
            for seed, run in zip(args.seeds, rs, strict=True):
                train_arm(run, stage2_config(stage1, arm, seed, scale), args.quick, args.threads)
    stage1_runs: dict[str, Path] = {}
    for name in ("sft", "tsrec"):  # stage 1's SFT and TS-Rec runs are archived beside the arms
        run = stage1 / name
        if archive is not None and is_finished(run):
            archive_run(run, archive / f"stage1-{name}")
        elif archive is not None and is_finished(archive / f"stage1-{name}"):
            run = archive / f"stage1-{name}"
        if (run / "metrics.json").is_file():
            stage1_runs[name] = run
    done = {arm: finished_runs(rs, work, archive) for arm, rs in runs.items()}
    if "sft" not in stage1_runs:
        raise SystemExit(f"no finished stage-1 SFT run in {rel(stage1)} (nor archived under "
                         f"{rel(archive) if archive else '—'}): train stage 1 first (run without --collect)")
    stage1_sft = stage1_runs["sft"]
    summary, raw = collect(stage1_runs, {arm: d for arm, d in done.items() if d})
    print_table(raw)
    config = {"scale": scale_name, "scale_settings": scale, "arms": ARMS, "seeds": args.seeds,
              "stage1": (yaml.safe_load((stage1_sft / "config.yaml").read_text())
                         if args.stage1 is not None or args.collect
                         else stage1_pipeline(scale_name, stage1, args.stage1_seed)),
              "stage1_folder": rel(stage1)}
    raw["wall_seconds"] = round(time.perf_counter() - t0, 1)
    if args.quick or args.result is not None:
        from sidrec.utils.runs import environment_info

        path = args.result or args.work / scale_name / "result.json"
        write_json(path, {"summary": summary, "environment": environment_info(), "config": config, "raw": raw})
    else:
        path = write_result("grpo", summary=summary, config=config, raw=raw)
    console.print(json.dumps(summary, indent=1))
    console.print(f"wrote {rel(path)}")


if __name__ == "__main__":
    main()
