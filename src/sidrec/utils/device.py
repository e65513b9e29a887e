"""`--device auto|cpu|cuda` resolution."""

from __future__ import annotations

import torch

from sidrec.errors import ConfigError


def resolve_device(device: str = "auto") -> torch.device:
    """`auto` picks CUDA when available, else CPU; `cuda` without a GPU is a clear error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device} was asked for but torch sees no CUDA GPU; use --device cpu or auto")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise ConfigError(f"unknown device '{device}': use auto, cpu or cuda[:N]")
    return torch.device(device)


def peak_memory(device: torch.device) -> dict[str, float | str]:
    """The process's peak memory so far: CUDA's peak allocation on a GPU, else the peak resident set
    size (weights, activations, data and the Python runtime together)."""
    if device.type == "cuda":
        return {"peak_memory_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
                "peak_memory_kind": "cuda_max_allocated"}
    import resource

    return {"peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_memory_kind": "cpu_max_rss"}
