"""Classic sequential recommenders behind one scoring API (see `sidrec.models.base`).

    model.score(histories [B, H] item index + 1, 0 = padding) -> scores [B, n_items]
    model.score_item_ids([["id1", "id2"], ...])              -> scores [B, n_items]
    model.save_pretrained(dir, item_ids); load_model(dir, device) -> (model, item_ids)
"""

from sidrec.models.base import (
    NeuralSequentialRecommender,
    SequentialRecommender,
    left_align,
    linear_cross_entropy,
    load_model,
    model_class,
)
from sidrec.models.gru4rec import GRU4Rec
from sidrec.models.popularity import PopularityModel, popularity_counts
from sidrec.models.sasrec import SASRec

__all__ = [
    "GRU4Rec",
    "NeuralSequentialRecommender",
    "PopularityModel",
    "SASRec",
    "SequentialRecommender",
    "left_align",
    "linear_cross_entropy",
    "load_model",
    "model_class",
    "popularity_counts",
]
