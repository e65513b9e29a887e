"""The offline statistical teacher: class-based TF-IDF of each token's cluster against its level.

    semantics = tfidf_semantics(dataset, table)              # list[TokenSemantics], one per used token
    semantics, failures = tfidf_extract(dataset, table, n_keywords=20, levels=[0, 1])

Every item's text is its title, description, brand and categories. One CountVectorizer (English
stop words removed, unigrams and bigrams, pure numbers dropped, terms in at least 2 items once
there are 50 or more items) gives the item × term count matrix X. For each level, the clusters'
term counts are one sparse product C = onehotᵀ · X, and c-TF-IDF (as in BERTopic) weighs them:

    W[c, t] = C[c, t] / Σ_t C[c, t]  ·  log(1 + A / Σ_c C[c, t])      A = mean number of words per cluster

so a term scores high for a token when its items use it a lot and the other clusters of the same
level do not. A token's keywords are its top-weighted terms (ties broken alphabetically; a
unigram that is part of a chosen bigram is dropped when enough other terms remain). Its
representative titles are those of its items whose text holds the most keyword weight, and the
description is a template:

    Items under <b_17> (312 items) are mostly about drill, cordless and battery; typical items:
    "…", "…" and "…".

No Python loop runs over items × terms: 100k items take seconds (mostly the vectorizer).
A token whose items have no usable text at all gets no semantics and is reported in `failures`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from sidrec.semantics.clusters import semantic_levels
from sidrec.semantics.format import TokenSemantics
from sidrec.sids.table import SIDTable, token

# Tokens of two or more word characters holding at least one letter: "12v" stays, "2024" goes.
TOKEN_PATTERN = r"(?u)\b(?=\w*[^\W\d_])\w\w+\b"
MIN_DF_ITEMS = 50  # below this many items every term counts (min_df = 1)
TITLE_CHARS = 80


def _text(value: Any) -> str:
    """A cell as text: lists / arrays (categories) joined with commas, missing values empty."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(str(v) for v in value if v is not None and str(v).strip())
    if isinstance(value, float) and np.isnan(value):
        return ""
    return str(value)


