"""The one path every importer ends on: normalise, validate, sort, split, compute stats."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import pandas as pd

from sidrec.data.dataset import Dataset, DatasetInfo, FilterRecord
from sidrec.data.splits import leave_one_out, sort_interactions, temporal_split
from sidrec.data.stats import compute_stats
from sidrec.errors import ConfigError, DataError

Protocol = Literal["leave-one-out", "temporal"]


def normalize_items(items: pd.DataFrame, source: str = "items") -> pd.DataFrame:
    """Canonical item columns and types; extra columns are kept as strings."""
    if "item_id" not in items.columns:
        raise DataError("missing column", path=source, field="item_id")
    out = items.copy()
    out["item_id"] = out["item_id"].astype(str)
    for col in ("title", "description", "brand"):
        if col not in out.columns:
            out[col] = ""
        out[col] = out[col].fillna("").astype(str)
    if "categories" not in out.columns:
        out["categories"] = [[] for _ in range(len(out))]
    out["categories"] = out["categories"].map(_as_list)
    extra = [c for c in out.columns if c not in ("item_id", "title", "description", "brand", "categories")]
    for c in extra:
        out[c] = out[c].fillna("").astype(str)
    return out[["item_id", "title", "description", "brand", "categories", *extra]].reset_index(drop=True)


def _as_list(v: Any) -> list[str]:
    if v is None or (isinstance(v, float) and pd.isna(v)):
        return []
    if isinstance(v, str):
        return [v] if v.strip() else []
    return [str(x) for x in v if str(x).strip()]


def build_dataset(
    *,
    name: str,
    source: str,
    format: str,
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    protocol: Protocol = "leave-one-out",
    max_history: int = 20,
    ratios: Sequence[float] = (0.8, 0.1, 0.1),
    filters: list[FilterRecord] | None = None,
    time_kind: Literal["timestamp", "order"] = "timestamp",
    drop_items_without_interactions: bool = False,
    external_sids: dict[str, list[str]] | None = None,
    synthetic: bool = False,
    notes: list[str] | None = None,
) -> Dataset:
    """Build a canonical Dataset from an items table and an interactions table.

    `interactions` needs user_id, item_id, timestamp; its row order is the tie rule for equal
    timestamps. Every item id in it must be in `items` (importers report unknown ids themselves,
    naming the file and line).
    """
    filters = list(filters or [])
    items = normalize_items(items, source)
    inter = interactions[["user_id", "item_id", "timestamp"]].copy()
    inter["user_id"] = inter["user_id"].astype(str)
    inter["item_id"] = inter["item_id"].astype(str)
    inter["timestamp"] = inter["timestamp"].astype("int64")
    known = set(items["item_id"])
    unknown = ~inter["item_id"].isin(known)
    if unknown.any():
        bad = inter.loc[unknown, "item_id"].iloc[0]
        raise DataError(f"interaction with item_id '{bad}' that has no item row", path=source, field="item_id")
    if drop_items_without_interactions:
        used = set(inter["item_id"])
        keep = items["item_id"].isin(used)
        filters.append(
            FilterRecord(
                name="items_without_interactions",
                description="items that no kept interaction mentions",
                removed_items=int((~keep).sum()),
            )
        )
        items = items[keep].reset_index(drop=True)
    inter = sort_interactions(inter)
    if not isinstance(max_history, int) or isinstance(max_history, bool) or max_history < 1:
        raise ConfigError(f"max_history must be a whole number ≥ 1, not {max_history!r}")
    if protocol == "leave-one-out":
        splits, split_filters = leave_one_out(inter, max_history=max_history)
        params: dict[str, Any] = {"max_history": max_history}
    elif protocol == "temporal":
        splits, split_filters = temporal_split(inter, max_history=max_history, ratios=ratios)
        params = {"max_history": max_history, "ratios": list(ratios)}
    else:
        raise DataError(f"unknown split protocol '{protocol}': use leave-one-out or temporal")
    filters += split_filters
    return finalize(
        name=name,
        source=source,
        format=format,
        items=items,
        interactions=inter,
        splits=splits,
        protocol=protocol,
        protocol_params=params,
        filters=filters,
        time_kind=time_kind,
        external_sids=external_sids,
        synthetic=synthetic,
        notes=notes,
    )


def finalize(
    *,
    name: str,
    source: str,
    format: str,
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    splits: dict[str, pd.DataFrame],
    protocol: str,
    protocol_params: dict[str, Any],
    filters: list[FilterRecord],
    time_kind: Literal["timestamp", "order"],
    external_sids: dict[str, list[str]] | None = None,
    synthetic: bool = False,
    notes: list[str] | None = None,
) -> Dataset:
    """Assemble and validate a Dataset from ready splits (used directly by importers of given splits).
    A dataset without items or interactions is refused (trainers refuse an empty train split, and
    evaluation an empty split, each with its own message)."""
    if len(items) == 0 or len(interactions) == 0:
        raise DataError(f"the import yields {len(items)} items and {len(interactions)} interactions: nothing to "
                        "train on (see the filters it applied, e.g. lower the k-core thresholds)", path=source)
    items = normalize_items(items, source)
    info = DatasetInfo(
        name=name,
        source=source,
        format=format,
        protocol=protocol,
        protocol_params=protocol_params,
        time_kind=time_kind,
        synthetic=synthetic,
        filters=filters,
        stats=compute_stats(items, interactions, splits),
        notes=list(notes or []),
    )
    ds = Dataset(items, interactions, splits, info, external_sids=external_sids)
    ds.validate()
    return ds
