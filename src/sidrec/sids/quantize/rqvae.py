"""RQ-VAE (TIGER / LC-Rec style): MLP autoencoder with residual vector quantization of the latent.

    z = enc(x);  r_1 = z;  e_l = C_l[argmin_k ‖r_l − C_l[k]‖];  r_{l+1} = r_l − e_l;  ẑ = Σ e_l
    x̂ = dec(z + sg(ẑ − z))                                     (straight-through estimator)
    loss = mse(x, x̂) + Σ_l mse(sg(r_l), e_l) + β mse(r_l, sg(e_l))   (β = 0.25; means over elements,
                                                                   as in the TIGER / LC-Rec code)

Codebooks are initialised by k-means on the latents of the untrained encoder, level by level; codes
left unused for a whole epoch are restarted on random residuals of their level (`reset_dead_codes`),
the usual remedy for codebook collapse.
With `sinkhorn_last_level` the last level's codes come from a Sinkhorn-balanced assignment
(LC-Rec's uniform semantic mapping) in training batches and over all items at the end.
Deterministic for a seed on a given device (seeded init, batch order and k-means).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from sidrec.errors import ConfigError
from sidrec.sids.quantize import QuantizeResult
from sidrec.sids.quantize.kmeans import sample_rows, sq_distances, train_kmeans
from sidrec.sids.quantize.rqkmeans import codebook_sizes
from sidrec.utils.device import resolve_device
from sidrec.utils.progress import progress


class RQVAEConfig(BaseModel):
    """RQ-VAE architecture and training."""

    model_config = ConfigDict(extra="forbid")

    levels: int = Field(3, ge=1, le=8)
    codebook: int | list[int] = 256
    input_dim: int | None = Field(None, description="expected embedding size (None: taken from the data)")
    hidden: list[int] = Field(default_factory=lambda: [512, 256, 128])
    latent_dim: int = Field(32, ge=1)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    epochs: int = Field(100, ge=0)
    batch_size: int = Field(1024, ge=1)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    beta: float = Field(0.25, ge=0, description="commitment weight")
    kmeans_init: bool = True
    reset_dead_codes: bool = Field(True, description="restart codes unused during an epoch on random residuals")
    kmeans_niter: int = 20
    kmeans_sample: int = Field(65536, ge=1, description="latents used for the k-means initialisation")
    sinkhorn_last_level: bool = False
    sinkhorn_eps: float = Field(0.003, gt=0, description="entropic regularisation, relative to the cost spread")
    sinkhorn_iters: int = Field(50, ge=1)
    device: str = "auto"
    threads: int | None = Field(1, description="CPU threads for training (None: torch's setting); the MLP is "
                                "small, and one thread was 4× faster than two on the shared 2-core machine")
    seed: int = 0

    def sizes(self) -> list[int]:
        return codebook_sizes(self.codebook, self.levels)


def _mlp(dims: list[int], dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(a, b))
        if i < len(dims) - 2:
            layers.append(nn.ReLU())
            if dropout:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


def sinkhorn_codes(dist: torch.Tensor, eps: float, iters: int) -> torch.Tensor:
    """Balanced hard assignment: argmax of the entropic transport plan between rows and uniform codes.

    As in LC-Rec: distances scaled to [-1, 1], kernel exp(−d/eps) in float64 (rows shifted by their
    minimum so nothing overflows), scaling iterations u = a / Kv, v = b / Kᵀu."""
    d = dist.double()
    lo, hi = d.min(), d.max()
    d = (2 * d - (hi + lo)) / (hi - lo).clamp_min(1e-12)
    kernel = torch.exp(-(d - d.min(dim=1, keepdim=True).values) / eps)
    n, k = kernel.shape
    tiny = torch.finfo(torch.float64).tiny
    u = torch.full((n,), 1.0 / n, dtype=d.dtype, device=d.device)
    v = torch.ones(k, dtype=d.dtype, device=d.device)
    for _ in range(iters):
        u = (1.0 / n) / (kernel @ v).clamp_min(tiny)
        v = (1.0 / k) / (kernel.T @ u).clamp_min(tiny)
    return (kernel * v[None, :]).argmax(dim=1)  # row scaling u does not change a row's argmax


class RQVAE(nn.Module):
    """Encoder, residual codebooks, decoder."""

    def __init__(self, input_dim: int, config: RQVAEConfig) -> None:
        super().__init__()
        self.config = config
        self.encoder = _mlp([input_dim, *config.hidden, config.latent_dim], config.dropout)
        self.decoder = _mlp([config.latent_dim, *reversed(config.hidden), input_dim], config.dropout)
        self.codebooks = nn.ParameterList(
            [nn.Parameter(torch.randn(k, config.latent_dim) * 0.1) for k in config.sizes()])

    def quantize(self, z: torch.Tensor, *, balanced_last: bool = False,
                 residuals: list[torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(ẑ, codes [n, levels], codebook + commitment loss) for latents z; appends each level's input
        residual to `residuals` when given."""
        residual = z
        zq = torch.zeros_like(z)
        codes = []
        vq_loss = z.new_zeros(())
        for lvl, cb in enumerate(self.codebooks):
            if residuals is not None:
                residuals.append(residual.detach())
            dist = torch.cdist(residual, cb).pow(2)
            if balanced_last and lvl == len(self.codebooks) - 1 and len(z) > 1:
                code = sinkhorn_codes(dist.detach(), self.config.sinkhorn_eps, self.config.sinkhorn_iters)
            else:
                code = dist.argmin(dim=1)
            e = cb[code]
            vq_loss = vq_loss + ((residual.detach() - e) ** 2).mean() + self.config.beta * ((residual - e.detach()) ** 2).mean()
            zq = zq + e
            residual = residual - e.detach()
            codes.append(code)
        return zq, torch.stack(codes, dim=1), vq_loss

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = self.encoder(x)
        zq, codes, vq_loss = self.quantize(z, balanced_last=self.config.sinkhorn_last_level)
        x_hat = self.decoder(z + (zq - z).detach())
        return x_hat, codes, vq_loss


