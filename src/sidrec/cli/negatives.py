"""`sidrec negatives sample`: offline negatives for DPO / S-DPO, written to a reusable file.

    sidrec negatives sample --run runs/sft --strategy beam --per-example 3 --out runs/neg-beam.parquet
    sidrec negatives sample --data data/industrial --strategy popularity --per-example 3 --out runs/neg-pop.parquet
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sidrec.cli.common import console, friendly_errors

app = typer.Typer(help="Negatives for preference training (DPO / S-DPO).", no_args_is_help=True)


@app.command("sample")
@friendly_errors
def sample_cmd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Negatives file to write (parquet; FILE.json beside it).")],
    run: Annotated[Optional[Path], typer.Option("--run", help="The SFT run: its dataset, and for --strategy beam "
                                                "its model.")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="A dataset folder (random / popularity "
                                                 "without a run).")] = None,
    strategy: Annotated[str, typer.Option("--strategy", help="random | popularity | beam (the model's own "
                                          "top-ranked wrong items).")] = "beam",
    per_example: Annotated[int, typer.Option("--per-example", "-k", min=1, help="Negatives per training example.")] = 3,
    max_examples: Annotated[Optional[int], typer.Option("--max-examples", min=1, help="A seeded sample of the train "
                                                        "examples (default: all).")] = None,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    num_beams: Annotated[Optional[int], typer.Option("--num-beams", min=1, help="beam: width (default per-example + 10).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="beam: prompts per batch.")] = 32,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")] = "auto",
) -> None:
    """Sample negatives for every seqrec training example; never the target or any item the user
    interacted with in the train split."""
    from sidrec.methods.preference.negatives import sample_run_negatives

    meta = sample_run_negatives(out, run=run, dataset=data, strategy=strategy, per_example=per_example,
                                max_examples=max_examples, seed=seed, num_beams=num_beams, batch_size=batch_size,
                                device=device)
    fills = f", {meta['popularity_fills']} popularity fills" if meta["strategy"] == "beam" else ""
    console.print(f"{meta['examples']} examples × {meta['per_example']} {meta['strategy']} negatives{fills}; "
                  f"skipped: {meta['skipped']} → [bold]{out}[/]")
