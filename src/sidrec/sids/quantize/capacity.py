"""Capacity-constrained assignment: near-equal cluster sizes for balanced codes.

`capacity_assign` gives each point one of K centroids so that no (group, code) holds more than the
group's capacity (ceil(group size / K) by default): the group is the whole level ("level" scope) or
the items that share the previous levels' codes ("node" scope). Algorithm, exact in the capacities:

1. every point takes its nearest code (chunked; optional per-code prices are subtracted from the
   squared distances);
2. in each over-full (group, code) the `capacity` cheapest points stay, the others are rejected;
3. rejected points repeatedly propose to their cheapest code that has not refused them; each
   (group, code) accepts, cheapest first, as many proposers as it has room left.

Step 3 only touches the rejected points (dense [rejected, K] costs), so memory stays at the
embedding matrix plus one chunk of distances.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sidrec.sids.quantize.kmeans import chunks, sq_distances


def capacity_assign(
    rows: Callable[[slice | np.ndarray], np.ndarray],
    n: int,
    centroids: np.ndarray,
    *,
    groups: np.ndarray | None = None,
    capacity: np.ndarray | int | None = None,
    prices: np.ndarray | None = None,
    chunk_size: int = 65536,
    on_chunk: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, dict[str, int]]:
    """Codes int64 [n] with at most capacity[g] points per code inside each group g.

    rows(slice or index array) → float32 [m, d] (e.g. residuals); groups int64 [n] (default: one group); capacity
    int or int64 [n_groups] (default ceil(group size / K)); prices float32 [K] or None.
    Returns (codes, stats: rejected points after step 1, proposal rounds in step 3)."""
    k = len(centroids)
    groups = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    n_groups = int(groups.max()) + 1 if n else 0
    sizes = np.bincount(groups, minlength=n_groups)
    if capacity is None:
        cap = -(-sizes // k)
    else:
        cap = np.broadcast_to(np.asarray(capacity, dtype=np.int64), (n_groups,)).copy()
    if (cap * k < sizes).any():
        raise ValueError("capacity × K is smaller than a group's size: not every point can be placed")
    c_norms = np.einsum("ij,ij->i", centroids, centroids)
    price = np.zeros(k, dtype=np.float32) if prices is None else np.asarray(prices, dtype=np.float32)

    # step 1: cheapest code for everyone, chunked
    codes = np.empty(n, dtype=np.int64)
    cost = np.empty(n, dtype=np.float32)
    for sl in chunks(n, chunk_size):
        d = sq_distances(rows(sl), centroids, c_norms)
        d -= price[None, :]
        codes[sl] = d.argmin(axis=1)
        cost[sl] = d[np.arange(len(d)), codes[sl]]
        if on_chunk is not None:
            on_chunk(sl.stop - sl.start)

    # step 2: keep the `capacity` cheapest of every (group, code)
    key = groups * k + codes
    order = np.lexsort((cost, key))
    sorted_key = key[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_key)) + 1]
    rank = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    over = rank >= cap[groups[order]]
    rejected = np.sort(order[over])
    stats = {"rejected": int(len(rejected)), "rounds": 0}
    if len(rejected) == 0:
        return codes, stats
    # free places per (group, code), only for the groups that have rejected points (compact ids)
    ug, g_rej = np.unique(groups[rejected], return_inverse=True)
    g_rej = g_rej.reshape(-1)
    room = np.repeat(cap[ug], k).reshape(len(ug), k)
    kept = np.ones(n, dtype=bool)
    kept[rejected] = False
    pos = np.minimum(np.searchsorted(ug, groups), len(ug) - 1)
    holders = kept & (ug[pos] == groups)
    np.subtract.at(room, (pos[holders], codes[holders]), 1)

    # step 3: rejected points propose in rounds to their cheapest code that has not refused them
    pending_cost = np.empty((len(rejected), k), dtype=np.float32)
    for sl in chunks(len(rejected), chunk_size):
        block = _costs(rows, rejected[sl], centroids, c_norms, price)
        block[np.arange(len(block)), codes[rejected[sl]]] = np.inf  # the code that rejected them
        block[room[g_rej[sl]] <= 0] = np.inf  # codes already full in their group
        pending_cost[sl] = block
    pending = np.arange(len(rejected))
    while len(pending):
        stats["rounds"] += 1
        choice = np.empty(len(pending), dtype=np.int64)
        c = np.empty(len(pending), dtype=np.float32)
        for sl in chunks(len(pending), chunk_size):  # no [pending, K] copy
            block = pending_cost[pending[sl]]
            choice[sl] = block.argmin(axis=1)
            c[sl] = block[np.arange(len(block)), choice[sl]]
        if not np.isfinite(c).all():  # cannot happen while capacities cover the group sizes
            raise RuntimeError("capacity assignment ran out of codes")
        pk = g_rej[pending] * k + choice
        o = np.lexsort((c, pk))
        spk = pk[o]
        st = np.r_[0, np.flatnonzero(np.diff(spk)) + 1]
        rk = np.arange(len(o)) - np.repeat(st, np.diff(np.r_[st, len(o)]))
        g_o, c_o = g_rej[pending[o]], choice[o]
        accept = rk < room[g_o, c_o]
        acc = pending[o[accept]]
        codes[rejected[acc]] = choice[o[accept]]
        np.subtract.at(room, (g_o[accept], c_o[accept]), 1)
        refused = pending[o[~accept]]
        pending_cost[refused, choice[o[~accept]]] = np.inf
        pending = np.sort(refused)
    return codes, stats


def _costs(rows: Callable[[slice | np.ndarray], np.ndarray], idx: np.ndarray, centroids: np.ndarray,
           c_norms: np.ndarray, price: np.ndarray) -> np.ndarray:
    """Dense costs [len(idx), K] for arbitrary row indices."""
    d = sq_distances(rows(idx), centroids, c_norms)
    d -= price[None, :]
    return d
