"""The settings of a generative run: `SFTConfig` (saved as RUN/config.yaml) and its sections.

    config = SFTConfig(dataset="data/industrial", model=BackboneConfig(num_layers=4))

A method adds its own section in a subclass beside its trainer (TRL's `XxxConfig` beside each
`XxxTrainer`): `TSRecConfig` (`tsrec:`), `ILRecConfig` (`ilrec:`), `DPOConfig` (`dpo:`),
`TigerConfig` (`tiger:`) under `sidrec.methods`; `sidrec.methods.registry.method_config` picks the
class from `method:`. The core knows no method: a config class that needs the prompt → response
form says so with `prompt_only = True`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidrec.llm.backbone import BackboneConfig
from sidrec.llm.sft_data import SFTDataConfig

# what a config.yaml / sidrec.json written before these settings existed was trained with
LEGACY_DEFAULTS = {"data": {"format": "prompt", "sid_softmax": "full"}, "model": {"sid_init": "mean"}}


def with_legacy_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """A saved run config with the settings it predates filled in as they were then (prompt format,
    full softmax, mean init), so old runs resume, continue and evaluate exactly as they trained."""
    out = dict(values)
    for section, defaults in LEGACY_DEFAULTS.items():
        if isinstance(out.get(section), dict):
            out[section] = {**defaults, **out[section]}
    return out


class TrainingSettings(BaseModel):
    """Optimisation, schedule, evaluation cadence and early stopping."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(3, ge=1)
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    batch_size: int = Field(16, ge=1, description="examples per process per micro-batch")
    grad_accum: int = Field(1, ge=1)
    lr: float = Field(3e-4, gt=0, description="learning rate of the pretrained weights (and LoRA adapters)")
    weight_decay: float = Field(0.0, ge=0)
    sid_lr: float | None = Field(None, gt=0, description="learning rate of the new SID token rows (None: lr)")
    sid_weight_decay: float | None = Field(None, ge=0, description="weight decay of the SID rows (None: weight_decay)")
    scheduler: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    max_length: int | None = Field(512, ge=16, description="truncate examples from the prompt's start")
    bucket_by_length: bool = Field(False, description="batch examples of similar length (less padding, same "
                                                      "examples and batch count; cost quality on the demo: docs/llm.md)")
    eval_steps: int | None = Field(None, ge=1, description="evaluate every N optimizer steps (None: each epoch)")
    eval_metric: Literal["ndcg@10", "hr@10", "loss"] = "ndcg@10"
    eval_samples: int | None = Field(500, ge=1, description="fixed validation sample for early stopping (None: all)")
    patience: int = Field(3, ge=1, description="evaluations without improvement before stopping")
    log_steps: int = Field(10, ge=1)
    report_to: list[Literal["tensorboard", "wandb"]] = Field(default_factory=list)
    seed: int = 0
    device: str = Field("auto", description="auto | cpu | cuda (under accelerate launch: the process's device)")


class EvalSettings(BaseModel):
    """Final evaluation after training (and `sidrec eval --run`)."""

    model_config = ConfigDict(extra="forbid")

    splits: list[str] = Field(default_factory=lambda: ["valid", "test"])
    num_beams: int = Field(20, ge=1)
    batch_size: int = Field(16, ge=1)
    max_examples: int | None = Field(None, ge=1, description="evaluate a fixed sample of each split (None: all)")


class SFTConfig(BaseModel):
    """Everything a `sidrec train sft` run needs; saved as RUN/config.yaml."""

    model_config = ConfigDict(extra="forbid")
    # a method whose losses read one prompt → response per example over the full vocabulary sets
    # this: its data defaults to that form, and an explicit stream / level softmax is refused
    prompt_only: ClassVar[bool] = False

    method: Literal["sft"] = "sft"
    dataset: Path
    sids: Path | None = Field(None, description="sids.json from `sidrec sids build` (None: the dataset's own SIDs)")
    model: BackboneConfig = Field(default_factory=BackboneConfig)
    data: SFTDataConfig = Field(default_factory=SFTDataConfig)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)

    @model_validator(mode="after")
    def _prompt_form(self) -> SFTConfig:
        if not self.prompt_only:
            return self
        unset = {"format", "sid_softmax"} - self.data.model_fields_set
        if "format" in unset:
            self.data.format = "prompt"
        if "sid_softmax" in unset:
            self.data.sid_softmax = "full"
        if self.data.format != "prompt" or self.data.sid_softmax != "full":
            raise ValueError(f"method {self.method} needs data.format: prompt and data.sid_softmax: full (its losses "
                             "read one prompt → response per example over the full vocabulary); train stage 1 "
                             "with those settings, or set them for this run")
        return self
