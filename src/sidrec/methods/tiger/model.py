"""TIGER (Rajput et al., 2023): a small T5 encoder-decoder trained from scratch on SID tokens only.

    config = TigerConfig(dataset="data/beauty", sids="sids/beauty/sids.json",
                         tiger={"d_model": 128, "num_layers": 4})
    metrics = TigerTrainer(config, RunDir("runs/tiger")).train()
    rec = SIDRecommender.load("runs/tiger/model")               # a TigerRecommender
    items, scores = rec.recommend([["B0001", "B0002"]], top_k=10)

The model
---------
There is no text and no pretrained weights. The vocabulary is

    id 0            <pad>   (also T5's decoder start token)
    id 1            <eos>
    id 2 …          one token per (level, code) of the SID table: level 0's codes first
                    (`table.codebook_sizes[0]` ids), then level 1's, …

so the same code at two levels is two different tokens, as in the paper. An example is

    encoder input   SID tokens of the most recent `max_history` history items, oldest first, then <eos>
    decoder labels  the target item's SID tokens, then <eos>

and the loss is T5's cross-entropy over the labels (teacher forcing; decoder input = labels shifted
right behind <pad>). The default size is the paper's: 4 encoder + 4 decoder layers, 6 heads of
64 dimensions, d_model 128, feed-forward 1024, dropout 0.1, ReLU feed-forward, relative position
buckets (T5). The paper's hashed user-id token is not used.

Decoding reuses `sidrec.llm.decoding` unchanged through `Seq2SeqStepper`: the encoder runs once per
history, the decoder starts from <pad> with an `EncoderDecoderCache` (self-attention keys/values
grow one token per step, cross-attention keys/values are computed once), and beam rows are
reordered by indexing the cache, the encoder states and the encoder mask. Items are scored by the
sum of their SID tokens' log-probabilities under the full-vocabulary softmax, exactly as for the
causal LMs, so trie-constrained beam search and the exact ranking behave the same way.

Training reuses `SFTTrainer` (optimiser, schedule, checkpoints, resume, early stopping, final
evaluation): `TigerTrainer` only replaces the model, the corpus (seqrec examples only; the text
tasks of the SFT mixture do not apply), the collator, the validation loss and the recommender.
The saved folder is a Hugging Face T5 folder plus `sids.json` and `sidrec.json` (kind "tiger").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sidrec.errors import ConfigError, DataError
from sidrec.llm.backbone import SIDTokens, quiet_transformers
from sidrec.llm.kv_cache import cache_of, with_cache
from sidrec.llm.recommender import SIDRecommender
from sidrec.llm.sft_data import IGNORE_INDEX, SFTCorpus, TokenizedExample
from sidrec.methods.tiger.config import TigerSettings
from sidrec.sids.table import SIDTable

__all__ = [
    "EOS_ID",
    "PAD_ID",
    "Seq2SeqStepper",
    "TigerCollator",
    "TigerExample",
    "TigerRecommender",
    "build_t5",
    "build_tiger_corpus",
    "encode_histories",
    "tiger_sid_tokens",
]

PAD_ID = 0  # padding and T5's decoder start token
EOS_ID = 1  # ends the encoder input and the target SID
N_SPECIAL = 2  # SID tokens start at this id


# ---------------------------------------------------------------------------------------- vocabulary
def tiger_sid_tokens(table: SIDTable) -> SIDTokens:
    """Token ids of the SID tokens in the TIGER vocabulary: level l's codes follow level l-1's, after 2 specials."""
    per_level: list[list[int]] = []
    start = N_SPECIAL
    for size in table.codebook_sizes:
        per_level.append(list(range(start, start + int(size))))
        start += int(size)
    return SIDTokens(per_level=per_level, strings=table.vocab())


def vocab_size(sid_tokens: SIDTokens) -> int:
    """<pad>, <eos> and every SID token."""
    return N_SPECIAL + len(sid_tokens.all_ids)


def build_t5(settings: TigerSettings, sid_tokens: SIDTokens, *, seed: int) -> Any:
    """A randomly initialised `T5ForConditionalGeneration` over the TIGER vocabulary (seeded; global RNG untouched)."""
    from transformers import T5Config, T5ForConditionalGeneration

    config = T5Config(
        vocab_size=vocab_size(sid_tokens),
        d_model=settings.d_model,
        d_kv=settings.d_kv,
        d_ff=settings.d_ff,
        num_layers=settings.num_layers,
        num_decoder_layers=settings.num_decoder_layers,
        num_heads=settings.num_heads,
        dropout_rate=settings.dropout,
        feed_forward_proj=settings.feed_forward_proj,
        relative_attention_num_buckets=settings.relative_attention_num_buckets,
        relative_attention_max_distance=settings.relative_attention_max_distance,
        pad_token_id=PAD_ID,
        eos_token_id=EOS_ID,
        decoder_start_token_id=PAD_ID,
        is_encoder_decoder=True,
        use_cache=True,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with quiet_transformers():
            model = T5ForConditionalGeneration(config)
    return model


def encode_histories(histories: Sequence[Sequence[str]], sid_ids: dict[str, list[int]],
                     max_items: int) -> list[list[int]]:
    """Encoder inputs: the SID tokens of the most recent `max_items` items (oldest first), then <eos>."""
    out: list[list[int]] = []
    for history in histories:
        recent = list(history)[-max_items:] if max_items > 0 else []
        ids = [t for item in recent for t in sid_ids[str(item)]]
        out.append(ids + [EOS_ID])
    return out


def max_items_for(settings: TigerSettings, n_levels: int, max_length: int | None) -> int:
    """History items kept: `max_history`, fewer when the encoder input must fit `max_length` tokens."""
    if max_length is None:
        return settings.max_history
    fit = (max_length - 1) // n_levels
    if fit < 1:
        raise ConfigError(f"training.max_length={max_length} cannot hold one {n_levels}-token SID and <eos>")
    return min(settings.max_history, fit)


def pad_right(seqs: Sequence[Sequence[int]], value: int) -> torch.Tensor:
    """[len(seqs), longest] int64, right-padded with `value`."""
    width = max(1, max(len(s) for s in seqs))
    out = torch.full((len(seqs), width), int(value), dtype=torch.long)
    for row, s in enumerate(seqs):
        if len(s):
            out[row, : len(s)] = torch.tensor(list(s), dtype=torch.long)
    return out


def encoder_batch(inputs: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), right-padded (T5's relative positions make the side irrelevant)."""
    ids = pad_right(inputs, PAD_ID)
    mask = torch.zeros_like(ids)
    for row, s in enumerate(inputs):
        mask[row, : len(s)] = 1
    return ids, mask


