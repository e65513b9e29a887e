"""`sidrec`: generative recommendation with semantic IDs, from datasets to metrics."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from sidrec import __version__
from sidrec.cli import data as data_cli
from sidrec.cli import negatives as negatives_cli
from sidrec.cli import semantics as semantics_cli
from sidrec.cli import sids as sids_cli
from sidrec.cli.common import console, friendly_errors, metrics_table, parse_overrides
from sidrec.cli.report import report_cmd
from sidrec.cli.serve import recommend_cmd, serve_cmd
from sidrec.errors import SidrecError

app = typer.Typer(
    help="sidrec: LLM-based generative recommendation with semantic IDs.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(data_cli.app, name="data")
app.add_typer(sids_cli.app, name="sids")
app.add_typer(semantics_cli.app, name="semantics")
app.add_typer(negatives_cli.app, name="negatives")
train_app = typer.Typer(help="Train a model into a run folder.", no_args_is_help=True)
app.add_typer(train_app, name="train")
eval_app = typer.Typer(help="Evaluate a run (`sidrec eval --run RUN`) or compare two (`sidrec eval compare A B`).")
app.add_typer(eval_app, name="eval")
app.command("report")(report_cmd)
app.command("serve")(serve_cmd)
app.command("recommend")(recommend_cmd)

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
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", min=1, help="Maximum epochs.")]
ResumeOpt = Annotated[bool, typer.Option("--resume", help="Continue an interrupted run from its last checkpoint.")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Start the run folder again.")]
SidsOpt = Annotated[Optional[Path], typer.Option("--sids", help="sids.json (default: the dataset's own SIDs).")]


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


@train_app.command("sft")
@friendly_errors
def train_sft_cmd(
    config: ConfigOpt = None,
    out: OutOpt = Path("runs/sft"),
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Dataset folder (overrides the config's).")] = None,
    sids: SidsOpt = None,
    model: Annotated[Optional[str], typer.Option("--model", help="HF causal LM id or folder (default smollm2-135m).")] = None,
    method: Annotated[Optional[str], typer.Option("--method", help="A registered method (`sidrec methods`): sft | tiger | tsrec | ilrec | ….")] = None,
    from_run: Annotated[Optional[Path], typer.Option("--from", help="Continue a finished SFT run's model (the "
                                                     "plain-CE control for ILRec's stage 2): 1 epoch, lr 5e-5.")] = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    epochs: EpochsOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """Fine-tune an LLM (or train TIGER) to generate the next item's SID; evaluates valid and test."""
    _train_llm(config, out, data, sids, model, method, from_run, {}, set_, seed, device, epochs, resume, overwrite)


