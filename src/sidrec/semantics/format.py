"""semantics.json: one description and ~20 keywords per SID token (the released TS-Rec format).

    [{"token": "<b_17>", "description": "These items are ...", "keywords": ["drill", "cordless", ...]}, ...]

`load_semantics` checks every entry (errors name the file, the entry and the field) and, given a
SID table, that every token exists in it. `coverage` says how many of the table's used tokens have
semantics, per level.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sidrec.errors import DataError
from sidrec.sids.table import SIDTable, parse_token
from sidrec.utils.io import read_json, write_json


class TokenSemantics(BaseModel):
    """What the items containing one SID token share."""

    model_config = ConfigDict(extra="ignore")

    token: str
    description: str = Field(min_length=1)
    keywords: list[str] = Field(min_length=1)

    @field_validator("token")
    @classmethod
    def _is_sid_token(cls, v: str) -> str:
        parse_token(v)
        return v.strip()

    @field_validator("keywords")
    @classmethod
    def _clean_keywords(cls, v: list[str]) -> list[str]:
        seen: dict[str, None] = {}
        for k in v:
            k = " ".join(str(k).split())
            if k and k.lower() not in {s.lower() for s in seen}:
                seen[k] = None
        if not seen:
            raise ValueError("no non-empty keyword")
        return list(seen)

    @property
    def keyword_text(self) -> str:
        """The keyword string SA-Init tokenizes (keywords joined by spaces)."""
        return " ".join(self.keywords)


def _sort_key(token: str) -> tuple[str, int]:
    prefix, code = parse_token(token)
    return prefix, code


def load_semantics(path: str | Path, table: SIDTable | None = None) -> dict[str, TokenSemantics]:
    """token → semantics from a semantics.json; with `table`, every token must be one of its tokens."""
    from pydantic import ValidationError

    path = Path(path)
    if not path.is_file():
        raise DataError("semantics file not found", path=path,
                        hint="write one with `sidrec semantics extract` or import one with `--import`")
    try:
        data = read_json(path)
    except ValueError as e:
        raise DataError(f"invalid json: {e}", path=path) from None
    if not isinstance(data, list):
        raise DataError('expected a JSON list of {"token", "description", "keywords"} objects', path=path)
    out: dict[str, TokenSemantics] = {}
    for i, entry in enumerate(data):
        try:
            sem = TokenSemantics.model_validate(entry)
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "entry"
            raise DataError(f"entry {i}: {err['msg']}", path=path, field=field,
                            hint="each entry needs a SID token, a non-empty description and keywords") from None
        if sem.token in out:
            raise DataError(f"entry {i}: token {sem.token} appears twice", path=path, field="token")
        out[sem.token] = sem
    if table is not None:
        known = {t for level in table.vocab() for t in level}
        unknown = sorted((t for t in out if t not in known), key=_sort_key)
        if unknown:
            raise DataError(
                f"{len(unknown)} tokens are not SID tokens of this table (e.g. {unknown[:3]}; the table's levels use "
                f"prefixes {table.prefixes})", path=path,
                hint="the semantics must come from the same SIDs; extract them again with `sidrec semantics extract`")
    return out


def save_semantics(path: str | Path, semantics: Iterable[TokenSemantics]) -> Path:
    """Write semantics.json atomically, ordered by level and code."""
    entries = sorted(semantics, key=lambda s: _sort_key(s.token))
    write_json(path, [s.model_dump() for s in entries])
    return Path(path)


@dataclass
class Coverage:
    """How many used SID tokens of each level have semantics."""

    per_level: dict[str, dict[str, Any]]
    missing: list[str]

    @property
    def covered(self) -> int:
        return sum(v["with_semantics"] for v in self.per_level.values())

    @property
    def used(self) -> int:
        return sum(v["used_tokens"] for v in self.per_level.values())

    def to_dict(self) -> dict[str, Any]:
        return {"per_level": self.per_level, "covered": self.covered, "used": self.used,
                "missing": self.missing[:50], "n_missing": len(self.missing)}


def coverage(semantics: dict[str, TokenSemantics], table: SIDTable, *, include_dedup: bool = False) -> Coverage:
    """Per level: tokens used by at least one item, how many have semantics, keyword counts."""
    from sidrec.semantics.clusters import semantic_levels
    from sidrec.sids.table import token

    per_level: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    levels = range(table.n_levels) if include_dedup else semantic_levels(table)
    for lvl in levels:
        prefix = table.prefixes[lvl]
        used = sorted({int(c) for c in table.codes[:, lvl]})
        tokens = [token(prefix, c) for c in used]
        have = [t for t in tokens if t in semantics]
        missing.extend(t for t in tokens if t not in semantics)
        counts = [len(semantics[t].keywords) for t in have]
        per_level[prefix] = {
            "used_tokens": len(tokens),
            "with_semantics": len(have),
            "keywords_mean": round(sum(counts) / len(counts), 1) if counts else 0.0,
            "keywords_min": min(counts) if counts else 0,
        }
    return Coverage(per_level=per_level, missing=missing)
