"""A run folder → what the server needs: its engine, its catalogue and its identity.

    served = load_served("runs/demo/sft", device="cpu")
    served.engine.run([...]); served.catalogue.search("lotion"); served.info["method"]

Generative runs (a `model/sidrec.json`: SFT, TS-Rec, ILRec, DPO, S-DPO, TIGER, any registered
method) load through `SIDRecommender.load`; classic runs (`model/model.json`: SASRec, GRU4Rec,
popularity) through `load_model`. Titles and categories come from the dataset the run's
config.yaml names; when that folder is gone the server still answers by item id (titles empty,
category filters refused).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidrec.data.dataset import Dataset
from sidrec.errors import DataError
from sidrec.serving.catalogue import Catalogue
from sidrec.serving.engines import Engine, GenerativeEngine, ScoringEngine
from sidrec.utils.io import read_config

log = logging.getLogger("sidrec.serve")

DEFAULT_NUM_BEAMS = 20


@dataclass
class Served:
    """A loaded run: `engine` answers queries, `catalogue` resolves them, `info` is GET /v1/model."""

    engine: Engine
    catalogue: Catalogue
    info: dict[str, Any] = field(default_factory=dict)
    default_num_beams: int = DEFAULT_NUM_BEAMS
    sid_strings: dict[str, str] | None = None


def _config(run: Path) -> dict[str, Any]:
    path = run / "config.yaml"
    return read_config(path) if path.is_file() else {}


def load_served(run: str | Path, *, device: str = "auto") -> Served:
    """Load any trained run folder (or a generative model/ folder) for serving."""
    from sidrec.utils.device import resolve_device

    run = Path(run)
    if not run.exists():
        raise DataError(f"{run}: no such run folder; train one first (`make demo` writes runs/demo/sft and "
                        "runs/demo/sasrec)")
    dev = resolve_device(device)
    model_dir = run if (run / "sidrec.json").is_file() else run / "model"
    run_dir = run.parent if model_dir == run else run
    cfg = _config(run_dir)
    if (model_dir / "sidrec.json").is_file():
        from sidrec.llm.recommender import SIDRecommender

        rec = SIDRecommender.load(model_dir, device=dev)
        engine: Engine = GenerativeEngine(rec)
        method = str(cfg.get("method", "tiger" if rec.kind == "tiger" else "sft"))
        levels = len(rec.table.codebook_sizes)
        beams = int((cfg.get("eval") or {}).get("num_beams") or DEFAULT_NUM_BEAMS)
        sid_strings = dict(rec.sid_strings)
    elif (model_dir / "model.json").is_file():
        from sidrec.models.base import load_model

        model, _ = load_model(model_dir, device=dev)
        engine, method, levels, beams, sid_strings = ScoringEngine(model), str(model.kind), None, DEFAULT_NUM_BEAMS, None
    else:
        raise DataError(f"{run} has no trained model (looked for model/sidrec.json and model/model.json); "
                        "is the run finished? `sidrec train … --resume` continues an interrupted one")
    catalogue, dataset_name = _catalogue(cfg, engine.item_ids, run_dir)
    info = {"run": str(run_dir), "method": method, "engine": engine.kind, "dataset": dataset_name,
            "dataset_path": cfg.get("dataset"), "n_items": len(engine.item_ids), "sid_levels": levels,
            "has_titles": any(catalogue.titles), "has_categories": catalogue.categories is not None,
            "default_num_beams": beams if engine.uses_beams else None, "device": str(dev)}
    return Served(engine, catalogue, info, beams, sid_strings)


def _catalogue(cfg: dict[str, Any], item_ids: list[str], run: Path) -> tuple[Catalogue, str | None]:
    path = _dataset_folder(cfg.get("dataset"), run)
    if path is not None:
        dataset = Dataset.load(path, validate=False)
        return Catalogue.from_dataset(dataset, item_ids), dataset.name
    log.warning("%s: the dataset folder %s is not here; serving item ids only (no titles, no category filter)",
                run, cfg.get("dataset") or "(none recorded)")
    return Catalogue(item_ids), None


def _dataset_folder(recorded: str | None, run: Path) -> Path | None:
    """The dataset folder a run's config.yaml names. A relative path was relative to where the run
    was started (`make demo` records runs/demo/data): from here, or from a folder above the run."""
    if not recorded:
        return None
    path = Path(recorded)
    candidates = [path] if path.is_absolute() else [path, *(a / path for a in run.resolve().parents)]
    return next((c for c in candidates if c.is_dir()), None)
