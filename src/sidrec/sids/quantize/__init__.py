"""Quantizers: item embeddings [n, d] → integer codes [n, levels] (one module per method).

    rqkmeans.py   RQKMeansConfig, rq_kmeans          k-means on the residuals, level by level
    balanced.py   BalancedConfig, balanced_rq_kmeans  the same with capacity-constrained assignment
    rqvae.py      RQVAEConfig, rq_vae                 MLP autoencoder + residual VQ (TIGER / LC-Rec)
    kmeans.py     seeded k-means (faiss or scikit-learn) and chunked nearest-centroid assignment
    capacity.py   capacity-constrained assignment and Sinkhorn prices (balanced codes)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class QuantizeResult:
    """Codes int64 [n_items, levels], the codebooks used (for residual methods) and diagnostics."""

    codes: np.ndarray
    codebook_sizes: list[int]
    diagnostics: dict[str, Any] = field(default_factory=dict)
    codebooks: list[np.ndarray] | None = None
