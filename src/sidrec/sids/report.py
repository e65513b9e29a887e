"""Quality report of a SID table: collisions, code use, balance, reconstruction, time.

    sid_report(table, embeddings=None) -> dict

Fields (see docs/sids.md): collision rate before de-duplication, unique SIDs after, per-level
utilisation (used codes / codebook size) and entropy (bits and normalised by log2 of the codebook
size), largest clusters (items per full tuple and per level-1 code), the quantizer's own
reconstruction error when it recorded one, and, given the embeddings, a method-independent
"prefix error": the mean squared distance of each item to the mean of the items sharing its first
l codes, relative to the total variance (it also works for imported SIDs).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sidrec.errors import DataError
from sidrec.sids.dedupe import tuple_ids
from sidrec.sids.table import SIDTable


def level_stats(codes: np.ndarray, codebook_size: int) -> dict[str, Any]:
    """Utilisation, entropy and the largest cluster of one level's codes."""
    counts = np.bincount(codes, minlength=codebook_size)
    used = int((counts > 0).sum())
    p = counts[counts > 0] / max(len(codes), 1)
    entropy = float(-(p * np.log2(p)).sum()) if len(p) else 0.0
    max_bits = float(np.log2(codebook_size)) if codebook_size > 1 else 0.0
    return {"codebook_size": int(codebook_size), "used_codes": used,
            "utilization": round(used / codebook_size, 6) if codebook_size else 0.0,
            "entropy_bits": round(entropy, 4),
            "entropy_normalized": round(entropy / max_bits, 6) if max_bits > 0 else 1.0,
            "largest_cluster": int(counts.max(initial=0))}


def prefix_errors(codes: np.ndarray, embeddings: np.ndarray, chunk_size: int = 65536) -> dict[str, Any]:
    """Per level l: mean ‖x − mean(items sharing x's first l codes)‖², absolute and relative to the variance.

    Uses within-cluster SS = Σ‖x‖² − Σ_c ‖Σ_{x∈c} x‖² / n_c, accumulated in float64 chunk by chunk."""
    from scipy import sparse

    n, d = embeddings.shape
    sq_total = 0.0
    col_sum = np.zeros(d)
    for start in range(0, n, chunk_size):
        xc = np.asarray(embeddings[start:start + chunk_size], dtype=np.float64)
        sq_total += float(np.einsum("ij,ij->", xc, xc))
        col_sum += xc.sum(axis=0)
    total = (sq_total - float(col_sum @ col_sum) / n) / n if n else 0.0
    out = []
    for lvl in range(codes.shape[1]):
        ids, counts = tuple_ids(codes[:, : lvl + 1])
        sums = np.zeros((len(counts), d))
        for start in range(0, n, chunk_size):
            stop = min(n, start + chunk_size)
            onehot = sparse.csr_matrix((np.ones(stop - start), (ids[start:stop], np.arange(stop - start))),
                                       shape=(len(counts), stop - start))
            sums += onehot @ np.asarray(embeddings[start:stop], dtype=np.float64)
        err = max(0.0, (sq_total - float((np.einsum("ij,ij->i", sums, sums) / counts).sum())) / n) if n else 0.0
        out.append({"level": lvl + 1, "mse": round(err, 6), "relative": round(err / total, 6) if total > 0 else None})
    return {"variance": round(total, 6), "per_level": out}


def sid_report(table: SIDTable, embeddings: np.ndarray | None = None) -> dict[str, Any]:
    """Everything `sidrec sids report` prints, as a JSON-able dict."""
    base = table.base_codes
    n = table.n_items
    _, base_counts = tuple_ids(base)
    _, full_counts = tuple_ids(table.codes)
    distinct = len(base_counts)
    levels = []
    for lvl in range(table.n_levels):
        row = {"level": lvl + 1, "prefix": table.prefixes[lvl], "dedup": table.dedup_level and lvl == table.n_levels - 1,
               **level_stats(table.codes[:, lvl], table.codebook_sizes[lvl])}
        levels.append(row)
    quant_levels = levels[:-1] if table.dedup_level else levels
    report: dict[str, Any] = {
        "method": table.method,
        "n_items": n,
        "levels": base.shape[1],
        "sid_length": table.n_levels,
        "codebook_sizes": table.codebook_sizes,
        "dedup_level": table.dedup_level,
        "collisions": {
            "distinct_sids": distinct,
            "colliding_items": n - distinct,
            "collision_rate": round((n - distinct) / n, 6) if n else 0.0,
            "items_sharing_a_sid": int(base_counts[base_counts > 1].sum()),
            "max_items_per_sid": int(base_counts.max(initial=0)),
        },
        "unique_sids": len(full_counts),
        "all_unique": len(full_counts) == n,
        "utilization": round(float(np.mean([lv["utilization"] for lv in quant_levels])), 6),
        "entropy_normalized": round(float(np.mean([lv["entropy_normalized"] for lv in quant_levels])), 6),
        "per_level": levels,
        "largest_cluster": {"full_sid": int(base_counts.max(initial=0)),
                            "level1": int(levels[0]["largest_cluster"])},
        "reconstruction": table.diagnostics.get("reconstruction"),
        "seconds": table.diagnostics.get("seconds"),
    }
    if embeddings is not None:
        if len(embeddings) != n:
            raise DataError(f"{len(embeddings)} embedding rows for {n} items in the SID table",
                            hint="pass the embeddings the SIDs were built from (same items, same order)")
        report["prefix_error"] = prefix_errors(base, embeddings)
    return report
