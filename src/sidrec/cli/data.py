"""`sidrec data …`: import, synthesise, download and describe datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.table import Table

from sidrec.cli.common import console, friendly_errors, parse_overrides

app = typer.Typer(help="Import, synthesise, download and describe datasets.", no_args_is_help=True)


@app.command("import")
@friendly_errors
def import_cmd(
    format: Annotated[str, typer.Argument(help="recbole | lcrec | minionerec | amazon | movielens | tabular | auto")],
    source: Annotated[Path, typer.Argument(help="The source folder or file.", exists=True)],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to write.")],
    name: Annotated[Optional[str], typer.Option(help="Dataset name (default: from the source).")] = None,
    protocol: Annotated[
        Optional[str], typer.Option(help="leave-one-out | temporal (importers of given splits ignore it).")
    ] = None,
    max_history: Annotated[Optional[int], typer.Option(min=1, help="Keep at most this many history items.")] = None,
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="Importer option key=value (e.g. user_k=10), repeatable.")
    ] = None,
) -> None:
    """Import a public or custom dataset into sidrec's canonical dataset folder."""
    from sidrec.data.importers import import_dataset

    options = parse_overrides(set_)
    if name is not None:
        options["name"] = name
    if protocol is not None:
        options["protocol"] = protocol
    if max_history is not None:
        options["max_history"] = max_history
    ds = import_dataset(format, source, **options)
    ds.save(out)
    console.print(f"wrote [bold]{out}[/] ({ds.info.format}, protocol {ds.info.protocol})")
    print_stats(ds)


@app.command("synth")
@friendly_errors
def synth_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to write.")],
    items: Annotated[int, typer.Option(min=1, help="Number of items.")] = 2000,
    users: Annotated[int, typer.Option(min=1, help="Number of users.")] = 3000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Generate the built-in SYNTHETIC dataset (product catalogue with text, users with tastes)."""
    from sidrec.data.synthetic import SyntheticConfig, generate_synthetic

    ds = generate_synthetic(SyntheticConfig(n_items=items, n_users=users, seed=seed))
    ds.save(out)
    console.print(f"wrote [bold]{out}[/] ([yellow]synthetic[/], seed {seed})")
    print_stats(ds)


@app.command("stats")
@friendly_errors
def stats_cmd(dataset: Annotated[Path, typer.Argument(help="A sidrec dataset folder.")]) -> None:
    """Print users, items, interactions, sparsity, length distributions, splits and filters."""
    from sidrec.data.dataset import Dataset

    print_stats(Dataset.load(dataset, validate=False))


@app.command("download")
@friendly_errors
def download_cmd(
    name: Annotated[str, typer.Argument(help="ml-100k | ml-1m | ml-20m | ml-25m | amazon18:CATEGORY | amazon23:CATEGORY")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder to download into.")],
    base_url: Annotated[
        Optional[str], typer.Option(help="Mirror replacing the host and folder of every URL (env SIDREC_DOWNLOAD_MIRROR).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Download again even when a verified copy is present.")] = False,
) -> None:
    """Download a public dataset (resumable, checksummed); then run `sidrec data import`."""
    from sidrec.data.download import download, resolve_source

    paths = download(name, out, base_url=base_url, force=force)
    for p in paths:
        console.print(f"  {p}")
    source = resolve_source(name)
    folder = out / source.name if source.extract else out
    console.print(f"next: [bold]sidrec data import {source.importer} {folder} --out DATASET_DIR[/]")


def print_stats(ds) -> None:  # type: ignore[no-untyped-def]
    """Render a dataset's dataset.json statistics as tables."""
    info = ds.info
    s = info.stats
    title = f"{info.name}" + (" [yellow](synthetic)[/]" if info.synthetic else "")
    t = Table(title=title, show_header=False)
    t.add_column("", style="bold")
    t.add_column("")
    t.add_row("source", info.source)
    t.add_row("format / protocol", f"{info.format} / {info.protocol} {info.protocol_params}")
    t.add_row("users", f"{s['users']:,}")
    t.add_row("items", f"{s['items']:,} ({s['items_interacted']:,} interacted, {s['items_with_title']:,} with a title)")
    t.add_row("interactions", f"{s['interactions']:,}")
    t.add_row("sparsity", f"{s['sparsity']:.4%}")
    sl = s["sequence_length"]
    t.add_row(
        "sequence length",
        f"min {sl['min']:.0f} · p25 {sl['p25']:.0f} · median {sl['median']:.0f} · p75 {sl['p75']:.0f} "
        f"· p95 {sl['p95']:.0f} · max {sl['max']:.0f} · mean {sl['mean']:.1f}",
    )
    for name, sp in s["splits"].items():
        hl = sp["history_length"]
        t.add_row(
            f"{name} split",
            f"{sp['examples']:,} examples, {sp['users']:,} users; history median {hl['median']:.0f}, mean {hl['mean']:.1f}",
        )
    console.print(t)
    if info.filters:
        ft = Table(title="filters applied")
        for c in ("filter", "removed interactions", "removed users", "removed items", "removed examples", "what"):
            ft.add_column(c)
        for f in info.filters:
            ft.add_row(f.name, f"{f.removed_interactions:,}", f"{f.removed_users:,}", f"{f.removed_items:,}",
                       f"{f.removed_examples:,}", f.description)
        console.print(ft)
    for note in info.notes:
        console.print(f"[dim]note:[/] {note}")
