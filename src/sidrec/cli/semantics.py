"""`sidrec semantics …`: describe what the items behind each SID token share (TS-Rec), serve a local LLM.

    sidrec semantics extract --run runs/sft                                  # offline c-TF-IDF teacher
    sidrec semantics extract --run runs/sft --teacher openai --base-url http://127.0.0.1:8000/v1 --model NAME
    sidrec semantics extract --data data/industrial --teacher hf --model smollm2-135m --out sem.json
    sidrec semantics extract --data data/industrial --import Industrial_and_Scientific.description_keywords.json \\
        --out data/industrial/semantics.json
    sidrec semantics serve --model smollm2-135m --port 8000                   # OpenAI-compatible chat server
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sidrec.cli.common import console, friendly_errors
from sidrec.errors import ConfigError

app = typer.Typer(help="Token-level semantics of SID tokens (TS-Rec): extract, import, serve a local teacher.",
                  no_args_is_help=True)


@app.command("extract")
@friendly_errors
def extract_cmd(
    run: Annotated[Optional[Path], typer.Option("--run", help="A run folder whose config.yaml names the dataset "
                                                "(and SIDs); writes RUN/semantics.json.")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="A sidrec dataset folder (instead of --run).")] = None,
    sids: Annotated[Optional[Path], typer.Option("--sids", help="sids.json (default: the dataset's own SIDs).")] = None,
    teacher: Annotated[Optional[str], typer.Option("--teacher", "-t", help="openai | hf | tfidf (default: openai "
                                                   "with --base-url, else tfidf).")] = None,
    import_: Annotated[Optional[Path], typer.Option("--import", help="Import a released semantics file (TS-Rec "
                                                    "format) instead of extracting.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="semantics.json to write (default: RUN/"
                                                "semantics.json, or beside --sids, or in the dataset folder).")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible endpoint, e.g. "
                                                    "http://127.0.0.1:8000/v1.")] = None,
    model: Annotated[Optional[str], typer.Option("--model", help="openai: the endpoint's model name; hf: HF id or "
                                                 "folder (default smollm2-135m).")] = None,
    api_key_env: Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the API key "
                                             "(unset: no Authorization header).")] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, help="Requests in flight (openai).")] = 4,
    max_retries: Annotated[int, typer.Option("--max-retries", min=0, help="Retries per token after an error or a "
                                             "malformed reply (openai).")] = 3,
    max_tokens: Annotated[Optional[int], typer.Option("--max-tokens", min=1, help="Reply token limit (openai 1024, hf 320).")] = None,
    sample_items: Annotated[int, typer.Option("--sample-items", min=1, help="Items of each cluster shown to the teacher.")] = 20,
    levels: Annotated[Optional[str], typer.Option("--levels", help="Levels to describe: prefixes 'a,b' or numbers "
                                                  "'1,2' (default: all but the de-duplication level).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the item samples.")] = 0,
    cache_dir: Annotated[Optional[Path], typer.Option("--cache-dir", help="Per-token answer cache (default: "
                                                      "semantics_cache/ beside the output).")] = None,
    device: Annotated[str, typer.Option("--device", help="hf teacher: auto | cpu | cuda[:N].")] = "auto",
) -> None:
    """Describe every SID token's cluster (description + ~20 keywords) and write semantics.json + a report.

    Interrupted runs resume from the cache; failed tokens are listed and asked again next time."""
    from sidrec.semantics.extract import (
        extract_semantics,
        failure_table,
        import_semantics,
        load_inputs,
        make_teacher,
        parse_levels,
        report_table,
        resolve_run,
    )

    if (run is None) == (data is None):
        raise ConfigError("give either --run RUN or --data DATASET [--sids SIDS.json]")
    report_path = None
    if run is not None:
        if sids is not None:
            raise ConfigError("--sids goes with --data; a run's SIDs come from its config.yaml")
        inputs = resolve_run(run)
        data_path, sids_path = inputs.dataset, inputs.sids
        if out is None:
            out, report_path = inputs.out, inputs.report
    else:
        data_path, sids_path = data, sids  # type: ignore[assignment]
        if out is None:
            out = (sids_path.parent if sids_path is not None else data_path) / "semantics.json"
    dataset, table = load_inputs(data_path, sids_path)
    where = f"{dataset.name}, {'SIDs ' + str(sids_path) if sids_path else 'its own SIDs'}"
    if import_ is not None:
        result = import_semantics(import_, table, out, report_path)
        console.print(report_table(result, title=f"imported {import_.name} ({where})"))
        console.print(f"wrote [bold]{result.out_path}[/] and [bold]{result.report_path}[/]")
        return
    name = teacher or ("openai" if base_url else "tfidf")
    teacher_obj = make_teacher(name, base_url=base_url, model=model, api_key_env=api_key_env, concurrency=concurrency,
                               max_retries=max_retries, max_tokens=max_tokens, device=device)
    try:
        result = extract_semantics(dataset, table, teacher_obj, out, cache_dir=cache_dir, report_path=report_path,
                                   sample_items=sample_items, seed=seed, levels=parse_levels(levels, table))
    finally:
        if hasattr(teacher_obj, "close"):
            teacher_obj.close()
    console.print(report_table(result, title=f"{name} teacher on {where} ({result.seconds:.1f} s; "
                                             f"{result.asked} asked, {result.from_cache} from the cache)"))
    console.print(f"wrote [bold]{result.out_path}[/] and [bold]{result.report_path}[/]")
    if result.failures:
        console.print(failure_table(result))
        console.print(f"[yellow]{len(result.failures)} tokens have no semantics; run the same command again to "
                      "retry them (finished tokens come from the cache)[/]")
        raise typer.Exit(1)


@app.command("serve")
@friendly_errors
def serve_cmd(
    model: Annotated[str, typer.Option("--model", help="HF causal LM id or folder.")] = "smollm2-135m",
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8000,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")] = "auto",
) -> None:
    """Serve a local model as an OpenAI-compatible chat endpoint (greedy; JSON mode for json_object replies)."""
    from sidrec.semantics.server import serve

    console.print(f"serving {model} at http://{host}:{port}/v1 (POST /chat/completions, GET /models)")
    serve(model, host=host, port=port, device=device)
