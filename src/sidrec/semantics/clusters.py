"""Token clusters (methods.md §4): the cluster of SID token t (level l, code c) is every item whose
level-l code is c, whatever its other codes. The de-duplication level (`<d_0>`, `<d_1>`, … added
where items collide) carries no meaning and has no clusters.
"""

from __future__ import annotations

import numpy as np

from sidrec.sids.table import SIDTable, token


def semantic_levels(table: SIDTable) -> list[int]:
    """The levels whose tokens mean something: all but the de-duplication level."""
    n = table.n_levels - 1 if table.dedup_level else table.n_levels
    return list(range(n))


def token_clusters(table: SIDTable, levels: list[int] | None = None) -> dict[str, np.ndarray]:
    """token → row indices (into `table.item_ids`) of the items in its cluster, for used tokens only."""
    out: dict[str, np.ndarray] = {}
    for lvl in semantic_levels(table) if levels is None else levels:
        codes = table.codes[:, lvl]
        order = np.argsort(codes, kind="stable")
        values, starts = np.unique(codes[order], return_index=True)
        bounds = [*starts.tolist(), len(order)]
        for k, c in enumerate(values.tolist()):
            out[token(table.prefixes[lvl], c)] = order[bounds[k]:bounds[k + 1]]
    return out
