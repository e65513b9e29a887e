"""The catalogue a server answers from: item ids, titles and categories, and the lookups requests need.

    cat = Catalogue.from_dataset(dataset, model_item_ids)
    cat.resolve(["B0001", "Blue Lotion"], "history")  # item indices (ids, or exact titles)
    cat.category_mask(["Skin Care"], "categories")    # bool [n_items]
    cat.search("lotion", limit=20)                    # titles that contain the words

Indices are the model's item order. Unknown ids / titles / categories raise `UnknownEntries`
naming them (the server's 422).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from sidrec.errors import DataError


class UnknownEntries(DataError):
    """Request entries that name nothing in the catalogue."""

    def __init__(self, field: str, entries: Sequence[str], what: str) -> None:
        self.field, self.entries = field, list(entries)
        shown = ", ".join(repr(e) for e in self.entries[:10]) + (" …" if len(self.entries) > 10 else "")
        super().__init__(f"{field}: {len(self.entries)} {what} not in this model's catalogue: {shown}")


class Catalogue:
    """Item ids (in the model's order) with optional titles and categories."""

    def __init__(self, item_ids: Sequence[str], titles: Sequence[str] | None = None,
                 categories: Sequence[Sequence[str]] | None = None) -> None:
        self.item_ids = [str(i) for i in item_ids]
        self.index = {iid: i for i, iid in enumerate(self.item_ids)}
        self.titles = [str(t) for t in titles] if titles is not None else [""] * len(self.item_ids)
        cats = [list(map(str, c)) for c in categories] if categories is not None else None
        self.categories = cats if cats is not None and any(cats) else None  # None: no item has a category
        self._by_title: dict[str, int] = {}
        self._by_title_lower: dict[str, int] = {}
        for i, title in enumerate(self.titles):
            t = title.strip()
            if t:
                self._by_title.setdefault(t, i)
                self._by_title_lower.setdefault(t.lower(), i)
        self._lower = [t.lower() for t in self.titles]
        self._category_items: dict[str, np.ndarray] = {}
        if self.categories is not None:
            members: dict[str, list[int]] = {}
            for i, cats in enumerate(self.categories):
                for c in dict.fromkeys(cats):
                    members.setdefault(c, []).append(i)
            self._category_items = {c: np.asarray(v, dtype=np.int64) for c, v in members.items()}

    @classmethod
    def from_dataset(cls, dataset: Any, item_ids: Sequence[str]) -> Catalogue:
        """The model's items with the dataset's titles and categories (the dataset may hold more items)."""
        items = dataset.items.set_index(dataset.items["item_id"].astype(str))
        missing = [i for i in item_ids if i not in items.index]
        if missing:
            raise DataError(f"{dataset.path}: {len(missing)} of the model's items are not in this dataset "
                            f"(e.g. {missing[:3]}); serve the run with the dataset it was trained on")
        rows = items.loc[list(item_ids)]
        titles = rows["title"].fillna("").astype(str).tolist() if "title" in rows else None
        cats = None
        if "categories" in rows:
            cats = [list(c) if isinstance(c, (list, tuple, np.ndarray)) else [] for c in rows["categories"]]
        return cls(item_ids, titles, cats)

    def __len__(self) -> int:
        return len(self.item_ids)

    # ------------------------------------------------------------------ lookups
    def resolve(self, entries: Sequence[str], field: str) -> list[int]:
        """Item indices of item ids or exact titles (exact first, then ignoring case)."""
        out, unknown = [], []
        for e in entries:
            i = self.index.get(e)
            if i is None:
                t = e.strip()
                i = self._by_title.get(t, self._by_title_lower.get(t.lower()))
            if i is None:
                unknown.append(e)
            else:
                out.append(i)
        if unknown:
            raise UnknownEntries(field, unknown, "item(s) (neither an item id nor an exact title)")
        return out

    def category_mask(self, names: Sequence[str], field: str = "categories") -> np.ndarray:
        """bool [n_items]: items with at least one of the categories."""
        if self.categories is None:
            raise DataError(f"{field}: this run's dataset has no item categories, so it cannot filter by category")
        unknown = [c for c in names if c not in self._category_items]
        if unknown:
            raise UnknownEntries(field, unknown, "categor(ies)")
        mask = np.zeros(len(self.item_ids), dtype=bool)
        for c in names:
            mask[self._category_items[c]] = True
        return mask

    def category_counts(self) -> list[tuple[str, int]]:
        """(category, items) most common first."""
        return sorted(((c, len(v)) for c, v in self._category_items.items()), key=lambda x: (-x[1], x[0]))

    def search(self, query: str, limit: int = 20) -> list[int]:
        """Items whose title (or id) contains every word of `query`, shortest titles first."""
        words = query.lower().split()
        if not words:
            return []
        hits = [i for i, t in enumerate(self._lower)
                if all(w in t or w in self.item_ids[i].lower() for w in words)]
        hits.sort(key=lambda i: (len(self.titles[i]), i))
        return hits[:limit]

    def describe(self, i: int) -> dict[str, Any]:
        out: dict[str, Any] = {"item_id": self.item_ids[i], "title": self.titles[i]}
        if self.categories is not None:
            out["categories"] = self.categories[i]
        return out
