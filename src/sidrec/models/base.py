"""The scoring API every sequential recommender shares, and the saved-model format.

Scoring API: `model.score(histories)` takes item-index histories as `EncodedSplit` gives them
(LongTensor [B, H]; 0 = padding, item index + 1 otherwise, most recent last) and returns the
scores of ALL items, FloatTensor [B, n_items] (column j = item index j). Higher is better.
Padding may sit anywhere (left, as EncodedSplit pads, or right): the non-zero entries, in order,
are the history. This is the interface evaluation and ILRec's collaborative reward use.

Saved-model format (one folder, written by `save_pretrained`, read by `load_model`):

    MODEL/
      model.json          {"format": "sidrec-seqrec", "format_version": 1, "kind": "sasrec",
                           "hparams": {...constructor arguments...}, "n_items": N,
                           "sidrec_version": "0.1.0"}
      model.safetensors   the state dict (float32 tensors)
      items.json          the item id list: row j of the scores is items[j]

The folder is built beside its destination and swapped into place, so a reader sees the old
model or the new one, never a half-written folder.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar, Literal

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from sidrec.errors import ConfigError, DataError
from sidrec.utils.device import resolve_device
from sidrec.utils.io import atomic_dir, read_json, write_json

MODEL_FORMAT = "sidrec-seqrec"
MODEL_FORMAT_VERSION = 1
_REGISTRY: dict[str, type[SequentialRecommender]] = {}


def register_model(cls: type[SequentialRecommender]) -> type[SequentialRecommender]:
    """Class decorator: make `cls` loadable by `load_model` under `cls.kind`."""
    _REGISTRY[cls.kind] = cls
    return cls


def model_class(kind: str) -> type[SequentialRecommender]:
    """The registered model class for a `kind` string ("sasrec", "gru4rec", "popularity")."""
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown model kind '{kind}': choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind]


def left_align(histories: torch.Tensor, max_len: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the non-padding entries of each row to the front, keeping their order.

    Returns (sequences [B, L], lengths [B]) where L = the longest row (at least 1), at most
    `max_len` (longer rows keep their most recent `max_len` items). Positions past a row's
    length are 0.
    """
    if histories.dim() != 2:
        raise ValueError(f"histories must be [batch, length], got shape {tuple(histories.shape)}")
    histories = histories.long()
    is_pad = histories == 0
    lengths = (~is_pad).sum(dim=1)
    if max_len is not None and histories.shape[1] > max_len:
        # drop the oldest items of rows longer than max_len: blank them, then re-align
        rank_from_end = torch.flip(torch.cumsum(torch.flip((~is_pad).long(), [1]), 1), [1])
        histories = histories.masked_fill(rank_from_end > max_len, 0)
        is_pad = histories == 0
        lengths = lengths.clamp(max=max_len)
    if bool(is_pad.any()):
        order = torch.argsort(is_pad.to(torch.int8), dim=1, stable=True)
        histories = histories.gather(1, order)
    width = max(int(lengths.max()) if len(lengths) else 1, 1)
    return histories[:, :width], lengths


