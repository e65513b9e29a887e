"""`sidrec sids …`: embed items, build / import semantic IDs, report and compare them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich.table import Table

from sidrec.cli.common import console, friendly_errors, parse_overrides
from sidrec.errors import ConfigError

app = typer.Typer(help="Build and inspect semantic IDs.", no_args_is_help=True)

DataOpt = Annotated[Path, typer.Option("--data", "-d", help="A sidrec dataset folder.")]
EncoderOpt = Annotated[Optional[str], typer.Option("--encoder", help="sentence-transformers / HF model name or folder "
                                                   "(default all-MiniLM-L6-v2, packaged offline).")]
TemplateOpt = Annotated[Optional[str], typer.Option("--template", help="Item text format string over items.parquet "
                                                    "columns, e.g. '{title}. {description}'.")]
OnEmptyOpt = Annotated[Optional[str], typer.Option("--on-empty", help="error | title_fallback | id_fallback.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda[:N].")]
BatchOpt = Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Encoder batch size.")]
CacheOpt = Annotated[Optional[Path], typer.Option("--cache-dir", help="Embedding cache folder.")]
EmbFileOpt = Annotated[Optional[Path], typer.Option("--embeddings", help="Use this .npy [n_items, d] instead of the encoder.")]
LevelsOpt = Annotated[int, typer.Option("--levels", min=1, help="Quantizer levels.")]
CodebookOpt = Annotated[int, typer.Option("--codebook", min=1, help="Codes per level.")]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Method option key=value, repeatable (e.g. epochs=50).")]


def _embed_config(encoder: Optional[str], template: Optional[str], on_empty: Optional[str], device: Optional[str],
                  batch_size: Optional[int], cache_dir: Optional[Path]) -> Any:
    from pydantic import ValidationError

    from sidrec.sids.embed import EmbedConfig

    values = {k: v for k, v in {"encoder": encoder, "template": template, "on_empty": on_empty, "device": device,
                                "batch_size": batch_size, "cache_dir": cache_dir}.items() if v is not None}
    try:
        return EmbedConfig(**values)
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(f"invalid embedding option {'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _vectors(ds: Any, embeddings: Optional[Path], cfg: Any) -> Any:
    from sidrec.sids.embed import Embeddings, encode_items, load_embeddings

    if embeddings is not None:
        x = load_embeddings(embeddings, ds.n_items)
        return Embeddings(vectors=x, info={"source": str(embeddings), "n_items": x.shape[0], "dim": x.shape[1]})
    return encode_items(ds, cfg)


@app.command("embed")
@friendly_errors
def embed_cmd(
    data: DataOpt,
    encoder: EncoderOpt = None,
    template: TemplateOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the vectors to this .npy.")] = None,
    device: DeviceOpt = None,
    batch_size: BatchOpt = None,
    on_empty: OnEmptyOpt = None,
    cache_dir: CacheOpt = None,
) -> None:
    """Embed every item's text (cached on disk; key = hash of texts + encoder)."""
    from sidrec.data.dataset import Dataset
    from sidrec.sids.embed import encode_items, save_npy

    ds = Dataset.load(data, validate=False)
    emb = encode_items(ds, _embed_config(encoder, template, on_empty, device, batch_size, cache_dir))
    how = "cache hit" if emb.cache_hit else f"computed in {emb.info['seconds']:.1f} s"
    console.print(f"{emb.vectors.shape[0]:,} items × {emb.dim} dims from {emb.info['encoder']} ({how})")
    if emb.info.get("n_fallback"):
        console.print(f"[yellow]{emb.info['n_fallback']} items used the {emb.info['on_empty']} text fallback[/]")
    if emb.info.get("cache_file"):
        console.print(f"cache: {emb.info['cache_file']}")
    if out is not None:
        save_npy(out, emb.vectors)
        console.print(f"wrote [bold]{out}[/]")


@app.command("build")
@friendly_errors
def build_cmd(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder (or …/sids.json) for sids.json and report.json.")],
    method: Annotated[str, typer.Option("--method", "-m", help="rqkmeans | balanced | rqvae.")] = "rqkmeans",
    levels: LevelsOpt = 3,
    codebook: CodebookOpt = 256,
    seed: SeedOpt = 0,
    device: DeviceOpt = None,
    import_: Annotated[Optional[str], typer.Option("--import", help="Import an LC-Rec / MiniOneRec index.json "
                                                   "instead ('external': the dataset's own SIDs).")] = None,
    set_: SetOpt = None,
    embeddings: EmbFileOpt = None,
    encoder: EncoderOpt = None,
    template: TemplateOpt = None,
    on_empty: OnEmptyOpt = None,
    cache_dir: CacheOpt = None,
    force_dedup: Annotated[bool, typer.Option("--force-dedup", help="Add the de-duplication level even without collisions.")] = False,
) -> None:
    """Build unique semantic IDs (or import external ones) and write sids.json + report.json."""
    from sidrec.data.dataset import Dataset
    from sidrec.sids.build import build_sids, import_sids, write_build
    from sidrec.sids.report import sid_report

    ds = Dataset.load(data, validate=False)
    vectors = None
    if import_ is not None:
        table = import_sids(ds, None if import_ == "external" else Path(import_), force_dedup=force_dedup)
        if embeddings is not None:
            vectors = _vectors(ds, embeddings, None)
    else:
        cfg = _embed_config(encoder, template, on_empty, device, None, cache_dir)
        vectors = _vectors(ds, embeddings, cfg)
        table = build_sids(ds, method, levels=levels, codebook=codebook, embeddings=vectors, seed=seed, device=device,
                           options=parse_overrides(set_), force_dedup=force_dedup)
    report = sid_report(table, vectors.vectors if vectors is not None else None)
    sids_path, report_path = write_build(table, out, report)
    console.print(report_table({table.method: report}, title=f"{ds.name}: {table.method}"))
    console.print(f"wrote [bold]{sids_path}[/] and [bold]{report_path}[/]")


