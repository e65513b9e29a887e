"""`sidrec run CONFIG.yaml`: data → SIDs → baselines → generative training → evaluation, cached.

A pipeline config names each stage's inputs; every stage writes its artifact under `out/` with a
`stage.json` holding the hash of everything the artifact depends on (its own config section and
the hashes of the stages before it). A stage whose hash matches a finished artifact is reused;
an unfinished training run with a matching hash is resumed from its checkpoint; anything else is
rebuilt. So editing `train.training.lr` retrains only the model, and editing `sids` rebuilds the
SIDs and retrains the model, but leaves the dataset and the baselines alone.

    name: demo
    out: runs/demo
    data:                 # exactly one of: synthetic / import / path
      synthetic: {n_items: 600, n_users: 1000, seed: 0}
      # import: {format: minionerec, path: ../shared/data/amazon18-industrial, options: {}}
      # path: data/my-dataset
    sids:                 # method: external (the dataset's own) | rqkmeans | balanced | rqvae
      method: rqkmeans
      levels: 3
      codebook: 32
    baselines:            # classic models on the same split: name → training overrides
      pop: {}
      sasrec: {epochs: 15}
    semantics:            # TS-Rec token semantics (optional): teacher tfidf | openai | hf, or import
      teacher: tfidf      #   openai: options: {base_url: http://127.0.0.1:8000/v1, model: NAME}
    train:                # generative runs: name → an SFT config without dataset/sids
      sft:                #   (an SFTConfig; method: any of sidrec.methods.registry)
        model: {name_or_path: smollm2-135m, num_layers: 2}
      tsrec:              # gets tsrec.semantics from the semantics stage
        method: tsrec
        model: {name_or_path: smollm2-135m, num_layers: 2}
        tsrec: {sa_init: {enabled: true}, align: {enabled: true}}
      ilrec:              # stage 2 from the sft entry; CRR scores users with the sasrec baseline
        from: sft
        method: ilrec
      sdpo:               # S-DPO from the sft entry on its beam-search hard negatives (3 per example)
        from: sft
        method: sdpo
      tiger:
        method: tiger
"""

from __future__ import annotations

import hashlib
import json
import time
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sidrec.errors import ConfigError, validated
from sidrec.utils.io import merge_config, read_config, read_json, write_json
from sidrec.utils.progress import console

STAGE_FILE = "stage.json"


class DataStage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    synthetic: dict[str, Any] | None = None
    import_: dict[str, Any] | None = Field(None, alias="import")
    path: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DataStage:
        given = [k for k, v in (("synthetic", self.synthetic), ("import", self.import_), ("path", self.path)) if v is not None]
        if len(given) != 1:
            raise ValueError(f"data needs exactly one of synthetic / import / path (got {given or 'none'})")
        return self


class SIDStage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    method: str = "external"
    levels: int = 3
    codebook: int | list[int] = 256
    seed: int = 0
    options: dict[str, Any] = Field(default_factory=dict)
    embed: dict[str, Any] = Field(default_factory=dict, description="EmbedConfig fields (encoder, template, ...)")


