"""Train, evaluate and query generative (SID) recommenders.

    from sidrec.pipelines.llm import train_sft, evaluate_llm_run, recommend
    metrics = train_sft({"dataset": "data/industrial", "model": {"num_layers": 4}}, "runs/sft")
    evaluate_llm_run("runs/sft", split="test")
    items = recommend("runs/sft", ["B0001", "B0002"], top_k=10)
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pandas as pd

from sidrec.data.dataset import Dataset
from sidrec.errors import ConfigError, DataError, SidrecError
from sidrec.utils.io import merge_config, read_config, write_json
from sidrec.utils.runs import RunDir

if TYPE_CHECKING:
    from sidrec.methods.method import RunInputs


def sft_config(values: dict[str, Any]) -> Any:
    """Validate a generative run's config with its method's settings class (`sidrec.methods.registry`;
    pydantic errors become ConfigError naming the field)."""
    from sidrec.methods.registry import method_config

    return method_config(values)


# the reference stage-2 schedule (methods.md §5): 1 epoch, lr 5e-5, cosine, 5% warm-up
STAGE2_TRAINING = {"epochs": 1, "lr": 5e-5, "scheduler": "cosine", "warmup_ratio": 0.05}


def continued_values(values: dict[str, Any], method: str) -> dict[str, Any]:
    """A run config as stage 2 with `method` continues it, before its model folder is known: the method
    switched, the whole model kept (no GGUF, no layer cut), the stage-2 schedule, and no method's section
    (`continue_from` adds the one the new method carries over)."""
    from sidrec.methods.registry import sections

    out = {k: v for k, v in values.items() if k not in sections()}  # other methods' settings do not carry over
    out["method"] = method
    out["model"] = {**(values.get("model") or {}), "gguf_file": None, "num_layers": None}
    out["training"] = {**(values.get("training") or {}), **STAGE2_TRAINING}
    return out


def continue_from(run: str | Path, method: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A config that continues training a finished run's model with `method` (ILRec / DPO / S-DPO
    stage 2, or the plain-CE control): the run's config with model.name_or_path = RUN/model, the
    stage-2 schedule, and each method section as the new method carries it over."""
    from sidrec.llm.config import with_legacy_defaults
    from sidrec.llm.recommender import resolve_model_dir
    from sidrec.methods.registry import get_method, method_of

    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise ConfigError(f"--from {run}: not a run folder (config.yaml is missing); give a finished `sidrec train sft` run")
    model_dir = resolve_model_dir(run)
    values = with_legacy_defaults(read_config(run / "config.yaml"))
    source, target = method_of(values), get_method(method)
    if not source.continuable:
        raise ConfigError(f"--from {run}: a {source.name} run cannot be continued as {method}")
    carried = target.continued_section({**values, "method": method}, run)
    values = continued_values(values, method)
    values["model"]["name_or_path"] = str(model_dir)
    if carried is not None:
        values[target.section] = carried  # type: ignore[index]
    return merge_config(values, overrides or {})


def prepare_run(values: dict[str, Any], inputs: RunInputs) -> dict[str, Any]:
    """The method's `prepare` step: the inputs its settings leave unset, from `inputs`."""
    from sidrec.methods.registry import method_of

    return method_of(values).resolve_inputs(values, inputs)


