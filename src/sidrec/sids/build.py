"""Build SIDs for a dataset (embed → quantize → de-duplicate), or import an external SID file.

    build_sids(dataset, "rqkmeans", levels=3, codebook=256, embeddings=None, embed_config=None, seed=0)
    import_sids(dataset, "index.json")   # LC-Rec / MiniOneRec {item_id: ["<a_1>", "<b_2>", ...]}

Both return a `SIDTable` whose SIDs are unique (an extra level `<d_N>` where tuples collide).
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ValidationError

from sidrec.data.dataset import Dataset
from sidrec.errors import ConfigError, DataError
from sidrec.sids.embed import EmbedConfig, Embeddings, encode_items
from sidrec.sids.quantize import QuantizeResult
from sidrec.sids.quantize.balanced import BalancedConfig, balanced_rq_kmeans
from sidrec.sids.quantize.rqkmeans import RQKMeansConfig, rq_kmeans
from sidrec.sids.quantize.rqvae import RQVAEConfig, rq_vae
from sidrec.sids.table import SIDTable
from sidrec.utils.io import write_json

Method = Literal["rqkmeans", "balanced", "rqvae"]
METHODS: dict[str, tuple[type[BaseModel], Any]] = {
    "rqkmeans": (RQKMeansConfig, rq_kmeans),
    "balanced": (BalancedConfig, balanced_rq_kmeans),
    "rqvae": (RQVAEConfig, rq_vae),
}


def method_config(method: str, *, levels: int, codebook: int | list[int], seed: int, device: str | None = None,
                  options: Mapping[str, Any] | None = None) -> BaseModel:
    """The validated `XxxConfig` of a method from the common arguments plus `--set` options."""
    if method not in METHODS:
        raise ConfigError(f"unknown SID method '{method}': choose one of {', '.join(METHODS)}")
    cls = METHODS[method][0]
    values: dict[str, Any] = {"levels": levels, "codebook": codebook, "seed": seed}
    if device is not None and "device" in cls.model_fields:
        values["device"] = device
    values.update(options or {})
    unknown = sorted(set(values) - set(cls.model_fields))
    if unknown:
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} for method {method}; "
                          f"valid: {', '.join(cls.model_fields)}")
    try:
        return cls.model_validate(values)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"invalid {method} option {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def check_codebook(codebook: int | Sequence[int], n_items: int) -> None:
    """A codebook larger than the number of items cannot be trained: ConfigError with a smaller suggestion."""
    sizes = [codebook] if isinstance(codebook, int) else list(codebook)
    too_big = [k for k in sizes if k > n_items]
    if too_big:
        suggestion = 1 << max(0, (max(1, n_items // 4)).bit_length() - 1)
        raise ConfigError(f"codebook size {max(too_big)} is larger than the number of items ({n_items:,}): "
                          f"k-means cannot fill it; use a smaller --codebook, e.g. --codebook {suggestion}")


def check_embeddings(embeddings: np.ndarray, n_items: int, *, source: str = "embeddings") -> np.ndarray:
    """float32 [n_items, d], finite: clear DataError otherwise."""
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise DataError(f"embeddings must be a 2-d array [n_items, dim], got shape {x.shape}", path=source)
    if x.shape[0] != n_items:
        raise DataError(f"{x.shape[0]} embedding rows for {n_items} items", path=source,
                        hint="embeddings must follow the dataset's items.parquet order")
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        row = int(np.flatnonzero(~np.isfinite(x).all(axis=1))[0])
        raise DataError("embedding row has NaN or infinite values", path=source, line=row + 1)
    return x


def quantize(x: np.ndarray, method: str, config: BaseModel, *, show_progress: bool = True) -> QuantizeResult:
    """Run one quantizer on the embeddings."""
    return METHODS[method][1](x, config, show_progress=show_progress)


def build_sids(
    dataset: Dataset,
    method: str = "rqkmeans",
    *,
    levels: int = 3,
    codebook: int | list[int] = 256,
    embeddings: np.ndarray | Embeddings | None = None,
    embed_config: EmbedConfig | None = None,
    seed: int = 0,
    device: str | None = None,
    options: Mapping[str, Any] | None = None,
    force_dedup: bool = False,
    show_progress: bool = True,
) -> SIDTable:
    """Semantic IDs for every item of `dataset`, unique after de-duplication.

    `embeddings` (array or `Embeddings`) skips the encoder; otherwise items are embedded with
    `embed_config` (cached). `options` are method options (`--set key=value`), validated by the
    method's config class."""
    config = method_config(method, levels=levels, codebook=codebook, seed=seed, device=device, options=options)
    check_codebook(getattr(config, "codebook"), dataset.n_items)
    if embeddings is None:
        embeddings = encode_items(dataset, embed_config, show_progress=show_progress)
    if isinstance(embeddings, Embeddings):
        x, emb_info = embeddings.vectors, {k: v for k, v in embeddings.info.items() if k != "key"}
        emb_info["cache_key"] = embeddings.info.get("key")
    else:
        x, emb_info = embeddings, {"source": "array"}
    x = check_embeddings(x, dataset.n_items)
    emb_info = {**emb_info, "n_items": int(x.shape[0]), "dim": int(x.shape[1])}
    t0 = time.perf_counter()
    result = quantize(x, method, config, show_progress=show_progress)
    diagnostics = {**result.diagnostics, "seconds": round(time.perf_counter() - t0, 3)}
    table = SIDTable(dataset.item_ids, result.codes, codebook_sizes=result.codebook_sizes, method=method,
                     config=config.model_dump(mode="json"), embedding=emb_info, diagnostics=diagnostics)
    return table.with_dedup(force=force_dedup)


