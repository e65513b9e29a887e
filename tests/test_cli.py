"""The CLI is a thin layer: these tests check it wires arguments to the documented functions and reports errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from sidrec.cli.main import app
from sidrec.data.dataset import Dataset

from .conftest import shared_path

runner = CliRunner()


def test_every_command_has_help():
    for args in (["--help"], ["data", "--help"], ["data", "import", "--help"], ["data", "synth", "--help"],
                 ["data", "stats", "--help"], ["data", "download", "--help"], ["train", "--help"],
                 ["train", "sasrec", "--help"], ["train", "gru4rec", "--help"], ["train", "pop", "--help"],
                 ["eval", "--help"], ["eval", "compare", "--help"], ["demo", "--help"]):
        r = runner.invoke(app, args)
        assert r.exit_code == 0, (args, r.output)
        assert "Usage" in r.output


def test_version():
    r = runner.invoke(app, ["--version"])
    assert r.exit_code == 0 and "sidrec" in r.output


def test_data_synth_then_stats(tmp_path):
    out = tmp_path / "syn"
    r = runner.invoke(app, ["data", "synth", "--out", str(out), "--items", "200", "--users", "300", "--seed", "3"])
    assert r.exit_code == 0, r.output
    ds = Dataset.load(out)
    assert ds.info.synthetic and ds.n_items == 200
    r = runner.invoke(app, ["data", "stats", str(out)])
    assert r.exit_code == 0 and "synthetic" in r.output and "interactions" in r.output


def test_data_import_real_recbole(tmp_path):
    src = shared_path("ml-100k")
    out = tmp_path / "ml"
    r = runner.invoke(app, ["data", "import", "recbole", str(src), "--out", str(out), "--max-history", "5"])
    assert r.exit_code == 0, r.output
    ds = Dataset.load(out)
    assert ds.info.protocol_params["max_history"] == 5
    assert ds.split("test")["history"].map(len).max() == 5
    assert "943" in r.output


def test_import_error_is_one_clear_line(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.inter").write_text("user_id:token\titem_id:token\ttimestamp:float\n1\t2\tyesterday\n")
    r = runner.invoke(app, ["data", "import", "recbole", str(bad), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2
    assert "x.inter" in r.output and "line 2" in r.output and "timestamp" in r.output
    assert "Traceback" not in r.output


def test_set_option_values_are_parsed(tmp_path):
    src = shared_path("ml-100k")
    r = runner.invoke(app, ["data", "import", "recbole", str(src), "--out", str(tmp_path / "o"),
                            "--set", "min_rating=4"])
    assert r.exit_code == 0, r.output
    ds = Dataset.load(tmp_path / "o")
    assert any(f.name == "min_rating" and f.removed_interactions > 0 for f in ds.info.filters)


def test_eval_compare_reads_saved_ranks(tmp_path):
    rng = np.random.default_rng(0)
    users = [f"u{i}" for i in range(500)]
    targets = [f"i{i % 50}" for i in range(500)]
    a = rng.integers(1, 100, 500)
    b = np.maximum(1, a - 30)
    for name, ranks in (("a", a), ("b", b)):
        (tmp_path / name).mkdir()
        pd.DataFrame({"user_id": users, "target": targets, "rank": ranks}).to_parquet(tmp_path / name / "ranks_test.parquet")
    r = runner.invoke(app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b"), "--n-boot", "500"])
    assert r.exit_code == 0, r.output
    assert "ndcg@10" in r.output and "500 paired examples" in r.output
    pd.DataFrame({"user_id": users[:10], "target": targets[:10], "rank": b[:10]}).to_parquet(tmp_path / "b" / "ranks_test.parquet")
    r = runner.invoke(app, ["eval", "compare", str(tmp_path / "a"), str(tmp_path / "b")])
    assert r.exit_code == 2 and "same" in r.output


def test_set_replaces_the_field_it_names_a_mapping_included():
    """`--set data.tasks={seqrec: 1.0}` leaves no other task of the base config behind (a merge would
    keep item2sid silently); a dotted key deeper down changes one entry; config files still merge."""
    from sidrec.cli.common import parse_overrides
    from sidrec.utils.io import merge_config

    base = {"data": {"tasks": {"seqrec": 1.0, "item2sid": 0.5}, "format": "stream"}, "training": {"lr": 1e-3}}
    assert merge_config(base, parse_overrides(["data.tasks={seqrec: 1.0}"]))["data"] == {
        "tasks": {"seqrec": 1.0}, "format": "stream"}
    assert merge_config(base, parse_overrides(["data.tasks.item2sid=0"]))["data"]["tasks"] == {
        "seqrec": 1.0, "item2sid": 0}
    assert merge_config(base, parse_overrides(["grpo.rewards={cf: 1.0}"]))["grpo"] == {"rewards": {"cf": 1.0}}
    assert merge_config(base, {"data": {"tasks": {"fusion": 0.5}}})["data"]["tasks"] == {  # a file's section merges
        "seqrec": 1.0, "item2sid": 0.5, "fusion": 0.5}
    assert base["data"]["tasks"] == {"seqrec": 1.0, "item2sid": 0.5}  # the base is not modified