@torch.no_grad()
def _kmeans_init(model: RQVAE, x: torch.Tensor, config: RQVAEConfig) -> None:
    """Codebook l = k-means of the level-l residuals of the initial latents (seeded sample)."""
    idx = sample_rows(len(x), config.kmeans_sample, config.seed)
    residual = model.encoder(x[torch.as_tensor(idx, device=x.device)]).float().cpu().numpy()
    for lvl, cb in enumerate(model.codebooks):
        centroids = train_kmeans(residual, cb.shape[0], niter=config.kmeans_niter, seed=config.seed + lvl)
        cb.data.copy_(torch.as_tensor(centroids, device=cb.device))
        nearest = np.concatenate([sq_distances(residual[i:i + 65536], centroids).argmin(1)
                                  for i in range(0, len(residual), 65536)])
        residual = residual - centroids[nearest]


@torch.no_grad()
def _reset_dead_codes(model: RQVAE, x: torch.Tensor, used: list[torch.Tensor], gen: torch.Generator,
                      sample: int = 4096) -> int:
    """Put every code unused this epoch on a random residual of its level (seeded); returns how many."""
    if all(bool(u.all()) for u in used):
        return 0
    idx = torch.randperm(len(x), generator=gen)[:sample].to(x.device)
    residuals: list[torch.Tensor] = []
    was_training = model.training
    model.eval()
    model.quantize(model.encoder(x[idx]), residuals=residuals)
    model.train(was_training)
    count = 0
    for lvl, cb in enumerate(model.codebooks):
        dead = torch.nonzero(~used[lvl]).flatten()
        if len(dead) == 0:
            continue
        pick = torch.randint(len(residuals[lvl]), (len(dead),), generator=gen).to(x.device)
        cb.data[dead.to(cb.device)] = residuals[lvl][pick]
        count += len(dead)
    return count


