"""Training-state files that cannot run code when loaded, and the RNG state both trainers save.

    save_state(path, {"optimizer": opt.state_dict(), "rng": rng_state()})
    state = load_state(path)               # torch.load(weights_only=True): tensors, numbers, strings,
    set_rng_state(state["rng"])            # lists, tuples and dicts only

A full unpickling `torch.load` rebuilds arbitrary objects, so a planted checkpoint could execute
code on `--resume`. Everything sidrec checkpoints (optimizer and scheduler state dicts, loop
counters, RNG states) is made of tensors and plain values, and `rng_state` stores numpy's state as
a tensor, so `weights_only=True` reads all of it; anything else in a file is refused with one line.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sidrec.errors import DataError


def save_state(path: str | Path, obj: Any) -> None:
    """torch.save of tensors and plain values (the caller writes atomically)."""
    torch.save(obj, path)


def load_state(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a file written by `save_state`, refusing anything that is not tensors and plain values."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, AttributeError, EOFError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DataError(f"refusing to load it: it is not a sidrec training-state file of tensors and numbers "
                        f"({first[:160]}); it may be corrupted or tampered with — delete the checkpoint, or "
                        "restart the run with --overwrite", path=Path(path)) from None


def rng_state() -> dict[str, Any]:
    """Python, numpy, torch (and CUDA) RNG states as tensors and plain values."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    return {
        "python": [int(version), torch.tensor(internal, dtype=torch.int64), gauss_next],
        "numpy": [str(name), torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss),
                  float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` returned."""
    version, internal, gauss_next = state["python"]
    random.setstate((int(version), tuple(int(x) for x in internal.tolist()), gauss_next))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(has_gauss), float(cached)))
    torch.set_rng_state(state["torch"].cpu())
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
