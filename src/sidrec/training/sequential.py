"""Training of the classic sequential recommenders (SASRec, GRU4Rec) and the popularity baseline.

Examples are the train split's (history, target) pairs: every prefix of a user's training
sequence is an example (RecBole-style augmentation). The loss is full-softmax cross-entropy of
the target given the history (the last position of the example).

Prefix packing (`packing="prefix"`, the default) computes exactly the same set of losses much
faster. Both models are causal and number positions from the oldest item, so the hidden state
at position t of a sequence depends only on items 0…t: one forward pass over a user's longest
example (history + target) yields the last-position output of every shorter example that is a
prefix of it. The examples ([a], b), ([a, b], c), ([a, b, c], d) become one sequence a b c with
targets b c d. Examples whose history was cut to `max_history` (the window no longer starts at
the user's first item) are not prefixes of anything longer and stay sequences of their own with
a loss on the last position only, and duplicates are kept. The multiset of (history, target)
losses per epoch is identical to the unpacked one (checked in tests/test_training.py); only the
grouping into mini-batches differs (a batch holds whole users), and `batch_size` counts sequences.
On Beauty (131k train examples, 22k users) this makes an epoch several times cheaper; on
MovieLens (long users, mostly cut histories) the saving is smaller.

Run folder (see `sidrec.utils.runs.RunDir`):

    RUN/
      config.yaml            the resolved SequentialTrainConfig (with the dataset path)
      history.jsonl          one line per epoch: train loss, valid metrics, times, lr
      checkpoint/state.pt    last epoch: model, optimizer, scheduler, epoch, best metric, patience
                             counter, RNG states (python, numpy, torch, shuffling); atomic
      model/                 the best model (saved-model format, sidrec.models.base)
      metrics.json           valid and test metrics of the best model (HR/NDCG@K, MRR, 95% CIs)
      ranks_valid.parquet    user_id, target, rank per example, in split order
      ranks_test.parquet
"""

from __future__ import annotations

import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch
from pydantic import BaseModel, ConfigDict, Field

from sidrec.errors import ConfigError
from sidrec.evaluation.metrics import DEFAULT_KS, metrics_from_ranks
from sidrec.evaluation.ranking import evaluate_split, rank_targets, save_ranks
from sidrec.models.base import NeuralSequentialRecommender, load_model
from sidrec.models.gru4rec import GRU4Rec
from sidrec.models.popularity import PopularityModel
from sidrec.models.sasrec import SASRec
from sidrec.utils.device import resolve_device
from sidrec.utils.io import atomic_path, read_config, write_text
from sidrec.utils.optim import decay_groups
from sidrec.utils.progress import progress as progress_bar
from sidrec.utils.checkpoint import load_state, rng_state, save_state, set_rng_state
from sidrec.utils.seed import seed_everything

if TYPE_CHECKING:
    from sidrec.data.dataset import Dataset
    from sidrec.utils.runs import RunDir

EARLY_STOP_METRIC = "ndcg@10"
EpochCallback = Callable[[int, dict[str, Any]], None]
# config fields that may differ when a run is resumed (they do not change the epochs already run;
# `epochs` only with the constant schedule, as the others stretch over all epochs)
_RESUME_FREE_FIELDS = {"device", "eval_batch_size", "dataset", "patience", "epochs"}