class SequentialRecommender(nn.Module):
    """Base class: scores every item for a batch of histories; saves and loads itself."""

    kind: ClassVar[str] = "base"

    def __init__(self, n_items: int) -> None:
        super().__init__()
        if n_items < 1:
            raise ConfigError(f"n_items must be positive, got {n_items}")
        self.n_items = int(n_items)
        self.item_ids: list[str] | None = None  # set by load_model / save_pretrained / trainers
        self._item_index: dict[str, int] | None = None

    # ------------------------------------------------------------------ scoring
    def score(self, histories: torch.Tensor) -> torch.Tensor:
        """Scores of all items, FloatTensor [B, n_items], for item-index histories [B, H] (0 = padding)."""
        raise NotImplementedError

    def hparams(self) -> dict[str, Any]:
        """Constructor arguments (JSON-serialisable) that rebuild this model: `cls(**hparams)`."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")

    def set_item_ids(self, item_ids: Sequence[str]) -> None:
        """Attach the item id list (row j of the scores is item_ids[j]) for `score_item_ids`."""
        if len(item_ids) != self.n_items:
            raise ConfigError(f"{len(item_ids)} item ids given for a model over {self.n_items} items")
        self.item_ids = [str(i) for i in item_ids]
        self._item_index = {iid: j for j, iid in enumerate(self.item_ids)}

    def encode_item_ids(
        self,
        histories: Sequence[Sequence[str]],
        max_len: int | None = None,
        unknown: Literal["error", "skip"] = "error",
    ) -> torch.Tensor:
        """Item-id histories → left-padded LongTensor [B, H] (item index + 1, 0 = padding)."""
        if self._item_index is None:
            raise ConfigError("this model has no item id list: load it with load_model or call set_item_ids")
        index = self._item_index
        rows: list[list[int]] = []
        for b, hist in enumerate(histories):
            row = []
            for iid in hist:
                j = index.get(str(iid))
                if j is None:
                    if unknown == "error":
                        raise DataError(f"history {b}: item id '{iid}' is not one of the model's items")
                    continue
                row.append(j + 1)
            rows.append(row[-max_len:] if max_len else row)
        width = max([len(r) for r in rows] + [1])
        out = torch.zeros(len(rows), width, dtype=torch.long)
        for b, row in enumerate(rows):
            if row:
                out[b, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        return out

    @torch.no_grad()
    def score_item_ids(
        self, histories: Sequence[Sequence[str]], unknown: Literal["error", "skip"] = "error"
    ) -> torch.Tensor:
        """Scores of all items [B, n_items] for histories given as item-id strings (oldest first).

        Runs in eval mode (no dropout) and restores the previous mode afterwards.
        """
        was_training = self.training
        self.eval()
        try:
            return self.score(self.encode_item_ids(histories, unknown=unknown).to(self.device))
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------ saved-model format
    def save_pretrained(self, directory: str | Path, item_ids: Sequence[str] | None = None) -> Path:
        """Write model.json, model.safetensors and items.json into `directory`, atomically."""
        ids = list(item_ids) if item_ids is not None else self.item_ids
        if ids is None:
            raise ConfigError("save_pretrained needs the item id list (pass item_ids=dataset.item_ids)")
        if len(ids) != self.n_items:
            raise ConfigError(f"{len(ids)} item ids given for a model over {self.n_items} items")
        import sidrec

        with atomic_dir(directory) as tmp:
            state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / "model.safetensors"))
            write_json(tmp / "items.json", [str(i) for i in ids])
            write_json(
                tmp / "model.json",
                {
                    "format": MODEL_FORMAT,
                    "format_version": MODEL_FORMAT_VERSION,
                    "kind": self.kind,
                    "hparams": self.hparams(),
                    "n_items": self.n_items,
                    "sidrec_version": sidrec.__version__,
                },
            )
        return Path(directory)


def load_model(directory: str | Path, device: str | torch.device = "cpu") -> tuple[SequentialRecommender, list[str]]:
    """Load a saved model folder; returns (model in eval mode on `device`, item id list).

    `device` is "auto", "cpu", "cuda[:N]" or a torch.device. The model also keeps the item id
    list itself, so `model.score_item_ids(...)` works straight away.
    """
    directory = Path(directory)
    meta_path = directory / "model.json"
    if not meta_path.exists():
        raise DataError("not a sidrec model folder (model.json is missing)", path=directory,
                        hint="train one with `sidrec train …` or call model.save_pretrained(dir, item_ids)")
    meta = read_json(meta_path)
    if meta.get("format") != MODEL_FORMAT or int(meta.get("format_version", 0)) > MODEL_FORMAT_VERSION:
        raise DataError(f"unsupported model format {meta.get('format')} v{meta.get('format_version')}",
                        path=meta_path, field="format")
    # import the model modules so that their classes are registered
    import sidrec.models  # noqa: F401

    cls = model_class(meta["kind"])
    model = cls(**meta["hparams"])
    state = load_file(str(directory / "model.safetensors"))
    model.load_state_dict(state)
    item_ids = [str(i) for i in read_json(directory / "items.json")]
    model.set_item_ids(item_ids)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model.to(dev).eval()
    return model, item_ids


def load_frozen_run_model(run: str | Path, device: str | torch.device, *, setting: str
                          ) -> tuple[SequentialRecommender, list[str]]:
    """The model of a classic run folder (or its model/ folder), frozen in eval mode: the CF scorer a
    method's `setting` (e.g. "ilrec.cf_run") names. A folder without one is a ConfigError naming it."""
    run = Path(run)
    folder = run / "model" if (run / "model" / "model.json").is_file() else run
    if not (folder / "model.json").is_file():
        raise ConfigError(f"{setting}: {run} is not a trained SASRec run (no model/model.json); "
                          "train one with `sidrec train sasrec --data DATASET --out RUN`")
    model, item_ids = load_model(folder, device=device)
    model.requires_grad_(False)
    return model, item_ids