class SemanticsStage(BaseModel):
    """TS-Rec token semantics for the SIDs: a teacher (tfidf | openai | hf) or an imported file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    teacher: str = "tfidf"
    import_: Path | None = Field(None, alias="import", description="a released semantics.json to use as is")
    options: dict[str, Any] = Field(default_factory=dict, description="teacher options: base_url, model, "
                                    "concurrency, max_tokens, ...; sample_items, seed, levels")


class PipelineConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    out: Path
    data: DataStage
    sids: SIDStage = Field(default_factory=SIDStage)
    semantics: SemanticsStage | None = None
    baselines: dict[str, dict[str, Any]] = Field(default_factory=dict)
    train: dict[str, dict[str, Any]] = Field(default_factory=dict)


def _hash(*parts: Any) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _cached(folder: Path, key: str, done_file: str) -> bool:
    stage = folder / STAGE_FILE
    return stage.is_file() and read_json(stage).get("key") == key and (folder / done_file).exists()


def _mark(folder: Path, key: str, **info: Any) -> None:
    write_json(folder / STAGE_FILE, {"key": key, **info})


def packaged_config(name: str) -> Path | None:
    """A config shipped with sidrec (`demo-cpu`, `industrial-partial-gpu`, ...), or None."""
    stem = name.removesuffix(".yaml")
    ref = resources.files("sidrec") / "configs" / f"{stem}.yaml"
    return Path(str(ref)) if ref.is_file() else None


def load_pipeline_config(path_or_name: str | Path, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Read a pipeline YAML (a path, or the name of a packaged config) and apply dotted overrides."""
    path = Path(path_or_name)
    if not path.is_file():
        packaged = packaged_config(str(path_or_name))
        if packaged is None:
            raise ConfigError(f"config {path_or_name} not found (neither a file nor a packaged config name; "
                              "packaged: " + ", ".join(list_packaged_configs()) + ")")
        path = packaged
    values = merge_config(read_config(path), overrides or {})
    return validated(PipelineConfig, values, str(path))


def list_packaged_configs() -> list[str]:
    folder = resources.files("sidrec") / "configs"
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


# ----------------------------------------------------------------------------- stages
def data_stage(cfg: PipelineConfig, out: Path) -> tuple[Path, str]:
    d = cfg.data
    if d.path is not None:
        from sidrec.data.dataset import Dataset

        Dataset.load(d.path)  # validates
        return d.path, _hash("path", str(Path(d.path).resolve()))
    key = _hash(d.model_dump(mode="json", by_alias=True))
    folder = out / "data"
    if _cached(folder, key, "dataset.json"):
        console.print(f"[dim]data: cached ({folder})[/dim]")
        return folder, key
    if d.synthetic is not None:
        from sidrec.data.synthetic import SyntheticConfig, generate_synthetic

        console.print(f"[bold]data[/bold]: generating the [yellow]synthetic[/yellow] dataset {d.synthetic}")
        ds = generate_synthetic(SyntheticConfig(**d.synthetic))
    else:
        from sidrec.data.importers import import_dataset

        spec = dict(d.import_ or {})
        fmt, src = spec.pop("format", "auto"), spec.pop("path", None)
        if src is None:
            raise ConfigError("data.import needs a path")
        console.print(f"[bold]data[/bold]: importing {src} ({fmt})")
        ds = import_dataset(fmt, src, **spec.pop("options", {}), **spec)
    ds.save(folder)
    _mark(folder, key)
    return folder, key


def sids_stage(cfg: PipelineConfig, out: Path, data_dir: Path, data_key: str) -> tuple[Path | None, str]:
    s = cfg.sids
    key = _hash(data_key, s.model_dump(mode="json"))
    if s.method == "external":
        return None, key  # the trainer reads the dataset's own SIDs
    folder = out / "sids"
    if _cached(folder, key, "sids.json"):
        console.print(f"[dim]sids: cached ({folder})[/dim]")
        return folder / "sids.json", key
    from sidrec.data.dataset import Dataset
    from sidrec.sids.build import build_sids, write_build
    from sidrec.sids.embed import EmbedConfig
    from sidrec.sids.report import sid_report

    console.print(f"[bold]sids[/bold]: {s.method}, {s.levels} levels × {s.codebook}")
    ds = Dataset.load(data_dir)
    table = build_sids(ds, s.method, levels=s.levels, codebook=s.codebook, embed_config=EmbedConfig(**s.embed),
                       seed=s.seed, options=s.options)
    write_build(table, folder, sid_report(table))
    _mark(folder, key)
    return folder / "sids.json", key


