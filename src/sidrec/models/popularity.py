"""Most-popular baseline: every history gets the same scores, the items' training counts.

What is counted (`PopularityModel.fit`): each interaction of the training period once, i.e.
every train-split target, plus the history items of each user's first train example (the
items before that user's first train target). Counting every history occurrence instead would
weight an item by how many later examples it stays in the window of, which is not popularity.
Ties are broken by item index in `ranks_from_scores` (lower index first), so items never seen
in training get no free hits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sidrec.models.base import SequentialRecommender, register_model

if TYPE_CHECKING:
    from sidrec.data.dataset import Dataset


def popularity_counts(dataset: Dataset, split: str = "train") -> np.ndarray:
    """Interaction counts per item index (float64 [n_items]) over the given split (see module doc)."""
    df = dataset.split(split)
    index = dataset.item_index
    counts = np.zeros(dataset.n_items, dtype=np.float64)
    targets = np.fromiter((index[t] for t in df["target"]), dtype=np.int64, count=len(df))
    np.add.at(counts, targets, 1.0)
    first = df.drop_duplicates("user_id", keep="first")
    hist = [index[i] for h in first["history"] for i in h]
    if hist:
        np.add.at(counts, np.asarray(hist, dtype=np.int64), 1.0)
    return counts


@register_model
class PopularityModel(SequentialRecommender):
    """Scores = training interaction counts, the same for every history."""

    kind = "popularity"

    def __init__(self, n_items: int) -> None:
        super().__init__(n_items)
        self.register_buffer("counts", torch.zeros(n_items, dtype=torch.float32))

    @classmethod
    def fit(cls, dataset: Dataset, split: str = "train") -> PopularityModel:
        """Count the items of `dataset`'s training split; the model keeps the dataset's item ids."""
        model = cls(dataset.n_items)
        model.counts.copy_(torch.from_numpy(popularity_counts(dataset, split)).float())
        model.set_item_ids(dataset.item_ids)
        return model

    def hparams(self) -> dict[str, Any]:
        return {"n_items": self.n_items}

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return self.counts.unsqueeze(0).expand(histories.shape[0], -1)
