"""Extract (or import) TS-Rec token semantics for a SID table: semantics.json + a coverage report.

    result = extract_semantics(dataset, table, "tfidf", "runs/sft/semantics.json")
    result = extract_semantics(dataset, table, OpenAITeacher("http://127.0.0.1:8000/v1", "qwen"),
                               "runs/sft/semantics.json", cache_dir="runs/sft/semantics_cache")
    import_semantics("released.description_keywords.json", table, "runs/sft/semantics.json")
    inputs = resolve_run("runs/sft")        # dataset, SID file and default output paths of a run folder

For every used token of the chosen levels (default: all but the de-duplication level) the items
of its cluster (`token_clusters`) are sampled (`sample_items`, seeded per token, so a rerun sends
the same prompt) and the teacher is asked for a description and ~20 keywords. Each validated
answer is appended at once to a per-token cache (`cache_dir/cache.jsonl`, one JSON line per
answer, keyed by the token and a hash of the teacher's identity and the prompt), so an
interrupted run resumes without asking again for finished tokens; failed tokens are not cached
and are asked again next time. semantics.json (the released TS-Rec format, see
`sidrec.semantics.format`) is written atomically with whatever succeeded, and the report (coverage
per level, keyword counts, every failure with its last error, timings) beside it.

The statistical teacher ("tfidf") describes all tokens at once in seconds and needs no cache.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sidrec.errors import ConfigError, DataError
from sidrec.semantics.clusters import semantic_levels, token_clusters
from sidrec.semantics.format import Coverage, TokenSemantics, coverage, load_semantics, save_semantics
from sidrec.semantics.local_model import HFTeacher
from sidrec.semantics.teacher import (
    Messages,
    OpenAITeacher,
    TeacherFailure,
    TeacherReply,
    cluster_prompt,
)
from sidrec.semantics.tfidf import TfidfTeacher, item_texts
from sidrec.sids.table import SIDTable, parse_token
from sidrec.utils.io import read_config, write_json

TEACHERS = ("openai", "hf", "tfidf")
CACHE_FILE = "cache.jsonl"


# ----------------------------------------------------------------------------- results
@dataclass
class ExtractResult:
    """What one extraction produced."""

    semantics: dict[str, TokenSemantics]
    failures: dict[str, dict[str, Any]]  # token → {"error", "attempts"}
    coverage: Coverage
    report: dict[str, Any]
    out_path: Path | None = None
    report_path: Path | None = None
    asked: int = 0  # tokens sent to the teacher in this run
    from_cache: int = 0  # tokens answered by the cache
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


# ----------------------------------------------------------------------------- teachers
def make_teacher(
    name: str,
    *,
    base_url: str | None = None,
    model: str | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 4,
    max_retries: int = 3,
    max_tokens: int | None = None,
    timeout: float = 120.0,
    device: str = "auto",
) -> Any:
    """A teacher by name: "openai" (needs base_url and model), "hf" (model: HF id / folder, default
    smollm2-135m) or "tfidf"."""
    if name == "openai":
        if not base_url:
            raise ConfigError("--teacher openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if not model:
            raise ConfigError("--teacher openai needs --model: the model name the endpoint serves")
        return OpenAITeacher(base_url, model, api_key_env=api_key_env, concurrency=concurrency,
                             max_retries=max_retries, timeout=timeout, max_tokens=max_tokens or 1024)
    if name == "hf":
        return HFTeacher(model or "smollm2-135m", max_new_tokens=max_tokens or 320, device=device)
    if name == "tfidf":
        return TfidfTeacher()
    raise ConfigError(f"unknown teacher '{name}': use one of {', '.join(TEACHERS)}")


# ----------------------------------------------------------------------------- prompts
def cluster_prompts(
    dataset: Any,
    table: SIDTable,
    clusters: Mapping[str, np.ndarray],
    *,
    sample_items: int = 20,
    seed: int = 0,
) -> dict[str, Messages]:
    """token → the teacher prompt over a seeded sample of its cluster's items (same sample every run)."""
    import pandas as pd

    items = dataset if isinstance(dataset, pd.DataFrame) else dataset.items
    _, titles = item_texts(items, table.item_ids)
    frame = items.drop_duplicates("item_id")
    frame = frame.set_axis(frame["item_id"].astype(str), axis=0).reindex(table.item_ids)
    descriptions = (frame["description"].fillna("").astype(str).tolist() if "description" in frame.columns
                    else [""] * table.n_items)
    prompts: dict[str, Messages] = {}
    for tok, rows in clusters.items():
        rows = np.asarray(rows)
        if len(rows) > sample_items:
            rng = np.random.default_rng([seed, zlib.crc32(tok.encode())])
            rows = np.sort(rng.choice(rows, size=sample_items, replace=False))
        prompts[tok] = cluster_prompt(tok, [titles[i] for i in rows], [descriptions[i] for i in rows],
                                      n_items=len(clusters[tok]))
    return prompts


