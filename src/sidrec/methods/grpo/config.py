"""Settings of GRPO, `method: grpo`: `GRPOConfig`, an SFT config with a `grpo:` section (rollouts in
`.rollouts`, rewards in `.rewards`, the loss arithmetic in `.losses`, the trainer in `.trainer`).

    grpo:
      num_generations: 16        # G distinct, valid items per prompt
      tasks: {seqrec: 1.0}       # prompts: seqrec (train windows), item2sid (item title → its SID); weights as data.tasks
      rollout: beam              # beam: the policy's top-G by constrained beam search | sample: Gumbel top-G
      temperature: 1.0           # rollout: sample — logits / T
      num_beams: null            # rollout: beam — beam width (null: num_generations)
      rewards: {rule: 1.0}       # reward → weight: rule, ranking, prefix, cf, semantic
      loss: grpo                 # grpo | dr_grpo | dapo | gspo
      epsilon: 0.2               # clip: ratio ∈ [1 − epsilon, 1 + epsilon_high]
      epsilon_high: null         # null: epsilon (dapo's paper value is 0.28)
      beta: 0.04                 # weight of the k3 KL to the reference (0: no reference model)
      ref_sync_steps: null       # every N optimizer steps the reference becomes the current policy (full fine-tuning)
      num_iterations: 1          # μ: optimizer updates per rollout batch (after the first, ratio = π / π_old)
      zero_variance: skip        # groups whose rewards are all equal: skip (out of the loss) | keep (advantage 0)
      cf_run: null               # reward cf: a trained SASRec run
      cf_temperature: 1.0        # reward cf: softmax(score / T) within the group
      embeddings: null           # reward semantic: item text embeddings (.npy, items.parquet order)

docs/grpo.md defines each reward and loss variant. The reference model is the policy as it starts (the
continued run's model): a frozen copy for full fine-tuning, or, with `model.finetune: lora`, the same
model with its adapters disabled.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidrec.llm.config import SFTConfig

REWARDS = ("rule", "ranking", "prefix", "cf", "semantic")
RewardName = Literal["rule", "ranking", "prefix", "cf", "semantic"]


class GRPOSettings(BaseModel):
    """Every GRPO hyper-parameter (docs/grpo.md)."""

    model_config = ConfigDict(extra="forbid")

    num_generations: int = Field(16, ge=2, description="G: distinct valid items rolled out per prompt")
    tasks: dict[Literal["seqrec", "item2sid"], float] = Field(
        default_factory=lambda: {"seqrec": 1.0},
        description="the prompts rolled out: seqrec (the train windows) and item2sid (an item's title → its SID), "
                    "task → weight as data.tasks (examples per epoch = weight × the task's size)")
    rollout: Literal["beam", "sample"] = Field(
        "beam", description="beam: the policy's top-G items by constrained beam search (deterministic); "
                            "sample: G items drawn without replacement by Gumbel top-k over the trie")
    temperature: float = Field(1.0, gt=0, description="rollout: sample — the sampling temperature")
    num_beams: int | None = Field(None, ge=1, description="rollout: beam — beam width (None: num_generations)")
    rewards: dict[RewardName, float] = Field(default_factory=lambda: {"rule": 1.0},
                                             description="reward → weight (the reward is the weighted sum)")
    loss: Literal["grpo", "dr_grpo", "dapo", "gspo"] = Field("grpo", description="the policy-loss variant")
    epsilon: float = Field(0.2, gt=0, lt=1, description="clip range below 1 (and above, unless epsilon_high)")
    epsilon_high: float | None = Field(None, gt=0, description="clip range above 1 (None: epsilon)")
    beta: float = Field(0.04, ge=0, description="weight of the k3 KL estimator to the reference model")
    ref_sync_steps: int | None = Field(None, ge=1, description="every N optimizer steps the reference model "
                                                               "becomes the current policy (None: never)")
    num_iterations: int = Field(
        1, ge=1, le=16, description="μ: optimizer updates on each rollout batch (TRL's num_iterations). The first "
                                    "update has ratio 1; later ones use the rollout-time log-probabilities as "
                                    "π_old, so the clip bounds how far the policy moves per batch. A training "
                                    "step (max_steps, eval_steps) is one rollout batch, i.e. μ optimizer updates")
    zero_variance: Literal["skip", "keep"] = Field(
        "skip", description="groups whose rewards are all equal: skip (left out of the loss) or keep (advantage 0, "
                            "KL only)")
    cf_run: Path | None = Field(None, description="reward cf: a trained SASRec run (or its model/ folder)")
    cf_temperature: float = Field(1.0, gt=0, description="reward cf: softmax temperature over the group's scores")
    embeddings: Path | None = Field(None, description="reward semantic: item embeddings .npy in items.parquet order "
                                                      "(None: the SID stage's, else computed by sidrec.sids.embed)")
    from_run: Path | None = Field(None, description="the run this training continues (informational)")

    @model_validator(mode="after")
    def _rewards(self) -> GRPOSettings:
        if not any(w > 0 for w in self.tasks.values()) or any(w < 0 for w in self.tasks.values()):
            raise ValueError("grpo.tasks: give non-negative weights, at least one positive, e.g. {seqrec: 1.0}")
        if not any(w != 0 for w in self.rewards.values()):
            raise ValueError("grpo.rewards: give at least one reward with a non-zero weight, e.g. {rule: 1.0}")
        if self.rollout == "beam" and self.num_beams is not None and self.num_beams < self.num_generations:
            raise ValueError(f"grpo.num_beams={self.num_beams} is below grpo.num_generations={self.num_generations}: "
                             "beam search keeps num_beams items")
        return self

    @property
    def epsilon_upper(self) -> float:
        return self.epsilon if self.epsilon_high is None else self.epsilon_high

    def weight(self, reward: str) -> float:
        return float(self.rewards.get(reward, 0.0))  # type: ignore[call-overload]


class GRPOConfig(SFTConfig):
    """A `method: grpo` run: group-relative policy optimisation from a finished run's model.

    Its examples are prompt → G rollouts whatever `data.format` (the evaluation prompts of the train
    windows), and the policy scores a rollout with the normalisation decoding uses (`data.sid_softmax`),
    so it continues a stream / level-softmax run as it is."""

    method: Literal["grpo"] = "grpo"  # type: ignore[assignment]
    grpo: GRPOSettings = Field(default_factory=GRPOSettings, description="GRPO")

    @model_validator(mode="after")
    def _inputs_given(self) -> GRPOConfig:
        if self.grpo.weight("cf") != 0 and self.grpo.cf_run is None:
            raise ValueError("grpo.rewards.cf needs grpo.cf_run, a trained SASRec run (`sidrec train sasrec`, or "
                             "--cf-run); or drop the cf reward")
        if self.grpo.ref_sync_steps is not None and (self.grpo.beta == 0 or self.model.finetune == "lora"):
            raise ValueError("grpo.ref_sync_steps needs grpo.beta > 0 and model.finetune: full (under LoRA the "
                             "reference is the model with its adapters disabled, which cannot be synced)")
        return self
