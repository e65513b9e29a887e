"""`SIDTable`: every item's semantic ID, its token vocabulary, and the sids.json artifact.

Codes are integers [n_items, n_levels]; level l's tokens are `<{prefix_l}_{code}>` with prefixes
"a", "b", "c", "d", … by default. sids.json:

    {"format": "sidrec.sids/1", "method": "rqkmeans", "levels": 4, "codebook_sizes": [256, 256, 256, 3],
     "prefixes": ["a", "b", "c", "d"], "dedup_level": true, "config": {...}, "embedding": {...},
     "diagnostics": {...}, "vocab": [["<a_0>", …], …], "items": {"item_id": ["<a_12>", …], …}}

The vocabulary of a level is every code of its codebook (0 … size−1), used or not; `items` keeps
the dataset's item order.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sidrec.errors import DataError
from sidrec.sids.dedupe import add_dedup_level, tuple_ids
from sidrec.utils.io import read_json, write_json

FORMAT = "sidrec.sids/1"
TOKEN_RE = re.compile(r"^<([A-Za-z]+)_(\d+)>$")
DEFAULT_PREFIXES = tuple(string.ascii_lowercase)


def token(prefix: str, code: int) -> str:
    return f"<{prefix}_{int(code)}>"


def parse_token(text: str) -> tuple[str, int]:
    """'<b_17>' → ('b', 17); ValueError otherwise."""
    m = TOKEN_RE.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not a SID token like '<a_12>'")
    return m.group(1), int(m.group(2))


class SIDTable:
    """Item ids, their integer codes per level, the codebook sizes and token prefixes, plus provenance."""

    def __init__(
        self,
        item_ids: Sequence[str],
        codes: np.ndarray,
        *,
        codebook_sizes: Sequence[int] | None = None,
        prefixes: Sequence[str] | None = None,
        method: str = "unknown",
        dedup_level: bool = False,
        config: Mapping[str, Any] | None = None,
        embedding: Mapping[str, Any] | None = None,
        diagnostics: Mapping[str, Any] | None = None,
    ) -> None:
        codes = np.asarray(codes)
        if codes.ndim != 2:
            raise DataError(f"codes must be a 2-d array [n_items, levels], got shape {codes.shape}")
        if not np.issubdtype(codes.dtype, np.integer):
            raise DataError(f"codes must be integers, got {codes.dtype}")
        self.item_ids = [str(i) for i in item_ids]
        if len(self.item_ids) != len(codes):
            raise DataError(f"{len(self.item_ids)} item ids for {len(codes)} rows of codes")
        if len(set(self.item_ids)) != len(self.item_ids):
            dup = next(i for i in self.item_ids if self.item_ids.count(i) > 1)
            raise DataError(f"item id '{dup}' appears twice in the SID table")
        self.codes = codes.astype(np.int64, copy=False)
        n_levels = self.codes.shape[1]
        if n_levels == 0:
            raise DataError("a SID needs at least one level")
        if (self.codes < 0).any():
            raise DataError("codes must be ≥ 0")
        if prefixes is None:
            if n_levels > len(DEFAULT_PREFIXES):
                raise DataError(f"{n_levels} levels: at most {len(DEFAULT_PREFIXES)} have default prefixes")
            prefixes = DEFAULT_PREFIXES[:n_levels]
        self.prefixes = [str(p) for p in prefixes]
        if len(self.prefixes) != n_levels or len(set(self.prefixes)) != n_levels:
            raise DataError(f"need {n_levels} distinct level prefixes, got {self.prefixes}")
        for p in self.prefixes:
            if not re.fullmatch(r"[A-Za-z]+", p):
                raise DataError(f"level prefix {p!r} must be letters only")
        used = (self.codes.max(axis=0) + 1).tolist() if len(self.codes) else [0] * n_levels
        if codebook_sizes is None:
            codebook_sizes = used
        self.codebook_sizes = [int(k) for k in codebook_sizes]
        if len(self.codebook_sizes) != n_levels:
            raise DataError(f"{len(self.codebook_sizes)} codebook sizes for {n_levels} levels")
        for lvl, (k, u) in enumerate(zip(self.codebook_sizes, used, strict=True)):
            if u > k:
                raise DataError(f"level {lvl + 1} uses code {u - 1} but its codebook has only {k} codes")
        self.method = method
        self.dedup_level = bool(dedup_level)
        self.config = dict(config or {})
        self.embedding = dict(embedding or {})
        self.diagnostics = dict(diagnostics or {})
        self._index: dict[str, int] | None = None

    # ------------------------------------------------------------------ views
    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_levels(self) -> int:
        return int(self.codes.shape[1])

    @property
    def base_codes(self) -> np.ndarray:
        """The quantizer's codes, without the de-duplication level."""
        return self.codes[:, :-1] if self.dedup_level else self.codes

    def index_of(self, item_id: str) -> int:
        if self._index is None:
            self._index = {iid: i for i, iid in enumerate(self.item_ids)}
        try:
            return self._index[str(item_id)]
        except KeyError:
            raise DataError(f"item '{item_id}' has no SID in this table") from None

    def tokens(self, item_id: str) -> list[str]:
        """The item's SID as token strings, e.g. ['<a_12>', '<b_201>', '<c_7>']."""
        row = self.codes[self.index_of(item_id)]
        return [token(p, c) for p, c in zip(self.prefixes, row, strict=True)]

    def token_lists(self) -> dict[str, list[str]]:
        """item_id → tokens for every item, in item order."""
        return {iid: [token(p, c) for p, c in zip(self.prefixes, row, strict=True)]
                for iid, row in zip(self.item_ids, self.codes.tolist(), strict=True)}

    def vocab(self) -> list[list[str]]:
        """Per level, every token of its codebook (`<a_0>` … `<a_{K-1}>`)."""
        return [[token(p, c) for c in range(k)] for p, k in zip(self.prefixes, self.codebook_sizes, strict=True)]

    def is_unique(self) -> bool:
        return len(tuple_ids(self.codes)[1]) == self.n_items

    def with_dedup(self, *, force: bool = False) -> SIDTable:
        """A table whose SIDs are unique (extra level when anything collides); self if already unique."""
        if self.dedup_level:
            return self
        codes, n_colliding = add_dedup_level(self.codes, force=force)
        if codes.shape[1] == self.n_levels:
            return self
        prefix = next_prefix(self.prefixes)
        diagnostics = {**self.diagnostics, "colliding_items": n_colliding}
        return SIDTable(self.item_ids, codes, codebook_sizes=[*self.codebook_sizes, int(codes[:, -1].max()) + 1],
                        prefixes=[*self.prefixes, prefix], method=self.method, dedup_level=True, config=self.config,
                        embedding=self.embedding, diagnostics=diagnostics)

    # ------------------------------------------------------------------ I/O
    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "method": self.method,
            "levels": self.n_levels,
            "codebook_sizes": self.codebook_sizes,
            "prefixes": self.prefixes,
            "dedup_level": self.dedup_level,
            "config": self.config,
            "embedding": self.embedding,
            "diagnostics": self.diagnostics,
            "vocab": self.vocab(),
            "items": self.token_lists(),
        }

    def save(self, path: str | Path) -> Path:
        """Write sids.json atomically; `path` is a .json file or a folder (→ folder/sids.json)."""
        path = Path(path)
        if path.suffix != ".json":
            path = path / "sids.json"
        write_json(path, self.to_json())
        return path

    @classmethod
    def load(cls, path: str | Path) -> SIDTable:
        """Read a sids.json (or a folder holding one), checking every field."""
        path = Path(path)
        if path.is_dir():
            path = path / "sids.json"
        if not path.exists():
            raise DataError("SID file not found", path=path, hint="build one with `sidrec sids build`")
        try:
            data = read_json(path)
        except ValueError as e:
            raise DataError(f"invalid json: {e}", path=path) from e
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            got = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise DataError(f"not a sidrec SID file (format {got!r}, expected {FORMAT!r})", path=path, field="format",
                            hint="import LC-Rec / MiniOneRec index.json files with `sidrec sids build --import`")
        for key in ("items", "codebook_sizes", "prefixes"):
            if key not in data:
                raise DataError("missing key", path=path, field=key)
        table = cls.from_external(data["items"], source=path, prefixes=data["prefixes"],
                                  codebook_sizes=data["codebook_sizes"])
        table.method = str(data.get("method", "unknown"))
        table.dedup_level = bool(data.get("dedup_level", False))
        table.config = dict(data.get("config") or {})
        table.embedding = dict(data.get("embedding") or {})
        table.diagnostics = dict(data.get("diagnostics") or {})
        if data.get("levels") not in (None, table.n_levels):
            raise DataError(f"'levels' is {data['levels']} but the SIDs have {table.n_levels} tokens", path=path,
                            field="levels")
        vocab = data.get("vocab")
        if vocab is not None and vocab != table.vocab():
            raise DataError("'vocab' does not match codebook_sizes and prefixes", path=path, field="vocab")
        return table

    @classmethod
    def from_external(
        cls,
        sids: Mapping[str, Sequence[str]],
        *,
        source: str | Path | None = None,
        prefixes: Sequence[str] | None = None,
        codebook_sizes: Sequence[int] | None = None,
        method: str = "external",
        item_order: Sequence[str] | None = None,
    ) -> SIDTable:
        """Parse `{item_id: ['<a_12>', '<b_3>', …]}`: every SID must have the same length and each
        level one prefix. Errors name `source` and the item. `item_order` fixes the row order."""
        where = str(source) if source is not None else "SID table"
        if not isinstance(sids, Mapping) or not sids:
            raise DataError("expected a non-empty object {item_id: [token, ...]}", path=where)
        ids = [str(i) for i in (item_order if item_order is not None else sids.keys())]
        first_id = next(iter(sids))
        ref_len = _sid_len(sids[first_id], where, str(first_id))
        codes = np.empty((len(ids), ref_len), dtype=np.int64)
        found: list[str | None] = list(prefixes) if prefixes is not None else [None] * ref_len
        if len(found) != ref_len:
            raise DataError(f"{len(found)} prefixes for SIDs of {ref_len} tokens", path=where, field="prefixes")
        for row, iid in enumerate(ids):
            if iid not in sids:
                raise DataError(f"item '{iid}' has no SID", path=where, field=iid)
            toks = sids[iid]
            n = _sid_len(toks, where, iid)
            if n != ref_len:
                raise DataError(
                    f"item '{iid}' has a SID of {n} tokens but item '{first_id}' has {ref_len}: all SIDs must have "
                    "the same number of levels", path=where, field=iid)
            for lvl, tok in enumerate(toks):
                try:
                    prefix, code = parse_token(tok)
                except ValueError as e:
                    raise DataError(f"item '{iid}', level {lvl + 1}: {e}", path=where, field=iid) from None
                if found[lvl] is None:
                    found[lvl] = prefix
                elif prefix != found[lvl]:
                    raise DataError(f"item '{iid}', level {lvl + 1}: token {tok} has prefix '{prefix}' but the level "
                                    f"uses '{found[lvl]}'", path=where, field=iid)
                codes[row, lvl] = code
        return cls(ids, codes, codebook_sizes=codebook_sizes, prefixes=[str(p) for p in found], method=method)


def _sid_len(toks: Any, where: str, iid: str) -> int:
    if not isinstance(toks, (list, tuple)) or not toks:
        raise DataError(f"the SID of item '{iid}' must be a non-empty list of tokens, got {toks!r}", path=where,
                        field=iid)
    return len(toks)


def next_prefix(prefixes: Sequence[str]) -> str:
    """The prefix of an added level: the letter after the last one ('c' → 'd'), else the first unused."""
    last = prefixes[-1]
    if len(last) == 1 and last.islower() and last != "z":
        candidate = chr(ord(last) + 1)
        if candidate not in prefixes:
            return candidate
    for p in DEFAULT_PREFIXES:
        if p not in prefixes:
            return p
    raise DataError("no free level prefix for the de-duplication level")
