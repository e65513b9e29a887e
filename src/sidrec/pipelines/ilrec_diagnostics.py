"""Does ILRec push down what the user will choose next? The false-negative rate of its self-hard
negatives against each user's held-out test item.

    from sidrec.pipelines.ilrec_diagnostics import false_negative_report
    false_negative_report("runs/sft", cf_run="runs/sasrec", max_examples=500)

On a fixed sample of seqrec training examples, at each SID level t where the user's test item lies
under the training target's gold prefix but has another code at t (so its token is a candidate
that is not the gold token: a position where it *could* be a negative), the test item's token is a
**false negative** when it is in N_t. Reported:

- `fn_rate`: the share of those comparable positions where it is in N_t;
- `chance`: the mean of |N_t| / (|C_t| − 1) over the same positions, i.e. the rate of a random
  negative set of the same size: fn_rate above chance means the intermediate layers single out
  tokens the user later chooses (so some "hard negatives" are true positives);
- `fn_share_of_negatives`: false negatives over all negatives at those positions;
- `fn_reward_percentile`: where CRR's collaborative reward puts the false negative among the
  position's negatives (0 = lowest, 1 = highest; 0.5 = no information). Above 0.5, the CF model
  recognises them, and CRR (which moves probability toward high-reward negatives) spares them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sidrec.methods.ilrec.losses import aggregate_layers, self_hard_negatives


def false_negative_counts(neg_mask: torch.Tensor, cand_mask: torch.Tensor, code: torch.Tensor, lvl: torch.Tensor,
                          prefix: torch.Tensor, test_codes: torch.Tensor,
                          rewards: torch.Tensor | None = None) -> dict[str, float]:
    """Sums over positions P: neg_mask / cand_mask [P, K], gold code and level [P], the row's gold
    codes [P, levels], the test item's codes [P, levels], CRR rewards [P, K] (optional)."""
    levels = torch.arange(prefix.shape[1], device=prefix.device)
    above = levels.unsqueeze(0) < lvl.unsqueeze(1)  # the levels before t
    same_prefix = ((test_codes == prefix) | ~above).all(dim=1)
    t_code = test_codes.gather(1, lvl.unsqueeze(1)).squeeze(1)
    safe = t_code.clamp(min=0, max=cand_mask.shape[1] - 1)
    comparable = same_prefix & (t_code != code) & cand_mask.gather(1, safe.unsqueeze(1)).squeeze(1)
    is_fn = comparable & neg_mask.gather(1, safe.unsqueeze(1)).squeeze(1)
    n_neg = neg_mask.sum(1).float()
    n_cand = cand_mask.sum(1).float()
    out = {"positions": float(len(code)), "comparable": float(comparable.sum()), "false_negatives": float(is_fn.sum()),
           "chance_sum": float((n_neg / (n_cand - 1).clamp(min=1))[comparable].sum()),
           "negatives_at_comparable": float(n_neg[comparable].sum()), "reward_pct_sum": 0.0, "reward_pct_n": 0.0}
    if rewards is not None:
        r_fn = rewards.gather(1, safe.unsqueeze(1))  # [P, 1]
        below = ((rewards < r_fn) & neg_mask).sum(1).float()
        ok = is_fn & (n_neg > 1)
        out["reward_pct_sum"] = float((below / (n_neg - 1).clamp(min=1))[ok].sum())
        out["reward_pct_n"] = float(ok.sum())
    return out


def summarise(total: dict[str, float]) -> dict[str, float | None]:
    c = total["comparable"]
    return {"positions": int(total["positions"]), "comparable_positions": int(c),
            "false_negatives": int(total["false_negatives"]),
            "fn_rate": total["false_negatives"] / c if c else None,
            "chance": total["chance_sum"] / c if c else None,
            "fn_share_of_negatives": (total["false_negatives"] / total["negatives_at_comparable"]
                                      if total["negatives_at_comparable"] else None),
            "fn_reward_percentile": (total["reward_pct_sum"] / total["reward_pct_n"]
                                     if total["reward_pct_n"] else None)}


@torch.no_grad()
def false_negative_report(run: str | Path, cf_run: str | Path, *, max_examples: int = 500, batch_size: int = 16,
                          seed: int = 0, device: str = "cpu", ilrec: dict[str, Any] | None = None) -> dict[str, Any]:
    """The false-negative diagnostic of a run's model (an SFT run before stage 2, or an ILRec run)
    with ILRec's settings (defaults, or `ilrec` overrides), on `max_examples` training examples."""
    from sidrec.methods.ilrec.trainer import ILRecTrainer
    from sidrec.pipelines.llm import continue_from, sft_config
    from sidrec.utils.runs import RunDir

    values = continue_from(run, "ilrec", {"ilrec": {"cf_run": str(cf_run), **(ilrec or {})},
                                          "training": {"device": device, "seed": seed}})
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = RunDir(tmp)
        try:
            trainer = ILRecTrainer(sft_config(values), run_dir)
            trainer.setup()
            train = trainer.dataset.split("train")
            test = trainer.dataset.split("test")
            test_target = dict(zip(test["user_id"].astype(str), test["target"].astype(str), strict=True))
            rows = np.flatnonzero([len(h) > 0 for h in train["history"]])
            examples = trainer.corpus.task_index["seqrec"]
            users = train["user_id"].astype(str).to_numpy()[rows]
            keep = np.flatnonzero([u in test_target for u in users])
            rng = np.random.default_rng(seed)
            if len(keep) > max_examples:
                keep = np.sort(rng.choice(keep, size=max_examples, replace=False))
            item_row = {iid: k for k, iid in enumerate(trainer.table.item_ids)}
            codes = torch.as_tensor(np.asarray(trainer.table.codes), dtype=torch.long)
            s = trainer.config.ilrec
            model = trainer.model
            model.eval()
            total: dict[str, float] = {}
            for start in range(0, len(keep), batch_size):
                chunk = keep[start:start + batch_size]
                batch = {k: v.to(trainer.device) for k, v in
                         trainer.collate([trainer.corpus.examples[examples[j]] for j in chunk]).items()}
                pos = trainer.position_inputs(model, batch)
                if len(pos.b_idx) == 0:
                    continue
                safe = torch.where(pos.cand_mask, pos.cand_ids, torch.zeros_like(pos.cand_ids))
                final_c = pos.final_full.gather(1, safe)
                neg_mask, _ = self_hard_negatives(aggregate_layers(pos.inter, s.aggregate), final_c, pos.code,
                                                  pos.cand_mask, s.phi)
                test_rows = torch.tensor([item_row[test_target[users[j]]] for j in chunk], dtype=torch.long)
                test_codes = codes[test_rows].to(trainer.device)[pos.b_idx]
                part = false_negative_counts(neg_mask, pos.cand_mask, pos.code, pos.lvl, pos.prefix, test_codes,
                                             pos.rewards)
                for k, v in part.items():
                    total[k] = total.get(k, 0.0) + v
        finally:
            run_dir.close()
    out = summarise(total) if total else {}
    out.update({"run": str(run), "examples": int(len(keep)), "layers": list(s.layers), "phi": s.phi})
    return out
