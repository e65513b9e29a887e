"""`sidrec serve` (a run behind the REST API) and `sidrec recommend` (one history, from a run or a server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sidrec.cli.common import console, friendly_errors
from sidrec.errors import ConfigError, DataError


@friendly_errors
def serve_cmd(
    run: Annotated[Path, typer.Option("--run", help="A trained run folder (any method, SASRec, GRU4Rec or popularity).")],
    host: Annotated[str, typer.Option("--host", help="Interface to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 8000,
    max_batch_size: Annotated[int, typer.Option("--max-batch-size", min=1, help="Histories per model call (1: no batching).")] = 32,
    max_wait_ms: Annotated[float, typer.Option("--max-wait-ms", min=0, help="How long a batch waits for more requests.")] = 5.0,
    timeout_s: Annotated[float, typer.Option("--timeout", min=0.001, help="Seconds before a request gets 504.")] = 30.0,
    max_k: Annotated[int, typer.Option("--max-k", min=1, help="Largest k a request may ask for.")] = 100,
    num_beams: Annotated[Optional[int], typer.Option("--num-beams", min=1, help="Default beam width (default: the run's eval.num_beams).")] = None,
    max_num_beams: Annotated[int, typer.Option("--max-num-beams", min=1, help="Largest num_beams.")] = 256,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")] = "auto",
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="CPU threads for the model.")] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn's: debug | info | warning | error.")] = "info",
) -> None:
    """Serve a trained run: POST /v1/recommend (filters inside decoding, micro-batched), a web page at /."""
    from sidrec.serving.app import serve
    from sidrec.serving.config import ServeConfig

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    config = ServeConfig(max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, request_timeout_s=timeout_s,
                         max_k=max_k, max_num_beams=max_num_beams, default_num_beams=num_beams, device=device)
    serve(str(run), host=host, port=port, config=config, log_level=log_level)
    console.print("stopped (every request in flight was answered)")


def _split(text: str) -> list[str]:
    """'a,b,c' or, for titles with commas, 'A|B|C'."""
    return [p.strip() for p in (text.split("|") if "|" in text else text.split(",")) if p.strip()]


@friendly_errors
def recommend_cmd(
    history: Annotated[str, typer.Option("--history", help="Item ids 'id1,id2,...' oldest first, or titles 'T1|T2'.")],
    run: Annotated[Optional[Path], typer.Option("--run", help="A trained run folder (answers locally).")] = None,
    url: Annotated[Optional[str], typer.Option("--url", help="A `sidrec serve` server, e.g. http://127.0.0.1:8000.")] = None,
    top_k: Annotated[int, typer.Option("--top-k", "-k", min=1, help="How many items.")] = 10,
    num_beams: Annotated[Optional[int], typer.Option("--num-beams", min=1, help="Beam width (≥ k; default: the run's).")] = None,
    category: Annotated[Optional[list[str]], typer.Option("--category", help="Only items of this category (repeatable).")] = None,
    include: Annotated[Optional[str], typer.Option("--include", help="Only these items: 'id1,id2' (or titles 'T1|T2').")] = None,
    exclude: Annotated[Optional[str], typer.Option("--exclude", help="Never these items: 'id1,id2' (or titles).")] = None,
    exclude_history: Annotated[bool, typer.Option("--exclude-history", help="Never an item of the history.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the answer as JSON (the server's response body).")] = False,
    device: Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda[:N] (with --run).")] = None,
) -> None:
    """Print the top-K next items for a history, with titles, SIDs and scores, from a run or a server."""
    if (run is None) == (url is None):
        raise ConfigError("give exactly one of --run RUN (answer locally) or --url URL (ask a `sidrec serve` server)")
    items = _split(history)
    if not items:
        raise DataError("--history is empty: give item ids separated by commas (or titles separated by '|')")
    body: dict[str, Any] = {"history": items, "k": top_k, "exclude_history": exclude_history}
    if num_beams is not None:
        body["num_beams"] = num_beams
    if category:
        body["categories"] = category
    if include is not None:
        body["include_items"] = _split(include)
    if exclude is not None:
        body["exclude_items"] = _split(exclude)
    if url is not None:
        from sidrec.serving.client import RecommendClient

        with RecommendClient(url) as client:
            out = client.recommend(**body)
    else:
        from sidrec.serving.local import recommend_local

        out = recommend_local(run, body, device=device or "auto")
    if as_json:
        console.print_json(json.dumps(out))
        return
    _print_answer(out)


def _print_answer(out: dict[str, Any]) -> None:
    from rich.table import Table

    t = Table(title=f"top-{out['k']} for a history of {len(out['history'])} items · {out['model']['method']} "
                    f"({out['model']['run']})" + ("" if out["allowed_items"] is None else
                                                  f" · {out['allowed_items']} items allowed"))
    for c in ("rank", "item_id", "sid", "title", "score"):
        t.add_column(c, justify="right" if c in ("rank", "score") else "left")
    for row in out["items"]:
        t.add_row(str(row["rank"]), row["item_id"], row["sid"] or "-", row["title"][:60], f"{row['score']:.3f}")
    console.print(t)
