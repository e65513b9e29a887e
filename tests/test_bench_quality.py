"""benchmarks/quality.py's collection on hand-made runs: a `--models` subset (TIGER retrained alone)
refreshes that model's archived seeds and keeps the others' (SFT, SASRec) from the archive."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .bench_runs import make_run, ndcg, ranks

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import quality  # noqa: E402


def test_a_models_subset_refreshes_its_archived_seeds_and_keeps_the_others(tmp_path: Path) -> None:
    work, archived = tmp_path / "runs", tmp_path / "archive"
    for seed in (0, 1):  # the config's earlier runs, archived, their run folders gone
        for i, model in enumerate(("sft", "tiger", "sasrec")):
            make_run(archived / f"seed{seed}" / model, ranks(10 * seed + i))
    for seed in (0, 1):  # `--models tiger`: seed folders that hold only the retrained TIGER
        make_run(work / f"seed{seed}" / "tiger", ranks(100 + seed))
        quality.archive(work / f"seed{seed}", archived / f"seed{seed}")

    folders = quality.seed_folders(work, archived)
    assert folders == {0: archived / "seed0", 1: archived / "seed1"}  # no SFT in the live folders
    res = quality.collect(folders)
    mean = lambda *rs: sum(ndcg(r).mean() for r in rs) / len(rs)  # noqa: E731
    assert res["means"]["tiger"]["ndcg@10"] == pytest.approx(mean(ranks(100), ranks(101)))  # the new TIGER
    assert res["means"]["sft"]["ndcg@10"] == pytest.approx(mean(ranks(0), ranks(10)))  # SFT kept
    assert res["paired"]["tiger_vs_sasrec"]["ndcg@10"]["diff"] == pytest.approx(
        mean(ranks(100), ranks(101)) - mean(ranks(2), ranks(12)))


def test_a_retrained_sft_is_collected_beside_the_archived_baselines(tmp_path: Path) -> None:
    work, archived = tmp_path / "runs", tmp_path / "archive"
    for seed in (0, 1):  # the config's earlier runs, archived
        for i, model in enumerate(("sft", "tiger", "sasrec", "pop")):
            make_run(archived / f"seed{seed}" / model, ranks(10 * seed + i))
    for seed in (0, 1):  # `--models sft` after a change of the SFT recipe: live folders hold only SFT
        make_run(work / f"seed{seed}" / "sft", ranks(200 + seed))
    folders = quality.seed_folders(work, archived)
    assert folders == {0: archived / "seed0", 1: archived / "seed1"}
    res = quality.collect(folders)
    mean = lambda *rs: sum(ndcg(r).mean() for r in rs) / len(rs)  # noqa: E731
    assert set(res["means"]) == {"sft", "tiger", "sasrec", "pop"}  # the baselines are not dropped
    assert res["means"]["sft"]["ndcg@10"] == pytest.approx(mean(ranks(200), ranks(201)))  # the new SFT
    assert res["paired"]["sft_vs_sasrec"]["ndcg@10"]["diff"] == pytest.approx(
        mean(ranks(200), ranks(201)) - mean(ranks(2), ranks(12)))


def test_only_overrides_get_folders_of_their_own() -> None:
    assert quality.override_suffix({}) == ""
    assert quality.override_suffix({"train.sft.training.epochs": 4}).startswith("-set")


def _config(run: Path, seed: int, epochs: int) -> None:
    from sidrec.utils.io import write_yaml

    write_yaml(run / "config.yaml", {"method": "tiger", "dataset": f"/runs/seed{seed}/data",
                                     "training": {"epochs": epochs, "seed": seed, "lr": 0.003}})


def test_seeds_trained_with_different_settings_are_not_averaged(tmp_path: Path) -> None:
    for seed in (0, 1):
        for i, model in enumerate(("sft", "tiger")):
            make_run(tmp_path / f"seed{seed}" / model, ranks(10 * seed + i))
    folders = {s: tmp_path / f"seed{s}" for s in (0, 1)}
    _config(tmp_path / "seed0" / "tiger", 0, 30)
    _config(tmp_path / "seed1" / "tiger", 1, 30)  # only the seed and the data folder differ
    assert quality.collect(folders)["seeds"] == [0, 1]

    _config(tmp_path / "seed1" / "tiger", 1, 5)  # a stale seed, trained before the config changed
    with pytest.raises(SystemExit, match=r"tiger: seeds 0 and 1 .*training\.epochs.*--models tiger"):
        quality.collect(folders)


def test_collect_reads_the_archive_and_keeps_a_dataset_without_runs(tmp_path: Path) -> None:
    import json
    import os
    import subprocess

    results = tmp_path / "results"
    for i, model in enumerate(("sft", "sasrec", "pop")):
        make_run(results / "quality-runs" / "industrial-cpu" / "seed0" / model, ranks(i))
    demo = {"seeds": [0], "rows": 1, "means": {"sft": dict.fromkeys(quality.METRICS, 0.5)},
            "per_seed": {"sft": {}}, "paired": {}}
    (results / "quality.json").write_text(json.dumps({"summary": {}, "raw": {"demo": demo},
                                                      "config": {"pipelines": {"demo": {"name": "old"}}}}))
    env = {**os.environ, "SIDREC_BENCH_RESULTS": str(results), "SIDREC_SHARED_DATA": str(tmp_path / "none")}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "quality.py"), "--collect", "--datasets",
                        "industrial", "demo", "--work", str(tmp_path / "runs")],
                       env=env, capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr
    assert "demo: no finished run" in r.stdout and "kept its earlier figures" in r.stdout
    out = json.loads((results / "quality.json").read_text())
    assert out["summary"]["industrial.sft.ndcg@10"] == pytest.approx(ndcg(ranks(0)).mean())
    assert out["summary"]["demo.sft.ndcg@10"] == 0.5 and out["config"]["pipelines"]["demo"] == {"name": "old"}