def item_texts(items: pd.DataFrame, item_ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """(texts, titles) in `item_ids` order: text = title. description. brand. categories (those present)."""
    frame = items.drop_duplicates("item_id")
    frame = frame.set_axis(frame["item_id"].astype(str), axis=0).reindex([str(i) for i in item_ids])
    columns = [c for c in ("title", "description", "brand", "categories") if c in frame.columns]
    parts = [[_text(v).strip() for v in frame[c].tolist()] for c in columns]
    texts = [". ".join(p for p in row if p) for row in zip(*parts, strict=True)] if parts else [""] * len(frame)
    titles = parts[columns.index("title")] if "title" in columns else [""] * len(frame)
    return texts, titles


def _items_frame(dataset: Any) -> pd.DataFrame:
    items = dataset if isinstance(dataset, pd.DataFrame) else dataset.items
    if "item_id" not in items.columns:
        raise ValueError("the items table has no item_id column")
    return items


def _join(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _short(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= TITLE_CHARS else title[:TITLE_CHARS].rsplit(" ", 1)[0].rstrip(" ,;:-") + "…"


def describe(tok: str, n_items: int, keywords: Sequence[str], titles: Sequence[str]) -> str:
    """The templated description of a token from its keywords and representative titles."""
    text = f"Items under {tok} ({n_items} item{'s' if n_items != 1 else ''}) are mostly about {_join(keywords[:5])}"
    if titles:
        label = "typical items" if len(titles) > 1 else "a typical item"
        text += f"; {label}: " + _join([f'"{_short(t)}"' for t in titles])
    return text + "."


def _select(row: sp.csr_matrix, terms: np.ndarray, n_keywords: int) -> tuple[list[int], list[float]]:
    """Top keyword columns of one c-TF-IDF row (weight desc, then term asc), with the unigram rule."""
    data, cols = row.data, row.indices
    keep = data > 0
    data, cols = data[keep], cols[keep]
    if not len(cols):
        return [], []
    m = 3 * n_keywords
    if len(data) > m:  # keep the top m and everything tied with the m-th (exact tie-breaking below)
        cut = np.partition(data, len(data) - m)[len(data) - m]
        data, cols = data[data >= cut], cols[data >= cut]
    # the vectorizer's columns are in alphabetical order, so column order breaks ties by term
    order = np.lexsort((cols, -data))[:m]
    cands = [int(cols[k]) for k in order]
    cands = [c for c in cands if not (" " in terms[c] and len(set(terms[c].split())) == 1)]  # "drill drill"
    top = cands[:n_keywords]
    bigram_words = {w for c in top if " " in terms[c] for w in terms[c].split()}
    filtered = [c for c in cands if " " in terms[c] or terms[c] not in bigram_words]
    chosen = filtered[:n_keywords] if len(filtered) >= n_keywords else top
    weights = dict(zip(cols.tolist(), data.tolist(), strict=True))
    return chosen, [float(weights[c]) for c in chosen]


def tfidf_extract(
    dataset: Any,
    table: SIDTable,
    *,
    n_keywords: int = 20,
    levels: Sequence[int] | None = None,
    n_titles: int = 3,
    min_df: int | None = None,
) -> tuple[list[TokenSemantics], dict[str, str]]:
    """(semantics for every used token of `levels`, token → why it has none) — see the module docstring.

    `dataset` is a sidrec Dataset or its items DataFrame; items are matched to the table by id."""
    from sklearn.feature_extraction.text import CountVectorizer

    levels = semantic_levels(table) if levels is None else list(levels)
    texts, titles = item_texts(_items_frame(dataset), table.item_ids)
    n = len(texts)
    vec = CountVectorizer(stop_words="english", ngram_range=(1, 2), token_pattern=TOKEN_PATTERN,
                          strip_accents="unicode", dtype=np.float32,
                          min_df=min_df if min_df is not None else (2 if n >= MIN_DF_ITEMS else 1))
    try:
        x = vec.fit_transform(texts).tocsr()
        terms = vec.get_feature_names_out().astype(object)
    except ValueError:  # empty vocabulary: no item has usable text
        x, terms = sp.csr_matrix((n, 0), dtype=np.float32), np.array([], dtype=object)
    present = x.copy()
    present.data[:] = 1.0
    out: list[TokenSemantics] = []
    failures: dict[str, str] = {}
    for lvl in levels:
        values, inv = np.unique(table.codes[:, lvl], return_inverse=True)
        k = len(values)
        onehot = sp.csr_matrix((np.ones(n, dtype=np.float32), (inv, np.arange(n))), shape=(k, n))
        counts = (onehot @ x).tocsr()  # clusters × terms
        words = np.asarray(counts.sum(axis=1)).ravel()
        freq = np.asarray(counts.sum(axis=0)).ravel()
        avg = float(words.sum()) / max(k, 1)
        idf = np.log1p(avg / np.maximum(freq, 1e-12)).astype(np.float32)
        tf = sp.diags(1.0 / np.maximum(words, 1e-12)).astype(np.float32) @ counts
        weights = (tf @ sp.diags(idf)).tocsr()
        rows, cols, vals = [], [], []
        chosen: list[list[int]] = []
        for c in range(k):
            picked, w = _select(weights.getrow(c), terms, n_keywords)
            chosen.append(picked)
            rows += [c] * len(picked)
            cols += picked
            vals += w
        kw = sp.csr_matrix((np.asarray(vals, dtype=np.float32), (rows, cols)), shape=(k, len(terms)))
        scores = np.asarray(present.multiply(kw[inv]).sum(axis=1)).ravel()  # keyword weight in each item's text
        order = np.lexsort((np.arange(n), -scores, inv))
        bounds = np.searchsorted(inv[order], np.arange(k + 1))
        sizes = np.bincount(inv, minlength=k)
        for c in range(k):
            tok = token(table.prefixes[lvl], int(values[c]))
            if not chosen[c]:
                failures[tok] = f"none of its {int(sizes[c])} items has text with usable terms"
                continue
            reps: list[str] = []
            for i in order[bounds[c]:bounds[c + 1]]:
                t = " ".join(titles[i].split())
                if t and t not in reps and scores[i] > 0:
                    reps.append(t)
                    if len(reps) == n_titles:
                        break
            keywords = [str(terms[j]) for j in chosen[c]]
            out.append(TokenSemantics(token=tok, description=describe(tok, int(sizes[c]), keywords, reps),
                                      keywords=keywords))
    return out, failures


def tfidf_semantics(
    dataset: Any,
    table: SIDTable,
    *,
    n_keywords: int = 20,
    levels: Sequence[int] | None = None,
    n_titles: int = 3,
) -> list[TokenSemantics]:
    """Semantics for every used token of `levels` (default: all but the de-duplication level)."""
    return tfidf_extract(dataset, table, n_keywords=n_keywords, levels=levels, n_titles=n_titles)[0]


class TfidfTeacher:
    """The c-TF-IDF teacher in the shape `extract_semantics` expects (all tokens at once, no cache)."""

    name = "tfidf"

    def __init__(self, n_keywords: int = 20, n_titles: int = 3) -> None:
        self.n_keywords = n_keywords
        self.n_titles = n_titles

    def identity(self) -> dict[str, Any]:
        return {"teacher": self.name, "n_keywords": self.n_keywords, "n_titles": self.n_titles}

    def extract(self, dataset: Any, table: SIDTable, levels: Sequence[int] | None = None
                ) -> tuple[list[TokenSemantics], dict[str, str], float]:
        """(semantics, failures, seconds)."""
        t0 = time.perf_counter()
        sem, failures = tfidf_extract(dataset, table, n_keywords=self.n_keywords, levels=levels,
                                      n_titles=self.n_titles)
        return sem, failures, time.perf_counter() - t0
