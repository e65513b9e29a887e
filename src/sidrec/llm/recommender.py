"""A trained generative recommender: model + SIDs + prompt format, saved as one folder.

    rec = GenerativeRecommender.load("runs/sft/model")
    items, scores = rec.recommend([["B0001", "B0002"]], top_k=10)          # item ids, log-probs
    scores = rec.exact_scores([["B0001", "B0002"]])                       # [1, n_items]

The folder is a plain Hugging Face model folder (config, safetensors, tokenizer) plus
`sids.json` (the SID table) and `sidrec.json` (kind, the class that rebuilds it, prompt settings), so
the model loads with `AutoModelForCausalLM.from_pretrained` too. `SIDRecommender` is what every
model family shares (trie, decoding, folder format); `GenerativeRecommender` is the causal LM
prompted with text; other families subclass `SIDRecommender` in their method's folder (TIGER's
T5 over SID tokens only: `sidrec.methods.tiger.model.TigerRecommender`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sidrec.errors import DataError
from sidrec.llm.backbone import (
    SIDTokens,
    add_sid_tokens,
    neutralise_generation_config,
    quiet_transformers,
)
from sidrec.llm.decoding import (
    CausalLMStepper,
    SIDRowsStepper,
    Stepper,
    beam_search,
    exact_item_scores,
)
from sidrec.llm.sft_data import PromptBuilder, SFTDataConfig, left_pad
from sidrec.sids.table import SIDTable
from sidrec.sids.trie import SIDTrie, TokenTrie
from sidrec.utils.io import atomic_dir, read_json, write_json

FORMAT = "sidrec.recommender/1"


def sid_maps(table: SIDTable, sid_tokens: SIDTokens) -> tuple[dict[str, str], dict[str, list[int]]]:
    """item id → SID string and item id → SID token ids."""
    strings: dict[str, str] = {}
    ids: dict[str, list[int]] = {}
    for row, iid in enumerate(table.item_ids):
        codes = table.codes[row]
        strings[iid] = "".join(sid_tokens.strings[lvl][c] for lvl, c in enumerate(codes))
        ids[iid] = [sid_tokens.per_level[lvl][c] for lvl, c in enumerate(codes)]
    return strings, ids


class SIDRecommender:
    """What every generative recommender shares: the model, the SID table and its token trie,
    constrained beam search, exact ranking, and the folder format. A subclass says how histories
    become model inputs (`inputs`), how the model steps (`stepper`), and what its folder holds
    (`save_model_files`, `metadata`, `load_folder`)."""

    kind = "sid"

    def __init__(self, model: Any, table: SIDTable, sid_tokens: SIDTokens, *,
                 extra: dict[str, Any] | None = None) -> None:
        self.model = model
        self.table = table
        self.sid_tokens = sid_tokens
        self.extra = dict(extra or {})
        self.item_ids = list(table.item_ids)
        self.item_index = {iid: i for i, iid in enumerate(self.item_ids)}
        vocab_size = int(model.get_output_embeddings().weight.shape[0])
        trie = SIDTrie.from_codes(table.codes, codebook_sizes=table.codebook_sizes)
        self.token_trie = TokenTrie(trie, sid_tokens.per_level, vocab_size)
        self.sid_strings, self.sid_ids = sid_maps(table, sid_tokens)

    # ------------------------------------------------------------------ what a model family defines
    def inputs(self, histories: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(input ids, attention mask) of the histories on the model's device."""
        raise NotImplementedError

    def stepper(self) -> Stepper:
        raise NotImplementedError

    @property
    def normalize(self) -> Any:
        """How SID token scores are normalised: "full" vocabulary or "level" (SID rows of each level)."""
        return "full"

    def decoding(self) -> tuple[Stepper, TokenTrie]:
        """The stepper and token trie decoding uses."""
        return self.stepper(), self.token_trie

    # ------------------------------------------------------------------ inference
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device: torch.device | str) -> SIDRecommender:
        self.model.to(device)
        self.token_trie = self.token_trie.to(device)
        return self

    def check_history(self, history: Sequence[str], where: str = "history") -> list[str]:
        unknown = [i for i in history if i not in self.item_index]
        if unknown:
            raise DataError(f"{where}: item id(s) {unknown[:5]} are not in this model's catalogue "
                            f"({len(self.item_ids)} items)")
        return [str(i) for i in history]

    @torch.no_grad()
    def recommend_indices(self, histories: Sequence[Sequence[str]], *, top_k: int = 10, num_beams: int = 20,
                          allowed: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(item indices [B, top_k], scores [B, top_k]) by constrained beam search; `allowed` (bool
        [B, n_items]) restricts each history's answer to those items inside decoding."""
        was_training = self.model.training
        self.model.eval()
        try:
            ids, mask = self.inputs(histories)
            stepper, trie = self.decoding()
            if allowed is not None:
                allowed = allowed.to(ids.device)
            return beam_search(stepper, trie, ids, mask, num_beams=max(num_beams, top_k), top_k=top_k,
                               normalize=self.normalize, allowed=allowed)
        finally:
            self.model.train(was_training)

    def recommend(self, histories: Sequence[Sequence[str]], *, top_k: int = 10,
                  num_beams: int = 20) -> tuple[list[list[str]], np.ndarray]:
        items, scores = self.recommend_indices(histories, top_k=top_k, num_beams=num_beams)
        out = [[self.item_ids[i] for i in row if i >= 0] for row in items.tolist()]
        return out, scores.float().cpu().numpy()

    @torch.no_grad()
    def exact_scores(self, histories: Sequence[Sequence[str]], *, node_chunk: int = 256,
                     allowed: torch.Tensor | None = None) -> torch.Tensor:
        """log p(SID | history) of every item [B, n_items]; -inf where `allowed` (bool [B, n_items]) is False."""
        was_training = self.model.training
        self.model.eval()
        try:
            ids, mask = self.inputs(histories)
            stepper, trie = self.decoding()
            scores = exact_item_scores(stepper, trie, ids, mask, node_chunk=node_chunk, normalize=self.normalize)
            return scores if allowed is None else scores.masked_fill(~allowed.to(scores.device), float("-inf"))
        finally:
            self.model.train(was_training)

    # ------------------------------------------------------------------ I/O
    def save_model_files(self, folder: Path) -> None:
        """The model's own files (weights, config, tokenizer)."""
        with quiet_transformers():
            self.model.save_pretrained(folder)

    def metadata(self) -> dict[str, Any]:
        """What sidrec.json records beyond format, kind, loader, SID token ids and extra."""
        return {}

    def save(self, directory: str | Path) -> Path:
        """Write the folder atomically (a temporary sibling renamed into place): the model's files,
        sids.json and sidrec.json, which names the class that rebuilds it."""
        with atomic_dir(directory) as tmp:
            self.save_model_files(tmp)
            (tmp / "generation_config.json").unlink(missing_ok=True)
            self.table.save(tmp / "sids.json")
            write_json(tmp / "sidrec.json", {
                "format": FORMAT, "kind": self.kind, "loader": f"{type(self).__module__}:{type(self).__qualname__}",
                **self.metadata(), "sid_token_ids": self.sid_tokens.per_level, "extra": self.extra})
        return Path(directory)

    @classmethod
    def load_folder(cls, directory: Path, table: SIDTable, meta: dict[str, Any], *,
                    device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> SIDRecommender:
        raise NotImplementedError

    @classmethod
    def load(cls, directory: str | Path, *, device: str | torch.device = "cpu",
             dtype: torch.dtype | None = None) -> Any:
        """Any sidrec model folder: the class its sidrec.json names rebuilds it."""
        directory = Path(directory)
        meta_path = directory / "sidrec.json"
        if not meta_path.is_file():
            raise DataError(f"{directory} is not a sidrec model folder (no sidrec.json); "
                            "pass a run folder or its model/ subfolder")
        meta = read_json(meta_path)
        if meta.get("format") != FORMAT:
            raise DataError("unsupported model format", path=meta_path, field="format",
                            hint=f"expected {FORMAT}")
        table = SIDTable.load(directory / "sids.json")
        loader = GenerativeRecommender if meta.get("kind", "causal_lm") == "causal_lm" else _loader(meta, meta_path)
        return loader.load_folder(directory, table, meta, device=device, dtype=dtype)


class GenerativeRecommender(SIDRecommender):
    """A causal LM prompted with text: model, tokenizer, SIDs and the prompt format (`data`)."""

    kind = "causal_lm"

    def __init__(self, model: Any, tokenizer: Any, table: SIDTable, sid_tokens: SIDTokens,
                 data_cfg: SFTDataConfig, *, extra: dict[str, Any] | None = None) -> None:
        super().__init__(model, table, sid_tokens, extra=extra)
        self.tokenizer = tokenizer
        self.data_cfg = data_cfg
        self.prompts = PromptBuilder(tokenizer, self.sid_strings, self.sid_ids, data_cfg)

    @property
    def normalize(self) -> Any:
        return self.data_cfg.sid_softmax

    def encode_prompts(self, histories: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.prompts.seqrec_prompts(histories)
        return left_pad(ids, self.tokenizer.pad_token_id)

    def inputs(self, histories: Sequence[Sequence[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        ids, mask = self.encode_prompts(histories)
        return ids.to(self.device), mask.to(self.device)

    def stepper(self) -> Stepper:
        return CausalLMStepper(self.model)

    def decoding(self) -> tuple[Stepper, TokenTrie]:
        """Level-normalised models score the SID tokens only (`SIDRowsStepper`, a trie over those
        columns); full-softmax ones the whole vocabulary."""
        if self.normalize != "level":
            return self.stepper(), self.token_trie
        from sidrec.llm.sid_head import head_rows

        flat = [t for lvl in self.sid_tokens.per_level for t in lvl]
        ids = torch.tensor(flat, dtype=torch.long, device=self.device)
        with torch.no_grad():
            rows, bias = head_rows(self.model, ids)
        column = {t: j for j, t in enumerate(flat)}
        trie = TokenTrie(self.token_trie.trie, [[column[t] for t in lvl] for lvl in self.sid_tokens.per_level],
                         len(flat))
        return SIDRowsStepper(self.model, ids, rows.detach(), None if bias is None else bias.detach()), trie

    def save_model_files(self, folder: Path) -> None:
        model = self.model
        if hasattr(model, "merge_and_unload"):  # peft: save a plain merged model
            import copy

            model = copy.deepcopy(model).merge_and_unload()
        with quiet_transformers():
            model.save_pretrained(folder)
            self.tokenizer.save_pretrained(folder)

    def metadata(self) -> dict[str, Any]:
        return {"data": self.data_cfg.model_dump()}

    @classmethod
    def load_folder(cls, directory: Path, table: SIDTable, meta: dict[str, Any], *,
                    device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> GenerativeRecommender:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        meta_path = directory / "sidrec.json"
        with quiet_transformers():
            tokenizer = AutoTokenizer.from_pretrained(directory)
            model = AutoModelForCausalLM.from_pretrained(directory, dtype=dtype or torch.float32).to(device).eval()
        sid_tokens = add_sid_tokens(tokenizer, table.vocab())
        if sid_tokens.per_level != meta["sid_token_ids"]:
            raise DataError("the tokenizer's SID token ids differ from those the model was trained with",
                            path=meta_path, field="sid_token_ids")
        neutralise_generation_config(model, tokenizer)
        data = {"format": "prompt", "sid_softmax": "full", **meta["data"]}  # folders saved before these settings
        return cls(model, tokenizer, table, sid_tokens, SFTDataConfig(**data), extra=meta.get("extra"))


# model folders written before sidrec.json recorded its loader
_LEGACY_LOADERS = {"tiger": "sidrec.methods.tiger.model:TigerRecommender"}
# loaders recorded before the methods moved to sidrec.methods (issue 18)
_MOVED_MODULES = {"sidrec.llm.tiger": "sidrec.methods.tiger.model"}


def _loader(meta: dict[str, Any], meta_path: Path) -> Any:
    """The recommender class named by sidrec.json's "loader" (`module:Class`, inside sidrec only, so
    that a model folder can never make sidrec import foreign code)."""
    import importlib

    spec = meta.get("loader") or _LEGACY_LOADERS.get(str(meta.get("kind")))
    if not isinstance(spec, str) or ":" not in spec or not spec.startswith("sidrec."):
        raise DataError(f"unknown model kind {meta.get('kind')!r}", path=meta_path, field="kind",
                        hint="this folder was written by another version of sidrec")
    module, _, name = spec.partition(":")
    module = _MOVED_MODULES.get(module, module)
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        raise DataError(f"model kind {meta.get('kind')!r}: {spec} is not in this version of sidrec", path=meta_path,
                        field="loader") from None
    if not (isinstance(cls, type) and issubclass(cls, SIDRecommender)):
        raise DataError(f"{spec} is not a recommender class", path=meta_path, field="loader")
    return cls


def resolve_model_dir(run_or_model: str | Path) -> Path:
    """A run folder (its model/) or a model folder."""
    p = Path(run_or_model)
    if (p / "sidrec.json").is_file():
        return p
    if (p / "model" / "sidrec.json").is_file():
        return p / "model"
    kind = _classic_kind(p)
    if kind is not None:
        raise DataError(f"{p} is a {kind} run, not a generative one: give a run of sft, tsrec, ilrec, dpo, sdpo, grpo or "
                        f"tiger (a {kind} run is evaluated with `sidrec eval --run {p}`)")
    if not p.exists():
        raise DataError(f"{p}: no such run folder")
    raise DataError(f"{p} has no trained model (looked for sidrec.json and model/sidrec.json); "
                    "is the run finished? `sidrec train sft --resume` continues an interrupted one")


def _classic_kind(p: Path) -> str | None:
    """"popularity" / "sasrec" / "gru4rec" when `p` is a classic run folder, else None."""
    import json

    try:
        metrics = json.loads((p / "metrics.json").read_text(encoding="utf-8")) if (p / "metrics.json").is_file() else {}
        if metrics.get("model") in ("pop", "popularity"):
            return "popularity"
        config = (p / "config.yaml").read_text(encoding="utf-8") if (p / "config.yaml").is_file() else ""
    except (OSError, ValueError):
        return None
    for name in ("sasrec", "gru4rec"):
        if f"model: {name}" in config:
            return name
    return None
