"""Collision resolution: one extra level so that every item's SID is unique (TIGER / GRID style).

When any items share the full code tuple, every item gets one more code (fixed SID length): the
first item of a tuple (in item order) gets 0, the next 1, and so on. Without collisions no level is
added unless `force=True`.
"""

from __future__ import annotations

import numpy as np


def tuple_ids(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Dense id of each row's code tuple and the number of items per tuple id."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    if codes.ndim != 2:
        raise ValueError(f"codes must be 2-d [n_items, levels], got shape {codes.shape}")
    if len(codes) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    _, inverse, counts = np.unique(codes, axis=0, return_inverse=True, return_counts=True)
    return inverse.reshape(-1).astype(np.int64), counts.astype(np.int64)


def colliding_items(codes: np.ndarray) -> int:
    """Items that need a de-duplication suffix other than 0: n_items − distinct tuples."""
    ids, counts = tuple_ids(codes)
    return int(len(ids) - len(counts))


def occurrence_index(codes: np.ndarray) -> np.ndarray:
    """For each row, how many earlier rows have the same tuple (0 for the first occurrence)."""
    ids, _ = tuple_ids(codes)
    order = np.argsort(ids, kind="stable")  # rows grouped by tuple, item order within a group
    sorted_ids = ids[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_ids)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(ids)]))
    occ = np.empty(len(ids), dtype=np.int64)
    occ[order] = np.arange(len(ids)) - group_start
    return occ


def add_dedup_level(codes: np.ndarray, *, force: bool = False) -> tuple[np.ndarray, int]:
    """(codes with the extra level, or the input when nothing collides and not forced; colliding items)."""
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    n_colliding = colliding_items(codes)
    if n_colliding == 0 and not force:
        return codes, 0
    suffix = occurrence_index(codes) if len(codes) else np.zeros(0, dtype=np.int64)
    return np.concatenate([codes, suffix[:, None]], axis=1), n_colliding
