"""Helpers shared by the CLI commands: `--set key=value` parsing, error display, tables."""

from __future__ import annotations

import os
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


def debug_enabled() -> bool:
    """SIDREC_DEBUG=1: let errors raise with their traceback (for debugging sidrec itself)."""
    return os.environ.get("SIDREC_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def error_line(e: BaseException) -> str:
    """One line for an error: sidrec's own as they are; pydantic's naming the field and what is
    accepted; the usual input failures of the standard library with their file."""
    from pydantic import ValidationError

    if isinstance(e, SidrecError):
        return str(e)
    if isinstance(e, ValidationError):
        errors = e.errors()
        field = ".".join(str(p) for p in errors[0]["loc"]) or e.title
        more = f" ({len(errors)} errors in all)" if len(errors) > 1 else ""
        return f"{e.title}: field '{field}': {errors[0]['msg']}{more}"
    if isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)):
        return f"{e.filename or ''}: {e.strerror or type(e).__name__}".lstrip(": ")
    if isinstance(e, UnicodeDecodeError):
        return f"not UTF-8 text ({e.reason} at byte {e.start}); re-encode the file as UTF-8"
    if isinstance(e, yaml.YAMLError):
        return f"not valid YAML: {' '.join(str(e).split())}"
    if isinstance(e, MemoryError):
        return "out of memory: lower the batch size or the model size"
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    return f"unexpected {type(e).__name__}{': ' + first if first else ''} (a sidrec bug: rerun with SIDREC_DEBUG=1 " \
           "for the traceback and report it)"


def friendly_errors(fn: F) -> F:
    """Print every error as one red line (exit code 2; 130 when interrupted) instead of a traceback;
    `SIDREC_DEBUG=1` shows the traceback."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except KeyboardInterrupt:
            if debug_enabled():
                raise
            err_console.print("[bold red]interrupted[/] (a training run continues with --resume)", highlight=False)
            raise typer.Exit(130) from None
        except Exception as e:  # noqa: BLE001 - the CLI boundary: one line, never a traceback
            if debug_enabled():
                raise
            err_console.print(f"[bold red]error:[/] {escape(error_line(e))}", soft_wrap=True, highlight=False)
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