@app.command("report")
@friendly_errors
def report_cmd(
    sids: Annotated[Path, typer.Argument(help="A sids.json (or the folder holding it).")],
    embeddings: Annotated[Optional[Path], typer.Option("--embeddings", help=".npy of the items' embeddings (adds "
                                                       "the prefix reconstruction error).")] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Collision rate, per-level utilisation and entropy, largest clusters, reconstruction error, time."""
    import json

    from sidrec.sids.embed import load_embeddings
    from sidrec.sids.report import sid_report
    from sidrec.sids.table import SIDTable

    table = SIDTable.load(sids)
    x = load_embeddings(embeddings, table.n_items) if embeddings is not None else None
    report = sid_report(table, x)
    if json_:
        print(json.dumps(report, indent=2))
        return
    console.print(report_table({table.method: report}, title=str(sids)))
    console.print(level_table(report))


@app.command("compare")
@friendly_errors
def compare_cmd(
    data: DataOpt,
    methods: Annotated[Optional[list[str]], typer.Option("--methods", help="Methods to compare (rqkmeans balanced "
                                                         "rqvae; 'external' = the dataset's own SIDs).")] = None,
    more_methods: Annotated[Optional[list[str]], typer.Argument(help="More method names (so that `--methods a b c` works).",
                                                                show_default=False)] = None,
    levels: LevelsOpt = 3,
    codebook: CodebookOpt = 256,
    seed: SeedOpt = 0,
    device: DeviceOpt = None,
    set_: SetOpt = None,
    embeddings: EmbFileOpt = None,
    encoder: EncoderOpt = None,
    template: TemplateOpt = None,
    on_empty: OnEmptyOpt = None,
    cache_dir: CacheOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write METHOD/sids.json, METHOD/report.json "
                                                "and compare.json here.")] = None,
) -> None:
    """Build each method on the SAME embeddings and print one comparison table."""
    from sidrec.data.dataset import Dataset
    from sidrec.sids.build import compare_methods

    names = [m for part in [*(methods or []), *(more_methods or [])] for m in part.split(",") if m]
    names = names or ["rqkmeans", "balanced", "rqvae"]
    ds = Dataset.load(data, validate=False)
    cfg = _embed_config(encoder, template, on_empty, device, None, cache_dir)
    vectors = _vectors(ds, embeddings, cfg)
    reports = compare_methods(ds, names, embeddings=vectors, levels=levels, codebook=codebook, seed=seed,
                              device=device, options=parse_overrides(set_), out=out)
    console.print(report_table(reports, title=f"{ds.name}: {ds.n_items:,} items, {vectors.dim}-d embeddings "
                                               f"({vectors.info.get('encoder', vectors.info.get('source'))})"))
    if out is not None:
        console.print(f"wrote [bold]{out}[/]")


def report_table(reports: dict[str, dict[str, Any]], title: str = "") -> Table:
    """One row per method: uniqueness, collisions, utilisation, entropy, largest clusters, errors, time."""
    t = Table(title=title)
    for c in ("method", "unique SIDs", "collision rate", "SID length", "utilisation/level", "entropy (norm.)",
              "max/SID", "max/level-1", "recon. rel.", "prefix err. rel.", "seconds"):
        t.add_column(c, justify="right" if c != "method" else "left")
    for name, r in reports.items():
        quant = [lv for lv in r["per_level"] if not lv["dedup"]]
        rec = (r.get("reconstruction") or {}).get("relative")
        pe = r.get("prefix_error", {}).get("per_level")
        t.add_row(
            name,
            f"{r['unique_sids']:,}/{r['n_items']:,}",
            f"{r['collisions']['collision_rate']:.2%} ({r['collisions']['colliding_items']:,})",
            f"{r['sid_length']}" + (" (+dedup)" if r["dedup_level"] else ""),
            " ".join(f"{lv['utilization']:.2f}" for lv in quant),
            f"{r['entropy_normalized']:.3f}",
            str(r["largest_cluster"]["full_sid"]),
            str(r["largest_cluster"]["level1"]),
            "" if rec is None else f"{rec:.3f}",
            "" if not pe else f"{pe[-1]['relative']:.3f}",
            "" if r.get("seconds") is None else f"{r['seconds']:.1f}",
        )
    return t


def level_table(report: dict[str, Any]) -> Table:
    """Per-level detail of one report."""
    t = Table(title="per level")
    for c in ("level", "codebook", "used", "utilisation", "entropy bits", "entropy norm.", "largest cluster"):
        t.add_column(c, justify="right")
    for lv in report["per_level"]:
        t.add_row(f"{lv['level']} <{lv['prefix']}_·>" + (" dedup" if lv["dedup"] else ""), str(lv["codebook_size"]),
                  str(lv["used_codes"]), f"{lv['utilization']:.3f}", f"{lv['entropy_bits']:.2f}",
                  f"{lv['entropy_normalized']:.3f}", str(lv["largest_cluster"]))
    return t