# ----------------------------------------------------------------------------- cache
def _key(identity: Mapping[str, Any], messages: Messages) -> str:
    blob = json.dumps({"teacher": identity, "messages": messages}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class SemanticsCache:
    """Validated teacher answers, one JSON line each (appended and flushed one at a time; a torn last
    line from a crash is ignored when reading)."""

    def __init__(self, folder: str | Path) -> None:
        self.path = Path(folder) / CACHE_FILE
        self.entries: dict[str, dict[str, Any]] = {}
        if self.path.is_file():
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        rec = json.loads(line)
                        self.entries[rec["key"]] = rec
                    except (ValueError, KeyError, TypeError):
                        continue

    def get(self, key: str) -> dict[str, Any] | None:
        return self.entries.get(key)

    def put(self, key: str, tok: str, reply: TeacherReply, identity: Mapping[str, Any]) -> None:
        rec = {"key": key, "token": tok, "description": reply.description, "keywords": reply.keywords,
               "attempts": reply.attempts, "seconds": round(reply.seconds, 3), "teacher": dict(identity),
               "time": dt.datetime.now().isoformat(timespec="seconds")}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(rec, ensure_ascii=False) + "\n").encode("utf-8")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write of a whole line on an O_APPEND file
            os.fsync(fd)
        finally:
            os.close(fd)
        self.entries[key] = rec


# ----------------------------------------------------------------------------- extraction
def _check_levels(table: SIDTable, levels: Sequence[int] | None) -> list[int]:
    allowed = semantic_levels(table)
    if levels is None:
        return allowed
    out = sorted({int(lvl) for lvl in levels})
    bad = [lvl for lvl in out if lvl not in allowed]
    if bad:
        raise ConfigError(f"levels {bad} have no semantics: this table's levels with meaning are {allowed} "
                          f"(prefixes {[table.prefixes[i] for i in allowed]}; the de-duplication level has none)")
    return out


def parse_levels(text: str | None, table: SIDTable) -> list[int] | None:
    """`--levels`: "a,b" (prefixes) or "1,2" (1-based) → 0-based level indices; None/"all" → None."""
    if text is None or text.strip().lower() in ("", "all"):
        return None
    out = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part.isdigit():
            lvl = int(part) - 1
            if not 0 <= lvl < table.n_levels:
                raise ConfigError(f"--levels: level {part} does not exist (1 … {table.n_levels})")
        elif part in table.prefixes:
            lvl = table.prefixes.index(part)
        else:
            raise ConfigError(f"--levels: '{part}' is neither a level number nor one of the prefixes {table.prefixes}")
        out.append(lvl)
    return _check_levels(table, out)


