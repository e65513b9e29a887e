"""TS-Rec (arXiv 2602.22632): SA-Init of the SID rows from token semantics, TS-Align tasks in SFT.

    sidrec train sft --method tsrec --data data/industrial --set tsrec.semantics=semantics.json \
        --set tsrec.sa_init.enabled=true --set tsrec.align.enabled=true --out runs/tsrec

Settings `.config` (`TSRecConfig`, `tsrec:`), the align tasks `.align`, the trainer `.trainer`; the
SA-Init arithmetic is the core's (`sidrec.llm.sid_init`). `tsrec.semantics` defaults to the file the
pipeline's semantics stage wrote; a run that continues a TS-Rec run trains its model as it is.
"""

from sidrec.methods.method import Method
from sidrec.methods.tsrec.config import TSRecConfig
from sidrec.methods.tsrec.trainer import TSRecTrainer

METHOD = Method("tsrec", "TS-Rec: semantic-anchored SID rows (SA-Init) and token-description alignment (TS-Align)",
                TSRecConfig, TSRecTrainer, section="tsrec", from_inputs={"semantics": "semantics"}, keeps_section=False)
