"""The one weight-decay rule of both trainers (SASRec / GRU4Rec and the generative models)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def decay_groups(params: Iterable[Any], weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: decay on matrices (embeddings included), none on vectors (biases, norms)."""
    params = list(params)
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
