"""The preference-learning baselines: DPO and S-DPO (softmax DPO over several negatives).

    sidrec train dpo  --from runs/sft --out runs/dpo     # 1 beam-search hard negative per prompt
    sidrec train sdpo --from runs/sft --out runs/sdpo    # 3

Settings `.config` (`DPOConfig`, `dpo:`), the losses `.losses`, offline negatives `.negatives`, the
trainer `.trainer`. Without `dpo.negatives` the prepare step samples the continued run's beam-search
hard negatives into RUN/negatives.parquet (`SAMPLED_NEGATIVES` per example).
"""

from __future__ import annotations

from typing import Any

from sidrec.errors import ConfigError
from sidrec.methods.method import Method, RunInputs, section_of
from sidrec.methods.preference.config import DPOConfig
from sidrec.methods.preference.negatives import sample_run_negatives
from sidrec.methods.preference.trainer import DPOTrainer
from sidrec.utils.progress import console

# beam-search hard negatives sampled per example when the settings name no negatives file
SAMPLED_NEGATIVES = {"dpo": 1, "sdpo": 3}


def prepare(values: dict[str, Any], inputs: RunInputs) -> dict[str, Any]:
    """`dpo.negatives` defaults to the continued run's beam-search hard negatives, sampled into
    RUN/negatives.parquet (kept when the run resumes)."""
    section = section_of(values, "dpo")
    if section.get("negatives"):
        return values
    method = str(values.get("method"))
    if inputs.source is None:
        raise ConfigError(f"method {method} needs a finished SFT run to continue (--from RUN, or `from: NAME` in "
                          "a pipeline), whose beam search gives the hard negatives, or dpo.negatives (a file from "
                          "`sidrec negatives sample`)")
    negatives = inputs.out / "negatives.parquet"
    if not (inputs.resume and negatives.is_file()):
        inputs.claim()
        k = SAMPLED_NEGATIVES[method]
        console.print(f"sampling {k} beam-search hard negative(s) per example from {inputs.source} → {negatives}")
        sample_run_negatives(negatives, run=inputs.source, strategy="beam", per_example=k, device=inputs.device)
    return {**values, "dpo": {**section, "negatives": str(negatives)}}


METHODS = (Method("dpo", "DPO on (target, one negative) pairs from offline negatives", DPOConfig, DPOTrainer,
                  section="dpo", prepare=prepare),
           Method("sdpo", "S-DPO: softmax DPO over several offline negatives per prompt", DPOConfig, DPOTrainer,
                  section="dpo", prepare=prepare))
