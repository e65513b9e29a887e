"""The benchmarks' run archive (benchmarks/_common.py): finished runs' small files are copied into a
committed folder and read back from it once the run folders are gone; a live run wins."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import RUN_FILES, finished_runs  # noqa: E402


def _run(folder: Path, ndcg: float, weights: bool = True) -> Path:
    folder.mkdir(parents=True)
    (folder / "metrics.json").write_text(json.dumps({"test": {"ndcg@10": ndcg}}))
    (folder / "history.jsonl").write_text('{"step": 1}\n')
    (folder / "ranks_test.parquet").write_bytes(b"PAR1")
    if weights:
        (folder / "model").mkdir()
        (folder / "model" / "model.safetensors").write_bytes(b"\0" * 64)
    return folder


def test_finished_runs_are_archived_and_read_back_when_gone(tmp_path: Path) -> None:
    work, archive = tmp_path / "work", tmp_path / "archive"
    a = _run(work / "arm" / "seed0", 0.1)
    b = work / "arm" / "seed1"  # never finished
    b.mkdir(parents=True)
    assert finished_runs([a, b], work, archive) == [a]  # the live run, archived on the way
    copy = archive / "arm" / "seed0"
    assert sorted(p.name for p in copy.iterdir()) == ["history.jsonl", "metrics.json", "ranks_test.parquet"]
    assert set(p.name for p in copy.iterdir()) <= set(RUN_FILES)  # never weights
    for p in sorted(a.rglob("*"), reverse=True):  # the run folder is gone (another session)
        p.rmdir() if p.is_dir() else p.unlink()
    a.rmdir()
    assert finished_runs([a, b], work, archive) == [copy]
    _run(a, 0.2, weights=False)  # re-run: the live folder wins and refreshes the archive
    assert finished_runs([a, b], work, archive) == [a]
    assert json.loads((copy / "metrics.json").read_text())["test"]["ndcg@10"] == 0.2
    assert finished_runs([a, b], work, None) == [a]  # no archive: live runs only


def test_paired_runs_matches_rows_by_user_and_target_whatever_their_order(tmp_path: Path) -> None:
    import numpy as np
    import pandas as pd

    from _common import paired_runs  # noqa: E402

    from .bench_runs import make_run, ndcg, ranks

    a, b = make_run(tmp_path / "a", ranks(1)), make_run(tmp_path / "b", ranks(2))
    expected = paired_runs(a, b)
    frame = pd.read_parquet(b / "ranks_test.parquet")
    frame.iloc[np.random.default_rng(0).permutation(len(frame))].to_parquet(b / "ranks_test.parquet")
    shuffled = paired_runs(a, b)  # b's rows in another order: the same pairs, the same statistics
    for key in ("diff", "ci95", "p"):
        assert np.allclose(shuffled["ndcg@10"][key], expected["ndcg@10"][key], atol=1e-3 if key == "p" else 1e-12)
    assert np.isclose(expected["ndcg@10"]["diff"], ndcg(ranks(2)).mean() - ndcg(ranks(1)).mean())