class SequentialTrainConfig(BaseModel):
    """Hyper-parameters of a SASRec / GRU4Rec training run.

    The defaults were tuned for SASRec on Amazon Beauty (leave-one-out, history ≤ 20, full ranking
    over 12,101 items; selection on valid NDCG@10): hidden 64, 2 pre-LN layers, 1 head, FFN 64,
    dropout 0.3, AdamW lr 1e-3 with weight decay 0.1, 256 sequences per step, patience 10. That
    run reached test HR@10 .0791 / NDCG@10 .0377 (published SASRec: .0605 / .0318) at its best
    epoch 16. Variants within noise on test: 2 heads + FFN 256 (.0749 / .0373), weight decay 0.5
    (valid .049, test .0724 / .0366); worse: dropout 0.5, post-LN blocks.
    """

    model_config = ConfigDict(extra="forbid")

    model: Literal["sasrec", "gru4rec"] = "sasrec"
    hidden_size: int = Field(64, ge=1)
    num_layers: int | None = Field(None, ge=1, description="None: 2 for SASRec, 1 for GRU4Rec")
    num_heads: int = Field(1, ge=1, description="attention heads (SASRec)")
    ffn_size: int | None = Field(None, ge=1, description="SASRec feed-forward width; None = hidden_size")
    norm_first: bool = Field(True, description="SASRec: pre-LN blocks (True) or the original post-LN (False)")
    dropout: float = Field(0.3, ge=0.0, lt=1.0)
    max_history: int | None = Field(None, ge=1, description="None: the dataset's max_history")
    epochs: int = Field(200, ge=1)
    batch_size: int = Field(256, ge=1, description="sequences per step (see packing)")
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.1, ge=0, description="AdamW decoupled decay on matrices and embeddings")
    scheduler: Literal["constant", "cosine", "linear"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    max_grad_norm: float | None = Field(None, gt=0)
    packing: Literal["prefix", "none"] = "prefix"
    bucket_by_length: bool = Field(True, description="batch sequences of similar length (less padding)")
    loss_matmul: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="precision of the output-layer matmuls in the training loss; auto = bfloat16 where "
        "the hardware runs it natively (CUDA with bf16, CPUs with oneDNN bf16 support), else float32",
    )
    patience: int = Field(10, ge=1, description="evaluations without a better valid NDCG@10 before stopping")
    eval_every: int = Field(1, ge=1, description="evaluate on valid every N epochs (and after the last)")
    eval_batch_size: int | None = Field(None, ge=1, description="None: 256 on CPU, 4096 on GPU")
    seed: int = 42
    device: str = "auto"
    dataset: str | None = Field(None, description="the dataset folder (filled in by the trainer)")

    def resolved_num_layers(self) -> int:
        return self.num_layers if self.num_layers is not None else (2 if self.model == "sasrec" else 1)


def build_model(config: SequentialTrainConfig, n_items: int, max_len: int) -> NeuralSequentialRecommender:
    """The untrained model a config describes."""
    if config.model == "sasrec":
        return SASRec(
            n_items,
            hidden_size=config.hidden_size,
            num_layers=config.resolved_num_layers(),
            num_heads=config.num_heads,
            dropout=config.dropout,
            max_len=max_len,
            ffn_size=config.ffn_size,
            norm_first=config.norm_first,
        )
    if config.model == "gru4rec":
        return GRU4Rec(
            n_items,
            hidden_size=config.hidden_size,
            num_layers=config.resolved_num_layers(),
            dropout=config.dropout,
            max_len=max_len,
        )
    raise ConfigError(f"unknown model '{config.model}'")


# ---------------------------------------------------------------------- training sequences
@dataclass
class TrainSequences:
    """Training sequences, left-aligned: inputs item index + 1 (0 = padding after the end);
    targets the 0-based item index to predict after each position, -1 where no loss is taken."""

    inputs: np.ndarray  # int64 [S, H]
    targets: np.ndarray  # int64 [S, H]
    lengths: np.ndarray  # int64 [S]
    n_examples: int  # train examples covered (= number of targets >= 0)
    n_skipped: int  # examples with an empty history (nothing to condition on)

    def __len__(self) -> int:
        return len(self.lengths)


def build_train_sequences(
    split: pd.DataFrame, item_index: dict[str, int], max_history: int, packing: bool = True
) -> TrainSequences:
    """Turn (history, target) examples into training sequences; see the module doc on packing."""
    per_user: dict[Any, list[tuple[tuple[int, ...], int]]] = {}
    skipped = 0
    for user, hist, target in zip(split["user_id"], split["history"], split["target"], strict=True):
        h = tuple(item_index[i] for i in hist)[-max_history:]
        if not h:
            skipped += 1
            continue
        per_user.setdefault(user, []).append((h, item_index[target]))
    seqs: list[tuple[int, ...]] = []
    tgts: list[list[int]] = []
    for examples in per_user.values():
        if not packing:
            for h, t in examples:
                seqs.append(h)
                tgts.append([-1] * (len(h) - 1) + [t])
            continue
        counts = Counter(examples)
        histories = {h for h, _ in examples}
        for h, t in examples:
            full = (*h, t)
            if full in histories:  # a longer example of this user extends this one: it covers it
                continue
            row = []
            for j in range(len(h)):  # position j predicts full[j + 1] from full[: j + 1]
                key = (full[: j + 1], full[j + 1])
                if counts[key] > 0:
                    counts[key] -= 1
                    row.append(full[j + 1])
                else:
                    row.append(-1)
            if any(x >= 0 for x in row):
                seqs.append(h)
                tgts.append(row)
        for (h, t), c in counts.items():  # duplicates left over: each its own sequence
            for _ in range(c):
                seqs.append(h)
                tgts.append([-1] * (len(h) - 1) + [t])
    n = len(seqs)
    width = max([len(s) for s in seqs] + [1])
    inputs = np.zeros((n, width), dtype=np.int64)
    targets = np.full((n, width), -1, dtype=np.int64)
    lengths = np.zeros(n, dtype=np.int64)
    for r, (s, t) in enumerate(zip(seqs, tgts, strict=True)):
        inputs[r, : len(s)] = np.asarray(s, dtype=np.int64) + 1
        targets[r, : len(t)] = t
        lengths[r] = len(s)
    return TrainSequences(inputs, targets, lengths, int((targets >= 0).sum()), skipped)


