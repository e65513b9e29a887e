"""Settings of the preference-learning baselines, `method: dpo` and `method: sdpo`: `DPOConfig`, an
SFT config with a `dpo:` section (trainer in `.trainer`, losses in `.losses`, offline negatives in
`.negatives`).

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
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidrec.llm.config import SFTConfig


class DPOSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    negatives: Path | None = Field(None, description="negatives file from `sidrec negatives sample` (required)")
    num_negatives: int | None = Field(None, ge=1, description="negatives per prompt (None: 1 for dpo, all for sdpo)")
    beta: float = Field(1.0, gt=0, description="β of the implicit reward (1.0: the S-DPO reference setting)")
    sft_weight: float = Field(0.0, ge=0, description="weight of an added CE term on the chosen response")


class DPOConfig(SFTConfig):
    """A `method: dpo` / `method: sdpo` run from a finished SFT run's model and offline negatives."""

    prompt_only: ClassVar[bool] = True  # sequence log-probabilities of prompt → response pairs

    method: Literal["dpo", "sdpo"] = "dpo"  # type: ignore[assignment]
    dpo: DPOSettings = Field(default_factory=DPOSettings, description="DPO / S-DPO")

    @model_validator(mode="after")
    def _negatives_given(self) -> DPOConfig:
        if self.dpo.negatives is None:
            raise ValueError(f"method {self.method} needs dpo.negatives, a file from `sidrec negatives sample "
                             "--run RUN_SFT`")
        return self
