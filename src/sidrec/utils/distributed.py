"""The one place that answers "which process am I": rank, world size, main process, gather.

Inside a torch.distributed process group (accelerate launch, torchrun) the group answers; before
one exists, the launcher's RANK / WORLD_SIZE environment; otherwise a single process.
"""

from __future__ import annotations

import os
from typing import Any


def _group() -> Any:
    import torch

    dist = torch.distributed
    return dist if dist.is_available() and dist.is_initialized() else None


def rank() -> int:
    dist = _group()
    return int(dist.get_rank()) if dist is not None else int(os.environ.get("RANK", "0"))


def world_size() -> int:
    dist = _group()
    return int(dist.get_world_size()) if dist is not None else int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return rank() == 0


def gather_objects(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order ([obj] in a single process)."""
    dist = _group()
    if dist is None or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out