@train_app.command("ilrec")
@friendly_errors
def train_ilrec_cmd(
    from_run: Annotated[Optional[Path], typer.Option("--from", help="Stage 2: the finished SFT run to continue "
                                                     "(1 epoch, lr 5e-5, cosine, 5% warm-up unless --set).")] = None,
    cf_run: Annotated[Optional[Path], typer.Option("--cf-run", help="Trained SASRec run for the collaborative reward "
                                                   "(CRR); without it give --set ilrec.use_crr=false.")] = None,
    config: ConfigOpt = None,
    out: OutOpt = Path("runs/ilrec"),
    data: Annotated[Optional[Path], typer.Option("--data", "-d", help="Without --from: train with the ILRec losses "
                                                 "from step 0 on this dataset.")] = None,
    sids: SidsOpt = None,
    model: Annotated[Optional[str], typer.Option("--model", help="Without --from: HF causal LM id or folder.")] = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    epochs: EpochsOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """ILRec: CPO + CPD + CRR from self-hard negatives of the intermediate layers (stage 2 with --from)."""
    _train_llm(config, out, data, sids, model, "ilrec", from_run, {"ilrec.cf_run": cf_run}, set_, seed, device, epochs,
               resume, overwrite)


NegativesOpt = Annotated[Optional[Path], typer.Option("--negatives", help="Negatives file (`sidrec negatives sample`); "
                                                      "default: the --from run's beam-search hard negatives, sampled "
                                                      "into OUT/negatives.parquet.")]
BetaOpt = Annotated[Optional[float], typer.Option("--beta", help="β of the implicit reward (default 1.0).")]
FromRequiredOpt = Annotated[Path, typer.Option("--from", help="The finished SFT run to continue (1 epoch, lr 5e-5, "
                                               "cosine, 5% warm-up unless --set); also the reference model.")]


@train_app.command("dpo")
@friendly_errors
def train_dpo_cmd(from_run: FromRequiredOpt, negatives: NegativesOpt = None, beta: BetaOpt = None,
                  out: OutOpt = Path("runs/dpo"), config: ConfigOpt = None, set_: SetOpt = None, seed: SeedOpt = None,
                  device: DeviceOpt = None, epochs: EpochsOpt = None, resume: ResumeOpt = False,
                  overwrite: OverwriteOpt = False) -> None:
    """DPO on (prompt, target SID, negative SID) pairs from offline negatives, from an SFT run."""
    _train_preference("dpo", from_run, negatives, beta, out, config, set_, seed, device, epochs, resume, overwrite)


@train_app.command("sdpo")
@friendly_errors
def train_sdpo_cmd(from_run: FromRequiredOpt, negatives: NegativesOpt = None, beta: BetaOpt = None,
                   out: OutOpt = Path("runs/sdpo"), config: ConfigOpt = None, set_: SetOpt = None,
                   seed: SeedOpt = None, device: DeviceOpt = None, epochs: EpochsOpt = None, resume: ResumeOpt = False,
                   overwrite: OverwriteOpt = False) -> None:
    """S-DPO: softmax DPO over several offline negatives per prompt, from an SFT run."""
    _train_preference("sdpo", from_run, negatives, beta, out, config, set_, seed, device, epochs, resume, overwrite)


@train_app.command("grpo")
@friendly_errors
def train_grpo_cmd(
    from_run: FromRequiredOpt,
    cf_run: Annotated[Optional[Path], typer.Option("--cf-run", help="Trained SASRec run for the cf reward "
                                                   "(grpo.rewards.cf).")] = None,
    generations: Annotated[Optional[int], typer.Option("--generations", "-g", min=2, help="Rollouts per prompt "
                                                       "(grpo.num_generations, default 16).")] = None,
    out: OutOpt = Path("runs/grpo"),
    config: ConfigOpt = None,
    set_: SetOpt = None,
    seed: SeedOpt = None,
    device: DeviceOpt = None,
    epochs: EpochsOpt = None,
    resume: ResumeOpt = False,
    overwrite: OverwriteOpt = False,
) -> None:
    """GRPO over trie-constrained rollouts (rule / ranking / prefix / cf / semantic rewards), from a finished run."""
    _train_llm(config, out, None, None, None, "grpo", from_run,
               {"grpo.cf_run": cf_run, "grpo.num_generations": generations}, set_, seed, device, epochs, resume,
               overwrite)


def _train_preference(method: str, from_run: Path, negatives: Optional[Path], beta: Optional[float], out: Path,
                      config: Optional[Path], set_: Optional[list[str]], seed: Optional[int], device: Optional[str],
                      epochs: Optional[int], resume: bool, overwrite: bool) -> None:
    """Without --negatives the method's prepare step samples the --from run's beam-search hard negatives."""
    _train_llm(config, out, None, None, None, method, from_run, {"dpo.negatives": negatives, "dpo.beta": beta}, set_,
               seed, device, epochs, resume, overwrite)


def _train_llm(config: Optional[Path], out: Path, data: Optional[Path], sids: Optional[Path], model: Optional[str],
               method: Optional[str], from_run: Optional[Path], method_overrides: dict[str, Any], set_: Optional[list[str]],
               seed: Optional[int], device: Optional[str], epochs: Optional[int], resume: bool, overwrite: bool) -> None:
    from sidrec.methods.method import RunInputs
    from sidrec.pipelines.llm import continue_from, train_sft
    from sidrec.utils.io import merge_config, read_config

    overrides = parse_overrides(set_)
    for key, value in (("dataset", data), ("sids", sids), ("model.name_or_path", model), ("method", method),
                       *method_overrides.items(), ("training.seed", seed), ("training.device", device),
                       ("training.epochs", epochs)):
        if value is not None:
            overrides[key] = str(value) if isinstance(value, Path) else value
    base: dict[str, Any] | Path = config or {}
    if from_run is not None and not resume:
        values = continue_from(from_run, method or "sft")
        if config is not None:
            values = merge_config(values, read_config(config))
        base = values
    elif config is None and "dataset" not in overrides and not resume:
        raise SidrecError("give a dataset (--data DATASET), a config file (--config CONFIG.yaml) or a run to "
                          "continue (--from RUN)")
    inputs = RunInputs(out=out, source=from_run, resume=resume, overwrite=overwrite, device=device or "auto")
    metrics = train_sft(base, out, overrides=overrides, resume=resume, overwrite=overwrite, inputs=inputs)
    if not _is_main_process():
        return
    rows = {split: metrics[split] for split in ("valid", "test") if split in metrics}
    console.print(metrics_table(f"{metrics['method']} · {out}", rows, TABLE_METRICS))
    console.print(f"run folder: [bold]{out}[/] (invalid outputs: "
                  f"{sum(m.get('invalid_outputs', 0) for m in rows.values())})")


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
    run: Annotated[Optional[Path], typer.Option("--run", "--run-dir", help="Run folder to evaluate (--run-dir: the same, for torchrun, whose parser claims --run).")] = None,
    split: Annotated[str, typer.Option("--split", help="valid | test")] = "test",
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda[:N].")] = "auto",
    mode: Annotated[str, typer.Option("--mode", help="LLM runs: beam (constrained beam search) | exact (score every item).")] = "beam",
    num_beams: Annotated[Optional[int], typer.Option("--num-beams", min=1, help="LLM runs: beam width (default: the run's).")] = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", min=1, help="Prompts per batch.")] = None,
    max_examples: Annotated[Optional[int], typer.Option("--max-examples", min=1, help="LLM runs: a fixed sample of the split.")] = None,
) -> None:
    """Evaluate a run on a split: HR/NDCG@K, MRR with 95% CIs; saves per-example ranks.

    Generative runs decode with trie-constrained beam search (invalid outputs are counted; 0 by
    construction). Under `accelerate launch` the examples are sharded over the processes."""
    if ctx.invoked_subcommand is not None:
        return
    if run is None:
        console.print(ctx.get_help())
        raise typer.Exit(0)
    from sidrec.pipelines.classic import evaluate_run
    from sidrec.pipelines.llm import evaluate_llm_run, is_llm_run

    if mode not in ("beam", "exact"):
        raise SidrecError(f"--mode must be beam or exact, not '{mode}'")
    if is_llm_run(run):
        metrics = evaluate_llm_run(run, split, mode=mode, num_beams=num_beams, batch_size=batch_size,  # type: ignore[arg-type]
                                   max_examples=max_examples, device=device)
        if not _is_main_process():
            return
        console.print(metrics_table(f"{run} · {split} · {mode}", {run.name: metrics}, ("hr@1", *TABLE_METRICS)))
        console.print(f"invalid outputs: {metrics['invalid_outputs']}")
        return
    metrics = evaluate_run(run, split, device=device, batch_size=batch_size)
    console.print(metrics_table(f"{run} · {split}", {run.name: metrics}, ("hr@1", *TABLE_METRICS)))


