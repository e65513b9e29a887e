"""Where a CPU SFT step's time goes, and targets trained per second, old recipe against new, side by side.

For each recipe the same model (SmolLM2-135M truncated to `--layers`) runs `--steps` optimizer
steps on the recipe's own batches of the industrial-partial train split (or the demo's synthetic
data with `--dataset demo`), timing each part separately:

    collate → transformer body (forward) → LM head + loss → backward → clip + AdamW step

and one validation evaluation (constrained beam search, 20 beams, on `--eval-rows` rows).
Recipes (both the same batch size; `--recipes` to choose):
- `prompt_full`: the previous default — one prompt → response example per sliding window,
  compact template, full-vocabulary softmax;
- `prompt_level`: the same examples, level softmax on SID positions;
- `stream_full`: stream examples (a target at every item), full-vocabulary softmax;
- `stream_level`: the new recipe, stream examples and the level softmax.

    python benchmarks/sft_profile.py --threads 2                 # industrial-partial, 4 layers
    python benchmarks/sft_profile.py --dataset demo --layers 2

Writes benchmarks/results/sft_profile.json (summary `sft.targets_per_second.<recipe>`,
`sft.targets_per_second_ratio` = stream_level / prompt_full, and each part's share of a step).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rich.table import Table

from _common import ROOT, SHARED_DATA, console, write_result
from sidrec.llm.sid_head import level_loss
from sidrec.llm.trainer import SFTConfig, SFTTrainer
from sidrec.utils.runs import RunDir

RECIPES = {
    "prompt_full": {"format": "prompt", "sid_softmax": "full"},
    "prompt_level": {"format": "prompt", "sid_softmax": "level"},
    "stream_full": {"format": "stream", "sid_softmax": "full"},
    "stream_level": {"format": "stream", "sid_softmax": "level"},
}
PARTS = ("collate", "body", "head_loss", "backward", "optimizer")


def dataset_paths(name: str, work: Path) -> tuple[Path, Path | None, dict[str, Any]]:
    """(dataset folder, sids.json or None, data settings) for the profiled dataset."""
    if name == "industrial":
        from sidrec.data.importers import import_dataset

        out = work / "industrial"
        if not (out / "dataset.json").is_file():
            import_dataset("minionerec", SHARED_DATA / "amazon18-industrial").save(out)
        return out, None, {"tasks": {"seqrec": 1.0, "item2sid": 0.5}, "compact": True, "max_history": 10}
    from sidrec.pipelines.run import load_pipeline_config, run_pipeline

    cfg = load_pipeline_config("demo-cpu")
    demo = ROOT / "runs" / "demo"
    if not (demo / "data" / "dataset.json").is_file() or not (demo / "sids" / "sids.json").is_file():
        cfg = cfg.model_copy(update={"train": {}, "baselines": {}})
        run_pipeline(cfg)
    return demo / "data", demo / "sids" / "sids.json", {"tasks": {"seqrec": 1.0, "item2sid": 0.2}, "compact": True,
                                                        "max_history": 20}


def profile_recipe(name: str, data: Path, sids: Path | None, data_cfg: dict[str, Any], args: argparse.Namespace,
                   work: Path) -> dict[str, Any]:
    cfg = SFTConfig(dataset=data, sids=sids,
                    model={"name_or_path": "smollm2-135m", "num_layers": args.layers, "sid_init": "sampled"},
                    data={**data_cfg, **RECIPES[name]},
                    training={"batch_size": args.batch_size, "lr": 5e-4, "device": "cpu", "eval_samples": args.eval_rows},
                    eval={"num_beams": 20, "batch_size": 32})
    trainer = SFTTrainer(cfg, RunDir(work / f"run-{name}"))
    trainer.setup()
    model, opt = trainer.model, trainer.optimizer
    batches = trainer.epoch_batches(0)
    times: dict[str, list[float]] = {p: [] for p in PARTS}
    targets: list[int] = []
    tokens: list[int] = []
    model.train()
    for step in range(args.warmup + args.steps):
        idx = batches[step % len(batches)]
        examples = [trainer.corpus.examples[j] for j in idx]
        t0 = time.perf_counter()
        batch = trainer.collate(examples)
        t1 = time.perf_counter()
        keep = int(batch["response_width"])
        if RECIPES[name]["sid_softmax"] == "level":
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                        position_ids=batch["position_ids"], logits_to_keep=1, use_cache=False, output_hidden_states=True)
            t2 = time.perf_counter()
            loss = level_loss(model, out.hidden_states[-1][:, -keep:-1], batch["labels"][:, -keep + 1:],
                              trainer.sid_levels)
        else:  # the body alone, then the head on the response window (what response_logits_loss computes)
            out = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                              position_ids=batch["position_ids"], use_cache=False)
            t2 = time.perf_counter()
            logits = model.lm_head(out.last_hidden_state[:, -keep:-1])
            loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]),
                                                     batch["labels"][:, -keep + 1:].reshape(-1), ignore_index=-100)
        t3 = time.perf_counter()
        loss.backward()
        t4 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if trainer.sid_rows is not None:
            trainer.sid_rows.before_step(opt)
        opt.step()
        if trainer.sid_rows is not None:
            trainer.sid_rows.after_step(opt)
        opt.zero_grad(set_to_none=True)
        t5 = time.perf_counter()
        if step >= args.warmup:
            for part, dt in zip(PARTS, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4), strict=True):
                times[part].append(dt)
            targets.append(sum(e.n_targets for e in examples))
            tokens.append(int(batch["attention_mask"].sum()))
    t0 = time.perf_counter()
    valid = trainer.evaluate_validation()
    eval_s = time.perf_counter() - t0
    step_s = [sum(times[p][k] for p in PARTS) for k in range(args.steps)]
    total = sum(step_s)
    return {
        "recipe": name, **RECIPES[name],
        "examples_per_epoch": len(trainer.corpus.epoch_order(trainer.task_weights(), 0, 0)),
        "targets_per_epoch": sum(trainer.corpus.targets().values()),
        "median_step_s": statistics.median(step_s),
        "targets_per_step": statistics.fmean(targets), "tokens_per_step": statistics.fmean(tokens),
        "targets_per_second": sum(targets) / total, "tokens_per_second": sum(tokens) / total,
        "parts_s": {p: statistics.median(times[p]) for p in PARTS},
        "parts_share": {p: sum(times[p]) / total for p in PARTS},
        "eval_s": eval_s, "eval_rows": args.eval_rows, "eval_ndcg@10_untrained": valid.get("ndcg@10"),
        "raw_step_s": step_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=["industrial", "demo"], default="industrial")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--eval-rows", type=int, default=100)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data, sids, data_cfg = dataset_paths(args.dataset, work)
        rows = [profile_recipe(r, data, sids, data_cfg, args, work) for r in args.recipes]
    table = Table(title=f"SFT step profile: {args.dataset}, SmolLM2-135M × {args.layers} layers, batch "
                        f"{args.batch_size}, {args.threads} threads (median s per step; share of step time)")
    for col in ("recipe", "targets/step", "tokens/step", "step s", *PARTS, "targets/s", "eval s"):
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(r["recipe"], f"{r['targets_per_step']:.0f}", f"{r['tokens_per_step']:.0f}", f"{r['median_step_s']:.2f}",
                      *[f"{r['parts_s'][p]:.3f} ({r['parts_share'][p]:.0%})" for p in PARTS],
                      f"{r['targets_per_second']:.1f}", f"{r['eval_s']:.1f}")
    console.print(table)
    by = {r["recipe"]: r for r in rows}
    summary: dict[str, Any] = {f"sft.targets_per_second.{r['recipe']}": round(r["targets_per_second"], 2) for r in rows}
    if "prompt_full" in by and "stream_level" in by:
        summary["sft.targets_per_second_ratio"] = round(by["stream_level"]["targets_per_second"]
                                                       / by["prompt_full"]["targets_per_second"], 2)
        console.print(f"targets per second, new / old recipe: {summary['sft.targets_per_second_ratio']:.2f}×")
    for r in rows:
        for p in PARTS:
            summary[f"sft.{r['recipe']}.share.{p}"] = round(r["parts_share"][p], 3)
    path = write_result(f"sft_profile_{args.dataset}" if args.dataset != "industrial" else "sft_profile",
                        summary=summary, config=vars(args), raw=rows)
    console.print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
