"""The canonical dataset folder that every stage of sidrec reads.

    DATASET/
      items.parquet         item_id (str, unique), title, description, brand (str),
                            categories (list[str]), any extra text columns (str)
      interactions.parquet  user_id (str), item_id (str), timestamp (int64), sorted by user
                            then time, ties in source order. When the source has no time,
                            `timestamp` is the position in the user's sequence and
                            dataset.json says time_kind = "order".
      train.parquet         examples: user_id (str), history (list[str], oldest first),
      valid.parquet         target (str), timestamp (int64, the target's)
      test.parquet
      dataset.json          DatasetInfo: source, format, protocol, filters with counts, stats
      external_sids.json    optional: SIDs that came with the source ({item_id: [tokens]})

Item row order in items.parquet defines the integer item index (0 … n_items-1) that models use;
encoded histories add 1 so that 0 is padding.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from sidrec.errors import DataError
from sidrec.utils.io import read_json, write_json, write_parquet

SPLITS = ("train", "valid", "test")
ITEM_COLUMNS = ("item_id", "title", "description", "brand", "categories")
INTERACTION_COLUMNS = ("user_id", "item_id", "timestamp")
EXAMPLE_COLUMNS = ("user_id", "history", "target", "timestamp")


class FilterRecord(BaseModel):
    """One filter applied during import and what it removed (nothing is dropped silently)."""

    name: str
    description: str
    removed_interactions: int = 0
    removed_items: int = 0
    removed_users: int = 0
    removed_examples: int = 0


class DatasetInfo(BaseModel):
    """The content of dataset.json."""

    name: str
    source: str
    format: str
    protocol: str
    protocol_params: dict[str, Any] = Field(default_factory=dict)
    time_kind: Literal["timestamp", "order"] = "timestamp"
    synthetic: bool = False
    filters: list[FilterRecord] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)
    external_sids: str | None = None
    notes: list[str] = Field(default_factory=list)
    created: str = Field(default_factory=lambda: dt.datetime.now().isoformat(timespec="seconds"))
    sidrec_version: str = Field(default_factory=lambda: __import__("sidrec").__version__)


@dataclass
class EncodedSplit:
    """A split as integer arrays: histories left-padded with 0, item index + 1 elsewhere."""

    histories: np.ndarray  # int64 [N, H]; 0 = padding, item index + 1 otherwise; most recent last
    targets: np.ndarray  # int64 [N]; 0-based item index
    user_ids: np.ndarray  # object [N]

    def __len__(self) -> int:
        return len(self.targets)


class Dataset:
    """A loaded canonical dataset folder."""

    def __init__(
        self,
        items: pd.DataFrame,
        interactions: pd.DataFrame,
        splits: dict[str, pd.DataFrame],
        info: DatasetInfo,
        path: Path | None = None,
        external_sids: dict[str, list[str]] | None = None,
    ) -> None:
        self.items = items.reset_index(drop=True)
        self.interactions = interactions.reset_index(drop=True)
        self.splits = splits
        self.info = info
        self.path = path
        self.external_sids = external_sids
        self.item_ids: list[str] = self.items["item_id"].tolist()
        self.item_index: dict[str, int] = {iid: i for i, iid in enumerate(self.item_ids)}

    # ------------------------------------------------------------------ basics
    @property
    def name(self) -> str:
        return self.info.name

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    def split(self, name: str) -> pd.DataFrame:
        if name not in self.splits:
            raise DataError(f"unknown split '{name}': choose one of {', '.join(self.splits)}")
        return self.splits[name]

    def titles(self) -> list[str]:
        return self.items["title"].fillna("").astype(str).tolist()

    # ------------------------------------------------------------------ encoding
    def encode(self, split: str, max_history: int | None = None) -> EncodedSplit:
        """Integer arrays for a split; histories keep their most recent `max_history` items."""
        df = self.split(split)
        h = int(max_history or self.info.protocol_params.get("max_history") or 50)
        idx = self.item_index
        n = len(df)
        hist = np.zeros((n, h), dtype=np.int64)
        for row, items in enumerate(df["history"]):
            items = list(items)[-h:]
            if items:
                hist[row, h - len(items) :] = [idx[i] + 1 for i in items]
        targets = np.fromiter((idx[t] for t in df["target"]), dtype=np.int64, count=n)
        return EncodedSplit(histories=hist, targets=targets, user_ids=df["user_id"].to_numpy())

    # ------------------------------------------------------------------ I/O
    def save(self, path: str | Path) -> Path:
        """Write the folder; every file atomically, dataset.json last (its presence marks completeness)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        write_parquet(path / "items.parquet", self.items)
        write_parquet(path / "interactions.parquet", self.interactions)
        for name, df in self.splits.items():
            write_parquet(path / f"{name}.parquet", df)
        if self.external_sids is not None:
            write_json(path / "external_sids.json", self.external_sids)
            self.info.external_sids = "external_sids.json"
        write_json(path / "dataset.json", self.info.model_dump())
        self.path = path
        return path

    @classmethod
    def load(cls, path: str | Path, *, validate: bool = True) -> Dataset:
        path = Path(path)
        meta = path / "dataset.json"
        if not meta.exists():
            raise DataError(
                "not a sidrec dataset folder (dataset.json is missing)",
                path=path,
                hint="create one with `sidrec data import …` or `sidrec data synth`",
            )
        info = DatasetInfo.model_validate(read_json(meta))
        items = pd.read_parquet(path / "items.parquet")
        interactions = pd.read_parquet(path / "interactions.parquet")
        splits = {s: pd.read_parquet(path / f"{s}.parquet") for s in SPLITS if (path / f"{s}.parquet").exists()}
        ext = read_json(path / info.external_sids) if info.external_sids else None
        ds = cls(items, interactions, splits, info, path=path, external_sids=ext)
        if validate:
            ds.validate()
        return ds

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Check the invariants every later stage relies on; raise DataError naming the file and field."""
        where = self.path or Path(self.info.name)
        for col in ITEM_COLUMNS:
            if col not in self.items.columns:
                raise DataError("missing column", path=where / "items.parquet", field=col)
        dup = self.items["item_id"].duplicated()
        if dup.any():
            first = int(np.flatnonzero(dup.to_numpy())[0])
            raise DataError(
                f"duplicate item_id '{self.items['item_id'].iloc[first]}'",
                path=where / "items.parquet",
                line=first + 1,
                field="item_id",
            )
        for col in INTERACTION_COLUMNS:
            if col not in self.interactions.columns:
                raise DataError("missing column", path=where / "interactions.parquet", field=col)
        unknown = ~self.interactions["item_id"].isin(self.item_index)
        if unknown.any():
            first = int(np.flatnonzero(unknown.to_numpy())[0])
            raise DataError(
                f"item_id '{self.interactions['item_id'].iloc[first]}' is not in items.parquet",
                path=where / "interactions.parquet",
                line=first + 1,
                field="item_id",
            )
        for name, df in self.splits.items():
            for col in ("user_id", "history", "target"):
                if col not in df.columns:
                    raise DataError("missing column", path=where / f"{name}.parquet", field=col)
            bad_t = ~df["target"].isin(self.item_index)
            if bad_t.any():
                first = int(np.flatnonzero(bad_t.to_numpy())[0])
                raise DataError(
                    f"target '{df['target'].iloc[first]}' is not in items.parquet",
                    path=where / f"{name}.parquet",
                    line=first + 1,
                    field="target",
                )
            flat = df["history"].explode()
            bad_h = flat.notna() & ~flat.isin(self.item_index)
            if bad_h.any():
                row = int(flat.index[np.flatnonzero(bad_h.to_numpy())[0]])
                raise DataError(
                    f"history item '{flat[bad_h].iloc[0]}' is not in items.parquet",
                    path=where / f"{name}.parquet",
                    line=row + 1,
                    field="history",
                )
