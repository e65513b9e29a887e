"""`ILRecTrainer`: SFT whose seqrec SID targets get ILRec's losses (settings in `sidrec.methods.ilrec.lens`).

    # stage 2 from a finished SFT run (the reference schedule: 1 epoch, lr 5e-5, cosine, 5% warm-up)
    sidrec train ilrec --from runs/sft --cf-run runs/sasrec --out runs/ilrec
    # or the losses from step 0
    sidrec train ilrec --data data/industrial --cf-run runs/sasrec --out runs/ilrec0

Per batch: L = [Σ_{other response tokens} CE + Σ_{seqrec SID targets} (L_CPO + λ·L_CPD + β·L_CRR)]
/ (number of response tokens), so with α = λ = β = 0 it is exactly the SFT loss. Logged every
`log_steps`: each loss term, the share of target positions with at least one self-hard negative
(`frac_with_negative`) and the mean number of negatives (`mean_negatives`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from sidrec.errors import ConfigError
from sidrec.llm.sft_data import IGNORE_INDEX, TokenizedExample, response_forward
from sidrec.llm.trainer import SFTTrainer
from sidrec.methods.ilrec.lens import (
    SIDLookup,
    candidate_logits,
    final_norm,
    load_cf_model,
    n_transformer_layers,
    resolve_layers,
)
from sidrec.methods.ilrec.losses import ilrec_position_losses, prefix_rewards


class ILRecTrainer(SFTTrainer):
    """SFT + CPO / CPD / CRR on the SID tokens of seqrec responses."""

    def setup(self) -> None:
        super().setup()
        s = self.config.ilrec
        model = self.accelerator.unwrap_model(self.model)
        self.layer_index = resolve_layers(s.layers, n_transformer_layers(model))
        self.norm, self.head = final_norm(model), model.get_output_embeddings()  # the logit lens' read-outs
        vocab = max(len(self.tokenizer), model.get_input_embeddings().weight.shape[0])
        self.lookup = SIDLookup(self.sid_tokens.per_level, vocab, self.table.codes, self.device)
        self.cf = None
        if s.use_crr:
            if s.cf_run is None:
                raise ConfigError("ilrec.use_crr needs ilrec.cf_run: a trained SASRec run "
                                  "(`sidrec train sasrec --data DATASET --out RUN`), or set ilrec.use_crr: false")
            self.cf, cf_items = load_cf_model(s.cf_run, self.device)
            index = {iid: j for j, iid in enumerate(cf_items)}
            missing = [i for i in self.table.item_ids if i not in index]
            if missing:
                raise ConfigError(f"ilrec.cf_run: {s.cf_run} was trained on other items ({len(missing)} of this "
                                  f"dataset's items are unknown to it, e.g. {missing[:3]}); train SASRec on this dataset")
            self.cf_cols = torch.tensor([index[i] for i in self.table.item_ids], dtype=torch.long, device=self.device)
            self.cf_index = {iid: j + 1 for j, iid in enumerate(cf_items)}
        self._log(f"ILRec: layers {s.layers} → hidden states {self.layer_index}; candidates {s.candidates}; "
                  f"α={s.alpha} λ={s.lam} β={s.beta} T={s.temperature} φ={s.phi}; "
                  f"CPO {s.use_cpo} CPD {s.use_cpd} CRR {s.use_crr}")

    def collate(self, batch: list[TokenizedExample]) -> dict[str, torch.Tensor]:
        out = super().collate(batch)
        out["seqrec_row"] = torch.tensor([ex.task == "seqrec" for ex in batch], dtype=torch.bool)
        if self.cf is not None:
            width = max([len(ex.history or ()) for ex in batch] + [1])
            hist = torch.zeros((len(batch), width), dtype=torch.long)
            for row, ex in enumerate(batch):
                if ex.task == "seqrec" and ex.history:
                    ids = [self.cf_index[i] for i in ex.history]
                    hist[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
            out["cf_history"] = hist
        return out

    @torch.no_grad()
    def target_positions(self, labels: torch.Tensor, seqrec_row: torch.Tensor
                         ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        """The SID targets of seqrec rows among the [B, R] response labels: (mask, (row, column,
        gold token id, level, gold code, the row's gold codes [P, levels] = the prefix))."""
        lk = self.lookup
        level = lk.level_of[labels.clamp(min=0)]
        target = (labels != IGNORE_INDEX) & (level >= 0) & seqrec_row[:, None]
        b_idx, j_idx = target.nonzero(as_tuple=True)
        gold_vocab = labels[b_idx, j_idx]
        lvl = level[b_idx, j_idx]
        code = lk.code_of[gold_vocab]
        row_codes = torch.full((labels.shape[0], lk.n_levels), -1, dtype=torch.long, device=labels.device)
        row_codes[b_idx, lvl] = code
        return target, (b_idx, j_idx, gold_vocab, lvl, code, row_codes[b_idx])

    @torch.no_grad()
    def token_rewards(self, batch: dict[str, torch.Tensor], b_idx: torch.Tensor, lvl: torch.Tensor,
                      prefix: torch.Tensor) -> torch.Tensor:
        """[P, K] CRR rewards r(v) = logsumexp over the items under (gold prefix, v) of s_u(i)/T
        (−inf where no item has that prefix; all items score 0 without a CF model: trie masks)."""
        lk = self.lookup
        if self.cf is not None:
            scores = self.cf.score(batch["cf_history"])[:, self.cf_cols].float()  # [B, items], SID-table order
            scores_p = scores[b_idx]
        else:
            scores_p = torch.zeros((len(b_idx), lk.item_codes.shape[0]), device=b_idx.device)
        return prefix_rewards(scores_p, lk.item_codes, lvl, prefix, lk.width, self.config.ilrec.temperature)

    def position_inputs(self, model: Any, batch: dict[str, torch.Tensor]) -> ILRecPositions:
        """One forward pass → everything ILRec's losses (and its diagnostics) need at the SID targets."""
        s = self.config.ilrec
        keep = int(batch["response_width"])
        logits, labels, out = response_forward(model, batch, output_hidden_states=True)
        lk = self.lookup
        target, (b_idx, j_idx, gold_vocab, lvl, code, prefix) = self.target_positions(labels, batch["seqrec_row"])
        pos = ILRecPositions(logits=logits, labels=labels, target=target, b_idx=b_idx, gold_vocab=gold_vocab,
                             lvl=lvl, code=code, prefix=prefix)
        if len(b_idx) == 0:
            return pos
        pos.cand_ids = lk.cand_ids[lvl]
        pos.cand_mask = lk.cand_mask[lvl]
        pos.final_full = logits[b_idx, j_idx]  # [P, V]
        # --- intermediate layers at those positions only, onto the candidate rows only
        seq_pos = batch["input_ids"].shape[1] - keep + j_idx
        hidden = torch.stack([out.hidden_states[i][b_idx, seq_pos] for i in self.layer_index])  # [Λ, P, d]
        pos.inter = candidate_logits(self.norm, self.head, hidden, pos.cand_ids)
        if s.use_crr or s.candidates == "trie":
            pos.rewards = self.token_rewards(batch, b_idx, lvl, prefix)
            if s.candidates == "trie":
                pos.cand_mask = pos.cand_mask & torch.isfinite(pos.rewards)
        return pos

    def compute_loss(self, model: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        s = self.config.ilrec
        pos = self.position_inputs(model, batch)
        labels, logits = pos.labels, pos.logits
        n_tokens = (labels != IGNORE_INDEX).sum().clamp(min=1)
        other = (labels != IGNORE_INDEX) & ~pos.target  # EOS and the other tasks' tokens: plain CE
        rest = F.cross_entropy(logits[other].float(), labels[other], reduction="sum") if other.any() \
            else logits.sum() * 0.0
        if len(pos.b_idx) == 0:
            return rest / n_tokens, {}
        per_position, stats = ilrec_position_losses(
            pos.final_full, pos.inter, pos.code, pos.gold_vocab, pos.cand_ids, pos.cand_mask,
            pos.rewards if s.use_crr else None,
            alpha=s.alpha, lam=s.lam, beta=s.beta, phi=s.phi, aggregate=s.aggregate,
            use_cpo=s.use_cpo, use_cpd=s.use_cpd, use_crr=s.use_crr)
        loss = (rest + per_position.sum()) / n_tokens
        logs = {k: float(v) for k, v in stats.items()}
        logs["target_positions"] = float(len(pos.b_idx))
        return loss, logs


@dataclass
class ILRecPositions:
    """The SID target positions P of a batch: response logits / labels [B, R(, V)], the target mask,
    each position's row, gold token, level, gold code and gold codes of its row [P, levels]; and,
    when P > 0, candidate token ids / mask [P, K], final logits [P, V], intermediate candidate
    logits [Λ, P, K] and CRR rewards [P, K] (None unless CRR or trie candidates)."""

    logits: torch.Tensor
    labels: torch.Tensor
    target: torch.Tensor
    b_idx: torch.Tensor
    gold_vocab: torch.Tensor
    lvl: torch.Tensor
    code: torch.Tensor
    prefix: torch.Tensor
    cand_ids: torch.Tensor | None = None
    cand_mask: torch.Tensor | None = None
    final_full: torch.Tensor | None = None
    inter: torch.Tensor | None = None
    rewards: torch.Tensor | None = None
