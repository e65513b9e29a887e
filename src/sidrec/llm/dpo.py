"""Settings of the preference-learning baselines, `method: dpo` and `method: sdpo` (trainer in
`sidrec.llm.dpo_trainer`).

    dpo:
      negatives: runs/negatives.parquet   # from `sidrec negatives sample` (required)
      num_negatives: null                 # per prompt; null: 1 for dpo, every one in the file for sdpo
      beta: 1.0                           # β of the implicit reward β·(log π − log π_ref)
      sft_weight: 0.0                     # + sft_weight × CE on the chosen (target) response

β = 1 is the S-DPO reference setting for recommendation (SID responses are a few tokens long: with
the β = 0.1 usual for long text, the loss keeps pushing until the log-ratio margin reaches ~50 nats,
and on our benchmark the policy collapsed; see docs/preference.md).

The reference model is the policy as it starts (the SFT run's model): a frozen copy for full
fine-tuning, or, with `model.finetune: lora`, the same model with its adapters disabled (no
second copy in memory).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class DPOSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    negatives: Path | None = Field(None, description="negatives file from `sidrec negatives sample` (required)")
    num_negatives: int | None = Field(None, ge=1, description="negatives per prompt (None: 1 for dpo, all for sdpo)")
    beta: float = Field(1.0, gt=0, description="β of the implicit reward (1.0: the S-DPO reference setting)")
    sft_weight: float = Field(0.0, ge=0, description="weight of an added CE term on the chosen response")
