"""Helpers shared by the CLI commands: `--set key=value` parsing, error display, tables."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from sidrec.errors import SidrecError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Print sidrec's own errors as one red line (exit code 2) instead of a traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except SidrecError as e:
            err_console.print(f"[bold red]error:[/] {escape(str(e))}", soft_wrap=True, highlight=False)
            raise typer.Exit(2) from None

    return wrapper  # type: ignore[return-value]


def parse_overrides(pairs: Sequence[str] | None) -> dict[str, Any]:
    """`["epochs=5", "lr=1e-3", "levels=[1,2]"]` → {"epochs": 5, "lr": 0.001, "levels": [1, 2]} (values parsed as YAML)."""
    out: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise SidrecError(f"--set expects key=value, got '{pair}'")
        key, value = pair.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def metrics_table(title: str, rows: dict[str, dict[str, Any]], columns: Sequence[str]) -> Table:
    """A rich table: one row per model, one column per metric (mean, and ±CI half-width when present)."""
    table = Table(title=title)
    table.add_column("model", style="bold")
    for c in columns:
        table.add_column(c, justify="right")
    for name, m in rows.items():
        cells = []
        for c in columns:
            v = m.get(c)
            if isinstance(v, float):
                ci = m.get("ci95", {}).get(c)
                cells.append(f"{v:.4f}" + (f" ±{(ci[1] - ci[0]) / 2:.4f}" if ci else ""))
            else:
                cells.append("" if v is None else str(v))
        table.add_row(name, *cells)
    return table
