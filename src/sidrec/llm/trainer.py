"""Supervised fine-tuning of a causal LM to generate next-item SIDs: the loop every method shares.

    config = SFTConfig(dataset="data/industrial", model=BackboneConfig(num_layers=4))
    metrics = SFTTrainer(config, RunDir("runs/sft")).train()

The loop (accelerate; one process or `accelerate launch` / torchrun over many):

    load dataset + SIDs → load backbone, add SID tokens → tokenize the task mixture →
    for each epoch: a seeded order of examples, cut into global batches; process r takes every
    P-th example of each batch → forward, loss on response tokens, backward (gradient accumulation,
    DDP gradient sync on the last micro-batch only) → clip, AdamW, schedule →
    every `eval_steps` optimizer steps (and at each epoch end): validation NDCG@10 by constrained
    beam search on a fixed validation sample (or validation loss) → keep the best weights,
    early-stop after `patience` evaluations without improvement → checkpoint.
    Finally the best weights are exported to RUN/model and evaluated on valid and test.

Checkpoints (RUN/checkpoint/, written atomically) hold the trainable weights, the optimizer, the
scheduler, every RNG state and the position in the epoch, so `--resume` continues exactly where
the interrupted run stopped (same batches, same dropout masks, same result).

A method (`sidrec.methods`) subclasses the trainer and overrides the hooks it needs: `compute_loss`
(ILRec, DPO), `build_corpus` / `task_weights` (TS-Rec's align tasks), `load_model` (SA-Init), or
the model family through `load_model` / `build_corpus` / `collate` / `lm_loss` (TIGER). The
settings are `sidrec.llm.config`; the final evaluation is `sidrec.llm.evaluate.evaluate_splits`.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sidrec.data.dataset import Dataset
from sidrec.errors import ConfigError, SidrecError
from sidrec.llm.backbone import count_parameters, load_backbone
from sidrec.llm.config import EvalSettings, SFTConfig, TrainingSettings
from sidrec.llm.evaluate import evaluate_frame, evaluate_splits, fixed_sample
from sidrec.llm.param_groups import adamw, param_groups
from sidrec.llm.recommender import GenerativeRecommender, SIDRecommender, sid_maps
from sidrec.llm.sft_data import (
    IGNORE_INDEX,
    PromptBuilder,
    SFTCollator,
    SFTCorpus,
    TokenizedExample,
    build_corpus,
    length_bucketed_batches,
    response_logits_loss,
)
from sidrec.llm.sid_head import SIDLevels, sid_aware_loss
from sidrec.sids.load import load_sid_table
from sidrec.sids.table import SIDTable
from sidrec.utils.checkpoint import load_state, rng_state, save_state, set_rng_state
from sidrec.utils.device import peak_memory
from sidrec.utils.io import atomic_dir, atomic_path, write_json, write_text
from sidrec.utils.progress import console, progress
from sidrec.utils.runs import RunDir
from sidrec.utils.seed import seed_everything


def trim_history(path: Path, last_step: int) -> None:
    """Keep the history lines a checkpoint at `last_step` accounts for: lines written after it (by a run
    killed later) and a torn last line are dropped, so a resumed run's history is the uninterrupted one's."""
    if not path.is_file():
        return
    kept: list[str] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            break
        if not isinstance(record, dict) or int(record.get("step", 0)) > last_step:
            break
        kept.append(line + "\n")
    write_text(path, "".join(kept))


class SFTTrainer:
    """Fine-tunes a backbone on the SFT task mixture into a run folder (see the module docstring)."""

    def __init__(self, config: SFTConfig, run: RunDir) -> None:
        self.config = config
        self.run = run
        self.t = config.training
        from accelerate import Accelerator

        cpu = self.t.device == "cpu" or (self.t.device == "auto" and not torch.cuda.is_available())
        self.accelerator = Accelerator(cpu=cpu, log_with=self.t.report_to or None,
                                       project_dir=str(run.path / "logs") if self.t.report_to else None)
        self.device = self.accelerator.device
        self.rank = self.accelerator.process_index
        self.world = self.accelerator.num_processes
        self.is_main = self.accelerator.is_main_process

    def _log(self, message: str) -> None:
        if self.is_main:
            self.run.log(message)

    # ------------------------------------------------------------------ hooks for subclasses
    def load_model(self, table: SIDTable) -> tuple[Any, Any, Any]:
        """(model, tokenizer, SID tokens); `model.sid_init: tfidf` writes SA-Init rows from the tfidf teacher."""
        init = self.tfidf_init_rows(table) if self.config.model.sid_init == "tfidf" else None
        return load_backbone(self.config.model, table.vocab(), device=self.device, init_sid_rows=init)

    def tfidf_init_rows(self, table: SIDTable) -> Any:
        """An `init_sid_rows` that SA-Inits the SID tokens whose items have text (keywords of the offline
        tfidf teacher, computed here in seconds); the others keep their sampled rows."""
        from sidrec.llm.sid_init import sa_init
        from sidrec.semantics.tfidf import tfidf_semantics

        semantics = {s.token: s for s in tfidf_semantics(self.dataset, table)}

        def write(model: Any, tokenizer: Any, sid_tokens: Any) -> None:
            if not sid_tokens.new_ids:
                self._log("sid_init tfidf: the model folder has its SID tokens already; its rows are kept")
                return
            report = sa_init(model, tokenizer, sid_tokens, semantics).to_dict()
            self._log(f"sid_init tfidf: SA-Init {report['initialised']}, sampled {report['without_semantics']}")
            if self.is_main:
                console.print(f"[bold]sid_init tfidf[/bold] SA-Init {report['initialised']} "
                              f"(sampled: {report['without_semantics']})")
        return write

    def prompt_builder(self, table: SIDTable | None = None) -> PromptBuilder:
        """The prompts of this run's SID table (or `table`) and data settings."""
        return PromptBuilder(self.tokenizer, *sid_maps(table if table is not None else self.table, self.sid_tokens),
                             self.config.data)

    def build_corpus(self, dataset: Dataset, table: SIDTable) -> SFTCorpus:
        builder = self.prompt_builder(table)
        return build_corpus(builder, dataset.split("train"), dataset.items)

    def collate(self, batch: list[TokenizedExample]) -> dict[str, torch.Tensor]:
        return self._collator(batch)

    def task_weights(self) -> dict[str, float]:
        """Task → examples per epoch as a multiple of the task's size (TS-Rec adds its align tasks)."""
        return dict(self.config.data.tasks)

    def make_recommender(self) -> SIDRecommender:
        model = self.accelerator.unwrap_model(self.model)
        return GenerativeRecommender(model, self.tokenizer, self.table, self.sid_tokens, self.config.data)

    def compute_loss(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """The training objective (SFT: the LM loss; TS-Rec / ILRec add their terms here)."""
        return self.lm_loss(model, batch), {}

    def lm_loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over response tokens (labels -100 elsewhere); also the validation loss."""
        if self.config.data.sid_softmax == "level":
            loss, _ = sid_aware_loss(model, batch, self.sid_levels)
        else:
            loss, _ = response_logits_loss(model, batch)
        return loss

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg = self.config
        if self.t.eval_metric != "loss" and int(self.t.eval_metric.split("@")[1]) > cfg.eval.num_beams:
            raise ConfigError(f"training.eval_metric={self.t.eval_metric} needs eval.num_beams ≥ "
                              f"{self.t.eval_metric.split('@')[1]} (it is {cfg.eval.num_beams})")
        seed_everything(self.t.seed)
        self.dataset = Dataset.load(cfg.dataset)
        self.table = load_sid_table(self.dataset, cfg.sids)
        self.model, self.tokenizer, self.sid_tokens = self.load_model(self.table)
        self._collator = SFTCollator(self.tokenizer.pad_token_id if self.tokenizer is not None else 0,
                                     self.t.max_length)
        self.corpus = self.build_corpus(self.dataset, self.table)
        sizes = self.corpus.sizes()
        targets = self.corpus.targets()
        self._log(f"SFT corpus ({self.config.data.format} format): examples {sizes}, targets {targets}; "
                  f"skipped: {self.corpus.skipped}")
        if self.is_main:
            console.print(f"[bold]corpus[/bold] {sizes} (targets {targets})"
                          + (f"  skipped {self.corpus.skipped}" if self.corpus.skipped else ""))
        if self.config.data.sid_softmax == "level":
            vocab = int(self.model.get_output_embeddings().weight.shape[0])
            self.sid_levels = SIDLevels(self.sid_tokens.per_level, vocab).to(self.device)
        groups, self.sid_rows = param_groups(self.model, self.sid_tokens.all_ids, lr=self.t.lr,
                                             weight_decay=self.t.weight_decay, sid_lr=self.t.sid_lr,
                                             sid_weight_decay=self.t.sid_weight_decay)
        self.optimizer = adamw(groups, self.t.lr)
        self.steps_per_epoch = self._steps_per_epoch()
        total = self.steps_per_epoch * self.t.epochs
        if self.t.max_steps is not None:
            total = min(total, self.t.max_steps)
        self.total_steps = max(1, total)
        from transformers import get_scheduler

        updates = self.total_steps * self.updates_per_step()  # the schedule counts optimizer updates
        self.scheduler = get_scheduler(self.t.scheduler if self.t.scheduler != "constant" else "constant_with_warmup",
                                       self.optimizer, num_warmup_steps=int(self.t.warmup_ratio * updates),
                                       num_training_steps=updates)
        # model and optimizer are prepared together (DDP wraps the model; FSDP / DeepSpeed shard both)
        self.model, self.optimizer = self.accelerator.prepare(self.model, self.optimizer)
        params = count_parameters(self.accelerator.unwrap_model(self.model))
        self._log(f"parameters: {params}")
        self.valid_sample = fixed_sample(self.dataset.split("valid"), self.t.eval_samples, seed=self.t.seed)

    def _global_batch(self) -> int:
        return self.t.batch_size * self.world

    def _steps_per_epoch(self) -> int:
        n = len(self.corpus.epoch_order(self.task_weights(), 0, self.t.seed))
        micro = math.ceil(n / self._global_batch())
        return max(1, math.ceil(micro / self.t.grad_accum))

    # ------------------------------------------------------------------ checkpoints
    def _trainable_state(self) -> dict[str, torch.Tensor]:
        """The trainable weights on CPU (every process must call it: FSDP / DeepSpeed gather here)."""
        model = self.accelerator.unwrap_model(self.model)
        names = {n for n, p in model.named_parameters() if p.requires_grad}
        full = self.accelerator.get_state_dict(self.model)
        return {k: v.detach().cpu().clone() for k, v in full.items() if k in names}

    def _load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        model = self.accelerator.unwrap_model(self.model)
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected:
            raise SidrecError(f"checkpoint has weights this model lacks: {unexpected[:3]}")

    def save_checkpoint(self, progress_state: dict[str, Any]) -> None:
        weights = self._trainable_state()
        if not self.is_main:
            self.accelerator.wait_for_everyone()
            return
        with atomic_dir(self.run.path / "checkpoint") as tmp:
            save_state(tmp / "weights.pt", weights)
            save_state(tmp / "optimizer.pt", {"optimizer": self.optimizer.state_dict(),
                                              "scheduler": self.scheduler.state_dict()})
            save_state(tmp / "rng.pt", rng_state())
            write_json(tmp / "progress.json", progress_state)
        self.accelerator.wait_for_everyone()

    def load_checkpoint(self) -> dict[str, Any] | None:
        ckpt = self.run.path / "checkpoint"
        if not (ckpt / "progress.json").is_file():
            return None
        self._load_trainable_state(load_state(ckpt / "weights.pt"))
        opt = load_state(ckpt / "optimizer.pt")
        self.optimizer.load_state_dict(opt["optimizer"])
        self.scheduler.load_state_dict(opt["scheduler"])
        set_rng_state(load_state(ckpt / "rng.pt"))
        return json.loads((ckpt / "progress.json").read_text())

    def save_best(self) -> None:
        weights = self._trainable_state()
        if self.is_main:
            with atomic_path(self.run.path / "best_weights.pt") as tmp:
                save_state(tmp, weights)
        self.accelerator.wait_for_everyone()

    # ------------------------------------------------------------------ evaluation
    def validation_examples(self) -> list[TokenizedExample]:
        """The fixed validation sample as tokenized seqrec examples (TIGER: its encoder inputs)."""
        frame = self.valid_sample
        builder = self.prompt_builder()
        ids = builder.sid_ids
        prompts = builder.seqrec_prompts([list(h) for h in frame["history"]])
        end = [] if self.config.data.format == "stream" else [builder.eos]  # a stream never ends an item with EOS
        return [TokenizedExample("seqrec", p + ids[str(t)] + end, len(p))
                for p, t in zip(prompts, frame["target"], strict=True)]

    def label_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        """Tokens the batch's loss averages over (causal LM: the labels after the first position)."""
        return int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())

    @torch.no_grad()
    def validation_loss(self) -> float:
        """Mean cross-entropy per label token on the fixed validation sample, over every process."""
        model = self.model
        model.eval()
        if getattr(self, "_valid_examples", None) is None:  # built once per run
            self._valid_examples = self.validation_examples()
        examples = self._valid_examples
        total, count = 0.0, 0
        for start in range(self.rank * self.t.batch_size, len(examples), self.t.batch_size * self.world):
            batch = {k: v.to(self.device) for k, v in self.collate(examples[start:start + self.t.batch_size]).items()}
            loss = self.lm_loss(model, batch)
            n = self.label_tokens(batch)
            total += float(loss) * n
            count += n
        model.train()
        t = torch.tensor([total, count], dtype=torch.float64, device=self.device)
        t = self.accelerator.reduce(t, reduction="sum") if self.world > 1 else t
        return float(t[0] / max(1.0, float(t[1])))

    def evaluate_validation(self) -> dict[str, Any]:
        if self.t.eval_metric == "loss":
            return {"loss": self.validation_loss()}
        rec = self.make_recommender()
        metrics, _, _ = evaluate_frame(rec, self.valid_sample, num_beams=self.config.eval.num_beams,
                                       batch_size=self.config.eval.batch_size, ks=(5, 10, 20), ci=False,
                                       show_progress=False)
        self.model.train()
        return metrics

    def _score(self, metrics: dict[str, Any]) -> float:
        return -metrics["loss"] if self.t.eval_metric == "loss" else float(metrics[self.t.eval_metric])

    # ------------------------------------------------------------------ the loop
    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        """The global batches of `epoch` as the loop trains them (corpus indices, seeded by the run's seed
        and the epoch): the task mixture's order, length-bucketed where `training.bucket_by_length` is set."""
        order = self.corpus.epoch_order(self.task_weights(), epoch, self.t.seed)
        gb = self._global_batch()
        if self.t.bucket_by_length:
            lengths = np.array([len(e.input_ids) for e in self.corpus.examples])
            return length_bucketed_batches(order, lengths, gb, np.random.default_rng([self.t.seed, epoch, 1]))
        return [order[s:s + gb] for s in range(0, len(order), gb)]

    def train(self, resume: bool = False) -> dict[str, Any]:
        self.setup()
        state = {"epoch": 0, "micro_step": 0, "global_step": 0, "best": None, "best_step": None,
                 "bad_evals": 0, "stopped": None, "train_time_s": 0.0, "eval_time_s": 0.0, "targets_seen": 0}
        if resume:
            loaded = self.load_checkpoint()
            if loaded is not None:
                state = loaded
                self._log(f"resumed at epoch {state['epoch']} step {state['global_step']}")
                if self.is_main:
                    console.print(f"[bold]resuming[/bold] at epoch {state['epoch'] + 1}, step {state['global_step']}")
        if self.t.report_to and self.is_main:
            self.accelerator.init_trackers("sidrec", config=json.loads(self.config.model_dump_json()))
        history_path = self.run.path / "history.jsonl"
        if self.is_main:
            trim_history(history_path, int(state["global_step"]))
        t_start = time.time() - float(state.get("train_time_s", 0.0))
        self.model.train()
        done = state["stopped"] is not None
        running_loss, running_n = state.pop("running_loss", 0.0), state.pop("running_n", 0)  # the log window
        with progress(disable=not self.is_main) as bar:
            task = bar.add_task("training", total=self.total_steps, completed=state["global_step"])
            while not done and state["epoch"] < self.t.epochs:
                batches = self.epoch_batches(state["epoch"])
                while state["micro_step"] < len(batches):
                    group = batches[state["micro_step"]: state["micro_step"] + self.t.grad_accum]
                    logs = self._optimizer_step(group)
                    state["targets_seen"] = state.get("targets_seen", 0) + sum(
                        self.corpus.examples[j].n_targets for b in group for j in b)
                    state["micro_step"] += len(group)
                    state["global_step"] += 1
                    running_loss += logs["loss"]
                    running_n += 1
                    bar.update(task, advance=1, description=f"epoch {state['epoch'] + 1} loss {logs['loss']:.3f}")
                    if state["global_step"] % self.t.log_steps == 0:
                        record = {"step": state["global_step"], "epoch": state["epoch"] + state["micro_step"] / len(batches),
                                  "loss": running_loss / running_n, "lr": self.scheduler.get_last_lr()[0],
                                  "time_s": time.time() - t_start, **{k: v for k, v in logs.items() if k != "loss"}}
                        self._append_history(history_path, record)
                        running_loss, running_n = 0.0, 0
                    end_of_epoch = state["micro_step"] >= len(batches)
                    at_max = self.t.max_steps is not None and state["global_step"] >= self.t.max_steps
                    due = (self.t.eval_steps is not None and state["global_step"] % self.t.eval_steps == 0)
                    if end_of_epoch:
                        state["epoch"] += 1
                        state["micro_step"] = 0
                    if due or end_of_epoch or at_max:
                        done = self._evaluate_and_maybe_stop(state, history_path, t_start) or at_max
                        if at_max and state["stopped"] is None:
                            state["stopped"] = "max_steps"
                        state["train_time_s"] = time.time() - t_start
                        self.save_checkpoint({**state, "running_loss": running_loss, "running_n": running_n})
                        self.after_checkpoint(state)
                    if done or end_of_epoch:
                        break
        if state["stopped"] is None:
            state["stopped"] = "epochs"
        state["train_time_s"] = time.time() - t_start
        return self.finish(state)

    def updates_per_step(self) -> int:
        """Optimizer updates per training step (GRPO: `grpo.num_iterations`); 1 here."""
        return 1

    def after_checkpoint(self, state: dict[str, Any]) -> None:
        """Called after every checkpoint (tests interrupt training here)."""

    def _optimizer_step(self, group: list[np.ndarray]) -> dict[str, float]:
        total_loss = 0.0
        extra: dict[str, float] = {}
        n_micro = len(group)
        for i, global_batch in enumerate(group):
            mine = global_batch[self.rank::self.world]
            examples = [self.corpus.examples[j] for j in mine]
            if not examples:  # a short last batch: keep DDP in step with an empty contribution
                examples = [self.corpus.examples[global_batch[0]]]
                scale = 0.0
            else:
                scale = 1.0
            batch = {k: v.to(self.device) for k, v in self.collate(examples).items()}
            sync = i == n_micro - 1
            ctx = self.accelerator.no_sync(self.model) if (not sync and self.world > 1) else nullcontext()
            with ctx:
                loss, logs = self.compute_loss(self.model, batch)
                self.accelerator.backward(loss * (scale / n_micro))
            total_loss += float(loss.detach()) / n_micro
            for k, v in logs.items():
                extra[k] = extra.get(k, 0.0) + float(v) / n_micro
        if self.t.max_grad_norm is not None:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.t.max_grad_norm)
        if self.sid_rows is not None:
            self.sid_rows.before_step(self.optimizer)
        self.optimizer.step()
        if self.sid_rows is not None:
            self.sid_rows.after_step(self.optimizer)
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        if self.world > 1:
            t = torch.tensor([total_loss], device=self.device)
            total_loss = float(self.accelerator.reduce(t, reduction="mean"))
        return {"loss": total_loss, **extra}

    def _append_history(self, path: Path, record: dict[str, Any]) -> None:
        if not self.is_main:
            return
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.t.report_to:
            self.accelerator.log({k: v for k, v in record.items() if isinstance(v, (int, float))}, step=record["step"])

    def _evaluate_and_maybe_stop(self, state: dict[str, Any], history_path: Path, t_start: float) -> bool:
        t0 = time.time()
        metrics = self.evaluate_validation()
        state["eval_time_s"] = state.get("eval_time_s", 0.0) + time.time() - t0
        score = self._score(metrics)
        improved = state["best"] is None or score > state["best"]
        if improved:
            state["best"], state["best_step"], state["bad_evals"] = score, state["global_step"], 0
            self.save_best()
        else:
            state["bad_evals"] += 1
        record = {"step": state["global_step"], "epoch": state["epoch"], "valid": {k: v for k, v in metrics.items() if k != "ci95"},
                  "eval_time_s": time.time() - t0, "time_s": time.time() - t_start, "improved": improved}
        self._append_history(history_path, record)
        shown = metrics.get(self.t.eval_metric, metrics.get("loss"))
        msg = f"step {state['global_step']}: valid {self.t.eval_metric} {shown:.4f}" + (" (best)" if improved else "")
        self._log(msg)
        if self.is_main:
            console.print(msg)
        if state["bad_evals"] >= self.t.patience:
            state["stopped"] = f"early stopping after {self.t.patience} evaluations without improvement"
            return True
        return False

    # ------------------------------------------------------------------ the end
    def finish(self, state: dict[str, Any]) -> dict[str, Any]:
        best = self.run.path / "best_weights.pt"
        if best.is_file():
            self._load_trainable_state(load_state(best))
        rec = self.make_recommender()
        if self.is_main:
            rec.save(self.run.path / "model")
        self.accelerator.wait_for_everyone()
        results: dict[str, Any] = {
            "method": self.config.method,
            "train": {"steps": state["global_step"], "epochs_completed": state["epoch"], "stopped": state["stopped"],
                      "best_step": state["best_step"], "best_valid_score": state["best"],
                      "time_s": round(state["train_time_s"], 1), "world_size": self.world,
                      "eval_time_s": round(state.get("eval_time_s", 0.0), 1),
                      "targets_seen": int(state.get("targets_seen", 0)),
                      "targets_per_second": round(state.get("targets_seen", 0) / max(
                          1e-9, state["train_time_s"] - state.get("eval_time_s", 0.0)), 2),
                      "corpus": self.corpus.sizes(), "targets": self.corpus.targets(),
                      "data_format": self.config.data.format, "skipped": self.corpus.skipped,
                      "parameters": count_parameters(rec.model), **peak_memory(self.device)},
            "param_checksums": self._param_checksums(),
        }
        results.update(evaluate_splits(rec, self.dataset, self.config.eval, self.run))
        if self.is_main:
            self.run.write_metrics(results)
        if self.t.report_to:
            self.accelerator.end_training()
        return results

    def _param_checksums(self) -> list[float]:
        """Sum of |w| of the trainable weights on every process (equal when DDP kept ranks in sync)."""
        model = self.accelerator.unwrap_model(self.model)
        s = torch.tensor([sum(float(p.detach().double().abs().sum()) for p in model.parameters() if p.requires_grad)],
                         dtype=torch.float64, device=self.device)
        if self.world == 1:
            return [float(s)]
        return [float(x) for x in self.accelerator.gather(s).cpu()]


__all__ = ["EvalSettings", "SFTConfig", "SFTTrainer", "TrainingSettings", "evaluate_splits"]