# ---------------------------------------------------------------------- the trainer
class TrainingInterrupted(Exception):
    """Raised by a callback to stop training after a checkpoint (used by tests to simulate a crash)."""


class SequentialTrainer:
    """Train SASRec / GRU4Rec with full-softmax CE, early stopping on valid NDCG@10 (full ranking).

    `callbacks` are called as `cb(epoch, record)` after each epoch's checkpoint is written
    (record = the history line); raising from one stops training there, resumable later.
    """

    def __init__(
        self,
        config: SequentialTrainConfig,
        dataset: Dataset,
        run_dir: RunDir,
        *,
        show_progress: bool = True,
        callbacks: list[EpochCallback] | None = None,
    ) -> None:
        self.config = config
        self.dataset = dataset
        self.run_dir = run_dir
        self.show_progress = show_progress
        self.callbacks = list(callbacks or [])
        self.max_history = int(config.max_history or dataset.info.protocol_params.get("max_history") or 20)
        self.device = resolve_device(config.device)
        self.path = Path(run_dir.path)

    # ------------------------------------------------------------------ config
    def resolved_config(self) -> dict[str, Any]:
        cfg = self.config.model_dump()
        cfg["max_history"] = self.max_history
        cfg["num_layers"] = self.config.resolved_num_layers()
        if cfg["dataset"] is None and self.dataset.path is not None:
            cfg["dataset"] = str(Path(self.dataset.path).resolve())
        return cfg

    def fingerprint(self) -> dict[str, Any]:
        from sidrec.utils.fingerprint import dataset_digest, fingerprint

        path = self.dataset.path
        digest = dataset_digest(path) if path is not None and (Path(path) / "dataset.json").is_file() else None
        return fingerprint(self.resolved_config(), {"dataset": digest})

    def _check_resume_config(self) -> None:
        saved_path = self.path / "config.yaml"
        saved = read_config(saved_path) if saved_path.exists() else None
        free = _RESUME_FREE_FIELDS if self.config.scheduler == "constant" else _RESUME_FREE_FIELDS - {"epochs"}
        self.run_dir.check_fingerprint(self.fingerprint(), set(free), saved_config=saved)

    # ------------------------------------------------------------------ main loop
    def train(self, resume: bool = False) -> dict[str, Any]:
        """Train (or continue a checkpointed run with `resume=True`); returns metrics.json's content."""
        cfg = self.config
        ckpt_path = self.path / "checkpoint" / "state.pt"
        resuming = resume and ckpt_path.exists()
        if resuming:
            self._check_resume_config()
            self.run_dir.log(f"resuming from {ckpt_path}")
        else:
            if resume:
                self.run_dir.log("--resume given but no checkpoint found: starting from scratch")
            self.run_dir.write_config(self.resolved_config())
            self.run_dir.write_fingerprint(self.fingerprint())
        seed_everything(cfg.seed)
        dev = self.device
        data = build_train_sequences(
            self.dataset.split("train"), self.dataset.item_index, self.max_history, packing=cfg.packing == "prefix"
        )
        if len(data) == 0:
            raise ConfigError("the train split has no usable example (all histories are empty)")
        self.run_dir.log(
            f"train: {data.n_examples} examples in {len(data)} sequences (packing={cfg.packing}), "
            f"{data.n_skipped} skipped (empty history); device {dev}; threads {torch.get_num_threads()}; "
            f"loss matmuls {loss_matmul_dtype(cfg.loss_matmul, dev)}"
        )
        inputs = torch.from_numpy(data.inputs).to(dev)
        targets = torch.from_numpy(data.targets).to(dev)
        lengths = torch.from_numpy(data.lengths)
        n_targets = torch.from_numpy((data.targets >= 0).sum(axis=1))
        valid = self.dataset.encode("valid", self.max_history)

        model = build_model(cfg, self.dataset.n_items, self.max_history).to(dev)
        model.set_item_ids(self.dataset.item_ids)
        optimizer = torch.optim.AdamW(decay_groups(model.parameters(), cfg.weight_decay), lr=cfg.lr)
        steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, _lr_lambda(cfg.scheduler, cfg.warmup_steps, steps_per_epoch * cfg.epochs)
        )
        shuffle = torch.Generator().manual_seed(cfg.seed)
        state: dict[str, Any] = {
            "epoch": 0,
            "best_metric": -math.inf,
            "best_epoch": 0,
            "bad_evals": 0,
            "stopped": False,
            "history": [],
            "train_time_s": 0.0,
        }
        if resuming:
            ckpt = load_state(ckpt_path, map_location=dev)
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(ckpt["scheduler"])
            shuffle.set_state(ckpt["rng"]["shuffle"].cpu())
            set_rng_state(ckpt["rng"])
            state = ckpt["state"]
            self._write_history(state["history"])

        epoch = state["epoch"]
        while not state["stopped"] and epoch < cfg.epochs:
            epoch += 1
            t0 = time.perf_counter()
            loss = self._train_epoch(model, optimizer, scheduler, inputs, targets, lengths, n_targets, shuffle, epoch)
            train_s = time.perf_counter() - t0
            record: dict[str, Any] = {"epoch": epoch, "train_loss": loss, "lr": scheduler.get_last_lr()[0],
                                      "train_time_s": round(train_s, 3)}
            if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
                t1 = time.perf_counter()
                ranks = rank_targets(model, valid, batch_size=cfg.eval_batch_size, device=dev,
                                     progress=self.show_progress, description=f"valid {epoch}")
                m = metrics_from_ranks(ranks, ci=False)
                record["valid"] = {k: v for k, v in m.items() if k != "n"}
                record["eval_time_s"] = round(time.perf_counter() - t1, 3)
                score = float(m[EARLY_STOP_METRIC])
                if score > state["best_metric"]:
                    state.update(best_metric=score, best_epoch=epoch, bad_evals=0)
                    model.save_pretrained(self.path / "model", self.dataset.item_ids)
                    record["best"] = True
                else:
                    state["bad_evals"] += 1
                    if state["bad_evals"] >= cfg.patience:
                        state["stopped"] = True
            state["epoch"] = epoch
            state["train_time_s"] += time.perf_counter() - t0
            state["history"].append(record)
            self._save_checkpoint(ckpt_path, model, optimizer, scheduler, shuffle, state)
            self._write_history(state["history"])
            valid_txt = f" valid ndcg@10 {record['valid']['ndcg@10']:.4f}" if "valid" in record else ""
            self.run_dir.log(f"epoch {epoch}: loss {loss:.4f}{valid_txt} ({time.perf_counter() - t0:.1f}s)")
            for cb in self.callbacks:
                cb(epoch, record)
        if state["stopped"]:
            self.run_dir.log(f"early stop after epoch {epoch}: no better valid {EARLY_STOP_METRIC} in "
                             f"{cfg.patience} evaluations (best {state['best_metric']:.4f} at epoch {state['best_epoch']})")
        return self._finish(state)

    def _train_epoch(
        self,
        model: NeuralSequentialRecommender,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        lengths: torch.Tensor,
        n_targets: torch.Tensor,
        shuffle: torch.Generator,
        epoch: int,
    ) -> float:
        """One pass over the shuffled sequences; returns the mean train loss per target."""
        cfg = self.config
        model.train()
        matmul_dtype = loss_matmul_dtype(cfg.loss_matmul, inputs.device)
        batches = _epoch_batches(lengths, cfg.batch_size, shuffle, cfg.bucket_by_length)
        total = torch.zeros((), dtype=torch.float64, device=inputs.device)
        count = 0
        n_steps = len(batches)
        with progress_bar(disable=not self.show_progress) as bar:
            task = bar.add_task(f"epoch {epoch}/{cfg.epochs}", total=n_steps)
            for step in range(n_steps):
                idx = batches[step]
                width = int(lengths[idx].max())
                n_batch = int(n_targets[idx].sum())
                idx = idx.to(inputs.device)
                seqs = inputs[idx, :width]
                tgt = targets[idx, :width]
                loss = model.loss(seqs, tgt, matmul_dtype=matmul_dtype)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if cfg.max_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                total += loss.detach().double() * n_batch
                count += n_batch
                if step % 20 == 19 or step == n_steps - 1:
                    bar.update(task, completed=step + 1,
                               description=f"epoch {epoch}/{cfg.epochs} loss {float(total) / max(count, 1):.4f}")
        return float(total) / max(count, 1)

    # ------------------------------------------------------------------ files
    def _save_checkpoint(
        self,
        path: Path,
        model: NeuralSequentialRecommender,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        shuffle: torch.Generator,
        state: dict[str, Any],
    ) -> None:
        payload = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "state": state,
            "rng": {**rng_state(), "shuffle": shuffle.get_state()},
            "config": self.resolved_config(),
        }
        with atomic_path(path) as tmp:
            save_state(tmp, payload)

    def _write_history(self, history: list[dict[str, Any]]) -> None:
        write_text(self.path / "history.jsonl", "".join(json.dumps(r) + "\n" for r in history))

    def _finish(self, state: dict[str, Any]) -> dict[str, Any]:
        """Evaluate the best model on valid and test; write ranks and metrics.json."""
        cfg = self.config
        model, _ = load_model(self.path / "model", device=self.device)
        out: dict[str, Any] = {
            "model": cfg.model,
            "dataset": self.dataset.name,
            "dataset_path": self.resolved_config()["dataset"],
            "n_items": self.dataset.n_items,
            "best_epoch": state["best_epoch"],
            "epochs_run": state["epoch"],
            "stopped_early": state["stopped"],
            "early_stop_metric": f"valid {EARLY_STOP_METRIC}",
            "train_time_s": round(state["train_time_s"], 2),
            "device": str(self.device),
        }
        for split in ("valid", "test"):
            metrics, ranks = evaluate_split(model, self.dataset, split, max_history=self.max_history,
                                            batch_size=cfg.eval_batch_size, device=self.device,
                                            progress=self.show_progress, ks=DEFAULT_KS)
            save_ranks(self.path / f"ranks_{split}.parquet", self.dataset.split(split), ranks)
            out[split] = metrics
        self.run_dir.write_metrics(out)
        self.run_dir.log(f"test ndcg@10 {out['test']['ndcg@10']:.4f} hr@10 {out['test']['hr@10']:.4f}")
        return out


