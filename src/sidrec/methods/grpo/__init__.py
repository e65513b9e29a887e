"""GRPO: group-relative policy optimisation over trie-constrained rollouts (stage 2 from a finished run).

    sidrec train grpo --from runs/sft --out runs/grpo
    sidrec train grpo --from runs/sft --cf-run runs/sasrec --set 'grpo.rewards={rule: 1.0, cf: 0.5}' --out runs/g

Settings `.config` (`GRPOConfig`, `grpo:`), rollouts and their log-probabilities `.rollouts`, the rewards
`.rewards`, the advantage and loss arithmetic `.losses`, the trainer `.trainer` (docs/grpo.md).
`grpo.cf_run` defaults to the SASRec run the pipeline trained; stage 2 records the run it continues in
`grpo.from_run`. The prepare step refuses a run that starts from a model that does not generate SIDs yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sidrec.errors import ConfigError
from sidrec.methods.grpo.config import GRPOConfig
from sidrec.methods.grpo.trainer import GRPOTrainer
from sidrec.methods.method import Method, RunInputs, section_of


def prepare(values: dict[str, Any], inputs: RunInputs) -> dict[str, Any]:
    """GRPO continues a model that already generates SIDs: a finished run (`--from RUN`, `from: NAME`) or
    a sidrec model folder as model.name_or_path; anything else is refused before training."""
    if inputs.source is not None or inputs.resume:
        return values
    name = str(section_of(values, "model").get("name_or_path") or "")
    if name and (Path(name) / "sidrec.json").is_file():
        return values
    raise ConfigError("method grpo needs a finished run to continue (--from RUN, or `from: NAME` in a pipeline), "
                      "or a sidrec model folder as model.name_or_path: its rollouts are the model's own SIDs")


METHOD = Method("grpo", "GRPO: group-relative policy optimisation over trie-constrained rollouts", GRPOConfig,
                GRPOTrainer, section="grpo", from_inputs={"cf_run": "cf_run"}, prepare=prepare,
                records_source="from_run")