@torch.no_grad()
def _encode_all(model: RQVAE, x: torch.Tensor, config: RQVAEConfig, batch: int = 65536) -> tuple[np.ndarray, float]:
    """Codes for every item (Sinkhorn over all items on the last level when asked) and the recon MSE."""
    model.eval()
    if config.sinkhorn_last_level:  # the balanced last level needs every item at once
        zq, codes, _ = model.quantize(torch.cat([model.encoder(x[i:i + batch]) for i in range(0, len(x), batch)]),
                                      balanced_last=True)
    else:
        parts = [model.quantize(model.encoder(x[i:i + batch]))[:2] for i in range(0, len(x), batch)]
        zq, codes = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    sq = 0.0
    for i in range(0, len(x), batch):
        x_hat = model.decoder(zq[i:i + batch])
        sq += float(((x[i:i + batch] - x_hat) ** 2).sum(dim=1).double().sum())
    return codes.cpu().numpy().astype(np.int64), sq / max(len(x), 1)


def rq_vae(x: np.ndarray, config: RQVAEConfig | None = None, *, show_progress: bool = True) -> QuantizeResult:
    """Train an RQ-VAE on the embeddings and return every item's codes with diagnostics (losses, errors, time)."""
    config = config or RQVAEConfig()
    n, d = x.shape
    if config.input_dim is not None and config.input_dim != d:
        raise ConfigError(f"RQ-VAE input_dim is {config.input_dim} but the embeddings have {d} dimensions: "
                          "use embeddings from the matching encoder or drop input_dim")
    old_threads = torch.get_num_threads()
    if config.threads:
        torch.set_num_threads(config.threads)
    try:
        return _train(x, config, show_progress)
    finally:
        torch.set_num_threads(old_threads)


def _train(x: np.ndarray, config: RQVAEConfig, show_progress: bool) -> QuantizeResult:
    n, d = x.shape
    sizes = config.sizes()
    device = resolve_device(config.device)
    t0 = time.perf_counter()
    torch.manual_seed(config.seed)
    if device.type == "cuda":
        torch.cuda.manual_seed_all(config.seed)
    model = RQVAE(d, config).to(device)
    xt = torch.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=device)
    if config.kmeans_init:
        _kmeans_init(model, xt, config)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    used = [torch.zeros(k, dtype=torch.bool) for k in sizes]
    resets = 0
    with progress(disable=not show_progress) as bar:
        task = bar.add_task("RQ-VAE epochs", total=config.epochs)
        for _ in range(config.epochs):
            model.train()
            perm = torch.randperm(n, generator=gen).to(device)
            tot = rec_tot = vq_tot = 0.0
            for i in range(0, n, config.batch_size):
                xb = xt[perm[i:i + config.batch_size]]
                x_hat, codes, vq_loss = model(xb)
                rec = ((x_hat - xb) ** 2).mean()
                loss = rec + vq_loss
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                m = len(xb)
                tot += float(loss.detach()) * m
                rec_tot += float(rec.detach()) * m
                vq_tot += float(vq_loss.detach()) * m
                for lvl in range(len(sizes)):
                    used[lvl] |= torch.bincount(codes[:, lvl], minlength=sizes[lvl]).cpu() > 0
            history.append({"loss": tot / n, "reconstruction": rec_tot / n, "vq": vq_tot / n})
            if config.reset_dead_codes:
                resets += _reset_dead_codes(model, xt, used, gen)
            used = [torch.zeros(k, dtype=torch.bool) for k in sizes]
            bar.advance(task)
    codes, recon = _encode_all(model, xt, config)
    var = float(((x - x.mean(axis=0)) ** 2).sum(axis=1).mean())
    diagnostics: dict[str, Any] = {
        "reconstruction": {"mse": round(recon, 6), "variance": round(var, 6),
                           "relative": round(recon / var, 6) if var > 0 else None},
        "loss_history": [{k: round(v, 6) for k, v in h.items()} for h in history],
        "final_loss": round(history[-1]["loss"], 6) if history else None, "dead_code_resets": resets,
        "epochs": config.epochs, "device": str(device), "seconds": round(time.perf_counter() - t0, 3),
    }
    return QuantizeResult(codes=codes, codebook_sizes=sizes, diagnostics=diagnostics)