def extract_semantics(
    dataset: Any,
    table: SIDTable,
    teacher: str | Any,
    out_path: str | Path | None,
    *,
    cache_dir: str | Path | None = None,
    report_path: str | Path | None = None,
    sample_items: int = 20,
    seed: int = 0,
    levels: Sequence[int] | None = None,
    show_progress: bool = True,
) -> ExtractResult:
    """Describe every used token of `levels` with `teacher` (a name from TEACHERS or a teacher object).

    Writes `out_path` (semantics.json) and `report_path` (default: `<out stem>_report.json` beside
    it) unless `out_path` is None; the cache defaults to `semantics_cache/` beside `out_path`."""
    from sidrec.utils.progress import progress

    t0 = time.perf_counter()
    owned = isinstance(teacher, str)  # a teacher made here is closed here; the caller's is left open
    if isinstance(teacher, str):
        teacher = make_teacher(teacher)
    levels = _check_levels(table, levels)
    out_path = Path(out_path) if out_path is not None else None
    if report_path is None and out_path is not None:
        report_path = out_path.with_name(f"{out_path.stem}_report.json")
    if cache_dir is None and out_path is not None:
        cache_dir = out_path.parent / "semantics_cache"
    identity = teacher.identity()
    semantics: dict[str, TokenSemantics] = {}
    failures: dict[str, dict[str, Any]] = {}
    asked = from_cache = 0
    if isinstance(teacher, TfidfTeacher):
        sem, failed, _ = teacher.extract(dataset, table, levels)
        semantics = {s.token: s for s in sem}
        failures = {t: {"error": e, "attempts": 1} for t, e in failed.items()}
        asked = len(sem) + len(failed)
    else:
        clusters = token_clusters(table, levels)
        prompts = cluster_prompts(dataset, table, clusters, sample_items=sample_items, seed=seed)
        cache = SemanticsCache(cache_dir) if cache_dir is not None else None
        keys = {tok: _key(identity, msgs) for tok, msgs in prompts.items()}
        todo: dict[str, Messages] = {}
        for tok, msgs in prompts.items():
            hit = cache.get(keys[tok]) if cache is not None else None
            if hit is not None:
                semantics[tok] = TokenSemantics(token=tok, description=hit["description"], keywords=hit["keywords"])
                from_cache += 1
            else:
                todo[tok] = msgs
        asked = len(todo)
        try:
            with progress(disable=not show_progress or not todo) as bar:
                task = bar.add_task(f"{identity.get('teacher')}: describing tokens", total=len(todo))
                for tok, outcome in teacher.run(todo):
                    if isinstance(outcome, TeacherReply):
                        try:
                            semantics[tok] = TokenSemantics(token=tok, description=outcome.description,
                                                            keywords=outcome.keywords)
                        except ValueError as e:  # cannot happen after parse_reply; never drop it silently
                            failures[tok] = {"error": f"invalid semantics: {e}", "attempts": outcome.attempts}
                        else:
                            if cache is not None:
                                cache.put(keys[tok], tok, outcome, identity)
                    else:
                        assert isinstance(outcome, TeacherFailure)
                        failures[tok] = {"error": outcome.error, "attempts": outcome.attempts}
                    bar.advance(task)
        finally:
            if owned and hasattr(teacher, "close"):
                teacher.close()
    seconds = time.perf_counter() - t0
    cov = coverage(semantics, table)
    report = {
        "teacher": identity,
        "levels": [table.prefixes[lvl] for lvl in levels],
        "coverage": cov.to_dict(),
        "failures": {t: failures[t] for t in sorted(failures, key=parse_token)},
        "n_failures": len(failures),
        "tokens": len(semantics) + len(failures),
        "asked": asked,
        "from_cache": from_cache,
        "sample_items": sample_items,
        "seed": seed,
        "seconds": round(seconds, 2),
        "created": dt.datetime.now().isoformat(timespec="seconds"),
        "out": str(out_path) if out_path is not None else None,
        "cache": str(Path(cache_dir) / CACHE_FILE) if cache_dir is not None and not isinstance(teacher, TfidfTeacher)
        else None,
    }
    if out_path is not None:
        save_semantics(out_path, semantics.values())
        write_json(report_path, report)  # type: ignore[arg-type]
    return ExtractResult(semantics=semantics, failures=failures, coverage=cov, report=report, out_path=out_path,
                         report_path=Path(report_path) if report_path is not None else None, asked=asked,
                         from_cache=from_cache, seconds=seconds)


def import_semantics(file: str | Path, table: SIDTable, out_path: str | Path,
                     report_path: str | Path | None = None) -> ExtractResult:
    """Check a released semantics file against the SIDs (every token must be one of the table's) and
    write it as `out_path` (same format, ordered by level and code), with a coverage report."""
    t0 = time.perf_counter()
    semantics = load_semantics(file, table)
    out_path = Path(out_path)
    if report_path is None:
        report_path = out_path.with_name(f"{out_path.stem}_report.json")
    save_semantics(out_path, semantics.values())
    cov = coverage(semantics, table)
    report = {"teacher": {"teacher": "import", "file": str(file)}, "coverage": cov.to_dict(), "failures": {},
              "n_failures": 0, "tokens": len(semantics), "asked": 0, "from_cache": 0,
              "seconds": round(time.perf_counter() - t0, 2), "created": dt.datetime.now().isoformat(timespec="seconds"),
              "out": str(out_path)}
    write_json(report_path, report)
    return ExtractResult(semantics=semantics, failures={}, coverage=cov, report=report, out_path=out_path,
                         report_path=Path(report_path), seconds=time.perf_counter() - t0)


