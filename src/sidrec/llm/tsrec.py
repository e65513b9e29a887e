"""TS-Rec (arXiv 2602.22632, methods.md §4): give every SID token a meaning the LM can use.

Two parts, each switched on by one config flag (`method: tsrec`):

    tsrec:
      semantics: runs/x/semantics.json     # from `sidrec semantics extract` (or a released file)
      sa_init: {enabled: true, levels: null, init_output: true}
      align: {enabled: true, weight: 1.0}

- **SA-Init** (`sa_init`): after the embeddings are resized, each SID token's input embedding is
  the mean of the pretrained embedding rows of its keyword string's sub-tokens (keywords joined by
  spaces, tokenized by the LM's own tokenizer), rescaled to the mean L2 norm of the pretrained rows.
  With an untied LM head and `init_output`, the head row gets the same arithmetic on the head's own
  rows. Tokens without semantics keep the default initialisation (and are counted).
- **TS-Align** (`align`): two extra SFT tasks per token with semantics, mixed into the task mixture
  with weight `align.weight`: token → description ("what do items containing <b_17> have in
  common?") and description → token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict, Field

from sidrec.errors import ConfigError
from sidrec.llm.sft_data import PromptBuilder, SFTCorpus, TokenizedExample
from sidrec.semantics.format import TokenSemantics
from sidrec.sids.table import parse_token

ALIGN_TASKS = ("token2desc", "desc2token")
ALIGN_TEMPLATES: dict[str, list[str]] = {
    "token2desc": [
        "What do items containing {token} have in common?\nAnswer:",
        "Describe the items whose identifier contains {token}.\nAnswer:",
    ],
    "desc2token": [
        "Which identifier token stands for items like this: {description}\nAnswer:",
        "Items described as follows share one identifier token. {description} Which token is it?\nAnswer:",
    ],
}
ALIGN_COMPACT_TEMPLATES: dict[str, str] = {
    "token2desc": "Token: {token}\nMeaning:",
    "desc2token": "Meaning: {description}\nToken:",
}


class SAInitSettings(BaseModel):
    """Semantic-anchored initialisation of the SID token embeddings."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    levels: list[int | str] | None = Field(
        None, description="SID levels to initialise: 0-based indices or prefixes ('a', 'b'); None: all with semantics")
    init_output: bool = Field(True, description="also the LM-head rows when the head is untied from the embeddings")


class AlignSettings(BaseModel):
    """Token ↔ description alignment tasks mixed into SFT."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    weight: float = Field(1.0, gt=0, description="examples per epoch = weight × tokens with semantics, per task")
    max_description_tokens: int = Field(96, ge=8, description="descriptions are cut to this many tokens")


class TSRecSettings(BaseModel):
    """`tsrec:` in an SFT config (used by `method: tsrec`)."""

    model_config = ConfigDict(extra="forbid")

    semantics: Path | None = Field(None, description="semantics.json: [{token, description, keywords}]")
    sa_init: SAInitSettings = Field(default_factory=SAInitSettings)
    align: AlignSettings = Field(default_factory=AlignSettings)

    @property
    def any_enabled(self) -> bool:
        return self.sa_init.enabled or self.align.enabled


# ---------------------------------------------------------------------------------------- SA-Init
@dataclass
class SAInitReport:
    """What SA-Init wrote: tokens initialised per level, tokens left at the default init, norms."""

    initialised: dict[str, int] = field(default_factory=dict)
    without_semantics: dict[str, int] = field(default_factory=dict)
    target_norm: float = 0.0
    output_rows: bool = False
    tied: bool = True
    mean_keyword_tokens: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"initialised": self.initialised, "without_semantics": self.without_semantics,
                "target_norm": round(self.target_norm, 6), "output_rows": self.output_rows, "tied": self.tied,
                "mean_keyword_tokens": round(self.mean_keyword_tokens, 2)}


def resolve_levels(levels: Sequence[int | str] | None, prefixes: Sequence[str]) -> list[int]:
    """Config levels (indices or prefixes) → 0-based level indices."""
    if levels is None:
        return list(range(len(prefixes)))
    out = []
    for lvl in levels:
        if isinstance(lvl, str) and not lvl.isdigit():
            if lvl not in prefixes:
                raise ConfigError(f"tsrec.sa_init.levels: no SID level has prefix '{lvl}' (levels: {list(prefixes)})")
            out.append(list(prefixes).index(lvl))
        else:
            i = int(lvl)
            if not 0 <= i < len(prefixes):
                raise ConfigError(f"tsrec.sa_init.levels: level {i} does not exist (0 … {len(prefixes) - 1})")
            out.append(i)
    return sorted(set(out))


def _keyword_mean_rows(weight: torch.Tensor, token_ids: list[list[int]], target_norm: torch.Tensor) -> torch.Tensor:
    """[n, d]: the mean of each list's rows of `weight`, rescaled to `target_norm`."""
    rows = []
    for ids in token_ids:
        v = weight[torch.tensor(ids, dtype=torch.long, device=weight.device)].float().mean(0)
        rows.append(v * (target_norm / v.norm().clamp_min(1e-12)))
    return torch.stack(rows)


