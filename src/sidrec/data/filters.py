"""Interaction and item filters. Each returns the filtered frame and a FilterRecord of what it removed."""

from __future__ import annotations

import re

import pandas as pd

from sidrec.data.dataset import FilterRecord


def dedupe_interactions(interactions: pd.DataFrame) -> tuple[pd.DataFrame, FilterRecord]:
    """Drop exact repeats of (user, item, timestamp) (e.g. a review listed twice)."""
    before = len(interactions)
    out = interactions.drop_duplicates(["user_id", "item_id", "timestamp"], keep="first")
    return out, FilterRecord(
        name="duplicate_interactions",
        description="exact repeats of (user_id, item_id, timestamp)",
        removed_interactions=before - len(out),
    )


def time_window(
    interactions: pd.DataFrame, start: int | None = None, end: int | None = None
) -> tuple[pd.DataFrame, FilterRecord]:
    """Keep interactions with start <= timestamp < end (unix seconds; None = open)."""
    mask = pd.Series(True, index=interactions.index)
    if start is not None:
        mask &= interactions["timestamp"] >= start
    if end is not None:
        mask &= interactions["timestamp"] < end
    out = interactions[mask]
    return out, FilterRecord(
        name="time_window",
        description=f"keep timestamps in [{start}, {end})",
        removed_interactions=int((~mask).sum()),
    )


def k_core(
    interactions: pd.DataFrame, user_k: int = 5, item_k: int = 5, max_rounds: int = 100
) -> tuple[pd.DataFrame, FilterRecord]:
    """Iterative k-core: repeat until every user has >= user_k and every item >= item_k interactions."""
    df = interactions
    users0, items0, n0 = df["user_id"].nunique(), df["item_id"].nunique(), len(df)
    for _ in range(max_rounds):
        uc = df["user_id"].map(df["user_id"].value_counts())
        ic = df["item_id"].map(df["item_id"].value_counts())
        keep = (uc >= user_k) & (ic >= item_k)
        if keep.all():
            break
        df = df[keep]
    return df, FilterRecord(
        name="k_core",
        description=f"iterative {user_k}-core on users and {item_k}-core on items",
        removed_interactions=n0 - len(df),
        removed_users=users0 - df["user_id"].nunique(),
        removed_items=items0 - df["item_id"].nunique(),
    )


_HTML = re.compile(r"<[^>]+>|&[a-z]+;|getTime|var\s", re.IGNORECASE)


def title_filter(items: pd.DataFrame, max_words: int | None = 40) -> tuple[pd.DataFrame, FilterRecord]:
    """Drop items whose title is missing, empty, HTML/JavaScript debris, or longer than max_words.

    These are the title rules LC-Rec and MiniOneRec apply to Amazon metadata before building SIDs.
    """
    title = items["title"].fillna("").astype(str).str.strip()
    bad = title.eq("") | title.str.contains(_HTML)
    if max_words is not None:
        bad |= title.str.split().str.len() > max_words
    out = items[~bad]
    return out, FilterRecord(
        name="title_filter",
        description="items with a missing, empty or HTML-like title"
        + (f" or one over {max_words} words" if max_words is not None else ""),
        removed_items=int(bad.sum()),
    )


def restrict_to_items(interactions: pd.DataFrame, item_ids: pd.Series, reason: str) -> tuple[pd.DataFrame, FilterRecord]:
    """Drop interactions whose item is not in `item_ids` (e.g. items removed by the title filter)."""
    keep = interactions["item_id"].isin(set(item_ids))
    return interactions[keep], FilterRecord(
        name="unknown_items",
        description=reason,
        removed_interactions=int((~keep).sum()),
    )
