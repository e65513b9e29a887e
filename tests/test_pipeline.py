"""End to end through the CLI: synthetic data → train → eval → compare, and the demo job (tiny sizes)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from sidrec.cli.main import app

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


def test_demo_command_runs_the_packaged_pipeline_tiny(tmp_path):
    """`sidrec demo` = the packaged demo-cpu pipeline; here shrunk (tiny LM, small catalogue) by --set."""
    from sidrec.llm.tiny import make_tiny_lm

    lm = make_tiny_lm(tmp_path / "lm", hidden=32)
    sets = ["data.synthetic.n_items=80", "data.synthetic.n_users=120", "sids.codebook=8",
            "baselines.sasrec.epochs=2", f"train.sft.model.name_or_path={lm}", "train.sft.training.eval_samples=20",
            "train.sft.training.device=cpu", "train.sft.eval.batch_size=60"]
    args = ["demo", "--out", str(tmp_path / "demo")]
    for s in sets:
        args += ["--set", s]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert set(summary["test"]) == {"pop", "sasrec", "sft"}
    assert summary["test"]["sft"]["n"] == summary["test"]["sasrec"]["n"] == 120
    assert summary["test"]["sft"]["invalid_outputs"] == 0
    assert "sft" in r.output and "sasrec" in r.output
    for m in summary["test"].values():
        assert 0.0 <= m["ndcg@10"] <= m["hr@10"] <= 1.0
