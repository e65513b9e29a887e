"""`GRPOTrainer`: group-relative policy optimisation of a finished run's model on its train windows.

    sidrec train grpo --from runs/sft --out runs/grpo
    sidrec train grpo --from runs/sft --cf-run runs/sasrec --set grpo.rewards='{rule: 1, cf: 0.5}' --out runs/grpo-cf

Our own compact trainer on the SFT loop rather than TRL's GRPOTrainer (TRL is not a dependency): the
loop keeps accelerate, exact `--resume`, validation NDCG@10 by constrained beam search, early stopping
and the final evaluation; rollouts come from our trie-constrained decoding (TRL samples free text and
would need a logits processor per step, and re-tokenizes text completions).

One training step per rollout batch, `grpo.num_iterations` (μ) optimizer updates on it (default 1): per
micro-batch of B prompts (the evaluation prompts of B train
windows, any `data.format`; and, when `grpo.tasks` weights them, item2sid prompts: an item's title → its SID),

1. rollouts, in eval mode without gradient: G distinct valid items per prompt (`.rollouts`), with the
   policy's log-probability of each (its rank in the group);
2. rewards (`.rewards`, weighted by `grpo.rewards`) → group-normalised advantages (`.losses`);
3. the policy's per-token log-probabilities of the B·G rollouts with gradient, the prompts encoded
   once and their KV cache serving every rollout (`rollout_token_logps`); the old policy's are the
   first update's detached values (so the first update has ratio 1 in value, the clip acting through
   its gradient as in TRL; updates 2 … μ reuse the batch's rollouts, rewards, old and reference
   log-probabilities, and their ratio is π / π_old); the reference's the same forward without gradient
   (β > 0 only);
4. the clipped surrogate + β·k3 KL, aggregated by `grpo.loss` (`.losses.policy_loss`).

With μ > 1 the learning-rate schedule counts optimizer updates (μ per training step), the reference
syncs every `ref_sync_steps` updates, and a checkpoint is only ever written between rollout batches.

Randomness: sampled rollouts draw from a generator seeded by (training.seed, optimizer step, the
batch's train rows), so a resumed run replays the same rollouts with no extra checkpoint state.
Logged every `log_steps`: reward mean and within-group std (and each reward's mean), the share of
zero-variance groups and of groups in the loss, KL, clip fraction, the share of prompts whose target
is among the rollouts and its mean policy rank there, and the step's rollout / update seconds.
"""

from __future__ import annotations

import copy
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sidrec.data.dataset import Dataset
from sidrec.errors import ConfigError
from sidrec.llm.recommender import GenerativeRecommender
from sidrec.llm.sft_data import SFTCorpus, TokenizedExample, left_pad
from sidrec.llm.trainer import SFTTrainer
from sidrec.methods.grpo.losses import group_advantages, policy_loss
from sidrec.methods.grpo.rewards import (
    cf_reward,
    policy_ranks,
    prefix_reward,
    ranking_reward,
    rule_reward,
    semantic_reward,
)
from sidrec.methods.grpo.rollouts import generate_rollouts, rollout_token_logps
from sidrec.sids.table import SIDTable
from sidrec.utils.checkpoint import load_state, save_state
from sidrec.utils.io import atomic_path


@dataclass
class _RolloutBatch:
    """One micro-batch's rollouts and everything the μ updates on it share."""

    items: torch.Tensor  # [B, G]
    scores: torch.Tensor  # [B, G] the policy's log-probabilities at rollout time
    reward: torch.Tensor  # [B, G]
    parts: dict[str, torch.Tensor]
    adv: torch.Tensor  # [B, G]
    zero: torch.Tensor  # [B] zero-variance groups
    responses: torch.Tensor  # [B·G, L]
    old_logps: torch.Tensor  # [B·G, L] π_old: the first update's, detached
    ref_logps: torch.Tensor | None


@dataclass
class RolloutExample(TokenizedExample):
    target: int = -1  # the target's item index (SID-table order)
    row: int = -1  # the train row (seeds sampled rollouts)


def load_cf_model(cf_run: Path, device: torch.device | str) -> tuple[Any, list[str]]:
    """The SASRec (or any sidrec sequential model) of `grpo.cf_run`, frozen, in eval mode."""
    from sidrec.models.base import load_frozen_run_model

    return load_frozen_run_model(cf_run, device, setting="grpo.cf_run")


