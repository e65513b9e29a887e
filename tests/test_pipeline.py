"""End to end through the CLI: synthetic data → train → eval → compare, and the demo job (tiny sizes)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sidrec.cli.main import app
from sidrec.pipelines.demo import run_demo

runner = CliRunner()


def test_train_eval_compare_via_cli(tmp_path):
    data = tmp_path / "syn"
    assert runner.invoke(app, ["data", "synth", "--out", str(data), "--items", "120", "--users", "200"]).exit_code == 0
    r = runner.invoke(app, ["train", "pop", "--data", str(data), "--out", str(tmp_path / "pop")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["train", "sasrec", "--data", str(data), "--out", str(tmp_path / "sas"), "--epochs", "2",
                            "--seed", "1", "--device", "cpu", "--set", "hidden_size=16"])
    assert r.exit_code == 0, r.output
    run = tmp_path / "sas"
    for name in ("config.yaml", "command.txt", "run.json", "log.txt", "metrics.json", "ranks_test.parquet"):
        assert (run / name).exists(), name
    metrics = json.loads((run / "metrics.json").read_text())
    # re-evaluating the saved best model reproduces the stored test metrics
    r = runner.invoke(app, ["eval", "--run", str(run), "--split", "test", "--device", "cpu"])
    assert r.exit_code == 0, r.output
    again = json.loads((run / "metrics_test.json").read_text())
    assert abs(again["ndcg@10"] - metrics["test"]["ndcg@10"]) < 1e-9
    r = runner.invoke(app, ["eval", "compare", str(tmp_path / "pop"), str(run), "--n-boot", "200"])
    assert r.exit_code == 0, r.output and "ndcg@10" in r.output
    # an existing run folder is not silently overwritten
    r = runner.invoke(app, ["train", "sasrec", "--data", str(data), "--out", str(run), "--epochs", "1"])
    assert r.exit_code == 2 and "--resume" in r.output


def test_demo_job_tiny(tmp_path):
    results = run_demo(tmp_path / "demo", n_items=120, n_users=200, epochs=2, device="cpu")
    assert set(results) == {"pop", "gru4rec", "sasrec"}
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert summary["dataset"] == "synthetic" and summary["test"]["sasrec"]["n"] == results["sasrec"]["n"]
    for m in results.values():
        assert 0.0 <= m["ndcg@10"] <= m["hr@10"] <= 1.0
