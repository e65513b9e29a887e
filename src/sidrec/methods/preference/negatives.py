"""Offline negatives for preference training (DPO / S-DPO), written to a reusable file.

    sidrec negatives sample --run runs/sft --strategy beam --per-example 3 --out runs/negatives.parquet

One row per seqrec training example (a row of the train split): `row` (its position in the train
split), `user_id`, `target`, and `negatives`, a list of `per_example` item ids. Strategies:

- `random`: items drawn uniformly;
- `popularity`: items drawn in proportion to 1 + how often they are a train-split target;
- `beam`: the SFT model's own top-ranked wrong items (constrained beam search on the example's
  history, best first) - the hard negatives. If the beam holds fewer wrong items than asked
  (only with a beam narrower than `per_example` + the user's items), the rest are popularity
  draws, and the count of such fills is reported.

A negative is never a positive: never the target, and never any item the user interacted with
anywhere in the train split (its history and targets), since those are known to be liked. Each
row's negatives are distinct. Beside FILE, FILE.json records the run, strategy, counts and seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from sidrec.data.dataset import Dataset
from sidrec.errors import ConfigError, DataError
from sidrec.utils.io import atomic_path, read_config, read_json, write_json
from sidrec.utils.progress import progress

Strategy = Literal["random", "popularity", "beam"]
STRATEGIES: tuple[str, ...] = ("random", "popularity", "beam")


@dataclass
class NegativeSample:
    frame: pd.DataFrame  # row, user_id, target, negatives
    meta: dict[str, Any]


def user_positives(train: pd.DataFrame) -> dict[str, set[str]]:
    """Every item each user interacted with in the train split (histories and targets)."""
    out: dict[str, set[str]] = {}
    for user, hist, target in zip(train["user_id"].astype(str), train["history"], train["target"].astype(str),
                                  strict=True):
        s = out.setdefault(user, set())
        s.update(str(i) for i in hist)
        s.add(target)
    return out


def _draw(rng: np.random.Generator, items: np.ndarray, probs: np.ndarray | None, k: int,
          exclude: set[str], catalogue: set[str]) -> list[str]:
    """k distinct items not in `exclude` (rejection sampling; the catalogue is far larger than k)."""
    free = len(catalogue) - len(catalogue & exclude)
    if free < k:
        raise DataError(f"only {free} items are not positives of this user; ask for fewer negatives per example")
    chosen: list[str] = []
    seen = set(exclude)
    while len(chosen) < k:
        for i in rng.choice(len(items), size=2 * k + 4, p=probs):
            item = str(items[i])
            if item not in seen:
                seen.add(item)
                chosen.append(item)
                if len(chosen) == k:
                    break
    return chosen


def sample_negatives(
    train: pd.DataFrame,
    item_ids: list[str],
    strategy: Strategy,
    per_example: int,
    *,
    max_examples: int | None = None,
    seed: int = 0,
    recommender: Any = None,
    num_beams: int | None = None,
    batch_size: int = 32,
) -> NegativeSample:
    """Negatives for the seqrec rows of `train` (those with a non-empty history; a seeded sample
    of `max_examples` of them when given). `recommender` (a GenerativeRecommender) is needed for `beam`."""
    if strategy not in STRATEGIES:
        raise DataError(f"unknown negative strategy '{strategy}'; choose from {', '.join(STRATEGIES)}")
    if per_example < 1:
        raise DataError("per_example must be at least 1")
    if strategy == "beam" and recommender is None:
        raise DataError("the beam strategy needs the SFT run whose beam search ranks the hard negatives (--run)")
    rows = np.flatnonzero([len(h) > 0 for h in train["history"]])
    n_empty = len(train) - len(rows)
    if max_examples is not None and max_examples < len(rows):
        rng0 = np.random.default_rng(seed)
        rows = np.sort(rng0.choice(rows, size=max_examples, replace=False))
    positives = user_positives(train)
    items = np.asarray([str(i) for i in item_ids])
    catalogue = set(items.tolist())
    counts = train["target"].astype(str).value_counts()
    # popularity: how often an item is a train target (every interaction after a user's first)
    pop = np.asarray([counts.get(i, 0) for i in items], dtype=np.float64) + 1.0  # +1: every item reachable
    pop_p = pop / pop.sum()
    rng = np.random.default_rng(seed + 1)
    users = train["user_id"].astype(str).to_numpy()
    targets = train["target"].astype(str).to_numpy()
    negatives: list[list[str]] = []
    fills = 0
    if strategy == "beam":
        width = num_beams or per_example + 10
        with progress() as bar:
            task = bar.add_task("beam-search negatives", total=len(rows))
            for start in range(0, len(rows), batch_size):
                chunk = rows[start:start + batch_size]
                hists = [[str(i) for i in train["history"].iat[r]] for r in chunk]  # prompts keep max_history
                ranked, _ = recommender.recommend(hists, top_k=width, num_beams=width)
                for r, top in zip(chunk, ranked, strict=True):
                    excl = positives[users[r]] | {targets[r]}
                    wrong = [i for i in top if i not in excl][:per_example]
                    if len(wrong) < per_example:
                        fills += per_example - len(wrong)
                        wrong += _draw(rng, items, pop_p, per_example - len(wrong), excl | set(wrong), catalogue)
                    negatives.append(wrong)
                bar.update(task, advance=len(chunk))
    else:
        probs = pop_p if strategy == "popularity" else None
        for r in rows:
            negatives.append(_draw(rng, items, probs, per_example, positives[users[r]] | {targets[r]}, catalogue))
    frame = pd.DataFrame({"row": rows.astype(np.int64), "user_id": users[rows], "target": targets[rows],
                          "negatives": negatives})
    meta = {"strategy": strategy, "per_example": per_example, "examples": len(frame), "seed": seed,
            "max_examples": max_examples, "num_beams": (num_beams or per_example + 10) if strategy == "beam" else None,
            "skipped": {"examples with an empty history": n_empty},
            "popularity_fills": fills, "train_rows": len(train),
            "excluded": "the target and every item of the user's train-split interactions"}
    return NegativeSample(frame, meta)


def save_negatives(sample: NegativeSample, path: str | Path) -> Path:
    """FILE (parquet) and FILE.json (what produced it), each written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        sample.frame.to_parquet(tmp, index=False)
    write_json(path.with_name(path.name + ".json"), sample.meta)
    return path


