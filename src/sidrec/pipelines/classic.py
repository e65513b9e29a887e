"""Train, evaluate and compare the classic baselines (popularity, SASRec, GRU4Rec).

    from sidrec.pipelines.classic import train_classic, evaluate_run, compare_runs
    metrics = train_classic("sasrec", "data/beauty", "runs/beauty-sasrec", overrides={"epochs": 50})
    evaluate_run("runs/beauty-sasrec", split="test")
    compare_runs("runs/beauty-gru4rec", "runs/beauty-sasrec")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from sidrec.data.dataset import Dataset
from sidrec.errors import SidrecError, validated
from sidrec.evaluation.compare import PairedResult, paired_bootstrap
from sidrec.utils.io import read_config
from sidrec.utils.runs import RunDir

ClassicModel = Literal["pop", "sasrec", "gru4rec"]


def train_classic(
    model: ClassicModel,
    data: str | Path,
    out: str | Path,
    *,
    config_file: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Train one classic model on a dataset folder into a run folder; returns its metrics.json content."""
    from sidrec.training.sequential import SequentialTrainConfig, SequentialTrainer, train_popularity

    dataset = Dataset.load(data)
    config = None
    if model != "pop":  # validate before the run folder is touched
        values: dict[str, Any] = {}
        if resume and (Path(out) / "config.yaml").exists():
            values.update(read_config(Path(out) / "config.yaml"))
        if config_file is not None:
            values.update(read_config(config_file))
        values.update(overrides or {})
        values["model"] = model
        config = validated(SequentialTrainConfig, values, where=str(config_file or "--set"))
    inside = config_file is not None and Path(config_file).resolve().parent == Path(out).resolve()
    run = RunDir(out, resume=resume, overwrite=overwrite, keep={Path(config_file).name} if inside else set())
    try:
        if config is None:
            return train_popularity(dataset, run)
        return SequentialTrainer(config, dataset, run).train(resume=resume)
    except SidrecError:
        if not resume:
            run.discard_if_unstarted()
        raise
    finally:
        run.close()


def load_ranks(run: str | Path, split: str = "test") -> pd.DataFrame:
    """The per-example ranks a run saved for a split (user_id, target, rank)."""
    path = Path(run) / f"ranks_{split}.parquet"
    if not path.exists():
        raise SidrecError(f"{path} not found: evaluate the run on the '{split}' split first (`sidrec eval --run {run} --split {split}`)")
    return pd.read_parquet(path)


def evaluate_run(run: str | Path, split: str = "test", *, device: str = "auto", batch_size: int | None = None) -> dict[str, Any]:
    """Re-evaluate a classic run's saved model on a split; writes metrics_<split>.json and ranks_<split>.parquet."""
    from sidrec.evaluation.ranking import evaluate_split, save_ranks
    from sidrec.models.base import load_model
    from sidrec.utils.device import resolve_device
    from sidrec.utils.io import write_json

    run = Path(run)
    cfg_path = run / "config.yaml"
    if not cfg_path.exists():
        raise SidrecError(f"{run} is not a run folder (config.yaml missing)")
    cfg = read_config(cfg_path)
    if not cfg.get("dataset"):
        raise SidrecError(f"{cfg_path} names no dataset folder (key 'dataset')")
    dataset = Dataset.load(cfg["dataset"])
    dev = resolve_device(device)
    model, item_ids = load_model(run / "model", device=dev)
    if item_ids != dataset.item_ids:
        raise SidrecError(f"the model in {run / 'model'} was trained on another item catalogue than {cfg['dataset']}")
    metrics, ranks = evaluate_split(model, dataset, split, batch_size=batch_size, device=dev)
    save_ranks(run / f"ranks_{split}.parquet", dataset.split(split), ranks)
    write_json(run / f"metrics_{split}.json", metrics)
    return metrics


def compare_runs(
    run_a: str | Path,
    run_b: str | Path,
    *,
    split: str = "test",
    metrics: list[str] | None = None,
    n_boot: int = 10000,
    seed: int = 0,
) -> list[PairedResult]:
    """Paired bootstrap B − A on the same examples (checked: same users and targets in the same order)."""
    a, b = load_ranks(run_a, split), load_ranks(run_b, split)
    if len(a) != len(b) or not (
        np.array_equal(a["user_id"].to_numpy(), b["user_id"].to_numpy())
        and np.array_equal(a["target"].to_numpy(), b["target"].to_numpy())
    ):
        raise SidrecError(
            f"{run_a} and {run_b} were not evaluated on the same {split} examples "
            f"({len(a)} vs {len(b)} rows, or different users/targets): a paired comparison needs the same dataset"
        )
    return paired_bootstrap(a["rank"].to_numpy(), b["rank"].to_numpy(), metrics=metrics, n_boot=n_boot, seed=seed)
