"""ILRec (arXiv 2602.17410): self-hard negatives from the intermediate layers (CPO, CPD, CRR).

    sidrec train ilrec --from runs/sft --cf-run runs/sasrec --out runs/ilrec

Settings `.config` (`ILRecConfig`, `ilrec:`), the logit lens and SID lookups `.lens`, the loss
arithmetic `.losses`, the trainer `.trainer`. `ilrec.cf_run` defaults to the SASRec run the pipeline
trained; stage 2 records the run it continues in `ilrec.from_run`.
"""

from sidrec.methods.ilrec.config import ILRecConfig
from sidrec.methods.ilrec.trainer import ILRecTrainer
from sidrec.methods.method import Method

METHOD = Method("ilrec", "ILRec: cross-layer preference (CPO), distillation (CPD) and CF-reward (CRR) losses",
                ILRecConfig, ILRecTrainer, section="ilrec", from_inputs={"cf_run": "cf_run"}, records_source="from_run")
