"""`sidrec run`: a pipeline YAML runs data → SIDs → baselines → SFT, and reuses unchanged stages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from sidrec.errors import ConfigError
from sidrec.llm.tiny import make_tiny_lm
from sidrec.pipelines.run import list_packaged_configs, load_pipeline_config, run_pipeline


def _config(tmp_path: Path) -> Path:
    lm = make_tiny_lm(tmp_path / "lm", hidden=32)
    cfg = {
        "name": "tiny",
        "out": str(tmp_path / "out"),
        "data": {"synthetic": {"n_items": 60, "n_users": 80, "seed": 0, "max_history": 8}},
        "sids": {"method": "rqkmeans", "levels": 2, "codebook": 8},
        "baselines": {"pop": {}},
        "train": {"sft": {"model": {"name_or_path": str(lm)},
                          "data": {"tasks": {"seqrec": 1.0, "item2sid": 1.0}, "compact": True},
                          "training": {"epochs": 1, "batch_size": 32, "eval_samples": 20, "device": "cpu"},
                          "eval": {"num_beams": 10, "batch_size": 40}}},
    }
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _mtime(p: Path) -> float:
    return p.stat().st_mtime_ns


def test_pipeline_runs_every_stage_then_reuses_them(tmp_path):
    path = _config(tmp_path)
    out = tmp_path / "out"
    summary = run_pipeline(load_pipeline_config(path))
    assert set(summary["test"]) == {"pop", "sft"}
    assert summary["test"]["sft"]["invalid_outputs"] == 0
    for stage in ("data", "sids", "pop", "sft"):
        assert (out / stage / "stage.json").is_file()
    assert json.loads((out / "summary.json").read_text())["test"]["pop"]["n"] == 80
    stamps = {s: _mtime(out / s / "stage.json") for s in ("data", "sids", "pop", "sft")}
    run_pipeline(load_pipeline_config(path))  # nothing changed: everything is reused
    assert {s: _mtime(out / s / "stage.json") for s in stamps} == stamps
    run_pipeline(load_pipeline_config(path, {"train.sft.training.lr": 0.001}))  # only the model retrains
    assert _mtime(out / "sft" / "stage.json") != stamps["sft"]
    assert all(_mtime(out / s / "stage.json") == stamps[s] for s in ("data", "sids", "pop"))


def test_bad_pipeline_configs_name_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"name": "x", "out": "o", "data": {}}))
    with pytest.raises(ConfigError, match="synthetic / import / path"):
        load_pipeline_config(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_pipeline_config("no-such-config")


def test_packaged_configs_validate():
    names = list_packaged_configs()
    for scale in ("cpu", "gpu"):
        for ds in ("demo", "ml100k", "beauty", "industrial-partial"):
            assert f"{ds}-{scale}" in names
    from sidrec.pipelines.llm import sft_config

    for name in names:
        cfg = load_pipeline_config(name)
        for run in cfg.train.values():  # every training section is a valid SFT config
            sft_config({**run, "dataset": "x"})


def test_pipeline_with_tsrec_semantics_and_ilrec_stage_two(tmp_path):
    """semantics (tfidf) → tsrec gets them; ilrec continues the sft entry and scores users with sasrec."""
    lm = make_tiny_lm(tmp_path / "lm", hidden=32, layers=3)
    # ILRec and S-DPO continue runs trained on prompt → response examples with the full softmax
    small = {"model": {"name_or_path": str(lm)},
             "data": {"tasks": {"seqrec": 1.0}, "compact": True, "format": "prompt", "sid_softmax": "full"},
             "training": {"epochs": 1, "batch_size": 32, "eval_samples": 20, "device": "cpu"},
             "eval": {"num_beams": 10, "batch_size": 40, "max_examples": 30}}
    cfg = {
        "name": "tiny-methods", "out": str(tmp_path / "out"),
        "data": {"synthetic": {"n_items": 60, "n_users": 80, "seed": 0, "max_history": 8}},
        "sids": {"method": "rqkmeans", "levels": 2, "codebook": 8},
        "semantics": {"teacher": "tfidf"},
        "baselines": {"sasrec": {"epochs": 2, "device": "cpu"}},
        "train": {"sft": small,
                  "tsrec": {**small, "method": "tsrec", "tsrec": {"sa_init": {"enabled": True},
                                                                  "align": {"enabled": True}}},
                  "ilrec": {"from": "sft", "method": "ilrec", "ilrec": {"layers": [-2]}},
                  "sdpo": {"from": "sft", "method": "sdpo", "training": {"max_steps": 3}}},
    }
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    summary = run_pipeline(load_pipeline_config(path))
    out = tmp_path / "out"
    assert set(summary["test"]) == {"sasrec", "sft", "tsrec", "ilrec", "sdpo"}
    assert json.loads((out / "semantics" / "semantics.json").read_text())[0]["keywords"]
    tsrec_cfg = yaml.safe_load((out / "tsrec" / "config.yaml").read_text())
    assert tsrec_cfg["tsrec"]["semantics"] == str(out / "semantics" / "semantics.json")
    assert json.loads((out / "tsrec" / "tsrec.json").read_text())["sa_init"]["initialised"]
    ilrec_cfg = yaml.safe_load((out / "ilrec" / "config.yaml").read_text())
    assert ilrec_cfg["model"]["name_or_path"] == str(out / "sft" / "model")
    assert ilrec_cfg["ilrec"]["cf_run"] == str(out / "sasrec") and ilrec_cfg["training"]["lr"] == 5e-5
    sdpo_cfg = yaml.safe_load((out / "sdpo" / "config.yaml").read_text())  # sft's beam negatives, 3 each
    assert sdpo_cfg["dpo"]["negatives"] == str(out / "sdpo" / "negatives.parquet")
    assert json.loads((out / "sdpo" / "negatives.parquet.json").read_text())["per_example"] == 3
    stamp = _mtime(out / "ilrec" / "stage.json")
    run_pipeline(load_pipeline_config(path, {"train.sft.training.lr": 0.001}))  # sft retrains → ilrec too
    assert _mtime(out / "ilrec" / "stage.json") != stamp
    negatives = json.loads((out / "sdpo" / "negatives.parquet.json").read_text())  # sampled again from the new sft
    assert negatives["run"] == str(out / "sft") and _mtime(out / "sdpo" / "negatives.parquet") > stamp


def _methods_pipeline(tmp_path: Path) -> dict:
    small = {"model": {"name_or_path": "smollm2-135m", "num_layers": 2},
             "data": {"tasks": {"seqrec": 1.0}, "compact": True, "format": "prompt", "sid_softmax": "full"},
             "training": {"epochs": 1, "batch_size": 32, "device": "cpu"}}
    return {"name": "methods", "out": str(tmp_path / "out"),
            "data": {"synthetic": {"n_items": 60, "n_users": 80, "seed": 0}},
            "semantics": {"teacher": "tfidf"},
            "baselines": {"pop": {}, "sasrec": {"epochs": 2}},
            "train": {"sft": small,
                      "tsrec": {**small, "method": "tsrec", "tsrec": {"sa_init": {"enabled": True}}},
                      "ilrec": {"from": "sft", "method": "ilrec", "ilrec": {"layers": [-2]}},
                      "sdpo": {"from": "sft", "method": "sdpo"},
                      "grpo": {"from": "sft", "method": "grpo", "grpo": {"num_generations": 8}},
                      "control": {"from": "sft", "training": {"max_steps": 3}}}}


@pytest.mark.parametrize(("key", "value", "message"), [
    ("train.sft.training.bucket_by_length", "maybe", r"field 'train\.sft\.training\.bucket_by_length'"),
    ("train.grpo.grpo.num_generations", 1, r"field 'train\.grpo\.grpo\.num_generations'"),
    ("train.control.training.lr", "fast", r"field 'train\.control\.training\.lr'"),
    ("train.ilrec.ilrec.no_such_setting", 1, r"field 'train\.ilrec\.ilrec\.no_such_setting'"),
    ("baselines.sasrec.epochs", "many", r"pipeline: field 'baselines\.sasrec\.epochs'"),
])
def test_every_stage_config_is_checked_before_any_stage_runs(tmp_path, key, value, message):
    """A bad value in a late stage (a stage-2 entry, a baseline) is one line naming the entry and the
    field, before the data stage has written anything."""
    from sidrec.pipelines.run import PipelineConfig, check_stage_configs

    cfg = _methods_pipeline(tmp_path)
    check_stage_configs(PipelineConfig.model_validate(cfg))  # every method's entry as given is valid
    path = tmp_path / "pipe.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=message):
        run_pipeline(load_pipeline_config(path, {key: value}))
    assert not (tmp_path / "out").exists()
