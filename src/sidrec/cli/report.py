"""`sidrec report RUN [RUN ...] --out DIR`: report.md, curves.png and metrics.png comparing runs.

Registered in sidrec.cli.main with `app.command("report")(report_cmd)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sidrec.cli.common import console, friendly_errors


@friendly_errors
def report_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Run folders; the first is the baseline of the paired comparison.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for report.md, curves.png and metrics.png.")],
    split: Annotated[str, typer.Option("--split", help="valid | test")] = "test",
    metric: Annotated[
        Optional[list[str]],
        typer.Option("--metric", "-m", help="Metric to report, repeatable (default hr@5 ndcg@5 hr@10 ndcg@10)."),
    ] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=1, help="Bootstrap resamples of the paired comparison.")] = 10000,
    seed: Annotated[int, typer.Option("--seed", help="Bootstrap seed.")] = 0,
) -> None:
    """Compare runs: metrics with 95% CIs, paired bootstrap against the first run, training curves."""
    from rich.markup import escape
    from rich.table import Table

    from sidrec.reporting.report import DEFAULT_METRICS, make_report

    report = make_report(runs, split, tuple(metric) if metric else DEFAULT_METRICS, n_boot=n_boot, seed=seed)
    table = Table(title=f"{split} metrics · mean [95% CI]")
    for i, col in enumerate(report.metric_header()):
        table.add_column(col, justify="left" if i < 2 else "right", style="bold" if i == 0 else None)
    for row in report.metric_rows():
        table.add_row(*map(escape, row))
    console.print(table)
    if report.comparisons:
        paired = Table(title=f"paired bootstrap against {report.names[0]} ({n_boot:,} resamples)")
        for i, col in enumerate(report.comparison_header()):
            paired.add_column(col, justify="left" if i < 2 else "right")
        for row in report.comparison_rows():
            paired.add_row(*map(escape, row))
        console.print(paired)
    for note in report.notes + [w for r in report.runs for w in r.warnings]:
        console.print(f"[yellow]note:[/] {escape(note)}", highlight=False)
    paths = report.write(out)
    for kind in ("report", "curves", "metrics"):
        console.print(f"wrote [bold]{escape(str(paths[kind]))}[/]", soft_wrap=True)