# ---------------------------------------------------------------------------------------- data
@dataclass
class TigerExample(TokenizedExample):
    """An encoder input (`input_ids`, all of it "prompt") and its decoder labels (target SID + <eos>)."""

    labels: list[int] = field(default_factory=list)


class TigerCollator:
    """Right-pads encoder inputs with <pad> (attention 0) and labels with -100: `model(**batch).loss` works."""

    def __call__(self, batch: Sequence[TigerExample]) -> dict[str, torch.Tensor]:
        input_ids, attention_mask = encoder_batch([ex.input_ids for ex in batch])
        labels = pad_right([ex.labels for ex in batch], IGNORE_INDEX)
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def build_tiger_corpus(train: Any, sid_ids: dict[str, list[int]], max_items: int,
                       tasks: dict[str, float]) -> SFTCorpus:
    """seqrec examples of a train split (columns history, target); empty histories are skipped and counted."""
    if float(tasks.get("seqrec", 0.0)) <= 0:
        raise ConfigError("data.tasks: TIGER trains on seqrec only; give seqrec a positive weight")
    skipped: dict[str, int] = {}
    for task, w in tasks.items():
        if task != "seqrec" and w > 0:
            skipped[f"{task}: not used by TIGER (SID tokens only, no text)"] = 0
    histories = [[str(i) for i in h] for h in train["history"]]
    targets = train["target"].astype(str).tolist()
    keep = [k for k, h in enumerate(histories) if len(h) > 0]
    if len(keep) < len(histories):
        skipped["seqrec: examples with an empty history"] = len(histories) - len(keep)
    inputs = encode_histories([histories[k] for k in keep], sid_ids, max_items)
    examples: list[TokenizedExample] = [
        TigerExample(task="seqrec", input_ids=inp, n_prompt=len(inp), labels=sid_ids[targets[k]] + [EOS_ID])
        for inp, k in zip(inputs, keep, strict=True)]
    return SFTCorpus(examples=examples, task_index={"seqrec": np.arange(len(examples), dtype=np.int64)},
                     skipped=skipped)