def semantics_stage(cfg: PipelineConfig, out: Path, data_dir: Path, sids_path: Path | None,
                    sids_key: str) -> tuple[Path | None, str]:
    """OUT/semantics/semantics.json for method: tsrec runs (None without a `semantics:` section)."""
    if cfg.semantics is None:
        return None, sids_key
    sem = cfg.semantics
    key = _hash(sids_key, sem.model_dump(mode="json", by_alias=True),
                str(Path(sem.import_).resolve()) if sem.import_ else None)
    folder = out / "semantics"
    path = folder / "semantics.json"
    if _cached(folder, key, "semantics.json"):
        console.print(f"[dim]semantics: cached ({folder})[/dim]")
        return path, key
    from sidrec.semantics.extract import extract_semantics, import_semantics, load_inputs, make_teacher

    dataset, table = load_inputs(data_dir, sids_path)
    folder.mkdir(parents=True, exist_ok=True)
    if sem.import_ is not None:
        console.print(f"[bold]semantics[/bold]: importing {sem.import_}")
        import_semantics(sem.import_, table, path)
    else:
        opts = dict(sem.options)
        run_opts = {k: opts.pop(k) for k in ("sample_items", "seed", "levels") if k in opts}
        console.print(f"[bold]semantics[/bold]: teacher {sem.teacher}")
        result = extract_semantics(dataset, table, make_teacher(sem.teacher, **opts), path, **run_opts)
        if result.failures:
            console.print(f"[yellow]semantics: {len(result.failures)} tokens failed (see "
                          f"{result.report_path}); they keep the default initialisation[/yellow]")
    _mark(folder, key)
    return path, key


def baseline_stage(name: str, overrides: dict[str, Any], out: Path, data_dir: Path, data_key: str) -> dict[str, Any]:
    from sidrec.pipelines.classic import train_classic

    model = overrides.get("model", name)
    key = _hash(data_key, name, overrides)
    folder = out / name
    if _cached(folder, key, "metrics.json"):
        console.print(f"[dim]{name}: cached ({folder})[/dim]")
        return read_json(folder / "metrics.json")
    console.print(f"[bold]{name}[/bold]: training")
    metrics = train_classic(model, data_dir, folder, overrides={k: v for k, v in overrides.items() if k != "model"},
                            overwrite=True)
    _mark(folder, key)
    return metrics


def train_stage(name: str, train: dict[str, Any], out: Path, data_dir: Path, sids_path: Path | None,
                sids_key: str, *, semantics: tuple[Path, str] | None = None, keys: dict[str, str] | None = None,
                cf_run: Path | None = None) -> dict[str, Any]:
    """One generative run. `from: NAME` continues another train entry's model (ILRec stage 2 or
    the plain-CE control); the method's prepare step is offered the pipeline's semantics and SASRec."""
    from sidrec.methods.method import RunInputs
    from sidrec.methods.registry import get_method
    from sidrec.pipelines.llm import continue_from, train_sft

    train = dict(train)
    source = train.pop("from", None)
    method = train.get("method", "sft")
    base: dict[str, Any] = {}
    if source is not None:
        if source not in (keys or {}):
            raise ConfigError(f"train.{name}.from: '{source}' is not a train entry trained before it")
        base = continue_from(out / source, method)
    values = merge_config(base, {**train, "dataset": str(data_dir)})
    if sids_path is not None:
        values["sids"] = str(sids_path)
    key = _hash(sids_key, train, (keys or {}).get(source) if source else None,
                semantics[1] if "semantics" in get_method(method).reads and semantics is not None else None)
    if keys is not None:
        keys[name] = key
    folder = out / name
    if _cached(folder, key, "metrics.json"):
        console.print(f"[dim]{name}: cached ({folder})[/dim]")
        return read_json(folder / "metrics.json")
    stage = folder / STAGE_FILE
    resume = stage.is_file() and read_json(stage).get("key") == key and (folder / "checkpoint").is_dir()
    console.print(f"[bold]{name}[/bold]: {'resuming' if resume else 'training'} ({train.get('method', 'sft')})")
    folder.mkdir(parents=True, exist_ok=True)
    _mark(folder, key)
    inputs = RunInputs(out=folder, source=out / source if source else None,
                       semantics=semantics[0] if semantics is not None else None, cf_run=cf_run, resume=resume,
                       overwrite=True, device=str((values.get("training") or {}).get("device", "auto")))
    return train_sft(values, folder, resume=resume, overwrite=not resume, inputs=inputs)


