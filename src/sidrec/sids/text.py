"""Item text for the encoder: a format-string template over the items table, empty parts dropped.

The default template is

    "{title}. {description} Brand: {brand}. Categories: {categories}."

Each field owns the punctuation right after it (up to the first space) and the label before it, so
an item without a description reads "Title. Brand: X. Categories: a, b." and an item with only a
title reads "Title.". List columns (categories) are joined with ", ". Any items.parquet column can
be named in a custom template (e.g. "{title} ({release_year})").

Items whose template renders to nothing are an error (`DataError` naming items.parquet, the row and
the item_id) unless `on_empty` asks for an explicit fallback, which is counted and reported.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from sidrec.errors import ConfigError, DataError

DEFAULT_TEMPLATE = "{title}. {description} Brand: {brand}. Categories: {categories}."
OnEmpty = Literal["error", "title_fallback", "id_fallback"]


@dataclass(frozen=True)
class _Segment:
    """One field of a template with the literal text it owns: prefix + value + suffix."""

    prefix: str
    field: str
    suffix: str


@dataclass
class ItemTexts:
    """The rendered texts (one per item, in items.parquet order) and the fallbacks that were used."""

    texts: list[str]
    template: str
    on_empty: str
    fallback_rows: list[int] = field(default_factory=list)  # 0-based rows that used the fallback

    @property
    def n_fallback(self) -> int:
        return len(self.fallback_rows)

    def summary(self) -> dict[str, Any]:
        """What the embedding sidecar and report record about the texts."""
        return {"template": self.template, "on_empty": self.on_empty, "n_items": len(self.texts),
                "n_fallback": self.n_fallback}


def parse_template(template: str) -> tuple[list[_Segment], str]:
    """Split a format string into segments; returns (segments, leading text)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as e:
        raise ConfigError(f"invalid text template {template!r}: {e}") from e
    literals = [lit for lit, _, _, _ in parsed]
    fields = [f for _, f, _, _ in parsed]
    names = [f for f in fields if f is not None]
    if not names:
        raise ConfigError(f"text template {template!r} names no column: use e.g. '{{title}}. {{description}}'")
    for _, f, spec, conv in parsed:
        if f is not None and (spec or conv):
            raise ConfigError(f"text template field '{{{f}}}' may not use a format spec or conversion")
        if f is not None and not f.isidentifier():
            raise ConfigError(f"text template field '{{{f}}}' must be a plain column name")
    # literal i sits before field i (if any); split each inner literal at its first whitespace:
    # the part before belongs to the previous field (its punctuation), the rest to the next (its label)
    lead = literals[0]
    segments: list[_Segment] = []
    field_positions = [i for i, f in enumerate(fields) if f is not None]
    for k, i in enumerate(field_positions):
        # the first literal is leading text (kept only when something follows it)
        prefix = "" if k == 0 else _split_literal(literals[i])[1]
        if k + 1 < len(field_positions):
            suffix, _ = _split_literal(literals[field_positions[k + 1]])
        else:
            suffix = "".join(literals[i + 1:])
        segments.append(_Segment(prefix=prefix, field=str(fields[i]), suffix=suffix))
    return segments, lead


def _split_literal(text: str) -> tuple[str, str]:
    """'. Categories: ' → ('.', ' Categories: '); ' Brand: ' → ('', ' Brand: ')."""
    for j, ch in enumerate(text):
        if ch.isspace():
            return text[:j], text[j:]
    return text, ""


def template_fields(template: str) -> list[str]:
    """The column names a template uses."""
    segments, _ = parse_template(template)
    return [s.field for s in segments]


def value_text(value: Any) -> str:
    """A cell as text: None/NaN → "", lists/arrays joined with ", ", everything stripped."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(str(v).strip() for v in value if v is not None and str(v).strip())
    if isinstance(value, float) and np.isnan(value):
        return ""
    return " ".join(str(value).split())


def render(segments: list[_Segment], lead: str, values: dict[str, str]) -> str:
    """Render one item: segments with an empty value are dropped with their prefix and suffix."""
    parts: list[str] = []
    for seg in segments:
        value = values[seg.field]
        if not value:
            continue
        suffix = seg.suffix
        if suffix[:1] in ".!?" and value[-1:] in ".!?":
            suffix = suffix[1:]  # "Title." + "." → "Title."
        parts.append((seg.prefix if parts else seg.prefix.lstrip()) + value + suffix)
    if not parts:
        return ""
    return " ".join((lead + "".join(parts)).split())


def item_texts(
    items: pd.DataFrame,
    template: str = DEFAULT_TEMPLATE,
    *,
    on_empty: OnEmpty = "error",
    source: str | Path | None = None,
) -> ItemTexts:
    """Render every item's text.

    `source` names the items file in errors (e.g. DATASET/items.parquet). Items whose text is empty
    raise DataError (row is 1-based) unless `on_empty` is "title_fallback" (use the title; still an
    error when the title is empty too) or "id_fallback" (use "item <item_id>"); fallbacks are counted.
    """
    if on_empty not in ("error", "title_fallback", "id_fallback"):
        raise ConfigError(f"on_empty must be error, title_fallback or id_fallback, got {on_empty!r}")
    segments, lead = parse_template(template)
    missing = [s.field for s in segments if s.field not in items.columns]
    if missing:
        raise ConfigError(
            f"text template names column(s) {', '.join(repr(m) for m in missing)} that items.parquet does not have; "
            f"available: {', '.join(map(str, items.columns))}"
        )
    columns = {s.field: items[s.field].tolist() for s in segments}
    ids = items["item_id"].astype(str).tolist()
    titles = items["title"].tolist() if "title" in items.columns else [""] * len(ids)
    where = source if source is not None else "items.parquet"
    texts: list[str] = []
    empty_rows: list[int] = []
    fallback_rows: list[int] = []
    for row in range(len(ids)):
        text = render(segments, lead, {f: value_text(col[row]) for f, col in columns.items()})
        if not text:
            if on_empty == "title_fallback":
                text = value_text(titles[row])
            elif on_empty == "id_fallback":
                text = f"item {ids[row]}"
            if text:
                fallback_rows.append(row)
            else:
                empty_rows.append(row)
        texts.append(text)
    if empty_rows:
        row = empty_rows[0]
        how = {"error": "its template text is empty",
               "title_fallback": "its template text and its title are empty"}.get(on_empty, "its text is empty")
        raise DataError(
            f"item '{ids[row]}' has no usable text: {how} ({len(empty_rows)} of {len(ids)} items are like this)",
            path=where,
            line=row + 1,
            field="item_id",
            hint="fill in titles/descriptions, change --template, or choose an explicit, counted fallback: "
            "--on-empty title_fallback | id_fallback (on_empty=… in EmbedConfig)",
        )
    return ItemTexts(texts=texts, template=template, on_empty=on_empty, fallback_rows=fallback_rows)
