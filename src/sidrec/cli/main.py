"""`sidrec`: generative recommendation with semantic IDs, from datasets to metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from sidrec import __version__
from sidrec.cli import data as data_cli
from sidrec.cli import sids as sids_cli
from sidrec.cli.common import console, friendly_errors, metrics_table, parse_overrides

app = typer.Typer(
    help="sidrec: LLM-based generative recommendation with semantic IDs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(sids_cli.app, name="sids")
train_app = typer.Typer(help="Train a model into a run folder.", no_args_is_help=True)
app.add_typer(train_app, name="train")
eval_app = typer.Typer(help="Evaluate a run (`sidrec eval --run RUN`) or compare two (`sidrec eval compare A B`).")
app.add_typer(eval_app, name="eval")

TABLE_METRICS = ("hr@5", "ndcg@5", "hr@10", "ndcg@10", "hr@20", "mrr")


def _version(value: bool) -> None:
    if value:
        console.print(f"sidrec {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = None,
) -> None:
    """sidrec: LLM-based generative recommendation with semantic IDs."""


# ----------------------------------------------------------------------------- train
DataOpt = Annotated[Path, typer.Option("--data", "-d", help="A sidrec dataset folder.")]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Run folder to write.")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", "-c", help="YAML config (a run's config.yaml works).")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", help="Config override key=value, repeatable.")]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Random seed.")]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda[:N].")]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help="Maximum epochs.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Start the run folder again.")]


def _train(model: str, data: Path, out: Path, config: Optional[Path], set_: Optional[list[str]], seed: Optional[int],
           device: Optional[str], epochs: Optional[int], resume: bool, overwrite: bool) -> None:
    from sidrec.pipelines.classic import train_classic

    overrides = parse_overrides(set_)
    for key, value in (("seed", seed), ("device", device), ("epochs", epochs)):
        if value is not None:
            overrides[key] = value
    metrics = train_classic(model, data, out, config_file=config, overrides=overrides, resume=resume,  # type: ignore[arg-type]
                            overwrite=overwrite)
    console.print(metrics_table(f"{model} on {data}", {"valid": metrics["valid"], "test": metrics["test"]}, TABLE_METRICS))
    console.print(f"run folder: [bold]{out}[/]")


@train_app.command("sasrec")
@friendly_errors
def train_sasrec(data: DataOpt, out: OutOpt, config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None,
                 device: DeviceOpt = None, epochs: EpochsOpt = None, resume: ResumeOpt = False,
                 overwrite: OverwriteOpt = False) -> None:
    """Train SASRec (full-softmax cross-entropy, early stopping on validation NDCG@10)."""
    _train("sasrec", data, out, config, set_, seed, device, epochs, resume, overwrite)


@train_app.command("gru4rec")
@friendly_errors
def train_gru4rec(data: DataOpt, out: OutOpt, config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None,
                  device: DeviceOpt = None, epochs: EpochsOpt = None, resume: ResumeOpt = False,
                  overwrite: OverwriteOpt = False) -> None:
    """Train GRU4Rec (full-softmax cross-entropy, early stopping on validation NDCG@10)."""
    _train("gru4rec", data, out, config, set_, seed, device, epochs, resume, overwrite)


@train_app.command("pop")
@friendly_errors
def train_pop(data: DataOpt, out: OutOpt, overwrite: OverwriteOpt = False) -> None:
    """Popularity baseline (item counts in the train split)."""
    _train("pop", data, out, None, None, None, None, None, False, overwrite)


# ----------------------------------------------------------------------------- eval
@eval_app.callback(invoke_without_command=True)
@friendly_errors
def eval_run(
    ctx: typer.Context,
    run: Annotated[Optional[Path], typer.Option("--run", help="Run folder to evaluate.")] = None,
    split: Annotated[str, typer.Option("--split", help="valid | test")] = "test",
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")] = "auto",
) -> None:
    """Evaluate a run on a split: HR/NDCG@{1,3,5,10,20}, MRR with 95% CIs; saves per-example ranks."""
    if ctx.invoked_subcommand is not None:
        return
    if run is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    from sidrec.pipelines.classic import evaluate_run

    metrics = evaluate_run(run, split, device=device)
    console.print(metrics_table(f"{run} · {split}", {run.name: metrics}, ("hr@1", *TABLE_METRICS)))


@eval_app.command("compare")
@friendly_errors
def eval_compare(
    run_a: Annotated[Path, typer.Argument(help="Baseline run (A).")],
    run_b: Annotated[Path, typer.Argument(help="Run compared with it (B).")],
    split: Annotated[str, typer.Option("--split", help="valid | test")] = "test",
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples.")] = 10000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
) -> None:
    """Paired bootstrap comparison B − A: difference, 95% CI and two-sided p-value per metric."""
    from rich.table import Table

    from sidrec.pipelines.classic import compare_runs

    results = compare_runs(run_a, run_b, split=split, n_boot=n_boot, seed=seed)
    t = Table(title=f"{run_b.name} − {run_a.name} on {split} ({results[0].n:,} paired examples)")
    for c in ("metric", "A", "B", "B − A", "95% CI", "p"):
        t.add_column(c, justify="right")
    for r in results:
        t.add_row(r.metric, f"{r.a:.4f}", f"{r.b:.4f}", f"{r.diff:+.4f}", f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]",
                  f"{r.p_value:.4f}")
    console.print(t)


# ----------------------------------------------------------------------------- demo
@app.command("demo")
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's dataset and runs.")] = Path("runs/demo"),
    seed: Annotated[int, typer.Option("--seed", help="Random seed.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")] = "auto",
    epochs: Annotated[Optional[int], typer.Option("--epochs", help="Maximum epochs per model.")] = None,
) -> None:
    """The main job on the embedded SYNTHETIC default: data → popularity, GRU4Rec, SASRec → metrics."""
    from sidrec.pipelines.demo import run_demo

    results = run_demo(out, seed=seed, device=device, epochs=epochs)
    console.print(metrics_table("demo (synthetic data) · test split, full ranking", results, TABLE_METRICS))
    console.print(f"runs and summary.json in [bold]{out}[/]")


if __name__ == "__main__":  # pragma: no cover
    app()
