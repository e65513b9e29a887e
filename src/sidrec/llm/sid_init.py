"""Semantic-anchored rows for new SID tokens (TS-Rec's SA-Init arithmetic, methods.md §4).

Each SID token's input embedding becomes the mean of the pretrained embedding rows of its keyword
string's sub-tokens (keywords joined by spaces, tokenized by the LM's own tokenizer), rescaled to
the mean L2 norm of the pretrained rows; with an untied LM head and `init_output`, the head row gets
the same arithmetic on the head's own rows. Tokens without semantics keep their current rows (and
are counted). The core uses it for `model.sid_init: tfidf` (keywords of the offline tfidf teacher);
TS-Rec (`sidrec.methods.tsrec`) for its SA-Init from any teacher's semantics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from sidrec.errors import ConfigError
from sidrec.semantics.format import TokenSemantics
from sidrec.sids.table import parse_token


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