# ----------------------------------------------------------------------------- run folders
@dataclass
class RunInputs:
    """What `--run RUN` resolves to."""

    dataset: Path
    sids: Path | None  # None: the dataset's own (external) SIDs
    out: Path
    report: Path


def _existing(value: str, base: Path) -> Path:
    """A path from a run config: as written (relative to the working folder), else relative to the run."""
    p = Path(value).expanduser()
    if p.exists() or p.is_absolute():
        return p
    return base / p if (base / p).exists() else p


def resolve_run(run: str | Path) -> RunInputs:
    """The dataset and SIDs of a run folder: an SFT run (config.yaml with `dataset`, optional `sids`)
    or a folder holding sids.json plus a config.yaml naming the dataset (`dataset:`)."""
    run = Path(run)
    if not run.is_dir():
        raise ConfigError(f"--run {run}: no such folder")
    cfg_path = run / "config.yaml"
    if not cfg_path.is_file():
        raise ConfigError(f"--run {run}: no config.yaml naming the dataset (give an SFT run folder, or use "
                          "--data DATASET [--sids SIDS.json])")
    try:
        cfg = read_config(cfg_path)
    except Exception as e:  # yaml errors
        raise DataError(f"invalid YAML: {e}", path=cfg_path) from None
    ds_value = cfg.get("dataset") if isinstance(cfg, dict) else None
    if not isinstance(ds_value, str) and isinstance(cfg, dict) and isinstance(cfg.get("data"), str):
        ds_value = cfg["data"]
    if not isinstance(ds_value, str) or not ds_value:
        raise DataError("names no dataset folder (expected `dataset: PATH`)", path=cfg_path, field="dataset",
                        hint="use --data DATASET [--sids SIDS.json] instead")
    dataset = _existing(ds_value, run)
    if not (dataset / "dataset.json").is_file():
        raise DataError(f"dataset {dataset} is not a sidrec dataset folder (dataset.json is missing)", path=cfg_path,
                        field="dataset")
    sids: Path | None = None
    if isinstance(cfg.get("sids"), str) and cfg["sids"]:
        sids = _existing(cfg["sids"], run)
        if not sids.exists():
            raise DataError(f"SID file {sids} not found", path=cfg_path, field="sids")
    elif (run / "sids.json").is_file():
        sids = run / "sids.json"
    return RunInputs(dataset=dataset, sids=sids, out=run / "semantics.json", report=run / "semantics_report.json")


def load_inputs(data: str | Path, sids: str | Path | None) -> tuple[Any, SIDTable]:
    """(dataset, SID table) — the table as the SFT trainer sees it (made unique when needed)."""
    from sidrec.data.dataset import Dataset
    from sidrec.sids.load import load_sid_table

    dataset = Dataset.load(data, validate=False)
    return dataset, load_sid_table(dataset, Path(sids) if sids is not None else None)


# ----------------------------------------------------------------------------- display
def report_table(result: ExtractResult, title: str = "token semantics") -> Any:
    """A rich table: per level, used tokens, tokens with semantics, keyword counts, failures."""
    from rich.table import Table

    per_fail: dict[str, int] = {}
    for tok in result.failures:
        per_fail[parse_token(tok)[0]] = per_fail.get(parse_token(tok)[0], 0) + 1
    t = Table(title=title)
    for c in ("level", "used tokens", "with semantics", "keywords (mean)", "keywords (min)", "failures"):
        t.add_column(c, justify="left" if c == "level" else "right")
    for prefix, row in result.coverage.per_level.items():
        t.add_row(prefix, str(row["used_tokens"]), str(row["with_semantics"]), f"{row['keywords_mean']:.1f}",
                  str(row["keywords_min"]), str(per_fail.get(prefix, 0)))
    return t


def failure_table(result: ExtractResult, limit: int = 20) -> Any:
    from rich.table import Table

    t = Table(title=f"failures ({len(result.failures)})")
    for c in ("token", "attempts", "last error"):
        t.add_column(c)
    for tok in sorted(result.failures, key=parse_token)[:limit]:
        f = result.failures[tok]
        t.add_row(tok, str(f.get("attempts", "")), str(f.get("error", ""))[:160])
    return t


__all__ = [
    "ExtractResult", "RunInputs", "SemanticsCache", "cluster_prompts", "extract_semantics", "failure_table",
    "import_semantics", "load_inputs", "make_teacher", "parse_levels", "report_table", "resolve_run",
]