# ---------------------------------------------------------------------------------------- decoding
class Seq2SeqStepper:
    """A `T5ForConditionalGeneration` as a `Stepper`: encode once, then one decoder token per row per step.

    State: (EncoderDecoderCache, encoder hidden states [N, S, D], encoder attention mask [N, S]).
    The cache is updated in place by `step` and `select` (as `CausalLMStepper` does); the exact
    ranking deep-copies the prompt state before selecting from it.
    """

    def __init__(self, model: Any, decoder_start_token_id: int = PAD_ID) -> None:
        self.model = model
        self.start = int(decoder_start_token_id)

    @torch.no_grad()
    def prefill(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, Any]:
        from transformers import DynamicCache, EncoderDecoderCache

        encoder_states = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        start = torch.full((input_ids.shape[0], 1), self.start, dtype=torch.long, device=input_ids.device)
        return self._decode(start, (cache, encoder_states, attention_mask))

    @torch.no_grad()
    def step(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        return self._decode(tokens.reshape(-1, 1), state)

    def _decode(self, tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]:
        cache, encoder_states, mask = state
        out = self.model(encoder_outputs=(encoder_states,), attention_mask=mask, decoder_input_ids=tokens,
                         **with_cache(cache), use_cache=True)
        return out.logits[:, -1, :], (cache_of(out), encoder_states, mask)

    def select(self, state: Any, rows: torch.Tensor) -> Any:
        cache, encoder_states, mask = state
        cache.reorder_cache(rows)
        return cache, encoder_states.index_select(0, rows), mask.index_select(0, rows)


# ---------------------------------------------------------------------------------------- recommender
class TigerRecommender(SIDRecommender):
    """A trained TIGER: the T5, the SID table and the history length; no tokenizer, no prompts."""

    kind = "tiger"

    def __init__(self, model: Any, table: SIDTable, sid_tokens: SIDTokens, settings: TigerSettings,
                 *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(model, table, sid_tokens, extra=extra)
        self.settings = settings

    def encode_histories(self, histories: Sequence[Sequence[str]]) -> list[list[int]]:
        """Encoder token ids of each history (unknown item ids raise DataError)."""
        checked = [self.check_history(h) for h in histories]
        return encode_histories(checked, self.sid_ids, self.settings.max_history)

    def inputs(self, histories: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = encoder_batch(self.encode_histories(histories))
        return ids.to(self.device), mask.to(self.device)

    def stepper(self) -> Seq2SeqStepper:
        return Seq2SeqStepper(self.model, int(self.model.config.decoder_start_token_id))

    def metadata(self) -> dict[str, Any]:
        return {"tiger": self.settings.model_dump(),
                "special_tokens": {"pad": PAD_ID, "eos": EOS_ID, "decoder_start": PAD_ID}}

    @classmethod
    def load_folder(cls, directory: Path, table: SIDTable, meta: dict[str, Any], *,
                    device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> TigerRecommender:
        """Rebuild from a folder written by `save` (`SIDRecommender.load` calls this for kind "tiger")."""
        from transformers import T5ForConditionalGeneration

        meta_path = directory / "sidrec.json"
        if "tiger" not in meta:
            raise DataError("missing the TIGER settings", path=meta_path, field="tiger")
        settings = TigerSettings.model_validate(meta["tiger"])
        sid_tokens = tiger_sid_tokens(table)
        if sid_tokens.per_level != meta.get("sid_token_ids"):
            raise DataError("the SID token ids of sids.json differ from those the model was trained with",
                            path=meta_path, field="sid_token_ids")
        with quiet_transformers():
            model = T5ForConditionalGeneration.from_pretrained(directory, dtype=torch.float32)
        if int(model.config.vocab_size) != vocab_size(sid_tokens):
            raise DataError(f"the model has {model.config.vocab_size} tokens but sids.json needs "
                            f"{vocab_size(sid_tokens)}", path=directory / "config.json", field="vocab_size")
        model = model.to(device).eval()
        return cls(model, table, sid_tokens, settings, extra=meta.get("extra"))