def train_sft(
    config: dict[str, Any] | str | Path,
    out: str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    resume: bool = False,
    overwrite: bool = False,
    inputs: RunInputs | None = None,
) -> dict[str, Any]:
    """Train a generative run of any registered method into `out`; returns metrics.json's content.

    `inputs` (what the command or pipeline offers: the continued run, semantics, a SASRec run) goes to
    the method's prepare step, which fills the inputs the settings leave unset."""
    out = Path(out)
    values: dict[str, Any] = {}
    if resume and (out / "config.yaml").is_file():
        from sidrec.llm.config import with_legacy_defaults

        values = with_legacy_defaults(read_config(out / "config.yaml"))
    if isinstance(config, (str, Path)):
        values = merge_config(values, read_config(config))
    elif config:
        values = merge_config(values, config)
    values = merge_config(values, overrides or {})
    if inputs is not None:
        values = prepare_run(values, inputs)
        overwrite = overwrite or inputs.claimed  # the folder now holds only the inputs just written
    cfg = sft_config(values)
    if not (Path(cfg.dataset) / "dataset.json").is_file():  # fail before creating the run folder
        raise DataError(f"{cfg.dataset}: not a sidrec dataset folder (dataset.json is missing); "
                        "create one with `sidrec data import …` or `sidrec data synth`")
    if cfg.sids is not None and not Path(cfg.sids).is_file():
        raise DataError(f"{cfg.sids}: SID file not found (build one with `sidrec sids build`)")
    fp = sft_fingerprint(cfg)
    # Under accelerate launch / torchrun every process runs this: the process group starts first,
    # rank 0 alone checks and prepares the run folder, then the others open it.
    import torch
    from accelerate import PartialState

    device = cfg.training.device
    state = PartialState(cpu=device == "cpu" or (device == "auto" and not torch.cuda.is_available()))
    rank = state.process_index
    if rank == 0:
        keep = _inputs_inside(cfg, out)
        if isinstance(config, (str, Path)) and Path(config).resolve().parent == out.resolve():
            keep.add(Path(config).name)  # a config file kept beside the run (benchmarks do this)
        run = RunDir(out, resume=resume, overwrite=overwrite, keep=keep)
        checkpointed = resume and (out / "checkpoint" / "progress.json").is_file()
        try:
            if checkpointed:
                run.check_fingerprint(fp, resume_free(cfg), saved_config=_saved_config(out))
            else:
                for stale in ("checkpoint", "best_weights.pt", "history.jsonl", "model", "metrics.json"):
                    target = out / stale
                    if target.is_dir():
                        shutil.rmtree(target)
                    elif target.exists():
                        target.unlink()
                run.write_config(cfg.model_dump(mode="json"))
                run.write_fingerprint(fp)
        except BaseException:
            run.discard_if_unstarted() if not checkpointed else run.close()
            raise
    state.wait_for_everyone()
    if rank != 0:
        run = RunDir.attach(out)
        checkpointed = resume and (out / "checkpoint" / "progress.json").is_file()
    try:
        from sidrec.methods.registry import get_method

        trainer = get_method(cfg.method).trainer(cfg, run)
        return trainer.train(resume=checkpointed)
    except SidrecError:
        if rank == 0 and not checkpointed:
            run.discard_if_unstarted()
        raise
    finally:
        run.close()


# settings a resumed run may change: where it runs and how large its evaluation batches are; the
# dataset and SID paths may move (their content is compared through the fingerprint)
SFT_RESUME_FREE = {"dataset", "sids", "training.device", "training.report_to", "eval.batch_size"}


def resume_free(cfg: Any) -> set[str]:
    """SFT_RESUME_FREE, and the other methods' sections that fingerprints written before each method had
    its own config class recorded with their defaults."""
    from sidrec.methods.registry import get_method, sections

    return SFT_RESUME_FREE | (sections() - {get_method(cfg.method).section})


def sft_fingerprint(cfg: Any) -> dict[str, Any]:
    """The resolved config and the content digests of the dataset and SID table of an SFT-family run."""
    from sidrec.utils.fingerprint import dataset_digest, file_digest, fingerprint

    inputs = {"dataset": dataset_digest(cfg.dataset), "sids": file_digest(cfg.sids) if cfg.sids else None}
    return fingerprint(cfg.model_dump(mode="json"), inputs)


def _saved_config(out: Path) -> dict[str, Any] | None:
    """config.yaml of a run from before fingerprints, resolved as the run resolved it."""
    from sidrec.llm.config import with_legacy_defaults

    if not (out / "config.yaml").is_file():
        return None
    return sft_config(with_legacy_defaults(read_config(out / "config.yaml"))).model_dump(mode="json")


def _inputs_inside(cfg: Any, out: Path) -> set[str]:
    """Names of files inside the run folder that the config reads (e.g. sampled DPO negatives):
    `--overwrite` keeps them."""
    from sidrec.utils.fingerprint import flatten

    root = out.resolve()
    keep = set()
    for value in flatten(cfg.model_dump(mode="json")).values():
        if isinstance(value, str) and value:
            try:
                p = Path(value).resolve()
            except (OSError, ValueError):
                continue
            if p.parent == root and p.is_file():
                keep |= {p.name, p.name + ".json"}  # and its provenance sidecar
    return keep