def _train_order(train: dict[str, dict[str, Any]]) -> list[str]:
    """Train entries in their listed order, except that an entry comes after the one it continues (`from`)."""
    order: list[str] = []
    pending = list(train)
    while pending:
        ready = [n for n in pending if train[n].get("from") is None or train[n]["from"] in order]
        if not ready:
            bad = pending[0]
            raise ConfigError(f"train.{bad}.from: '{train[bad].get('from')}' is not a train entry "
                              f"(or the `from` entries form a cycle); entries: {', '.join(train)}")
        order.append(ready[0])
        pending.remove(ready[0])
    return order


def _entry_values(train: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    """A train entry's settings as its run will see them, without any run on disk: a `from` entry's own
    settings over its source entry's, as `continue_from` carries them (method switched, other methods'
    sections dropped, the stage-2 schedule)."""
    from sidrec.pipelines.llm import continued_values

    entry = dict(train[name])
    source = entry.pop("from", None)
    if source is None:
        return entry
    return merge_config(continued_values(_entry_values(train, source), entry.get("method", "sft")), entry)


def check_stage_configs(cfg: PipelineConfig) -> None:
    """Validate every baseline's and train entry's settings before any stage runs, so that a bad value
    in the last stage is reported in seconds (naming `baselines.NAME.…` or `train.NAME.…`), not after
    the data, the SIDs and the earlier models have been trained. Checks that need the inputs a stage
    fills in (the semantics, the SASRec, the negatives) wait for that stage."""
    from pydantic import ValidationError

    from sidrec.methods.registry import method_of, without_other_sections
    from sidrec.training.sequential import SequentialTrainConfig

    for name, overrides in cfg.baselines.items():
        model = overrides.get("model", name)
        if model != "pop":
            validated(SequentialTrainConfig, {**overrides, "model": model}, "pipeline", field_prefix=f"baselines.{name}.")
    for name in _train_order(cfg.train):
        try:
            values = without_other_sections({**_entry_values(cfg.train, name), "dataset": "."})
            method_of(values).config.model_validate(values)
        except ConfigError as e:
            raise ConfigError(f"pipeline: train.{name}: {e}") from None
        except ValidationError as e:
            fields = [x for x in e.errors() if x["loc"]]  # not the whole-config checks of missing inputs
            if fields:
                loc = ".".join(str(p) for p in fields[0]["loc"])
                more = f" ({len(fields)} errors in all)" if len(fields) > 1 else ""
                raise ConfigError(f"pipeline: field 'train.{name}.{loc}': {fields[0]['msg']}{more}") from None


def run_pipeline(cfg: PipelineConfig, out: Path | None = None) -> dict[str, Any]:
    """Run (or reuse) every stage; returns and writes OUT/summary.json: test metrics per model."""
    check_stage_configs(cfg)
    out = Path(out or cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    from sidrec.utils.io import write_yaml

    write_yaml(out / "pipeline.yaml", cfg.model_dump(mode="json", by_alias=True))
    data_dir, data_key = data_stage(cfg, out)
    sids_path, sids_key = sids_stage(cfg, out, data_dir, data_key)
    results: dict[str, dict[str, Any]] = {}
    for name, overrides in cfg.baselines.items():
        results[name] = baseline_stage(name, overrides, out, data_dir, data_key)["test"]
    semantics_path, sem_key = semantics_stage(cfg, out, data_dir, sids_path, sids_key)
    cf_run = out / "sasrec" if "sasrec" in cfg.baselines else None
    keys: dict[str, str] = {}
    for name in _train_order(cfg.train):
        train = cfg.train[name]
        results[name] = train_stage(name, train, out, data_dir, sids_path, sids_key, keys=keys, cf_run=cf_run,
                                    semantics=(semantics_path, sem_key) if semantics_path else None)["test"]
    summary = {"name": cfg.name, "dataset": str(data_dir), "sids": str(sids_path) if sids_path else "external",
               "wall_seconds": round(time.perf_counter() - t0, 1), "test": results}
    write_json(out / "summary.json", summary)
    return summary