class GRPOTrainer(SFTTrainer):
    """GRPO (`method: grpo`) from a finished run's model (see the module docstring)."""

    # ------------------------------------------------------------------ data
    def build_corpus(self, dataset: Dataset, table: SIDTable) -> SFTCorpus:
        """seqrec: the evaluation prompt of every train window with a history; item2sid (when weighted): the
        item2sid prompt of every titled item (as SFT builds it). Each example's target is an item."""
        s = self.config.grpo
        train = dataset.split("train")
        builder = self.prompt_builder(table)
        index = {iid: i for i, iid in enumerate(table.item_ids)}
        examples: list[TokenizedExample] = []
        task_index: dict[str, np.ndarray] = {}
        skipped: dict[str, int] = {}
        if s.tasks.get("seqrec", 0) > 0:
            rows = [r for r in range(len(train)) if len(train["history"].iat[r]) > 0]
            hists = [[str(i) for i in train["history"].iat[r]][-self.config.data.max_history:] for r in rows]
            for r, h, p in zip(rows, hists, builder.seqrec_prompts(hists), strict=True):
                target = str(train["target"].iat[r])
                examples.append(RolloutExample(task="seqrec", input_ids=list(p) + builder.sid_ids[target],
                                               n_prompt=len(p), history=tuple(h), target=index[target], row=r))
            task_index["seqrec"] = np.arange(len(examples), dtype=np.int64)
            skipped["seqrec: train rows without history"] = len(train) - len(rows)
        if s.tasks.get("item2sid", 0) > 0:
            start = len(examples)
            titled, prompts = self.item2sid_prompts(builder, dataset, table)
            for k, (item, p) in enumerate(zip(titled, prompts, strict=True)):
                examples.append(RolloutExample(task="item2sid", input_ids=list(p) + builder.sid_ids[item],
                                               n_prompt=len(p), history=(), target=index[item], row=len(train) + k))
            task_index["item2sid"] = np.arange(start, len(examples), dtype=np.int64)
            skipped["item2sid: items without a title"] = len(table.item_ids) - len(titled)
        return SFTCorpus(examples=examples, task_index=task_index, skipped=skipped)

    @staticmethod
    def item2sid_prompts(builder: Any, dataset: Dataset, table: SIDTable, max_title_tokens: int = 48
                         ) -> tuple[list[str], list[list[int]]]:
        """(titled item ids, their item2sid prompts), the templates and title cut of SFT's item2sid task."""
        items = dataset.items
        raw = items["title"].fillna("").astype(str) if "title" in items else [""] * len(items)
        titles = dict(zip(items["item_id"].astype(str), raw, strict=True))
        titled = [i for i in table.item_ids if titles.get(i, "").strip()]
        tok = builder.tokenizer
        short = [tok.convert_tokens_to_string(tok.tokenize(titles[i])[:max_title_tokens]).strip() for i in titled]
        prompts = builder.encode([builder.wrap(builder.template("item2sid", k).format(title=t))
                                  for k, t in enumerate(short)])
        return titled, prompts

    def task_weights(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.config.grpo.tasks.items() if v > 0}

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        super().setup()
        s = self.config.grpo
        n_items = len(self.table.item_ids)
        if s.num_generations > n_items:
            raise ConfigError(f"grpo.num_generations={s.num_generations} exceeds the catalogue ({n_items} items): "
                              "a group holds distinct items")
        model = self.accelerator.unwrap_model(self.model)
        self.rollout_rec = GenerativeRecommender(model, self.tokenizer, self.table, self.sid_tokens, self.config.data)
        self.rollout_rec.token_trie = self.rollout_rec.token_trie.to(self.device)
        self.levels = self.sid_levels if self.config.data.sid_softmax == "level" else None
        self.item_tokens = torch.tensor([self.rollout_rec.sid_ids[i] for i in self.table.item_ids], dtype=torch.long,
                                        device=self.device)  # [n_items, L]
        self.codes = torch.as_tensor(np.asarray(self.table.codes), dtype=torch.long, device=self.device)
        self.use_adapter_off = hasattr(model, "disable_adapter")
        self.reference = None
        if s.beta > 0 and not self.use_adapter_off:
            self.reference = copy.deepcopy(model).eval()
            self.reference.requires_grad_(False)
        self.cf = None
        if s.weight("cf") != 0:
            self._setup_cf()
        self.embeddings = self._item_embeddings() if s.weight("semantic") != 0 else None
        self._rollout_s = 0.0
        self._iteration, self._micro, self._cache = 0, 0, []
        self._ref_synced_at = 0  # the optimizer step whose policy the reference holds (0: the starting model)
        ref = "none (β = 0)" if s.beta == 0 else ("adapters disabled" if self.use_adapter_off else "frozen copy")
        self._log(f"GRPO: G={s.num_generations} rollouts ({s.rollout}), rewards {dict(s.rewards)}, loss {s.loss}, "
                  f"ε=({s.epsilon}, {s.epsilon_upper}), β={s.beta} (reference: {ref}), zero-variance groups: "
                  f"{s.zero_variance}, log-probabilities: {self.config.data.sid_softmax} softmax")

    def _setup_cf(self) -> None:
        s = self.config.grpo
        if s.cf_run is None:
            raise ConfigError("grpo.rewards.cf needs grpo.cf_run: a trained SASRec run (--cf-run RUN)")
        self.cf, cf_items = load_cf_model(Path(s.cf_run), self.device)
        index = {iid: j for j, iid in enumerate(cf_items)}
        missing = [i for i in self.table.item_ids if i not in index]
        if missing:
            raise ConfigError(f"grpo.cf_run: {s.cf_run} was trained on other items ({len(missing)} of this dataset's "
                              f"items are unknown to it, e.g. {missing[:3]}); train SASRec on this dataset")
        self.cf_cols = torch.tensor([index[i] for i in self.table.item_ids], dtype=torch.long, device=self.device)
        self.cf_index = {iid: j + 1 for j, iid in enumerate(cf_items)}

    def _item_embeddings(self) -> torch.Tensor:
        """[n_items, d] in SID-table order: grpo.embeddings, else the SID stage's cached embeddings, else
        computed with sidrec.sids.embed's default encoder."""
        from sidrec.sids.embed import embed_items, load_embeddings

        s = self.config.grpo
        cached = self.table.embedding.get("cache_file")
        if s.embeddings is not None:
            vectors, where = load_embeddings(s.embeddings, n_items=self.dataset.n_items), str(s.embeddings)
        elif cached and Path(cached).is_file():
            vectors, where = load_embeddings(cached, n_items=self.dataset.n_items), str(cached)
        else:
            vectors, where = embed_items(self.dataset, show_progress=False), "sidrec.sids.embed (default encoder)"
        self._log(f"GRPO semantic reward: item embeddings {vectors.shape} from {where}")
        rows = [self.dataset.item_index[i] for i in self.table.item_ids]
        return torch.as_tensor(vectors[rows], dtype=torch.float32, device=self.device)

    # ------------------------------------------------------------------ batches
    def collate(self, batch: list[TokenizedExample]) -> dict[str, torch.Tensor]:
        if not batch or not isinstance(batch[0], RolloutExample):  # the validation loss: plain examples
            return super().collate(batch)
        limit = self.t.max_length
        keep = None if limit is None else limit - self.item_tokens.shape[1]
        if keep is not None and keep < 1:
            raise ConfigError(f"training.max_length={limit} leaves no room for a GRPO prompt")
        prompts = [ex.input_ids[:ex.n_prompt] for ex in batch]
        ids, mask = left_pad([p[-keep:] if keep else p for p in prompts], self.tokenizer.pad_token_id)
        out = {"prompt_ids": ids, "prompt_mask": mask,
               "targets": torch.tensor([ex.target for ex in batch], dtype=torch.long),  # type: ignore[attr-defined]
               "rows": torch.tensor([ex.row for ex in batch], dtype=torch.long)}  # type: ignore[attr-defined]
        if self.cf is not None:
            width = max([len(ex.history or ()) for ex in batch] + [1])
            hist = torch.zeros((len(batch), width), dtype=torch.long)
            for row, ex in enumerate(batch):
                h = [self.cf_index[i] for i in ex.history or ()]
                if h:
                    hist[row, width - len(h):] = torch.tensor(h, dtype=torch.long)
            out["cf_history"] = hist
        return out

    def rollout_generator(self, batch: dict[str, torch.Tensor]) -> torch.Generator:
        """A CPU generator seeded by (seed, optimizer step, the batch's train rows): resumed runs replay it."""
        step = int(getattr(self.scheduler, "last_epoch", 0))
        entropy = [int(self.t.seed), step, *(int(r) for r in batch["rows"].tolist())]
        seed = int(np.random.SeedSequence(entropy).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
        return torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def rollouts(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(items [B, G], the policy's log-probabilities [B, G]) in eval mode."""
        s = self.config.grpo
        rec = self.rollout_rec
        was_training = rec.model.training
        rec.model.eval()
        try:
            stepper, trie = rec.decoding()
            items, scores = generate_rollouts(
                stepper, trie, batch["prompt_ids"], batch["prompt_mask"], g=s.num_generations,
                normalize=rec.normalize, rollout=s.rollout, num_beams=s.num_beams, temperature=s.temperature,
                generator=self.rollout_generator(batch) if s.rollout == "sample" else None)
        finally:
            rec.model.train(was_training)
        if bool((items < 0).any()):  # cannot happen with G ≤ catalogue; never score a padding item
            raise RuntimeError("a rollout group has fewer valid items than grpo.num_generations")
        return items, scores

    @torch.no_grad()
    def rewards(self, batch: dict[str, torch.Tensor], items: torch.Tensor, scores: torch.Tensor
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the weighted reward [B, G], each reward with a non-zero weight [B, G])."""
        s = self.config.grpo
        targets = batch["targets"]
        parts: dict[str, torch.Tensor] = {}
        for name, weight in s.rewards.items():
            if weight == 0:
                continue
            if name == "rule":
                parts[name] = rule_reward(items, targets)
            elif name == "ranking":
                parts[name] = ranking_reward(items, targets, scores)
            elif name == "prefix":
                parts[name] = prefix_reward(items, targets, self.codes)
            elif name == "cf":  # a prompt without a history (item2sid): 1/G for every rollout, no advantage
                cf_scores = self.cf.score(batch["cf_history"])[:, self.cf_cols]  # type: ignore[union-attr]
                cf = cf_reward(cf_scores, items, s.cf_temperature)
                none = (batch["cf_history"] == 0).all(dim=1, keepdim=True)
                parts[name] = torch.where(none, torch.full_like(cf, 1.0 / items.shape[1]), cf)
            elif name == "semantic":
                parts[name] = semantic_reward(self.embeddings, items, targets)  # type: ignore[arg-type]
        total = sum(s.weight(k) * v for k, v in parts.items())
        return total, parts  # type: ignore[return-value]

    def updates_per_step(self) -> int:
        return self.config.grpo.num_iterations  # the schedule counts the μ updates of each rollout batch

    def token_logps(self, model: Any, batch: dict[str, torch.Tensor], responses: torch.Tensor) -> torch.Tensor:
        return rollout_token_logps(model, batch["prompt_ids"], batch["prompt_mask"], responses,
                                   self.config.grpo.num_generations, self.levels,
                                   shared_prefix=not self.config.model.gradient_checkpointing)

    @torch.no_grad()
    def reference_logps(self, batch: dict[str, torch.Tensor], responses: torch.Tensor) -> torch.Tensor:
        if self.reference is not None:
            return self.token_logps(self.reference, batch, responses)
        model = self.accelerator.unwrap_model(self.model)
        with model.disable_adapter():
            return self.token_logps(model, batch, responses)

    # ------------------------------------------------------------------ the objective
    def _rollout_batch(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[_RolloutBatch, torch.Tensor]:
        """The first update on a micro-batch: rollouts, rewards, advantages, the reference's log-probabilities,
        and the policy's with gradient (their detached values are π_old for every update on it)."""
        s = self.config.grpo
        t0 = time.perf_counter()
        items, scores = self.rollouts(batch)
        self._rollout_s += time.perf_counter() - t0
        reward, parts = self.rewards(batch, items, scores)
        adv, zero = group_advantages(reward, scale=s.loss != "dr_grpo")
        responses = self.item_tokens[items].flatten(0, 1)  # [B·G, L], prompt-major
        logps = self.token_logps(model, batch, responses)
        ref = self.reference_logps(batch, responses) if s.beta > 0 else None
        return _RolloutBatch(items, scores, reward, parts, adv, zero, responses, logps.detach(), ref), logps

    def compute_loss(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        s = self.config.grpo
        g = s.num_generations
        if self._iteration == 0:
            rb, logps = self._rollout_batch(model, batch)
            if s.num_iterations > 1:
                self._cache.append(rb)
        else:  # a later update on the same rollouts: π_old, rewards and reference are the first update's
            rb = self._cache[self._micro]
            logps = self.token_logps(model, batch, rb.responses)
        self._micro += 1
        items, scores, reward, parts, adv, zero, responses, ref = (
            rb.items, rb.scores, rb.reward, rb.parts, rb.adv, rb.zero, rb.responses, rb.ref_logps)
        keep = (~zero).repeat_interleave(g) if s.zero_variance == "skip" else None
        out = policy_loss(logps, rb.old_logps, adv.flatten(), torch.ones_like(responses, dtype=torch.bool),
                          variant=s.loss, epsilon_low=s.epsilon, epsilon_high=s.epsilon_upper, beta=s.beta,
                          ref_logps=ref, keep=keep, max_length=responses.shape[1])
        with torch.no_grad():
            hit = items == batch["targets"][:, None]
            found = hit.any(dim=1)
            logs = {"reward_mean": float(reward.mean()), "reward_std": float(reward.std(dim=1).mean()),
                    **{f"reward_{k}": float(v.mean()) for k, v in parts.items()},
                    "zero_variance_share": float(zero.float().mean()),
                    "groups_in_loss": float(out.kept / g / len(zero)),
                    "kl": out.kl, "clip_fraction": out.clip_fraction,
                    "target_in_rollouts": float(found.float().mean())}
            if bool(found.any()):
                ranks = policy_ranks(scores)
                logs["target_rank"] = float(ranks[hit].float().mean())  # among the rollouts, where present
        return out.loss, logs

    def _optimizer_step(self, group: list[np.ndarray]) -> dict[str, float]:
        """One training step: rollouts on the group's micro-batches, then μ optimizer updates on them.
        Logged: the rollout-time figures of the first update, and the mean loss, KL and clip fraction of
        all μ (`clip_fraction_last`: the last update's, where π has moved furthest from π_old)."""
        mu = self.config.grpo.num_iterations
        self._rollout_s = 0.0
        self._cache = []
        t0 = time.perf_counter()
        per_update: list[dict[str, float]] = []
        self.sync_reference()  # between rollout batches only: the μ updates share the batch's reference values
        for self._iteration in range(mu):
            self._micro = 0
            per_update.append(super()._optimizer_step(group))
        self._iteration, self._cache = 0, []
        total = time.perf_counter() - t0
        logs = dict(per_update[0])
        if mu > 1:
            for key in ("loss", "kl", "clip_fraction"):
                logs[key] = float(np.mean([u[key] for u in per_update]))
            logs["clip_fraction_last"] = per_update[-1]["clip_fraction"]
        return {**logs, "rollout_s": self._rollout_s, "update_s": total - self._rollout_s}

    # ------------------------------------------------------------------ the reference model and checkpoints
    def sync_reference(self) -> None:
        """Before a rollout batch, once `grpo.ref_sync_steps` optimizer updates have passed since the last sync,
        the frozen reference becomes the current policy."""
        n = self.config.grpo.ref_sync_steps
        done = int(getattr(self.scheduler, "last_epoch", 0))
        if n is None or self.reference is None or done - self._ref_synced_at < n:
            return
        self.reference.load_state_dict(self.accelerator.unwrap_model(self.model).state_dict())
        self._ref_synced_at = done
        self._log(f"GRPO: reference model synced to the policy after step {done}")

    def _reference_file(self, step: int) -> Path:
        return self.run.path / "reference" / f"synced-{step}.pt"

    def save_checkpoint(self, progress_state: dict[str, Any]) -> None:
        """The checkpoint, plus (with `ref_sync_steps`) the synced reference it needs: written first, as its own
        file named by its step, so a checkpoint never points to a reference that is not on disk."""
        synced = self._ref_synced_at if self.config.grpo.ref_sync_steps is not None else 0
        if synced and self.is_main and not self._reference_file(synced).is_file():
            self._reference_file(synced).parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(self._reference_file(synced)) as tmp:
                save_state(tmp, {k: v.detach().cpu() for k, v in self.reference.state_dict().items()})  # type: ignore[union-attr]
        super().save_checkpoint({**progress_state, "reference_synced_at": synced})
        if self.is_main and (self.run.path / "reference").is_dir():
            for stale in (self.run.path / "reference").glob("synced-*.pt"):
                if stale != self._reference_file(synced):
                    stale.unlink()

    def load_checkpoint(self) -> dict[str, Any] | None:
        progress = super().load_checkpoint()
        synced = int((progress or {}).get("reference_synced_at") or 0)
        if synced and self.reference is not None:
            self.reference.load_state_dict(load_state(self._reference_file(synced)))
            self._ref_synced_at = synced
        return progress

    def train(self, resume: bool = False) -> dict[str, Any]:
        if self.is_main and not (resume and (self.run.path / "checkpoint" / "progress.json").is_file()):
            shutil.rmtree(self.run.path / "reference", ignore_errors=True)  # an earlier run's synced references
        return super().train(resume=resume)


__all__ = ["GRPOTrainer", "RolloutExample", "load_cf_model"]
