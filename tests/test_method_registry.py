"""The method registry: methods are reached only through it, a new method is one folder and one
registration (docs/adding-a-method.md, built here for real), and configs / run folders written before
each method had its own settings class still load."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pytest
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from sidrec.errors import ConfigError
from sidrec.llm.config import SFTConfig
from sidrec.llm.sft_data import IGNORE_INDEX, response_forward
from sidrec.llm.trainer import SFTTrainer
from sidrec.methods import registry
from sidrec.methods.ilrec.config import ILRecConfig
from sidrec.methods.method import Method, RunInputs
from sidrec.methods.preference.config import DPOConfig
from sidrec.methods.tiger.config import TigerConfig
from sidrec.methods.tsrec.config import TSRecConfig
from sidrec.pipelines.llm import continue_from, prepare_run, train_sft
from sidrec.utils.io import read_config, write_json, write_yaml

from .conftest import chain_sid_table, tiny_lm_env

N_ITEMS = 40


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return tiny_lm_env(tmp_path_factory.mktemp("registry"), n_items=N_ITEMS)


def base_values(root: Path, **training) -> dict:
    t = {"epochs": 1, "batch_size": 16, "lr": 3e-3, "eval_samples": 20, "log_steps": 2, "device": "cpu", **training}
    return {"dataset": str(root / "chain"), "sids": str(root / "sids.json"), "model": {"name_or_path": str(root / "lm")},
            "data": {"tasks": {"seqrec": 1.0}, "compact": True}, "training": t,
            "eval": {"num_beams": 10, "batch_size": 32, "splits": ["test"]}}


# ----------------------------------------------------------------------------- the registry
def test_each_method_name_picks_its_settings_class(env):
    v = base_values(env)
    assert type(registry.method_config(v)) is SFTConfig
    assert type(registry.method_config({**v, "method": "tiger"})) is TigerConfig
    assert type(registry.method_config({**v, "method": "tsrec"})) is TSRecConfig
    assert type(registry.method_config({**v, "method": "ilrec", "ilrec": {"use_crr": False}})) is ILRecConfig
    sdpo = registry.method_config({**v, "method": "sdpo", "dpo": {"negatives": "n.parquet"}})
    assert type(sdpo) is DPOConfig and sdpo.method == "sdpo"
    with pytest.raises(ConfigError, match="method 'nope' is not registered; choose one of sft, tiger"):
        registry.method_config({**v, "method": "nope"})


def test_a_section_of_another_method_is_refused_with_the_fix_and_default_sections_are_dropped(env):
    v = base_values(env)
    with pytest.raises(ConfigError, match="ilrec: this section belongs to method ilrec, but method is 'sft'; "
                                          "set method: ilrec"):
        registry.method_config({**v, "ilrec": {"alpha": 0.5}})
    # a config.yaml written when SFTConfig held every method's section, each with its defaults
    legacy = {**v, "method": "sft", "tiger": {}, "tsrec": TSRecConfig(dataset="d").tsrec.model_dump(mode="json"),
              "ilrec": ILRecConfig(dataset="d", ilrec={"use_crr": False}).ilrec.model_dump(mode="json") | {
                  "use_crr": True},
              "dpo": {"negatives": None, "num_negatives": None, "beta": 1.0, "sft_weight": 0.0}}
    cfg = registry.method_config(legacy)
    assert type(cfg) is SFTConfig and not {"tiger", "tsrec", "ilrec", "dpo"} & set(cfg.model_dump())


def test_tiger_runs_cannot_be_continued_and_dpo_without_a_source_says_what_to_give(env, tmp_path):
    run = tmp_path / "tiger"
    run.mkdir()
    write_yaml(run / "config.yaml", {**base_values(env), "method": "tiger"})
    (run / "model").mkdir()
    (run / "model" / "sidrec.json").write_text("{}")
    with pytest.raises(ConfigError, match="a tiger run cannot be continued as ilrec"):
        continue_from(run, "ilrec")
    with pytest.raises(ConfigError, match="needs a finished SFT run to continue"):
        prepare_run({**base_values(env), "method": "dpo"}, RunInputs(out=tmp_path / "dpo"))


def test_prepare_fills_only_the_inputs_a_method_reads_and_leaves_given_ones(env, tmp_path):
    v = base_values(env)
    offered = RunInputs(out=tmp_path / "x", semantics=Path("sem.json"), cf_run=Path("runs/sasrec"))
    assert prepare_run({**v, "method": "tsrec"}, offered)["tsrec"] == {"semantics": "sem.json"}
    assert prepare_run({**v, "method": "ilrec"}, offered)["ilrec"] == {"cf_run": "runs/sasrec"}
    mine = prepare_run({**v, "method": "ilrec", "ilrec": {"cf_run": "mine"}}, offered)
    assert mine["ilrec"] == {"cf_run": "mine"}
    assert prepare_run(v, offered) == v  # plain SFT reads nothing
    assert registry.get_method("tsrec").reads == {"semantics"} and registry.get_method("sft").reads == set()


# ----------------------------------------------------------------------------- a new method, as the doc adds it
class SmoothSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    epsilon: float = Field(0.1, ge=0, lt=1)


class SmoothConfig(SFTConfig):
    method: Literal["smooth"] = "smooth"  # type: ignore[assignment]
    smooth: SmoothSettings = Field(default_factory=SmoothSettings)


class SmoothTrainer(SFTTrainer):
    def compute_loss(self, model, batch):
        logits, labels, _ = response_forward(model, batch)
        loss = F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX,
                               label_smoothing=self.config.smooth.epsilon)
        return loss, {"epsilon": self.config.smooth.epsilon}


@pytest.fixture
def smooth_registered(monkeypatch):
    method = Method("smooth", "SFT with label smoothing", SmoothConfig, SmoothTrainer, section="smooth")
    monkeypatch.setitem(registry.METHODS, "smooth", method)
    return method


def test_a_new_method_is_one_registration_and_trains_through_every_entry_point(env, tmp_path, smooth_registered):
    from typer.testing import CliRunner

    from sidrec.cli.main import app

    v = base_values(env, max_steps=4, eval_steps=4, seed=3)
    v["data"]["format"], v["data"]["sid_softmax"] = "prompt", "full"  # the loss above reads the full vocabulary
    plain = train_sft(v, tmp_path / "sft")
    zero = train_sft({**v, "method": "smooth", "smooth": {"epsilon": 0.0}}, tmp_path / "smooth0")
    # with ε = 0 the new method's loss is the SFT loss: the same weights, step for step
    assert zero["method"] == "smooth" and zero["param_checksums"] == pytest.approx(plain["param_checksums"], rel=1e-9)
    logged = [json.loads(x) for x in (tmp_path / "smooth0" / "history.jsonl").read_text().splitlines()]
    assert any(r.get("epsilon") == 0.0 for r in logged)
    # the CLI reaches it by name, and continues a finished run with it (`--from`)
    res = CliRunner().invoke(app, ["train", "sft", "--method", "smooth", "--from", str(tmp_path / "sft"),
                                   "--out", str(tmp_path / "stage2"), "--set", "smooth.epsilon=0.2",
                                   "--set", "training.max_steps=2"])
    assert res.exit_code == 0, res.output
    saved = read_config(tmp_path / "stage2" / "config.yaml")
    assert saved["method"] == "smooth" and saved["smooth"] == {"epsilon": 0.2}
    assert saved["model"]["name_or_path"] == str(tmp_path / "sft" / "model")


# ----------------------------------------------------------------------------- run folders from before
def test_a_run_folder_written_with_every_method_section_resumes_and_continues(env, tmp_path):
    out = tmp_path / "old"
    v = base_values(env, max_steps=2)
    v["data"]["format"], v["data"]["sid_softmax"] = "prompt", "full"  # so that ILRec can continue it
    train_sft(v, out)
    # rewrite config.yaml and fingerprint.json as the previous SFTConfig wrote them: every section
    old_sections = {"tiger": {}, "tsrec": TSRecConfig(dataset="d").tsrec.model_dump(mode="json"),
                    "ilrec": ILRecConfig(dataset="d", ilrec={"use_crr": False}).ilrec.model_dump(mode="json") | {
                        "use_crr": True},
                    "dpo": {"negatives": None, "num_negatives": None, "beta": 1.0, "sft_weight": 0.0}}
    config = {**read_config(out / "config.yaml"), **old_sections}
    write_yaml(out / "config.yaml", config)
    fp = json.loads((out / "fingerprint.json").read_text())
    from sidrec.utils.fingerprint import flatten

    fp["config"] = {**fp["config"], **flatten(old_sections)}
    write_json(out / "fingerprint.json", fp)
    before = json.loads((out / "metrics.json").read_text())
    again = train_sft({}, out, resume=True)  # the fingerprint check passes; the finished run re-evaluates
    assert again["train"]["steps"] == before["train"]["steps"] and again["test"]["ndcg@10"] == pytest.approx(before["test"]["ndcg@10"])
    cont = continue_from(out, "ilrec", {"ilrec": {"use_crr": False}})
    assert type(registry.method_config(cont)) is ILRecConfig and "tsrec" not in cont and "dpo" not in cont
    assert cont["ilrec"]["from_run"] == str(out)


def test_model_folders_saved_before_the_move_still_load(tmp_path):
    from sidrec.llm.recommender import SIDRecommender
    from sidrec.methods.tiger.config import TigerSettings
    from sidrec.methods.tiger.model import TigerRecommender, build_t5, tiger_sid_tokens

    table = chain_sid_table(N_ITEMS)
    settings = TigerSettings(d_model=16, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2, d_kv=8)
    tokens = tiger_sid_tokens(table)
    rec = TigerRecommender(build_t5(settings, tokens, seed=0), table, tokens, settings)
    folder = rec.save(tmp_path / "model")
    meta = json.loads((folder / "sidrec.json").read_text())
    assert meta["loader"] == "sidrec.methods.tiger.model:TigerRecommender"
    expected = rec.recommend([["i1", "i2"]], top_k=5)[0]
    for loader in ("sidrec.llm.tiger:TigerRecommender", None):  # the old module path; no loader at all
        write_json(folder / "sidrec.json", {k: v for k, v in {**meta, "loader": loader}.items() if v is not None})
        again = SIDRecommender.load(folder)
        assert type(again) is TigerRecommender and again.recommend([["i1", "i2"]], top_k=5)[0] == expected


def test_sidrec_methods_lists_every_registered_method():
    from typer.testing import CliRunner

    from sidrec.cli.main import app

    res = CliRunner().invoke(app, ["methods"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for name, settings in (("sft", "SFTConfig"), ("tiger", "TigerConfig"), ("tsrec", "TSRecConfig"),
                           ("ilrec", "ILRecConfig"), ("dpo", "DPOConfig"), ("sdpo", "DPOConfig")):
        rows = [[c.strip() for c in line.split("│")[1:3]] for line in res.output.splitlines() if "│" in line]
        assert [name, settings] in rows
