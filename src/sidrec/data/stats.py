"""Dataset statistics: users, items, interactions, sparsity, history lengths, split sizes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd


def compute_stats(items: pd.DataFrame, interactions: pd.DataFrame, splits: dict[str, pd.DataFrame]) -> dict[str, Any]:
    n_users = int(interactions["user_id"].nunique())
    n_items = int(len(items))
    n_inter = int(len(interactions))
    seq_len = interactions.groupby("user_id").size().to_numpy() if n_inter else np.zeros(1)
    stats: dict[str, Any] = {
        "users": n_users,
        "items": n_items,
        "items_interacted": int(interactions["item_id"].nunique()),
        "interactions": n_inter,
        "sparsity": float(1.0 - n_inter / max(1, n_users * n_items)),
        "sequence_length": _describe(seq_len),
        "items_with_title": int(items["title"].fillna("").astype(str).str.strip().ne("").sum()),
        "splits": {},
    }
    for name, df in splits.items():
        hl = df["history"].map(len).to_numpy() if len(df) else np.zeros(1)
        stats["splits"][name] = {
            "examples": int(len(df)),
            "users": int(df["user_id"].nunique()),
            "history_length": _describe(hl),
        }
    return stats


def _describe(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, dtype=float)
    return {
        "min": float(x.min()),
        "p25": float(np.percentile(x, 25)),
        "median": float(np.median(x)),
        "p75": float(np.percentile(x, 75)),
        "p95": float(np.percentile(x, 95)),
        "max": float(x.max()),
        "mean": float(x.mean()),
    }
