"""Cost of an ILRec training step against a plain SFT step on identical batches.

SmolLM2-135M at full depth (30 layers) and truncated (8 layers), industrial-partial seqrec batches:
forward + backward of `ILRecTrainer.compute_loss` (CPO + CPD + CRR with a SASRec, 4 intermediate
layers) against the SFT loss (`response_logits_loss`), same model, same batches, interleaved,
median over repetitions. Memory: on CUDA the peak allocated bytes of one step; on CPU (no
allocator statistics) weights + gradients + the distinct tensors autograd saves for backward.

    python benchmarks/ilrec_cost.py                   # both depths, batch 16, cpu or cuda
    python benchmarks/ilrec_cost.py --depths 30 --batch-size 32 --reps 20

Writes benchmarks/results/ilrec_cost.json; summary keys `cost.time_ratio` and `cost.memory_ratio`
(full depth; target ≤ 1.2 and ≤ 1.1) and the same per depth.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.table import Table

from _common import ROOT, SHARED_DATA, write_result

console = Console()
WORK = ROOT / "runs" / "bench-ilrec-cost"


def prepare() -> tuple[Path, Path]:
    """The industrial dataset and a (briefly trained) SASRec for CRR."""
    from sidrec.pipelines.classic import train_classic

    data = WORK / "data"
    if not (data / "dataset.json").is_file():
        from sidrec.data.importers import import_dataset

        import_dataset("minionerec", SHARED_DATA / "amazon18-industrial").save(data)
    sasrec = WORK / "sasrec"
    if not (sasrec / "model" / "model.json").is_file():
        train_classic("sasrec", data, sasrec, overrides={"epochs": 2}, overwrite=True)
    return data, sasrec


def trainer_for(data: Path, sasrec: Path, layers: int, batch_size: int, device: str, method: str) -> Any:
    from sidrec.methods.ilrec.trainer import ILRecTrainer
    from sidrec.methods.ilrec.config import ILRecConfig
    from sidrec.utils.runs import RunDir

    cfg = ILRecConfig(dataset=data, model={"name_or_path": "smollm2-135m", "num_layers": layers, "sid_init": "mean"},
                    data={"tasks": {"seqrec": 1.0}, "compact": True, "max_history": 10},
                    training={"batch_size": batch_size, "device": device, "eval_samples": 8},
                    ilrec={"cf_run": sasrec, "use_crr": True})
    trainer = ILRecTrainer(cfg, RunDir(Path(tempfile.mkdtemp()) / method))
    trainer.setup()
    return trainer


def batches(trainer: Any, n: int, batch_size: int) -> list[dict[str, torch.Tensor]]:
    idx = trainer.corpus.task_index["seqrec"]
    out = []
    for k in range(n):
        examples = [trainer.corpus.examples[i] for i in idx[k * batch_size:(k + 1) * batch_size]]
        out.append({key: v.to(trainer.device) for key, v in trainer.collate(examples).items()})
    return out


def step(trainer: Any, batch: dict[str, torch.Tensor], method: str) -> float:
    model = trainer.model
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    t0 = time.perf_counter()
    if method == "ilrec":
        loss, _ = trainer.compute_loss(model, batch)
    else:
        loss = trainer.lm_loss(model, batch)
    loss.backward()
    sync()
    dt = time.perf_counter() - t0
    model.zero_grad(set_to_none=True)
    return dt


def timing(data: Path, sasrec: Path, layers: int, batch_size: int, reps: int, device: str) -> dict[str, Any]:
    trainer = trainer_for(data, sasrec, layers, batch_size, device, "both")
    bs = batches(trainer, reps, batch_size)
    for b in bs[:2]:  # warm-up
        step(trainer, b, "sft")
        step(trainer, b, "ilrec")
    times: dict[str, list[float]] = {"sft": [], "ilrec": []}
    for k, b in enumerate(bs):  # interleaved, alternating which goes first
        order = ("sft", "ilrec") if k % 2 == 0 else ("ilrec", "sft")
        for method in order:
            times[method].append(step(trainer, b, method))
    stats = trainer.compute_loss(trainer.model, bs[0])[1]
    trainer.model.zero_grad(set_to_none=True)
    mem = {m: memory(trainer, bs, m) for m in ("sft", "ilrec")}
    key = "cuda_peak_allocated_bytes" if trainer.device.type == "cuda" else "step_bytes"
    med = {m: statistics.median(v) for m, v in times.items()}
    ratios = [i / s for i, s in zip(times["ilrec"], times["sft"], strict=True)]
    return {"memory": mem, "memory_ratio": mem["ilrec"][key] / mem["sft"][key],
            "activation_ratio": mem["ilrec"]["saved_activation_bytes"] / mem["sft"]["saved_activation_bytes"],
            "layers": layers, "batch_size": batch_size, "reps": reps, "times_s": times, "median_s": med,
            "time_ratio_of_medians": med["ilrec"] / med["sft"], "median_paired_ratio": statistics.median(ratios),
            "target_positions": stats.get("target_positions"), "frac_with_negative": stats.get("frac_with_negative"),
            "seq_len": int(bs[0]["input_ids"].shape[1])}


def saved_bytes(trainer: Any, batch: dict[str, torch.Tensor], method: str) -> int:
    """Bytes of the distinct tensors autograd keeps for the backward pass of one step (activations)."""
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), t.device.index or 0)] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = trainer.compute_loss(trainer.model, batch)[0] if method == "ilrec" else trainer.lm_loss(trainer.model, batch)
    del loss
    params = {(p.untyped_storage().data_ptr(), 0) for p in trainer.model.parameters()}
    return sum(v for k, v in seen.items() if k not in params)


def memory(trainer: Any, bs: list[dict[str, torch.Tensor]], method: str) -> dict[str, Any]:
    """CUDA: peak allocated bytes over one step. CPU (no allocator statistics): weights + gradients +
    the activations autograd saves for backward, which is what a step's peak holds."""
    weights = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    grads = sum(p.numel() * p.element_size() for p in trainer.model.parameters() if p.requires_grad)
    act = saved_bytes(trainer, bs[0], method)
    out = {"weights_bytes": weights, "grad_bytes": grads, "saved_activation_bytes": act,
           "step_bytes": weights + grads + act, "kind": "weights + grads + saved activations"}
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step(trainer, bs[1], method)
        out["cuda_peak_allocated_bytes"] = torch.cuda.max_memory_allocated()
        out["kind"] = "cuda peak allocated"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--depths", type=int, nargs="+", default=[30, 8])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    data, sasrec = prepare()
    raw = {}
    for layers in args.depths:
        console.print(f"[bold]depth {layers}[/bold]: {args.reps} interleaved steps of each")
        raw[str(layers)] = timing(data, sasrec, layers, args.batch_size, args.reps, device)
    summary: dict[str, Any] = {}
    for layers, r in raw.items():
        summary[f"cost.depth{layers}.time_ratio"] = r["time_ratio_of_medians"]
        summary[f"cost.depth{layers}.memory_ratio"] = r["memory_ratio"]
        summary[f"cost.depth{layers}.activation_ratio"] = r["activation_ratio"]
    main_depth = str(max(args.depths))
    summary["cost.time_ratio"] = raw[main_depth]["time_ratio_of_medians"]
    summary["cost.memory_ratio"] = raw[main_depth]["memory_ratio"]
    summary["device"] = device
    config = {"depths": args.depths, "batch_size": args.batch_size, "reps": args.reps, "device": device,
              "threads": args.threads, "ilrec": "layers [-2,-3,-4,-5], candidates level, CPO+CPD+CRR (SASRec)"}
    path = write_result("ilrec_cost", summary=summary, config=config, raw=raw)
    t = Table(title=f"ILRec step vs SFT step ({device}, batch {args.batch_size}, median of {args.reps})")
    for c in ("layers", "SFT s", "ILRec s", "time ×", "memory ×", "activations ×", "targets"):
        t.add_column(c, justify="right")
    for layers, r in raw.items():
        t.add_row(layers, f"{r['median_s']['sft']:.3f}", f"{r['median_s']['ilrec']:.3f}",
                  f"{r['time_ratio_of_medians']:.3f}", f"{r['memory_ratio']:.3f}", f"{r['activation_ratio']:.3f}",
                  str(int(r["target_positions"] or 0)))
    console.print(t)
    console.print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
