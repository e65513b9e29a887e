"""Integration: every method gives Industrial's 3,686 real items unique SIDs (real MiniLM embeddings).

The embeddings (MiniLM over the item text, truncated to 32 tokens to keep the first run short) are
computed once per module and kept in the user's embedding cache, so later runs only read them.
"""

from __future__ import annotations

import numpy as np
import pytest

from sidrec.sids.build import compare_methods
from sidrec.sids.embed import EmbedConfig, encode_items
from tests.conftest import shared_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def industrial():
    from sidrec.data.importers import import_dataset

    ds = import_dataset("minionerec", shared_path("amazon18-industrial"))
    emb = encode_items(ds, EmbedConfig(max_length=32), show_progress=False)
    return ds, emb


def test_each_method_gives_unique_sids_on_the_same_embeddings(industrial) -> None:
    ds, emb = industrial
    assert emb.vectors.shape == (3686, 384)
    reports = compare_methods(ds, ["external", "rqkmeans", "balanced", "rqvae"], embeddings=emb,
                              options={"epochs": 10}, show_progress=False)
    for method, r in reports.items():
        assert r["n_items"] == 3686 and r["all_unique"] and r["unique_sids"] == 3686, method
        assert len(r["prefix_error"]["per_level"]) == r["levels"]
    assert reports["external"]["collisions"]["colliding_items"] == 16
    # balanced: distinct last codes inside every trie node → fewer collisions, more even level-1 use
    assert reports["balanced"]["collisions"]["colliding_items"] < reports["rqkmeans"]["collisions"]["colliding_items"]
    assert reports["balanced"]["largest_cluster"]["level1"] <= int(np.ceil(3686 / 256))
    assert reports["balanced"]["per_level"][0]["entropy_normalized"] > reports["rqkmeans"]["per_level"][0]["entropy_normalized"]
    assert reports["rqvae"]["reconstruction"]["mse"] > 0
