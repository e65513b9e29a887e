"""Bad input to every command, as (arguments, a text the one error line must contain): the cases of
tests/test_cli_bad_input.py and of benchmarks/robustness.py. `{w}` stands for a work folder that
`prepare(w)` fills with a small synthetic dataset, a popularity run and two broken configs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# (arguments with {w} for the work folder, a text the one error line must contain)
CASES = [
    # usage errors of the parser
    (["bogus"], "No such command 'bogus'"),
    (["data", "import"], "Missing argument 'format'"),
    (["train", "sft", "--nope"], "No such option: --nope"),
    (["data", "synth", "--out", "{w}/s", "--items", "0"], "'--items'"),
    (["data", "synth", "--out", "{w}/s", "--users", "-3"], "'--users'"),
    (["data", "synth", "--out", "{w}/s", "--items", "many"], "'--items'"),
    (["data", "import", "lcrec", "{w}/d", "--out", "{w}/x", "--max-history", "0"], "'--max-history'"),
    (["recommend", "--run", "{w}/pop", "--history", "i1", "-k", "0"], "'--top-k'"),
    (["recommend", "--run", "{w}/pop", "--history", "i1", "--num-beams", "0"], "'--num-beams'"),
    (["eval", "--run", "{w}/pop", "--batch-size", "0"], "'--batch-size'"),
    (["negatives", "sample", "--data", "{w}/d", "--strategy", "popularity", "-k", "0", "--out", "{w}/n.parquet"],
     "'--per-example'"),
    (["sids", "build", "--data", "{w}/d", "--levels", "0", "--out", "{w}/sids"], "'--levels'"),
    (["semantics", "serve", "--port", "70000"], "'--port'"),
    (["train", "sasrec", "--data", "{w}/d", "--out", "{w}/r", "--epochs", "0"], "'--epochs'"),
    # config values (pydantic): the field and what it accepts
    (["train", "sasrec", "--data", "{w}/d", "--out", "{w}/r", "--set", "lr=abc"], "field 'lr'"),
    (["train", "sasrec", "--data", "{w}/d", "--out", "{w}/r", "--set", "lr=-1"], "field 'lr'"),
    (["train", "sasrec", "--data", "{w}/d", "--out", "{w}/r", "--set", "epochs=0"], "field 'epochs'"),
    (["train", "sasrec", "--data", "{w}/d", "--out", "{w}/r", "--set", "modell=x"], "field 'modell'"),
    (["train", "sasrec", "--data", "{w}/d", "--out", "{w}/r", "--set", "scheduler=fast"], "'constant'"),
    (["train", "gru4rec", "--data", "{w}/d", "--out", "{w}/r", "--set", "dropout=1.5"], "field 'dropout'"),
    (["train", "sasrec", "--data", "{w}/d", "--out", "{w}/r", "--set", "lr"], "key=value"),
    (["train", "sasrec", "--data", "{w}/d", "--out", "{w}/r", "--config", "{w}/bad.yaml"], "YAML"),
    (["train", "sasrec", "--data", "{w}/d", "--out", "{w}/r", "--config", "{w}/missing.yaml"], "missing.yaml"),
    (["train", "sft", "--data", "{w}/d", "--out", "{w}/f", "--set", "training.lr=-1"], "field 'training.lr'"),
    (["train", "sft", "--data", "{w}/d", "--out", "{w}/f", "--set", "training.bogus=1"], "field 'training.bogus'"),
    (["train", "sft", "--data", "{w}/d", "--out", "{w}/f", "--set", "model.sid_init=zzz"], "'tfidf'"),
    (["train", "sft", "--data", "{w}/d", "--out", "{w}/f", "--set", "data.format=zzz"], "field 'data.format'"),
    (["train", "sft", "--config", "{w}/list.yaml", "--out", "{w}/f"], "list.yaml"),
    (["run", "{w}/list.yaml"], "list.yaml"),
    (["run", "{w}/nope.yaml"], "nope.yaml"),
    (["demo", "--set", "x=1"], "field 'x'"),
    # files, folders and run kinds
    (["data", "stats", "{w}/nope"], "dataset.json is missing"),
    (["data", "import", "zzz", "{w}/d", "--out", "{w}/x"], "unknown dataset format 'zzz'"),
    (["data", "download", "nope", "--out", "{w}/x"], "unknown dataset 'nope'"),
    (["train", "gru4rec", "--data", "{w}/nope", "--out", "{w}/g"], "dataset.json is missing"),
    (["train", "pop", "--data", "{w}/d", "--out", "{w}/pop"], "already exists"),
    (["sids", "build", "--data", "{w}/d", "--method", "nope", "--out", "{w}/s"], "unknown SID method 'nope'"),
    (["sids", "report", "{w}/nope.json"], "nope.json"),
    (["negatives", "sample", "--data", "{w}/d", "--strategy", "zzz", "--out", "{w}/n.parquet"], "'zzz'"),
    (["eval", "--run", "{w}/nope"], "nope"),
    (["eval", "--run", "{w}/pop", "--split", "bogus"], "unknown split 'bogus'"),
    (["eval", "compare", "{w}/pop", "{w}/nope"], "nope"),
    (["recommend", "--run", "{w}/pop", "--history", "i1"], "not in this model's catalogue: 'i1'"),
    (["recommend", "--run", "{w}/nope", "--history", "i1"], "no such run folder"),
    (["train", "ilrec", "--from", "{w}/pop", "--out", "{w}/i"], "is a popularity run"),
]


def prepare(root: Path) -> Path:
    from sidrec.cli.main import cli

    root.mkdir(parents=True, exist_ok=True)
    if cli(["data", "synth", "--out", str(root / "d"), "--items", "60", "--users", "80"]) != 0:
        raise RuntimeError("data synth failed")
    if cli(["train", "pop", "--data", str(root / "d"), "--out", str(root / "pop")]) != 0:
        raise RuntimeError("train pop failed")
    (root / "bad.yaml").write_text("training: {lr: [1, 2}\n")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    return root


@dataclass
class CLIOutcome:
    command: str
    kind: str      # clear_error | traceback (a traceback, several lines, or the expected text missing) | accepted
    message: str


def run_case(args: list[str], expect: str, work: Path) -> CLIOutcome:
    """Run one case in process, capturing what the user sees on stderr."""
    import contextlib
    import io

    from sidrec.cli.main import cli

    argv = [a.format(w=work) for a in args]
    err, out = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
            code = cli(argv)
    except BaseException as e:  # noqa: BLE001 - an escaped exception is what we count
        return CLIOutcome(" ".join(args), "traceback", f"{type(e).__name__}: {e}"[:200])
    lines = [x for x in err.getvalue().strip().splitlines() if x.strip()]
    if code == 0:
        return CLIOutcome(" ".join(args), "accepted", "exit 0")
    ok = len(lines) == 1 and lines[0].startswith("error:") and expect in lines[0] and "Traceback" not in err.getvalue()
    return CLIOutcome(" ".join(args), "clear_error" if ok else "traceback", " / ".join(lines)[:300])
