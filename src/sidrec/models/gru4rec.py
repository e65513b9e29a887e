"""GRU4Rec (Hidasi et al., ICLR 2016), the RecBole form with full-softmax cross-entropy.

item embedding (row 0 = padding) → dropout → GRU layers → a dense projection back to the
embedding size → scores = projection · item embedding table (tied output, the default) or a
separate output table (`tie_weights=False`). A GRU is causal, and sequences are left-aligned
(padding after the last item), so padding never changes a score and one pass over a sequence
predicts every prefix of it.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sidrec.models.base import NeuralSequentialRecommender, register_model
from sidrec.models.sasrec import FastDropout


@register_model
class GRU4Rec(NeuralSequentialRecommender):
    """GRU session / sequential recommender."""

    kind = "gru4rec"

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 64,
        num_layers: int = 1,
        dropout: float = 0.3,
        max_len: int = 20,
        embedding_size: int | None = None,
        tie_weights: bool = True,
    ) -> None:
        super().__init__(n_items)
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout_p = dropout
        self.max_len = max_len
        self.embedding_size = embedding_size or hidden_size
        self.tie_weights = tie_weights
        self.item_emb = nn.Embedding(n_items + 1, self.embedding_size, padding_idx=0)
        self.emb_dropout = FastDropout(dropout)
        self.gru = nn.GRU(
            self.embedding_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.proj = nn.Linear(hidden_size, self.embedding_size)
        self.out_emb = None if tie_weights else nn.Parameter(torch.empty(n_items, self.embedding_size))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, 0.02) embeddings, Xavier-uniform GRU input weights, orthogonal recurrent weights."""
        nn.init.normal_(self.item_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        for name, p in self.gru.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(p)
            elif name.startswith("weight_hh"):
                nn.init.orthogonal_(p)
            else:
                nn.init.zeros_(p)
        nn.init.xavier_uniform_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        if self.out_emb is not None:
            nn.init.normal_(self.out_emb, std=0.02)

    def hparams(self) -> dict[str, Any]:
        return {
            "n_items": self.n_items,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "dropout": self.dropout_p,
            "max_len": self.max_len,
            "embedding_size": self.embedding_size,
            "tie_weights": self.tie_weights,
        }

    def encode(self, seqs: torch.Tensor) -> torch.Tensor:
        x = self.emb_dropout(self.item_emb(seqs))
        out, _ = self.gru(x)
        return self.proj(out)

    def item_weights(self) -> torch.Tensor:
        return self.item_emb.weight[1:] if self.out_emb is None else self.out_emb
