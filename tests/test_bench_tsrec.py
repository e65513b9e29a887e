"""benchmarks/tsrec.py's collection on hand-made runs: each arm paired with SFT (mean init) and with
`sft.recipe_init` on the same seeds, on test and on validation where every run of the pair has it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from .bench_runs import N, make_run, ndcg, ranks

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import tsrec  # noqa: E402


def _curve(v: float) -> list[dict]:
    return [{"step": 1, "loss": 1.0}, {"step": 2, "valid": {"ndcg@10": v}}, {"step": 4, "valid": {"ndcg@10": v + .02}}]


def test_collect_pairs_with_sft_and_the_recipe_init_on_both_splits(tmp_path: Path) -> None:
    r = {(arm, s, split): ranks(100 * i + 10 * s + (split == "valid"))
         for i, arm in enumerate(("sft", "sft.recipe_init", "tfidf.tsrec")) for s in (0, 1) for split in ("test", "valid")}
    done = {arm: [make_run(tmp_path / arm / f"seed{s}", r[arm, s, "test"], r[arm, s, "valid"], _curve(.1))
                  for s in seeds]
            for arm, seeds in (("sft", (0, 1)), ("sft.recipe_init", (0, 1)), ("tfidf.tsrec", (1,)))}
    summary, raw, curves = tsrec.collect(done)

    arm = "industrial.tfidf.tsrec"
    # paired on seed 1 only (the arm's one seed), test and validation
    assert summary[f"{arm}.ndcg@10_vs_sft"] == pytest.approx(
        ndcg(r["tfidf.tsrec", 1, "test"]).mean() - ndcg(r["sft", 1, "test"]).mean())
    assert summary[f"{arm}.valid_ndcg@10_vs_sft"] == pytest.approx(
        ndcg(r["tfidf.tsrec", 1, "valid"]).mean() - ndcg(r["sft", 1, "valid"]).mean())
    assert summary[f"{arm}.ndcg@10_vs_recipe_init"] == pytest.approx(
        ndcg(r["tfidf.tsrec", 1, "test"]).mean() - ndcg(r["sft.recipe_init", 1, "test"]).mean())
    assert summary[f"{arm}.ndcg@10_vs_sft_lo"] < summary[f"{arm}.ndcg@10_vs_sft"] < summary[f"{arm}.ndcg@10_vs_sft_hi"]
    assert raw["tfidf.tsrec"]["paired_vs_sft_seeds"] == 1
    # the recipe's init against SFT over both seeds; neither SFT arm is paired with itself
    both = (ndcg(r["sft.recipe_init", 0, "test"]) + ndcg(r["sft.recipe_init", 1, "test"])) / 2 \
        - (ndcg(r["sft", 0, "test"]) + ndcg(r["sft", 1, "test"])) / 2
    assert summary["industrial.sft.recipe_init.ndcg@10_vs_sft"] == pytest.approx(both.mean())
    assert "industrial.sft.recipe_init.ndcg@10_vs_recipe_init" not in summary
    assert not any(k.startswith("industrial.sft.ndcg@10_vs") for k in summary)
    assert summary["seeds"] == 1 and summary["test_rows"] == N
    assert summary["industrial.tfidf.tsrec.valid_curve_mean"] == pytest.approx(.11)
    assert curves["sft"][0] == [(2, .1), (4, pytest.approx(.12))]


def test_collect_skips_the_validation_pairing_without_validation_ranks(tmp_path: Path) -> None:
    done = {"sft": [make_run(tmp_path / "sft" / "seed0", ranks(1), None, _curve(.1))],
            "tfidf.sa_init": [make_run(tmp_path / "sa" / "seed0", ranks(2), ranks(3), _curve(.1))]}
    summary, raw, _ = tsrec.collect(done)
    assert "industrial.tfidf.sa_init.ndcg@10_vs_sft" in summary
    assert "valid_paired_vs_sft" not in raw["tfidf.sa_init"]
    assert "industrial.tfidf.sa_init.valid_ndcg@10_vs_sft" not in summary


def test_ml100k_keys_carry_its_name_and_its_one_teacher(tmp_path: Path) -> None:
    done = {"sft": [make_run(tmp_path / "sft" / "seed0", ranks(1), ranks(2), _curve(.1))],
            "tfidf.sa_init": [make_run(tmp_path / "sa" / "seed0", ranks(3), ranks(4), _curve(.1))]}
    summary, _, _ = tsrec.collect(done, "ml100k")
    assert summary["ml100k.tfidf.sft.ndcg@10"] == pytest.approx(ndcg(ranks(1)).mean())
    assert summary["ml100k.tfidf.sa_init.ndcg@10_vs_sft"] == pytest.approx(ndcg(ranks(3)).mean() - ndcg(ranks(1)).mean())
    assert "ml100k.tfidf.sa_init.valid_ndcg@10_vs_sft" in summary
    assert not any(k.startswith(("industrial.", "ml100k.released.")) for k in summary)


def test_ml100k_runs_the_recipe_with_its_built_sids(tmp_path: Path) -> None:
    settings = tsrec.ML100K_SCALES["recipe"]
    cfg = tsrec.run_config("tfidf.tsrec", 1, settings, tmp_path / "data",
                           {"tfidf": tmp_path / "tfidf.json", "sids": tmp_path / "sids.json"})
    assert cfg["sids"] == str(tmp_path / "sids.json") and cfg["model"]["sid_init"] == "mean"
    assert cfg["training"]["max_steps"] == 1215 and cfg["training"]["seed"] == 1
    assert cfg["data"]["format"] == "stream" and cfg["eval"]["splits"] == ["valid", "test"]
    assert tsrec.run_config("sft.recipe_init", 0, settings, tmp_path, {})["model"]["sid_init"] == "tfidf"
    sampled = tsrec.run_config("sft.sampled_init", 0, settings, tmp_path, {})
    assert sampled["model"]["sid_init"] == "sampled" and sampled["method"] == "sft" and "tsrec" not in sampled
    assert "sids" not in tsrec.run_config("sft", 0, tsrec.SCALES["recipe"], tmp_path, {"tfidf": tmp_path})


def test_ml100k_refuses_the_released_teacher_and_the_old_scale_in_one_line() -> None:
    import subprocess

    for extra, says in ((["--arms", "released.sa_init"], "no such teacher"), (["--scale", "cpu"], "has the scales")):
        r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tsrec.py"), "--dataset", "ml100k", *extra],
                           capture_output=True, text=True, timeout=120, check=False)
        assert r.returncode != 0 and says in r.stderr and "Traceback" not in r.stderr


def test_missing_shared_data_is_one_line(tmp_path: Path) -> None:
    import os
    import subprocess

    env = {**os.environ, "SIDREC_SHARED_DATA": str(tmp_path / "none")}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "tsrec.py"), "--dataset", "ml100k", "--collect",
                        "--work", str(tmp_path / "work")], env=env, capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]  # after the stage's progress line
    assert last.startswith("error:") and "ml-100k: no *.inter file" in last


def test_every_finished_seed_live_or_archived_is_collected(tmp_path: Path) -> None:
    """A later invocation that trains seed 1 keeps seed 0 from the archive (its live folder gone): the table
    holds both, each read from where it is finished, in seed order."""
    work, archive = tmp_path / "runs" / "recipe" / "sft", tmp_path / "archive" / "recipe" / "sft"
    make_run(archive / "seed0", ranks(1))
    make_run(work / "seed1", ranks(2))
    make_run(work / "seed10", ranks(3))
    (work / "seed2").mkdir()  # started, unfinished: not in the table
    (work / "notes").mkdir()
    runs = tsrec.seed_runs(work, archive)
    assert [r.name for r in runs] == ["seed0", "seed1", "seed2", "seed10"]
    done = tsrec.finished_runs(runs, tmp_path / "runs", tmp_path / "archive")
    assert done == [archive / "seed0", work / "seed1", work / "seed10"]
    assert (archive / "seed1" / "metrics.json").is_file()  # the live finished run is archived
    assert tsrec.seed_runs(tmp_path / "nowhere", None) == []


def test_each_dataset_has_the_arms_of_its_teachers() -> None:
    assert set(tsrec.dataset_arms("industrial")) == set(tsrec.ARMS)
    assert tsrec.dataset_arms("ml100k") == ["sft", "tfidf.sa_init", "tfidf.ts_align", "tfidf.tsrec", "sft.recipe_init",
                                            "sft.sampled_init"]


def test_row_stats_reads_how_alike_the_rows_are_and_how_close_to_their_keywords() -> None:
    import torch

    emb = torch.zeros(6, 2)
    emb[0], emb[1], emb[2] = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 2.0]), torch.tensor([3.0, 0.0])
    emb[3], emb[4] = torch.tensor([1.0, 1.0]), torch.tensor([1.0, 1.0])
    meaning = {0: torch.tensor([1.0, 0.0]), 1: torch.tensor([1.0, 0.0])}  # token 2 has no semantics
    out = tsrec.row_stats(emb, {"a": [0, 1, 2], "b": [3, 4], "c": [5]}, meaning)
    # pairs (0,1) cos 0, (0,2) cos 1, (1,2) cos 0
    assert out["a"]["pairwise_cos"] == pytest.approx(1 / 3)
    assert out["a"]["norm"] == pytest.approx(2.0)
    assert out["a"]["cos_to_keywords"] == pytest.approx(0.5)  # token 0: 1, token 1: 0
    # token 0: own 1, other (token 1's keywords) 1; token 1: own 0, other 0 → specificity 0
    assert out["a"]["keyword_specificity"] == pytest.approx(0.0)
    apart = tsrec.row_stats(torch.eye(2), {"a": [0, 1]}, {0: torch.tensor([1.0, 0.0]), 1: torch.tensor([0.0, 3.0])})
    assert apart["a"]["keyword_specificity"] == pytest.approx(1.0)
    alike = tsrec.row_stats(torch.ones(2, 2), {"a": [0, 1]}, {0: torch.tensor([1.0, 0.0]), 1: torch.tensor([0.0, 3.0])})
    assert alike["a"]["keyword_specificity"] == pytest.approx(0.0)
    assert out["b"]["pairwise_cos"] == pytest.approx(1.0) and "cos_to_keywords" not in out["b"]
    assert out["c"]["norm"] == 0.0 and out["c"]["pairwise_cos"] is None  # one row


def test_the_row_diagnostics_table_has_the_starts_and_the_trained_runs(capsys: pytest.CaptureFixture[str]) -> None:
    stats = {"b": {"norm": 3.0, "pairwise_cos": 0.5, "cos_to_keywords": 0.25, "keyword_specificity": 0.125}}
    tsrec.print_rows_markdown({"teacher": "tfidf", "start.mean_resize": {"b": {"norm": 2.0, "pairwise_cos": 1.0}},
                               "runs": {"tfidf.ts_align": {"run": "x/seed0", "rows": stats, "seconds_per_step": 1.25}}})
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| mean_resize | 1.000 | — | — | — |"
    assert lines[3] == "| tfidf.ts_align (seed0), trained | 0.500 | 0.250 | 0.125 | 1.25 |"


def test_batch_composition_counts_what_the_align_examples_cost() -> None:
    lengths = [10, 10, 40, 20]  # example 2 is an align example
    is_align = [False, False, True, False]
    out = tsrec.batch_composition(lengths, is_align, [np.array([0, 2]), np.array([1, 3])])
    assert out["examples"] == 0.25 and out["tokens"] == pytest.approx(40 / 80)
    assert out["batches_with_align"] == 0.5
    assert out["padded_tokens_per_batch"] == (2 * 40 + 2 * 20) / 2  # each batch padded to its longest
    assert out["padded_tokens_per_batch_without_align"] == 40
    assert out["padding_share"] == pytest.approx(1 - 80 / 120)
    none = tsrec.batch_composition(lengths, is_align, [np.array([0, 1, 2, 3])])
    assert none["padded_tokens_per_batch_without_align"] is None


def test_the_align_cost_table_has_both_batchings(capsys: pytest.CaptureFixture[str]) -> None:
    x = {"examples": 0.2, "tokens": 0.47, "batches_with_align": 0.97, "padded_tokens_per_batch": 1632.0,
         "padded_tokens_per_batch_without_align": None, "padding_share": 0.57}
    tsrec.print_align_cost_markdown({"tfidf.ts_align": {"run": "r/seed0", "as_trained": x, "bucket_by_length": x}})
    lines = capsys.readouterr().out.splitlines()
    assert lines[2] == "| tfidf.ts_align (seed0), as trained | 0.20 | 0.47 | 0.97 | 1632 | — | 0.57 |"
    assert lines[3].startswith("| tfidf.ts_align (seed0), bucket by length |")


def test_a_collection_keeps_the_diagnostics_of_runs_it_cannot_measure_again() -> None:
    # runs archived without weights were measured by an earlier collection; a later one (other live runs)
    # adds its own rows and replaces only what it measured again
    earlier = {"sid_rows": {"teacher": "tfidf", "start.sampled": {"b": 1},
                            "runs": {"sft": {"rows": "old"}, "tfidf.sa_init": {"rows": "old"}}},
               "align_cost": {"tfidf.ts_align": {"run": "a"}}, "pretrained_mean_norm": 3.0}
    new = {"sid_rows": {"teacher": "tfidf", "start.sampled": {"b": 2},
                        "runs": {"released.sa_init": {"rows": "new"}, "sft": {"rows": "new"}}},
           "pretrained_mean_norm": 3.2}
    out = tsrec.merge_diagnostics(earlier, new)
    assert out["sid_rows"]["runs"] == {"sft": {"rows": "new"}, "tfidf.sa_init": {"rows": "old"},
                                       "released.sa_init": {"rows": "new"}}
    assert out["sid_rows"]["start.sampled"] == {"b": 2} and out["pretrained_mean_norm"] == 3.2
    assert out["align_cost"] == {"tfidf.ts_align": {"run": "a"}}
    assert tsrec.merge_diagnostics({}, {}) == {}
    assert tsrec.merge_diagnostics(earlier, {}) == earlier