def loss_matmul_dtype(choice: str, device: torch.device) -> torch.dtype:
    """Resolve `loss_matmul`: bfloat16 on hardware with native bf16 matmuls when "auto".

    On Beauty the bf16 and fp32 runs give the same valid NDCG@10 to 3 digits at every epoch
    while the loss step is ~1.5× faster on an AVX512-BF16 CPU; softmax and accumulation stay fp32.
    """
    if choice == "float32":
        return torch.float32
    if choice == "bfloat16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    try:
        native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - builds without oneDNN
        native = False
    return torch.bfloat16 if native else torch.float32


def _epoch_batches(
    lengths: torch.Tensor, batch_size: int, generator: torch.Generator, bucket: bool
) -> list[torch.Tensor]:
    """Shuffled mini-batches of sequence indices.

    With `bucket`, the shuffled order is cut into pools of 50 batches, each pool is sorted by
    length and cut into batches, and the batch order is shuffled: batches hold sequences of
    similar length, so little compute goes to padding (about half on Beauty).
    """
    order = torch.randperm(len(lengths), generator=generator)
    if not bucket:
        return list(order.split(batch_size))
    pools = order.split(batch_size * 50)
    order = torch.cat([p[torch.argsort(lengths[p], stable=True)] for p in pools])
    batches = list(order.split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


def _lr_lambda(kind: str, warmup: int, total: int) -> Callable[[int], float]:
    def f(step: int) -> float:
        if warmup and step < warmup:
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1 + math.cos(math.pi * progress)) if kind == "cosine" else 1.0 - progress

    return f


