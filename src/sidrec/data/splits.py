"""Turn per-user interaction sequences into train / valid / test examples.

Two protocols:
- leave-one-out: the last item → test, the second-to-last → valid, every earlier item → a train
  example (history = the items before it). Order: timestamp, ties by source order (stable).
- temporal: MiniOneRec / D3 style. Every (history, next item) sliding-window sample of every
  user is ordered globally by the target's timestamp and cut 8:1:1 (configurable ratios).

Histories keep the most recent `max_history` items.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from sidrec.data.dataset import FilterRecord


def user_sequences(interactions: pd.DataFrame) -> pd.DataFrame:
    """One row per user: items and timestamps in order (interactions must already be sorted)."""
    g = interactions.groupby("user_id", sort=False)
    return pd.DataFrame({"items": g["item_id"].agg(list), "timestamps": g["timestamp"].agg(list)})


def sort_interactions(interactions: pd.DataFrame) -> pd.DataFrame:
    """Sort by user, then timestamp; ties keep the source order (stable sort)."""
    df = interactions.reset_index(drop=True)
    return df.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)


def _examples(rows: list[tuple[str, list[str], str, int]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user_id", "history", "target", "timestamp"]).astype(
        {"user_id": str, "target": str, "timestamp": "int64"}
    )


def leave_one_out(
    interactions: pd.DataFrame, max_history: int = 20
) -> tuple[dict[str, pd.DataFrame], list[FilterRecord]]:
    """Leave-one-out split of sorted interactions. Users with < 3 interactions are counted and left out."""
    seqs = user_sequences(interactions)
    train: list[tuple[str, list[str], str, int]] = []
    valid: list[tuple[str, list[str], str, int]] = []
    test: list[tuple[str, list[str], str, int]] = []
    short_users = 0
    short_inter = 0
    for user, items, ts in zip(seqs.index, seqs["items"], seqs["timestamps"], strict=True):
        n = len(items)
        if n < 3:
            short_users += 1
            short_inter += n
            continue
        for t in range(1, n - 2):
            train.append((user, items[max(0, t - max_history) : t], items[t], ts[t]))
        valid.append((user, items[max(0, n - 2 - max_history) : n - 2], items[n - 2], ts[n - 2]))
        test.append((user, items[max(0, n - 1 - max_history) : n - 1], items[n - 1], ts[n - 1]))
    filters = []
    if short_users:
        filters.append(
            FilterRecord(
                name="loo_min_length",
                description="users with fewer than 3 interactions cannot give train, valid and test examples",
                removed_users=short_users,
                removed_interactions=short_inter,
            )
        )
    return {"train": _examples(train), "valid": _examples(valid), "test": _examples(test)}, filters


def sliding_window_samples(interactions: pd.DataFrame, max_history: int = 10) -> pd.DataFrame:
    """Every (history, next item) sample of every user (target = each item after the first)."""
    seqs = user_sequences(interactions)
    rows: list[tuple[str, list[str], str, int]] = []
    for user, items, ts in zip(seqs.index, seqs["items"], seqs["timestamps"], strict=True):
        for t in range(1, len(items)):
            rows.append((user, items[max(0, t - max_history) : t], items[t], ts[t]))
    return _examples(rows)


def temporal_split(
    interactions: pd.DataFrame,
    max_history: int = 10,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
) -> tuple[dict[str, pd.DataFrame], list[FilterRecord]]:
    """Global temporal split of sliding-window samples (MiniOneRec / D3): ordered by target time, cut by ratio."""
    if len(ratios) != 3 or any(r < 0 for r in ratios) or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"ratios must be three non-negative numbers summing to 1, got {list(ratios)}")
    samples = sliding_window_samples(interactions, max_history)
    samples = samples.sort_values("timestamp", kind="stable").reset_index(drop=True)
    n = len(samples)
    n_train = int(round(n * ratios[0]))
    n_valid = int(round(n * ratios[1]))
    parts = {
        "train": samples.iloc[:n_train],
        "valid": samples.iloc[n_train : n_train + n_valid],
        "test": samples.iloc[n_train + n_valid :],
    }
    return {k: v.reset_index(drop=True) for k, v in parts.items()}, []
