"""`sidrec report`: run summaries, report.md, plots and the CLI command, on hand-written run folders."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from sidrec.cli.report import report_cmd
from sidrec.errors import DataError, SidrecError
from sidrec.evaluation.metrics import per_example_metrics
from sidrec.reporting.report import _paired_ranks, load_run, make_report, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
N_USERS = 200
N_BOOT = 300  # keeps the paired bootstrap fast


def _split_metrics(values: dict[str, float], n: int = N_USERS) -> dict[str, Any]:
    return {**values, "mrr": 0.05, "n": n,
            "ci95": {k: [round(v - 0.0034, 4), round(v + 0.0036, 4)] for k, v in values.items()}}


TEST_VALUES = {
    "sasrec": {"hr@5": 0.0512, "ndcg@5": 0.0331, "hr@10": 0.0744, "ndcg@10": 0.0402},
    "sft": {"hr@5": 0.0613, "ndcg@5": 0.0401, "hr@10": 0.0875, "ndcg@10": 0.0488},
    "pop": {"hr@5": 0.0101, "ndcg@5": 0.0062, "hr@10": 0.0202, "ndcg@10": 0.0095},
}


def _ranks(seed: int, scale: float, n: int = N_USERS) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"user_id": [f"u{i}" for i in range(n)], "target": [f"i{i % 17}" for i in range(n)],
                         "rank": (rng.geometric(1 / scale, size=n)).astype(np.int64)})


def _write(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj), encoding="utf-8")


def make_classic_run(root: Path, name: str = "sasrec", ranks: bool = True) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text(f"model: {name}\nhidden_size: 64\ndataset: /data/beauty\n", encoding="utf-8")
    _write(run / "run.json", {"sidrec": "0.1.0", "python": "3.11"})
    history = []
    for epoch in range(1, 6):
        rec: dict[str, Any] = {"epoch": epoch, "train_loss": 9.0 - epoch, "lr": 1e-3, "train_time_s": 2.0}
        if epoch % 2 == 0 or epoch == 5:
            rec.update(valid={"hr@10": 0.05 + epoch / 100, "ndcg@10": 0.02 + epoch / 200, "mrr": 0.01},
                       eval_time_s=0.5)
        history.append(rec)
    (run / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history), encoding="utf-8")
    _write(run / "metrics.json", {
        "model": name, "dataset": "beauty", "dataset_path": "/data/beauty", "n_items": 500, "best_epoch": 4,
        "epochs_run": 5, "stopped_early": False, "early_stop_metric": "valid ndcg@10", "train_time_s": 12.5,
        "device": "cpu", "valid": _split_metrics({k: v + 0.01 for k, v in TEST_VALUES[name].items()}),
        "test": _split_metrics(TEST_VALUES[name]),
    })
    if ranks:
        _ranks(1, 40.0).to_parquet(run / "ranks_test.parquet", index=False)
    return run


def make_llm_run(root: Path, name: str = "sft", ranks: bool = True) -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("method: sft\ndataset: /data/beauty\nmodel:\n  num_layers: 4\n", encoding="utf-8")
    lines = []
    for step in range(10, 110, 10):
        lines.append({"step": step, "epoch": step / 100, "loss": 5.0 / (step / 10), "lr": 2e-4, "time_s": step * 0.3,
                      "grad_norm": 1.0})
        if step % 50 == 0:
            lines.append({"step": step, "epoch": step / 100, "valid": {"ndcg@10": step / 2000, "hr@10": step / 1000},
                          "eval_time_s": 1.0, "time_s": step * 0.3 + 1, "improved": True})
    text = "".join(json.dumps(r) + "\n" for r in lines) + '{"step": 110, "loss": '  # an interrupted append
    (run / "history.jsonl").write_text(text, encoding="utf-8")
    test = _split_metrics(TEST_VALUES["sft"])
    test.update(invalid_outputs=3, mode="beam", num_beams=20, time_s=41.0)
    _write(run / "metrics.json", {
        "method": "sft",
        "train": {"steps": 100, "epochs_completed": 1, "stopped": "epochs", "best_step": 100,
                  "best_valid_score": 0.05, "time_s": 3725.0, "world_size": 1},
        "param_checksums": [123.4],
        "valid": _split_metrics({k: v + 0.01 for k, v in TEST_VALUES["sft"].items()}),
        "test": test,
    })
    if ranks:
        _ranks(2, 25.0).to_parquet(run / "ranks_test.parquet", index=False)
    return run


def make_pop_run(root: Path) -> Path:
    run = root / "pop"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: popularity\n", encoding="utf-8")
    _write(run / "metrics.json", {"model": "popularity", "dataset": "beauty", "n_items": 500, "device": "cpu",
                                  "valid": _split_metrics(TEST_VALUES["pop"]), "test": _split_metrics(TEST_VALUES["pop"]),
                                  "train_time_s": 0.4})
    _ranks(3, 120.0).to_parquet(run / "ranks_test.parquet", index=False)
    return run


@pytest.fixture
def runs(tmp_path: Path) -> list[Path]:
    root = tmp_path / "runs"
    return [make_classic_run(root), make_llm_run(root), make_pop_run(root)]


def _assert_png(path: Path) -> None:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path} is not a PNG"
    assert len(data) > 10_000, f"{path} is suspiciously small ({len(data)} bytes)"


# ---------------------------------------------------------------------- load_run
def test_load_run_reads_both_shapes(runs: list[Path]) -> None:
    classic, llm, pop = (load_run(p) for p in runs)

    assert (classic.name, classic.method, classic.kind) == ("sasrec", "sasrec", "classic")
    assert classic.train_time_s == 12.5 and classic.best == "epoch 4" and classic.x_unit == "epoch"
    assert classic.value("test", "hr@10") == 0.0744 and classic.ci("test", "hr@10") == (0.071, 0.078)
    assert classic.loss_curve() == [(float(e), 9.0 - e) for e in range(1, 6)]
    assert [x for x, _ in classic.valid_curve("ndcg@10")] == [2.0, 4.0, 5.0]

    assert (llm.name, llm.method, llm.kind) == ("sft", "sft", "llm")
    assert llm.train_time_s == 3725.0 and llm.best == "step 100" and llm.stopped == "epochs" and llm.x_unit == "step"
    assert llm.n("test") == N_USERS and llm.value("test", "ndcg@10") == 0.0488
    assert len(llm.loss_curve()) == 10  # training records only, the truncated last line skipped
    assert llm.valid_curve("ndcg@10") == [(50.0, 0.025), (100.0, 0.05)]
    assert llm.warnings and "history.jsonl" in llm.warnings[0]
    assert set(llm.metrics) == {"valid", "test"}  # "train" is not a split

    assert pop.method == "popularity" and pop.history == [] and pop.train_time_s == 0.4


def test_missing_metrics_json_names_the_folder(tmp_path: Path) -> None:
    run = tmp_path / "runs" / "half_done"
    run.mkdir(parents=True)
    (run / "config.yaml").write_text("model: sasrec\n")
    with pytest.raises(DataError) as e:
        load_run(run)
    assert str(run) in str(e.value) and "metrics.json" in str(e.value)
    with pytest.raises(SidrecError, match="not found"):
        load_run(tmp_path / "nowhere")


# ---------------------------------------------------------------------- the report
def test_report_markdown_has_numbers_with_cis_and_plots(runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    md_path = write_report(runs, out, n_boot=N_BOOT)
    assert md_path == out / "report.md"
    md = md_path.read_text(encoding="utf-8")

    assert "| run | method | hr@5 | ndcg@5 | hr@10 | ndcg@10 | n | train time |" in md
    metrics_section = md.split("## Metrics (test)", 1)[1].split("\n## ", 1)[0]
    rows = {line.split("|")[1].strip(): line for line in metrics_section.splitlines() if line.startswith("| ")}
    for name, values in TEST_VALUES.items():
        for v in values.values():
            assert f"{v:.4f} [{v - 0.0034:.3f}, {v + 0.0036:.3f}]" in rows[name]
        assert f"| {N_USERS} |" in rows[name]
    assert "0.0744 [0.071, 0.078]" in rows["sasrec"]
    assert rows["sasrec"].rstrip().endswith("| 12.5 s |")
    assert rows["sft"].rstrip().endswith("| 1.03 h |")
    assert "| sft | sft |" in md and "| pop | popularity |" in md
    assert "![training curves](curves.png)" in md and "![metrics](metrics.png)" in md

    for png in ("curves.png", "metrics.png"):
        _assert_png(out / png)
    assert not list(out.glob(".*.tmp")), "atomic writes left temporary files"


def test_paired_comparison_against_first_run(runs: list[Path], tmp_path: Path) -> None:
    report = make_report(runs, n_boot=N_BOOT)
    assert [c.run for c in report.comparisons] == ["sft", "pop"]
    md = report.markdown()
    assert "## Paired comparison against sasrec (test)" in md
    assert "| run | metric | sasrec | run value | Δ (run − sasrec) | 95% CI of Δ | p |" in md

    base = per_example_metrics(_ranks(1, 40.0)["rank"].to_numpy(), (5, 10))
    other = per_example_metrics(_ranks(2, 25.0)["rank"].to_numpy(), (5, 10))
    for metric in ("hr@5", "ndcg@5", "hr@10", "ndcg@10"):
        diff = other[metric].mean() - base[metric].mean()
        row = next(line for line in md.splitlines() if line.startswith(f"| sft | {metric} |"))
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[2] == f"{base[metric].mean():.4f}" and cells[3] == f"{other[metric].mean():.4f}"
        assert cells[4] == f"{diff:+.4f}"
        lo, hi = (float(x) for x in re.findall(r"[+-]\d\.\d+", cells[5]))
        assert lo <= diff <= hi
        assert cells[6] == "<0.0001" or 0 < float(cells[6]) <= 1


def test_no_paired_comparison_without_ranks(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    runs = [make_classic_run(root), make_llm_run(root, ranks=False)]
    report = make_report(runs, n_boot=N_BOOT)
    md = report.markdown()
    assert "Paired comparison" not in md and report.comparisons == []
    assert "ranks_test.parquet" in md and str(runs[1]) in md  # the note says which file is missing


def test_paired_ranks_align_a_sampled_run() -> None:
    full = _ranks(1, 40.0)
    sample = full.iloc[::3].sample(frac=1.0, random_state=0).assign(rank=lambda d: d["rank"] + 1)
    ra, rb, how = _paired_ranks(full, sample)
    assert len(ra) == len(sample) and "common examples" in how
    assert np.array_equal(rb, ra + 1)


def test_duplicate_folder_names_get_unique_labels(tmp_path: Path) -> None:
    runs = [make_classic_run(tmp_path / "a"), make_classic_run(tmp_path / "b")]
    report = make_report(runs, n_boot=N_BOOT)
    assert report.names == ["a/sasrec", "b/sasrec"]


def test_unknown_split_is_a_clear_error(runs: list[Path]) -> None:
    with pytest.raises(SidrecError, match="no run has 'holdout' metrics"):
        make_report(runs, split="holdout")


# ---------------------------------------------------------------------- the CLI command
def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """test app"""

    app.command("report")(report_cmd)
    return app


def test_cli_report_command(runs: list[Path], tmp_path: Path) -> None:
    out = tmp_path / "cli_report"
    result = CliRunner().invoke(_app(), ["report", *map(str, runs), "--out", str(out), "--n-boot", str(N_BOOT)],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "0.0744 [0.071, 0.078]" in result.output and "paired bootstrap against sasrec" in result.output
    assert "report.md" in result.output and "curves.png" in result.output and "metrics.png" in result.output
    assert (out / "report.md").is_file()
    _assert_png(out / "curves.png")
    _assert_png(out / "metrics.png")


def test_cli_report_missing_metrics(tmp_path: Path) -> None:
    bad = tmp_path / "runs" / "crashed"
    bad.mkdir(parents=True)
    result = CliRunner().invoke(_app(), ["report", str(bad), "--out", str(tmp_path / "o")], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    assert "crashed" in result.output and "metrics.json" in result.output
    assert not (tmp_path / "o").exists()