@eval_app.command("compare")
@friendly_errors
def eval_compare(
    run_a: Annotated[Path, typer.Argument(help="Baseline run (A).")],
    run_b: Annotated[Path, typer.Argument(help="Run compared with it (B).")],
    split: Annotated[str, typer.Option("--split", help="valid | test")] = "test",
    n_boot: Annotated[int, typer.Option(min=1, help="Bootstrap resamples.")] = 10000,
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


def _is_main_process() -> bool:
    from sidrec.utils.distributed import is_main_process

    return is_main_process()


# ----------------------------------------------------------------------------- recommend
@app.command("methods")
@friendly_errors
def methods_cmd() -> None:
    """List the registered training methods (`method:` in a config, `--method` of `train sft`)."""
    from rich.table import Table

    from sidrec.methods.registry import METHODS

    table = Table(title="registered methods")
    for column in ("method", "settings", "section", "continuable", "fills from", "what it is"):
        table.add_column(column)
    for m in METHODS.values():
        table.add_row(m.name, m.config.__name__, m.section or "-", "yes" if m.continuable else "no",
                      ", ".join(sorted(m.reads)) or "-", m.summary)
    console.print(table)


# ----------------------------------------------------------------------------- run / demo
def _print_summary(summary: dict[str, Any], title: str) -> None:
    console.print(metrics_table(title, summary["test"], TABLE_METRICS))
    invalid = {k: v["invalid_outputs"] for k, v in summary["test"].items() if "invalid_outputs" in v}
    if invalid:
        console.print("invalid outputs (constrained decoding): " + ", ".join(f"{k} {v}" for k, v in invalid.items()))


@app.command("run")
@friendly_errors
def run_cmd(
    config: Annotated[str, typer.Argument(help="Pipeline YAML (or a packaged name: demo-cpu, industrial-partial-cpu, ...).")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Output folder (default: the config's `out`).")] = None,
    set_: SetOpt = None,
) -> None:
    """Run a pipeline: data → SIDs → baselines → train → eval, reusing every stage whose inputs are unchanged."""
    from sidrec.pipelines.run import load_pipeline_config, run_pipeline

    cfg = load_pipeline_config(config, parse_overrides(set_))
    summary = run_pipeline(cfg, out)
    _print_summary(summary, f"{cfg.name} · test split")
    console.print(f"runs and summary.json in [bold]{out or cfg.out}[/] ({summary['wall_seconds']:.0f} s)")


@app.command("demo")
@friendly_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for the demo's dataset and runs.")] = Path("runs/demo"),
    set_: SetOpt = None,
) -> None:
    """The main job on the embedded SYNTHETIC default: data → SIDs → popularity, SASRec, SmolLM2 SFT → metrics."""
    from sidrec.pipelines.run import load_pipeline_config, run_pipeline

    cfg = load_pipeline_config("demo-cpu", parse_overrides(set_))
    summary = run_pipeline(cfg, out)
    _print_summary(summary, "demo (synthetic data) · test split, full catalogue")
    console.print(f"runs and summary.json in [bold]{out}[/] ({summary['wall_seconds']:.0f} s)")




def cli(args: list[str] | None = None) -> int:
    """The `sidrec` console script: the app with every usage error (bad option value, missing
    argument, unknown command) as one line naming the option and what it accepts."""
    try:  # typer ≥ 0.20 vendors click
        from typer import _click as click
    except ImportError:  # pragma: no cover
        import click  # type: ignore[no-redef]

    from rich.markup import escape

    from sidrec.cli.common import debug_enabled, err_console

    command = typer.main.get_command(app)
    try:
        result = command.main(args=args, prog_name="sidrec", standalone_mode=False)
    except click.exceptions.UsageError as e:
        if debug_enabled():
            raise
        where = f" (see `{e.ctx.command_path} --help`)" if e.ctx is not None else ""
        err_console.print(f"[bold red]error:[/] {escape(e.format_message())}{where}", soft_wrap=True, highlight=False)
        return 2
    except click.exceptions.Abort:
        err_console.print("[bold red]interrupted[/]", highlight=False)
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        err_console.print(f"[bold red]error:[/] {escape(e.format_message())}", soft_wrap=True, highlight=False)
        return e.exit_code
    return result if isinstance(result, int) else 0


def entry() -> None:
    raise SystemExit(cli())


if __name__ == "__main__":  # pragma: no cover
    entry()