# ---------------------------------------------------------------------- popularity
def train_popularity(dataset: Dataset, run_dir: RunDir, *, device: str = "auto",
                     eval_batch_size: int | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Fit the popularity baseline and write the same run folder as the trainer (no checkpoint)."""
    path = Path(run_dir.path)
    run_dir.write_config({"model": "popularity", "counts": "train split (each train-period interaction once)",
                          "dataset": str(Path(dataset.path).resolve()) if dataset.path else None,
                          "device": device})
    t0 = time.perf_counter()
    model = PopularityModel.fit(dataset)
    model.save_pretrained(path / "model", dataset.item_ids)
    dev = resolve_device(device)
    out: dict[str, Any] = {"model": "popularity", "dataset": dataset.name,
                           "dataset_path": str(dataset.path) if dataset.path else None,
                           "n_items": dataset.n_items, "device": str(dev)}
    for split in ("valid", "test"):
        metrics, ranks = evaluate_split(model, dataset, split, batch_size=eval_batch_size, device=dev,
                                        progress=show_progress)
        save_ranks(path / f"ranks_{split}.parquet", dataset.split(split), ranks)
        out[split] = metrics
    out["train_time_s"] = round(time.perf_counter() - t0, 2)
    run_dir.write_metrics(out)
    run_dir.log(f"popularity: test ndcg@10 {out['test']['ndcg@10']:.4f} hr@10 {out['test']['hr@10']:.4f}")
    return out
