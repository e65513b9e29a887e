"""`DPOTrainer`: DPO or S-DPO on (prompt, target SID, negative SIDs) from an offline negatives file.

    sidrec negatives sample --run runs/sft --strategy beam --per-example 3 --out runs/neg.parquet
    sidrec train dpo  --from runs/sft --negatives runs/neg.parquet --out runs/dpo
    sidrec train sdpo --from runs/sft --negatives runs/neg.parquet --out runs/sdpo

Our own compact trainer rather than TRL's DPOTrainer: it reuses the SFT loop (accelerate, exact
resume, validation NDCG@10 by constrained beam search, early stopping, the same evaluation), and
our examples are already tokenized SID responses, which TRL would re-tokenize from text.

Per batch of B prompts with K negatives each, every prompt goes through the model once and its KV
cache serves its 1 + K responses (`sidrec.llm.shared_prefix`: the same log-probabilities as B·(1+K)
concatenated sequences at about the cost of B when prompts are long); the reference does the same
without gradient. Under gradient checkpointing (which drops caches) the B·(1+K) concatenated
sequences go through one forward pass instead. Sequence log-probabilities sum over the response
tokens (the SID tokens and EOS).
Logged: the loss terms, the mean implicit rewards of chosen and rejected responses, their margin,
and the reward accuracy (the chosen reward above every rejected one).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from sidrec.data.dataset import Dataset
from sidrec.errors import ConfigError, DataError
from sidrec.llm.sft_data import (
    SFTCorpus,
    TokenizedExample,
    response_forward,
    sequence_logps,
)
from sidrec.llm.shared_prefix import collate_prompt_groups, prompt_group_logps
from sidrec.llm.trainer import SFTTrainer
from sidrec.methods.preference.losses import dpo_loss, implicit_rewards, sdpo_loss
from sidrec.methods.preference.negatives import load_negatives
from sidrec.sids.table import SIDTable


@dataclass
class PreferenceExample(TokenizedExample):
    rejected: list[list[int]] = field(default_factory=list)  # the negatives' response token ids


class DPOTrainer(SFTTrainer):
    """DPO (`method: dpo`) or S-DPO (`method: sdpo`) from a finished SFT run's model."""

    def build_corpus(self, dataset: Dataset, table: SIDTable) -> SFTCorpus:
        s = self.config.dpo
        if s.negatives is None:
            raise ConfigError(f"method {self.config.method} needs dpo.negatives: a file from "
                              "`sidrec negatives sample --run RUN_SFT` (or give --negatives)")
        train = dataset.split("train")
        frame = load_negatives(s.negatives, train, set(table.item_ids))
        k = s.num_negatives or (1 if self.config.method == "dpo" else int(frame["negatives"].map(len).min()))
        short = frame["negatives"].map(len) < k
        if short.any():
            raise DataError(f"{s.negatives}: line {int(np.flatnonzero(short)[0]) + 1} has fewer than "
                            f"dpo.num_negatives={k} negatives; sample more per example or lower num_negatives")
        builder = self.prompt_builder(table)
        ids = builder.sid_ids
        rows = frame["row"].to_numpy()
        hists = [[str(i) for i in train["history"].iat[r]] for r in rows]
        prompts = builder.history_prompts("seqrec", hists, rows.tolist())
        examples: list[TokenizedExample] = []
        for p, h, target, negs in zip(prompts, hists, frame["target"].astype(str), frame["negatives"], strict=True):
            examples.append(PreferenceExample(
                task="seqrec", input_ids=list(p) + ids[target] + [builder.eos], n_prompt=len(p),
                history=tuple(h[-self.config.data.max_history:]),
                rejected=[ids[str(n)] + [builder.eos] for n in list(negs)[:k]]))
        self.num_negatives = k
        return SFTCorpus(examples=examples, task_index={"seqrec": np.arange(len(examples), dtype=np.int64)},
                         skipped={"train rows without negatives in the file": len(train) - len(frame)})

    def task_weights(self) -> dict[str, float]:
        return {"seqrec": 1.0}

    def setup(self) -> None:
        super().setup()
        model = self.accelerator.unwrap_model(self.model)
        self.use_adapter_off = hasattr(model, "disable_adapter")  # peft: the reference is the adapter-free model
        self.reference = None
        if not self.use_adapter_off:
            self.reference = copy.deepcopy(model).eval()
            self.reference.requires_grad_(False)
        self._log(f"{self.config.method.upper()}: β={self.config.dpo.beta}, {self.num_negatives} negative(s) per "
                  f"prompt, sft_weight={self.config.dpo.sft_weight}, reference: "
                  f"{'adapters disabled' if self.use_adapter_off else 'frozen copy'}")

    def collate(self, batch: list[TokenizedExample]) -> dict[str, torch.Tensor]:
        if not batch or not isinstance(batch[0], PreferenceExample):  # validation loss: plain examples
            return super().collate(batch)
        k = len(batch[0].rejected)  # type: ignore[attr-defined]
        if not self.config.model.gradient_checkpointing:  # which drops the prompts' KV cache
            responses = [[ex.input_ids[ex.n_prompt:], *ex.rejected] for ex in batch]  # type: ignore[attr-defined]
            limit = self._collator.max_length
            keep = None if limit is None else limit - max(len(r) for rs in responses for r in rs)
            if keep is not None and keep < 1:
                raise ConfigError(f"training.max_length={limit} leaves no room for the prompt of a DPO example")
            return collate_prompt_groups([ex.input_ids[:ex.n_prompt][-keep:] if keep else ex.input_ids[:ex.n_prompt]
                                          for ex in batch], responses, self.tokenizer.pad_token_id)
        seqs = list(batch) + [TokenizedExample("seqrec", ex.input_ids[:ex.n_prompt] + ex.rejected[j], ex.n_prompt)  # type: ignore[attr-defined]
                              for j in range(k) for ex in batch]
        out = super().collate(seqs)
        out["groups"] = torch.tensor(1 + k)
        return out

    def _logps(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(summed response log-probabilities [(1+K)·B], response token counts), group-major."""
        if "prompt_ids" in batch:
            return prompt_group_logps(model, batch)
        logits, labels, _ = response_forward(model, batch)
        return sequence_logps(logits, labels)

    @torch.no_grad()
    def reference_logps(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.reference is not None:
            return self._logps(self.reference, batch)[0]
        model = self.accelerator.unwrap_model(self.model)
        with model.disable_adapter():
            return self._logps(model, batch)[0]

    def compute_loss(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        s = self.config.dpo
        groups = int(batch["groups"])
        logps, n_tokens = self._logps(model, batch)
        ref = self.reference_logps(batch)
        pol = logps.view(groups, -1)
        ref = ref.view(groups, -1)
        loss_fn = dpo_loss if self.config.method == "dpo" else sdpo_loss
        per_prompt = loss_fn(pol[0], pol[1:], ref[0], ref[1:], s.beta)
        loss = per_prompt.mean()
        nll = -(pol[0].sum() / n_tokens.view(groups, -1)[0].sum().clamp(min=1))
        if s.sft_weight > 0:
            loss = loss + s.sft_weight * nll
        with torch.no_grad():
            h = implicit_rewards(pol.detach(), ref, s.beta)
            best_neg = h[1:].max(0).values
            logs = {"pref_loss": float(per_prompt.detach().mean()), "nll_chosen": float(nll.detach()),
                    "reward_chosen": float(h[0].mean()), "reward_rejected": float(h[1:].mean()),
                    "reward_margin": float((h[0] - best_neg).mean()),
                    "reward_accuracy": float((h[0] > best_neg).float().mean())}
        return loss, logs


__all__ = ["DPOTrainer", "PreferenceExample"]
