"""SASRec (Kang & McAuley, "Self-Attentive Sequential Recommendation", ICDM 2018).

item embedding (row 0 = padding) + learned positional embedding → dropout → a stack of causal
self-attention blocks → hidden state per position; the score of item j after position t is
hidden_t · E_j with E the same item embedding table (tied output). Trained with full-softmax
cross-entropy over all items (the trainer), not the paper's one-negative BCE, which is the
variant that reaches the strong figures reported by later work (e.g. Klenitskiy & Vasilev 2023).

Choices, documented:
- Pre-LN blocks by default (`norm_first=True`: x + Attn(LN(x)), x + FFN(LN(x)), then a final
  LayerNorm), which trains stably without warm-up; `norm_first=False` gives the post-LN blocks
  of the original Transformer / RecBole (LN(x + Attn(x)), LN(x + FFN(x)), LayerNorm on the input).
- Positions count from the OLDEST item of the history (position 0 = first item), as RecBole
  does. With causal attention this makes the output at position t a function of items 0…t
  only, so one pass over a sequence predicts every prefix exactly as separate examples would.
  Padding therefore never changes a score (padding sits after the sequence and is never attended).
- FFN: Linear(d, ffn_size) → GELU → dropout → Linear(ffn_size, d); ffn_size defaults to d
  (the paper's point-wise FFN width).
- Dropout (`dropout`) on the embeddings, the attention weights, and both residual branches.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from sidrec.models.base import NeuralSequentialRecommender, register_model


class FastDropout(nn.Module):
    """Inverted dropout drawing its mask with `torch.rand` (about 2× faster on CPU than
    `nn.Dropout`, whose Bernoulli sampling dominates a small Transformer's step there)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        return x * fast_dropout_mask(x, self.p)


def fast_dropout_mask(x: torch.Tensor, p: float) -> torch.Tensor:
    """A keep-mask scaled by 1 / (1 - p), same shape and dtype as `x`."""
    return torch.rand_like(x).ge_(p).mul_(1.0 / (1.0 - p))


class CausalSelfAttentionBlock(nn.Module):
    """One Transformer block with causal multi-head self-attention (pre- or post-LN)."""

    def __init__(self, hidden_size: int, num_heads: int, ffn_size: int, dropout: float, norm_first: bool) -> None:
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.norm_first = norm_first
        self.dropout_p = dropout
        self.norm1 = nn.LayerNorm(hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.ff1 = nn.Linear(hidden_size, ffn_size)
        self.ff2 = nn.Linear(ffn_size, hidden_size)
        self.dropout = FastDropout(dropout)

    def _attention(self, x: torch.Tensor) -> torch.Tensor:
        b, length, d = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        if self.training and self.dropout_p > 0:  # explicit attention: dropout on the weights, fast mask
            weights = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5)
            causal = torch.ones(length, length, dtype=torch.bool, device=x.device).triu_(1)
            weights = weights.masked_fill(causal, float("-inf")).softmax(dim=-1)
            o = (weights * fast_dropout_mask(weights, self.dropout_p)) @ v
        else:
            o = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.out(o.transpose(1, 2).reshape(b, length, d))

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.ff2(self.dropout(F.gelu(self.ff1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.dropout(self._attention(self.norm1(x)))
            return x + self.dropout(self._ffn(self.norm2(x)))
        x = self.norm1(x + self.dropout(self._attention(x)))
        return self.norm2(x + self.dropout(self._ffn(x)))


@register_model
class SASRec(NeuralSequentialRecommender):
    """Self-attentive sequential recommender with tied input/output item embeddings."""

    kind = "sasrec"

    def __init__(
        self,
        n_items: int,
        hidden_size: int = 64,
        num_layers: int = 2,
        num_heads: int = 1,
        dropout: float = 0.3,
        max_len: int = 20,
        ffn_size: int | None = None,
        norm_first: bool = True,
    ) -> None:
        super().__init__(n_items)
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.dropout_p = dropout
        self.max_len = max_len
        self.ffn_size = ffn_size or hidden_size
        self.norm_first = norm_first
        self.item_emb = nn.Embedding(n_items + 1, hidden_size, padding_idx=0)
        self.pos_emb = nn.Embedding(max_len, hidden_size)
        self.emb_dropout = FastDropout(dropout)
        self.input_norm = nn.Identity() if norm_first else nn.LayerNorm(hidden_size)
        self.blocks = nn.ModuleList(
            CausalSelfAttentionBlock(hidden_size, num_heads, self.ffn_size, dropout, norm_first)
            for _ in range(num_layers)
        )
        self.final_norm = nn.LayerNorm(hidden_size) if norm_first else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Normal(0, 0.02) weights, zero biases, unit LayerNorms (BERT / RecBole initialisation)."""
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            if isinstance(module, nn.Linear) and module.bias is not None:
                nn.init.zeros_(module.bias)
            if isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()
        # scaled init of the residual output projections (GPT-2), keeps pre-LN stacks well-conditioned
        for block in self.blocks:
            nn.init.normal_(block.out.weight, std=0.02 / math.sqrt(2 * self.num_layers))
            nn.init.normal_(block.ff2.weight, std=0.02 / math.sqrt(2 * self.num_layers))

    def hparams(self) -> dict[str, Any]:
        return {
            "n_items": self.n_items,
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "dropout": self.dropout_p,
            "max_len": self.max_len,
            "ffn_size": self.ffn_size,
            "norm_first": self.norm_first,
        }

    def encode(self, seqs: torch.Tensor) -> torch.Tensor:
        length = seqs.shape[1]
        if length > self.max_len:
            raise ValueError(f"sequence length {length} exceeds max_len {self.max_len}")
        positions = torch.arange(length, device=seqs.device)
        x = self.item_emb(seqs) + self.pos_emb(positions).unsqueeze(0)
        x = self.emb_dropout(self.input_norm(x))
        for block in self.blocks:
            x = block(x)
        return self.final_norm(x)

    def item_weights(self) -> torch.Tensor:
        return self.item_emb.weight[1:]