def is_llm_run(run: str | Path) -> bool:
    """A generative (SFT / TIGER / ...) run, as opposed to a classic SASRec/GRU4Rec/popularity run."""
    path = Path(run) / "config.yaml"
    if (Path(run) / "model" / "sidrec.json").is_file():
        return True
    cfg = read_config(path) if path.is_file() else {}
    return isinstance(cfg.get("model"), dict) or "method" in cfg


def evaluate_llm_run(
    run: str | Path,
    split: str = "test",
    *,
    mode: Literal["beam", "exact"] = "beam",
    num_beams: int | None = None,
    batch_size: int | None = None,
    max_examples: int | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Re-evaluate a trained generative run on a split; writes metrics_<split>.json, ranks and top-k files."""
    import torch

    from sidrec.llm.config import EvalSettings
    from sidrec.llm.evaluate import evaluate_splits
    from sidrec.llm.recommender import SIDRecommender, resolve_model_dir
    from sidrec.utils.device import resolve_device
    from sidrec.utils.distributed import is_main_process, world_size

    run = Path(run)
    cfg = read_config(run / "config.yaml")
    if not cfg.get("dataset"):
        raise DataError("names no dataset folder", path=run / "config.yaml", field="dataset")
    dataset = Dataset.load(cfg["dataset"])
    if world_size() > 1:  # under accelerate launch / torchrun: shard the examples
        from accelerate import PartialState

        state = PartialState(cpu=device == "cpu" or not torch.cuda.is_available())
        dev = state.device
    else:
        dev = resolve_device(device)
    rec = SIDRecommender.load(resolve_model_dir(run), device=dev)
    if set(rec.item_ids) != set(dataset.item_ids):
        raise DataError(f"the model in {run} was trained on another item catalogue than {cfg['dataset']}")
    ev = EvalSettings(**(cfg.get("eval") or {}))
    settings = EvalSettings(splits=[split], num_beams=num_beams or ev.num_beams, batch_size=batch_size or ev.batch_size,
                            max_examples=max_examples if max_examples is not None else ev.max_examples)
    main = is_main_process()
    results = evaluate_splits(rec, dataset, settings, RunDir(run, resume=True) if main else None, mode=mode)
    if main:
        write_json(run / f"metrics_{split}{'_exact' if mode == 'exact' else ''}.json", results[split])
    return results[split]


def parse_history(text: str, dataset: Dataset | None, known: set[str]) -> list[str]:
    """'id1,id2,...' (item ids) or titles separated by '|' or ',' (matched exactly, case-insensitive)."""
    from sidrec.serving.catalogue import Catalogue, UnknownEntries

    parts = [p.strip() for p in (text.split("|") if "|" in text else text.split(",")) if p.strip()]
    if not parts:
        raise DataError("--history is empty: give item ids separated by commas (or titles separated by '|')")
    ids = [str(i) for i in dataset.items["item_id"]] if dataset is not None else sorted(known)
    titles = dataset.items["title"].fillna("").astype(str).tolist() if dataset is not None else None
    catalogue = Catalogue(ids, titles)
    try:
        return [catalogue.item_ids[i] for i in catalogue.resolve(parts, "--history")]
    except UnknownEntries as e:
        raise DataError(f"--history: {', '.join(repr(x) for x in e.entries)} is neither an item id of this model "
                        "nor an item title") from None


def recommend(run: str | Path, history: list[str] | str, *, top_k: int = 10, num_beams: int | None = None,
              device: str = "auto", **filters: Any) -> pd.DataFrame:
    """Top-K items for one history: rank, item_id, sid, title, score (what `sidrec recommend --run` prints).

    `history`: item ids (a list, or 'id1,id2') or titles ('T1|T2'); `filters`: the request fields of
    `POST /v1/recommend` (exclude_history, include_items, exclude_items, categories)."""
    from sidrec.serving.local import recommend_local

    items = history if isinstance(history, list) else \
        [p.strip() for p in (history.split("|") if "|" in history else history.split(",")) if p.strip()]
    body: dict[str, Any] = {"history": items, "k": top_k, **filters}
    if num_beams is not None:
        body["num_beams"] = max(num_beams, top_k)
    out = recommend_local(run, body, device=device)
    return pd.DataFrame(out["items"], columns=["rank", "item_id", "sid", "title", "score"])
