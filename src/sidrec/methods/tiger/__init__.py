"""TIGER (Rajput et al., 2023), the generative baseline: a small T5 trained from scratch on SID tokens.

    sidrec train sft --method tiger --data data/beauty --sids sids.json --out runs/tiger

Settings `.config` (`TigerConfig`, `tiger:`), the model, its stepper and recommender `.model`, the
trainer `.trainer`. Its model is no causal LM, so stage-2 methods cannot continue a TIGER run.
"""

from sidrec.methods.method import Method
from sidrec.methods.tiger.config import TigerConfig
from sidrec.methods.tiger.trainer import TigerTrainer

METHOD = Method("tiger", "TIGER: a T5 encoder-decoder over SID tokens, trained from scratch", TigerConfig,
                TigerTrainer, section="tiger", continuable=False)
