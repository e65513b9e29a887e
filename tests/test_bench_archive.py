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