def read_sid_file(path: str | Path) -> dict[str, list[str]]:
    """An LC-Rec / MiniOneRec index.json (or a sids.json: its "items") as {item_id: [tokens]}."""
    path = Path(path)
    if not path.exists():
        raise DataError("SID file not found", path=path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid json: {e.msg}", path=path, line=e.lineno, hint=f"column {e.colno}") from e
    if isinstance(data, dict) and data.get("format", "").startswith("sidrec.sids/") and "items" in data:
        data = data["items"]
    if not isinstance(data, dict):
        raise DataError("expected a json object {item_id: [token, ...]}", path=path, line=1)
    return {str(k): v for k, v in data.items()}


def import_sids(
    dataset: Dataset,
    source: str | Path | Mapping[str, Sequence[str]] | None = None,
    *,
    force_dedup: bool = False,
) -> SIDTable:
    """SIDs from an external file (or dict; None: the dataset's own external_sids.json), checked
    against the dataset (every item present, no unknown item, one SID length), made unique."""
    if source is None:
        if not dataset.external_sids:
            raise DataError(f"dataset '{dataset.name}' came without external SIDs: pass the SID file to import",
                            path=dataset.path)
        sids: Mapping[str, Sequence[str]] = dataset.external_sids
        where = str((dataset.path / "external_sids.json") if dataset.path else f"{dataset.name}/external_sids.json")
    elif isinstance(source, Mapping):
        sids, where = source, "SID dict"
    else:
        sids, where = read_sid_file(source), str(source)
    missing = [i for i in dataset.item_ids if i not in sids]
    if missing:
        raise DataError(f"item '{missing[0]}' of the dataset has no SID ({len(missing)} of {dataset.n_items} items "
                        "are missing)", path=where, field=missing[0],
                        hint="the SID file must cover every item of items.parquet")
    known = dataset.item_index
    extra = [i for i in sids if i not in known]
    if extra:
        raise DataError(f"item '{extra[0]}' has a SID but is not in the dataset ({len(extra)} such items)",
                        path=where, field=extra[0], hint="was the file made for another dataset or filtering?")
    table = SIDTable.from_external(sids, source=where, item_order=dataset.item_ids, method="import")
    table.config = {"source": where}
    return table.with_dedup(force=force_dedup)


def write_build(table: SIDTable, out: str | Path, report: dict[str, Any]) -> tuple[Path, Path]:
    """Write sids.json and report.json into `out` (a folder, or a path ending in .json whose folder is used)."""
    out = Path(out)
    folder = out.parent if out.suffix == ".json" else out
    sids_path = table.save(out if out.suffix == ".json" else folder / "sids.json")
    report_path = folder / "report.json"
    write_json(report_path, report)
    return sids_path, report_path


def compare_methods(
    dataset: Dataset,
    methods: Sequence[str],
    *,
    embeddings: np.ndarray | Embeddings,
    levels: int = 3,
    codebook: int | list[int] = 256,
    seed: int = 0,
    device: str | None = None,
    options: Mapping[str, Any] | None = None,
    out: str | Path | None = None,
    show_progress: bool = True,
) -> dict[str, dict[str, Any]]:
    """Build every method on the same embeddings; method name → report ('external' imports the dataset's SIDs).

    `options` apply to every method that has the option (others ignore it). With `out`, writes
    out/METHOD/{sids.json,report.json} and out/compare.json."""
    from sidrec.sids.report import sid_report

    x = embeddings.vectors if isinstance(embeddings, Embeddings) else embeddings
    reports: dict[str, dict[str, Any]] = {}
    for method in methods:
        if method == "external":
            table = import_sids(dataset)
        else:
            if method not in METHODS:
                raise ConfigError(f"unknown SID method '{method}': choose from {', '.join(METHODS)} or external")
            fields = METHODS[method][0].model_fields
            opts = {k: v for k, v in (options or {}).items() if k in fields}
            table = build_sids(dataset, method, levels=levels, codebook=codebook, embeddings=embeddings, seed=seed,
                               device=device, options=opts, show_progress=show_progress)
        reports[method] = sid_report(table, x)
        if out is not None:
            write_build(table, Path(out) / method, reports[method])
    if out is not None:
        write_json(Path(out) / "compare.json", reports)
    return reports