# ---------------------------------------------------------------------- neural models and their loss
class NeuralSequentialRecommender(SequentialRecommender):
    """A model with a hidden state per position and output scores = hidden · item weights.

    Subclasses implement `encode(seqs)` for left-aligned sequences (item index + 1, 0 = padding
    after the end of each row) and must be causal: the output at position t may depend only on
    positions ≤ t. Then one forward pass over a sequence gives the prediction for every prefix
    of it, which is what `loss` trains and what the trainer's prefix packing relies on.
    """

    max_len: int

    def encode(self, seqs: torch.Tensor) -> torch.Tensor:
        """Hidden states FloatTensor [B, L, d] for left-aligned sequences [B, L]."""
        raise NotImplementedError

    def item_weights(self) -> torch.Tensor:
        """The output item representations [n_items, d] (row j = item index j)."""
        raise NotImplementedError

    def last_hidden(self, histories: torch.Tensor) -> torch.Tensor:
        """The hidden state after the most recent item of each history [B, d]."""
        seqs, lengths = left_align(histories, self.max_len)
        hidden = self.encode(seqs)
        last = (lengths - 1).clamp(min=0)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def score(self, histories: torch.Tensor) -> torch.Tensor:
        return self.last_hidden(histories) @ self.item_weights().T

    def loss(
        self,
        seqs: torch.Tensor,
        targets: torch.Tensor,
        chunk_size: int | None = None,
        matmul_dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """Mean full-softmax cross-entropy over the positions where `targets` ≥ 0.

        seqs [B, L]: left-aligned inputs (item index + 1, 0 = padding); targets [B, L]: the 0-based
        item index to predict after each position, or -1 where no loss is taken.
        """
        hidden = self.encode(seqs)
        mask = targets >= 0
        return linear_cross_entropy(
            hidden[mask], self.item_weights(), targets[mask], chunk_size=chunk_size, matmul_dtype=matmul_dtype
        )


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int | None = None,
    matmul_dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """mean_i CE(softmax(hidden_i · weightᵀ), targets_i), fused and chunked over rows.

    Equal to `F.cross_entropy(hidden @ weight.T, targets)` (computed in float32), but the
    [M, n_items] logits never exist at once: each chunk's logits are turned into softmax − onehot
    in place and the gradients of `hidden` and `weight` are accumulated in the forward pass. That
    saves the memory passes of separate log-softmax / NLL / backward kernels (about 2× faster on
    CPU) and the memory of the full logits on GPU. Chunks default to 64 rows on CPU (the chunk's
    logits stay in cache), 4096 on GPU. `matmul_dtype=torch.bfloat16` runs the three matmuls in
    bfloat16 (softmax and accumulation stay float32): ~1.5× faster on CPUs with AVX512-BF16/AMX,
    gradients within ~0.3% (relative norm) of float32.
    """
    if hidden.shape[0] == 0:
        return (hidden.sum() + weight.sum()) * 0.0
    if chunk_size is None:
        chunk_size = 4096 if hidden.is_cuda else 64
    return _LinearCrossEntropy.apply(hidden, weight, targets, int(chunk_size), matmul_dtype)


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        chunk_size: int,
        matmul_dtype: torch.dtype,
    ) -> torch.Tensor:
        fp32 = matmul_dtype == torch.float32
        h_all = hidden.to(matmul_dtype)
        w = weight.to(matmul_dtype)
        need_h, need_w = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        m = h_all.shape[0]
        grad_h = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device) if need_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if need_w else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        buf = torch.empty(min(chunk_size, m), w.shape[0], dtype=torch.float32, device=hidden.device)
        for start in range(0, m, chunk_size):
            h = h_all[start : start + chunk_size]
            t = targets[start : start + chunk_size].view(-1, 1)
            logits = buf[: h.shape[0]]
            if fp32:
                torch.mm(h, w.T, out=logits)
            else:
                logits.copy_(h @ w.T)
            target_logit = logits.gather(1, t)
            peak = logits.amax(dim=1, keepdim=True)
            probs = logits.sub_(peak).exp_()  # in place: the chunk's logits become exp(logit - max)
            norm = probs.sum(dim=1, keepdim=True)
            total += (norm.log() + peak - target_logit).sum()
            if need_h or need_w:
                probs.div_(norm).scatter_add_(1, t, torch.full_like(target_logit, -1.0))  # softmax - onehot
                p = probs if fp32 else probs.to(matmul_dtype)
                if grad_h is not None:
                    if fp32:
                        torch.mm(p, w, out=grad_h[start : start + chunk_size])
                    else:
                        grad_h[start : start + chunk_size] = p @ w
                if grad_w is not None:
                    if fp32:
                        grad_w.addmm_(p.T, h)
                    else:
                        grad_w += p.T @ h
        ctx.m = m
        ctx.dtypes = (hidden.dtype, weight.dtype)
        ctx.save_for_backward(grad_h, grad_w)
        return total / m

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor):  # type: ignore[override]
        grad_h, grad_w = ctx.saved_tensors
        scale = grad_out / ctx.m
        gh = (grad_h * scale).to(ctx.dtypes[0]) if grad_h is not None else None
        gw = (grad_w * scale).to(ctx.dtypes[1]) if grad_w is not None else None
        return gh, gw, None, None, None
