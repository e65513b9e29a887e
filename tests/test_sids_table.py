"""De-duplication, SIDTable / sids.json, importing external SID files, build errors, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from sidrec.data.dataset import Dataset, DatasetInfo
from sidrec.errors import ConfigError, DataError
from sidrec.sids.build import build_sids, check_codebook, import_sids
from sidrec.sids.dedupe import add_dedup_level, colliding_items
from sidrec.sids.report import sid_report
from sidrec.sids.table import SIDTable, parse_token
from tests.conftest import shared_path


def _dataset(n: int, path=None) -> Dataset:
    items = pd.DataFrame({"item_id": [f"i{k}" for k in range(n)], "title": [f"Item {k}" for k in range(n)],
                          "description": [""] * n, "brand": [""] * n, "categories": [[] for _ in range(n)]})
    inter = pd.DataFrame({"user_id": ["u"] * n, "item_id": items["item_id"], "timestamp": np.arange(n)})
    info = DatasetInfo(name="tiny", source="test", format="test", protocol="none")
    return Dataset(items, inter, {}, info, path=path)


def test_dedup_adds_one_level_with_occurrence_index() -> None:
    codes = np.array([[1, 2], [1, 2], [0, 5], [1, 2], [0, 5], [3, 3]])
    out, n_colliding = add_dedup_level(codes)
    assert n_colliding == 3 and out.shape == (6, 3)
    assert out[:, 2].tolist() == [0, 1, 0, 2, 1, 0]
    assert colliding_items(out) == 0
    same, zero = add_dedup_level(np.array([[0, 1], [1, 0]]))
    assert zero == 0 and same.shape == (2, 2)
    forced, _ = add_dedup_level(np.array([[0, 1], [1, 0]]), force=True)
    assert forced[:, 2].tolist() == [0, 0]


def test_sidtable_tokens_vocab_and_round_trip(tmp_path) -> None:
    codes = np.array([[1, 2], [1, 2], [0, 3]])
    t = SIDTable(["x", "y", "z"], codes, codebook_sizes=[4, 4], method="rqkmeans", config={"seed": 0},
                 embedding={"dim": 8}).with_dedup()
    assert t.dedup_level and t.prefixes == ["a", "b", "c"] and t.codebook_sizes == [4, 4, 2]
    assert t.tokens("y") == ["<a_1>", "<b_2>", "<c_1>"]
    assert t.vocab()[0] == ["<a_0>", "<a_1>", "<a_2>", "<a_3>"] and t.vocab()[2] == ["<c_0>", "<c_1>"]
    path = t.save(tmp_path / "out")
    data = json.loads(path.read_text())
    assert path.name == "sids.json" and data["format"] == "sidrec.sids/1" and data["dedup_level"] is True
    assert data["items"]["z"] == ["<a_0>", "<b_3>", "<c_0>"] and list(data["items"]) == ["x", "y", "z"]
    back = SIDTable.load(path)
    np.testing.assert_array_equal(back.codes, t.codes)
    assert (back.item_ids, back.prefixes, back.codebook_sizes, back.method, back.config) == (
        t.item_ids, t.prefixes, t.codebook_sizes, t.method, t.config)
    with pytest.raises(DataError, match="has no SID"):
        t.tokens("nope")


def test_sidtable_load_rejects_bad_files(tmp_path) -> None:
    t = SIDTable(["x", "y"], np.array([[0, 1], [1, 0]]), codebook_sizes=[2, 2])
    p = t.save(tmp_path / "sids.json")
    data = json.loads(p.read_text())
    data["items"]["y"] = ["<a_1>"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"bad\.json.*'y' has a SID of 1 tokens"):
        SIDTable.load(tmp_path / "bad.json")
    data["items"]["y"] = ["<a_1>", "<b_5>"]
    (tmp_path / "bad2.json").write_text(json.dumps(data))
    with pytest.raises(DataError, match="uses code 5 but its codebook has only 2"):
        SIDTable.load(tmp_path / "bad2.json")
    (tmp_path / "other.json").write_text(json.dumps({"x": ["<a_0>"]}))
    with pytest.raises(DataError, match="not a sidrec SID file"):
        SIDTable.load(tmp_path / "other.json")
    assert parse_token("<b_17>") == ("b", 17)
    with pytest.raises(ValueError):
        parse_token("b_17")


def test_import_errors_name_file_and_item(tmp_path) -> None:
    ds = _dataset(3)
    f = tmp_path / "index.json"
    f.write_text(json.dumps({"i0": ["<a_1>", "<b_2>"], "i1": ["<a_1>", "<b_2>"]}))
    with pytest.raises(DataError) as e:
        import_sids(ds, f)
    assert str(f) in str(e.value) and "'i2'" in str(e.value)
    f.write_text(json.dumps({"i0": ["<a_1>", "<b_2>"], "i1": ["<a_1>"], "i2": ["<a_0>", "<b_0>"]}))
    with pytest.raises(DataError) as e:
        import_sids(ds, f)
    assert str(f) in str(e.value) and "'i1'" in str(e.value) and "same number of levels" in str(e.value)
    f.write_text(json.dumps({"i0": ["<a_1>", "<b_2>"], "i1": ["<a_1>", "<x_2>"], "i2": ["<a_0>", "<b_0>"]}))
    with pytest.raises(DataError, match="'i1', level 2.*prefix 'x'"):
        import_sids(ds, f)
    f.write_text(json.dumps({"i0": ["<a_1>"], "i1": ["<a_1>"], "i2": ["<a_0>"], "zz": ["<a_3>"]}))
    with pytest.raises(DataError, match="'zz' has a SID but is not in the dataset"):
        import_sids(ds, f)
    f.write_text(json.dumps({"i0": ["<a_1>"], "i1": ["<a_1>"], "i2": ["<a_0>"]}))
    t = import_sids(ds, f)
    assert t.is_unique() and t.tokens("i1") == ["<a_1>", "<b_1>"]


def test_codebook_larger_than_items_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"codebook size 256 is larger than the number of items \(100\).*--codebook 16"):
        check_codebook(256, 100)
    ds = _dataset(50)
    x = np.random.default_rng(0).standard_normal((50, 8)).astype(np.float32)
    with pytest.raises(ConfigError, match="--codebook"):
        build_sids(ds, "rqkmeans", codebook=64, embeddings=x, show_progress=False)
    with pytest.raises(DataError, match="40 embedding rows for 50 items"):
        build_sids(ds, "rqkmeans", codebook=8, embeddings=x[:40], show_progress=False)
    with pytest.raises(ConfigError, match="unknown option.*epochz"):
        build_sids(ds, "rqvae", codebook=8, embeddings=x, options={"epochz": 3}, show_progress=False)
    with pytest.raises(ConfigError, match="input_dim is 384 but the embeddings have 8"):
        build_sids(ds, "rqvae", codebook=8, embeddings=x, options={"input_dim": 384, "epochs": 1},
                   show_progress=False)


def test_build_and_report_on_random_vectors() -> None:
    ds = _dataset(400)
    x = np.random.default_rng(0).standard_normal((400, 16)).astype(np.float32)
    x[200:260] = x[0]  # 61 identical items: must collide, then be de-duplicated
    t = build_sids(ds, "rqkmeans", levels=2, codebook=8, embeddings=x, show_progress=False)
    assert t.is_unique() and t.dedup_level and t.n_levels == 3
    r = sid_report(t, x)
    assert r["all_unique"] and r["unique_sids"] == 400 and r["collisions"]["colliding_items"] >= 60
    assert r["largest_cluster"]["full_sid"] >= 61 and 0 < r["utilization"] <= 1
    assert r["per_level"][0]["used_codes"] <= 8 and r["per_level"][2]["dedup"]
    errs = [p["relative"] for p in r["prefix_error"]["per_level"]]
    assert errs[0] >= errs[1]
    assert r["reconstruction"]["relative_per_level"][0] > r["reconstruction"]["relative_per_level"][1]


def test_import_real_industrial_index() -> None:
    from sidrec.data.importers import import_dataset

    ds = import_dataset("minionerec", shared_path("amazon18-industrial"))
    index = next((shared_path("amazon18-industrial") / "index").glob("*.index.json"))
    t = import_sids(ds, index)
    r = sid_report(t)
    assert t.n_items == 3686 and t.n_levels == 4 and t.prefixes == ["a", "b", "c", "d"]
    assert r["collisions"]["colliding_items"] == 16 and r["all_unique"]
    assert import_sids(ds).codes.tolist() == t.codes.tolist()  # same as the dataset's own external SIDs


def test_import_real_beauty_index_adds_fifth_level() -> None:
    from sidrec.data.importers import import_dataset

    ds = import_dataset("lcrec", shared_path("amazon14-beauty"))
    t = import_sids(ds, shared_path("amazon14-beauty", "Beauty.index.json"))
    r = sid_report(t)
    assert t.n_levels == 5 and t.prefixes == ["a", "b", "c", "d", "e"]
    assert r["collisions"]["colliding_items"] == 13 and r["unique_sids"] == 12101


def _cli() -> typer.Typer:
    from sidrec.cli.sids import app as sids_app

    root = typer.Typer()
    root.add_typer(sids_app, name="sids")
    return root


def test_cli_build_report_compare(tmp_path) -> None:
    ds = _dataset(300)
    ds.save(tmp_path / "data")
    x = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    runner = CliRunner()
    res = runner.invoke(_cli(), ["sids", "build", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "s"),
                                 "--method", "balanced", "--levels", "2", "--codebook", "16",
                                 "--embeddings", str(tmp_path / "x.npy")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "s" / "sids.json").exists() and (tmp_path / "s" / "report.json").exists()
    res = runner.invoke(_cli(), ["sids", "report", str(tmp_path / "s" / "sids.json"), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["all_unique"] is True
    res = runner.invoke(_cli(), ["sids", "compare", "--data", str(tmp_path / "data"), "--embeddings",
                                 str(tmp_path / "x.npy"), "--levels", "2", "--codebook", "16", "--set", "epochs=2",
                                 "--methods", "rqkmeans", "balanced", "rqvae", "--out", str(tmp_path / "cmp")])
    assert res.exit_code == 0, res.output
    assert set(json.loads((tmp_path / "cmp" / "compare.json").read_text())) == {"rqkmeans", "balanced", "rqvae"}
    res = runner.invoke(_cli(), ["sids", "build", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "t"),
                                 "--codebook", "512", "--embeddings", str(tmp_path / "x.npy")])
    assert res.exit_code == 2 and "--codebook" in res.output
