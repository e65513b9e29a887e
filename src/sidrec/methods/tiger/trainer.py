"""`TigerTrainer`: the SFT loop with a from-scratch T5 over SID tokens (see `.model`)."""

from __future__ import annotations

from typing import Any

import torch

from sidrec.data.dataset import Dataset
from sidrec.llm.backbone import SIDTokens
from sidrec.llm.recommender import sid_maps
from sidrec.llm.sft_data import IGNORE_INDEX, SFTCorpus, TokenizedExample
from sidrec.llm.trainer import SFTTrainer
from sidrec.methods.tiger.config import tiger_settings
from sidrec.methods.tiger.model import (
    EOS_ID,
    TigerCollator,
    TigerExample,
    TigerRecommender,
    build_t5,
    build_tiger_corpus,
    encode_histories,
    max_items_for,
    tiger_sid_tokens,
)
from sidrec.sids.table import SIDTable


class TigerTrainer(SFTTrainer):
    """`SFTTrainer` with a from-scratch T5 over SID tokens (config.method: tiger, sizes in config.tiger)."""

    def __init__(self, config: Any, run: Any) -> None:
        super().__init__(config, run)
        self.settings = tiger_settings(config.tiger)
        self._tiger_collator = TigerCollator()

    def _max_items(self, table: SIDTable) -> int:
        return max_items_for(self.settings, table.n_levels, self.t.max_length)

    def load_model(self, table: SIDTable) -> tuple[Any, Any, SIDTokens]:
        sid_tokens = tiger_sid_tokens(table)
        seed = self.t.seed if self.settings.init_seed is None else self.settings.init_seed
        model = build_t5(self.settings, sid_tokens, seed=seed)
        return model.to(self.device), None, sid_tokens

    def build_corpus(self, dataset: Dataset, table: SIDTable) -> SFTCorpus:
        _, ids = sid_maps(table, self.sid_tokens)
        return build_tiger_corpus(dataset.split("train"), ids, self._max_items(table), self.config.data.tasks)

    def collate(self, batch: list[TokenizedExample]) -> dict[str, torch.Tensor]:
        return self._tiger_collator(batch)  # type: ignore[arg-type]

    def lm_loss(self, model: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean cross-entropy over the label tokens (target SID + <eos>)."""
        return model(**batch).loss

    def make_recommender(self) -> TigerRecommender:
        model = self.accelerator.unwrap_model(self.model)
        settings = self.settings.model_copy(update={"max_history": self._max_items(self.table)})
        return TigerRecommender(model, self.table, self.sid_tokens, settings)

    def validation_examples(self) -> list[TokenizedExample]:
        """The fixed validation sample as encoder inputs with the target SID (+ <eos>) as labels."""
        frame = self.valid_sample
        _, ids = sid_maps(self.table, self.sid_tokens)
        histories = [[str(i) for i in h] for h in frame["history"]]
        inputs = encode_histories(histories, ids, self._max_items(self.table))
        return [TigerExample("seqrec", inp, len(inp), labels=ids[str(t)] + [EOS_ID])
                for inp, t in zip(inputs, frame["target"], strict=True)]

    def label_tokens(self, batch: dict[str, torch.Tensor]) -> int:
        """Label tokens (SID tokens + <eos>; a seq2seq loss has no shift)."""
        return int((batch["labels"] != IGNORE_INDEX).sum())