@torch.no_grad()
def sa_init(model: Any, tokenizer: Any, sid_tokens: Any, semantics: dict[str, TokenSemantics], *,
            levels: Sequence[int] | None = None, init_output: bool = True) -> SAInitReport:
    """Write keyword-mean embeddings into the SID token rows (after resizing, before training / LoRA)."""
    emb = model.get_input_embeddings().weight
    vocab_rows = emb.shape[0]
    sid_ids = set(sid_tokens.all_ids)
    pretrained = torch.ones(vocab_rows, dtype=torch.bool, device=emb.device)
    pretrained[torch.tensor(sorted(sid_ids), dtype=torch.long, device=emb.device)] = False
    head = model.get_output_embeddings()
    head_w = head.weight if head is not None else None
    tied = head_w is None or head_w.data_ptr() == emb.data_ptr()
    report = SAInitReport(tied=tied)
    targets: list[int] = []
    keyword_ids: list[list[int]] = []
    for lvl in (range(len(sid_tokens.per_level)) if levels is None else levels):
        prefix = parse_token(sid_tokens.strings[lvl][0])[0] if sid_tokens.strings[lvl] else str(lvl)
        done = missing = 0
        for tid, text in zip(sid_tokens.per_level[lvl], sid_tokens.strings[lvl], strict=True):
            sem = semantics.get(text)
            if sem is None:
                missing += 1
                continue
            ids = [i for i in tokenizer(sem.keyword_text, add_special_tokens=False)["input_ids"] if i not in sid_ids]
            if not ids:
                missing += 1
                continue
            targets.append(int(tid))
            keyword_ids.append(ids)
            done += 1
        report.initialised[prefix] = done
        report.without_semantics[prefix] = missing
    if not targets:
        return report
    report.mean_keyword_tokens = sum(len(x) for x in keyword_ids) / len(keyword_ids)
    target = torch.tensor(targets, dtype=torch.long, device=emb.device)
    norm = emb[pretrained].float().norm(dim=1).mean()
    report.target_norm = float(norm)
    emb[target] = _keyword_mean_rows(emb, keyword_ids, norm).to(emb.dtype)
    if not tied and init_output and head_w is not None:
        head_norm = head_w[pretrained[: head_w.shape[0]]].float().norm(dim=1).mean()
        head_w[target] = _keyword_mean_rows(head_w, keyword_ids, head_norm).to(head_w.dtype)
        report.output_rows = True
    return report


# ---------------------------------------------------------------------------------------- TS-Align
def align_template(builder: PromptBuilder, task: str, i: int) -> str:
    if builder.cfg.compact:
        return ALIGN_COMPACT_TEMPLATES[task]
    options = ALIGN_TEMPLATES[task]
    return options[i % len(options)]


def align_examples(builder: PromptBuilder, semantics: dict[str, TokenSemantics], tokens: Sequence[str],
                   *, max_description_tokens: int = 96) -> dict[str, list[TokenizedExample]]:
    """token → description and description → token examples for every token with semantics."""
    tok = builder.tokenizer
    have = [t for t in tokens if t in semantics]
    descriptions = [tok.convert_tokens_to_string(tok.tokenize(semantics[t].description)[:max_description_tokens]).strip()
                    for t in have]
    token_ids = {t: tok.convert_tokens_to_ids(t) for t in have}
    out: dict[str, list[TokenizedExample]] = {}
    prompts = builder.encode([builder.wrap(align_template(builder, "token2desc", k).format(token=t))
                              for k, t in enumerate(have)])
    responses = builder.title_response(descriptions)  # " description" + EOS
    out["token2desc"] = [TokenizedExample("token2desc", p + r, len(p)) for p, r in zip(prompts, responses, strict=True)]
    prompts = builder.encode([builder.wrap(align_template(builder, "desc2token", k).format(description=d))
                              for k, d in enumerate(descriptions)])
    out["desc2token"] = [TokenizedExample("desc2token", p + [int(token_ids[t]), builder.eos], len(p))
                         for p, t in zip(prompts, have, strict=True)]
    return out


def add_examples(corpus: SFTCorpus, extra: dict[str, list[TokenizedExample]]) -> SFTCorpus:
    """The corpus with more tasks appended (their indices continue after the existing examples)."""
    import numpy as np

    for task, examples in extra.items():
        if task in corpus.task_index:
            raise ConfigError(f"task {task} is already in the corpus")
        start = len(corpus.examples)
        corpus.examples.extend(examples)
        corpus.task_index[task] = np.arange(start, start + len(examples), dtype=np.int64)
    return corpus