def load_negatives(path: str | Path, train: pd.DataFrame, known_items: set[str]) -> pd.DataFrame:
    """A negatives file checked against the train split it was sampled for: each row's user and
    target must match, every negative must be a catalogue item and none may be a positive."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: negatives file not found; make one with `sidrec negatives sample --run RUN_SFT`")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise DataError(f"{path}: not a readable parquet negatives file ({exc})") from exc
    missing = {"row", "user_id", "target", "negatives"} - set(frame.columns)
    if missing:
        raise DataError(f"{path}: missing column(s) {sorted(missing)}; expected row, user_id, target, negatives")
    positives = user_positives(train)
    users = train["user_id"].astype(str).to_numpy()
    targets = train["target"].astype(str).to_numpy()
    for k, (row, user, target, negs) in enumerate(zip(frame["row"], frame["user_id"].astype(str),
                                                      frame["target"].astype(str), frame["negatives"], strict=True)):
        where = f"{path}: line {k + 1} (train row {row})"
        if not 0 <= int(row) < len(train) or users[row] != user or targets[row] != target:
            raise DataError(f"{where}: does not match this dataset's train split (user {user}, target {target}); "
                            "sample the negatives again for this dataset")
        negs = [str(i) for i in negs]
        if not negs:
            raise DataError(f"{where}: no negatives")
        unknown = [i for i in negs if i not in known_items]
        if unknown:
            raise DataError(f"{where}: negative item(s) {unknown[:3]} are not in the catalogue")
        bad = [i for i in negs if i in positives[user] or i == target]
        if bad:
            raise DataError(f"{where}: negative(s) {bad[:3]} are positives of user {user}")
    return frame


def negatives_meta(path: str | Path) -> dict[str, Any]:
    meta = Path(str(path) + ".json")
    return read_json(meta) if meta.is_file() else {}


def sample_run_negatives(
    out: str | Path,
    *,
    run: str | Path | None = None,
    dataset: str | Path | None = None,
    strategy: str = "beam",
    per_example: int = 3,
    max_examples: int | None = None,
    seed: int = 0,
    num_beams: int | None = None,
    batch_size: int = 32,
    device: str = "auto",
) -> dict[str, Any]:
    """Negatives for the train split of a run's dataset (or of `dataset` for random / popularity),
    written to `out` (parquet) and `out`.json; returns the meta record."""
    rec = None
    if run is not None:
        cfg = read_config(Path(run) / "config.yaml") if (Path(run) / "config.yaml").is_file() else {}
        if dataset is None:
            dataset = (cfg or {}).get("dataset")
        if dataset is None:
            raise DataError("names no dataset folder", path=Path(run) / "config.yaml", field="dataset")
    if dataset is None:
        raise ConfigError("give the SFT run (--run RUN) or, for random / popularity negatives, a dataset (--data)")
    ds = Dataset.load(dataset)
    item_ids = [str(i) for i in ds.item_ids]
    if strategy == "beam":
        if run is None:
            raise ConfigError("beam negatives come from an SFT model's beam search: give --run RUN_SFT")
        from sidrec.llm.recommender import GenerativeRecommender, resolve_model_dir
        from sidrec.utils.device import resolve_device

        rec = GenerativeRecommender.load(resolve_model_dir(run), device=resolve_device(device))
        if set(rec.item_ids) != set(item_ids):
            raise DataError(f"the model in {run} was trained on another item catalogue than {dataset}")
    sample = sample_negatives(ds.split("train"), item_ids, strategy, per_example,  # type: ignore[arg-type]
                              max_examples=max_examples, seed=seed, recommender=rec, num_beams=num_beams,
                              batch_size=batch_size)
    sample.meta.update({"run": str(run) if run is not None else None, "dataset": str(dataset)})
    save_negatives(sample, out)
    return sample.meta
