"""Compare finished runs: a markdown table with CIs, paired bootstrap tests and two plots.

    runs = [load_run("runs/sasrec"), load_run("runs/sft")]
    write_report(runs, "reports/beauty")     # → reports/beauty/report.md, curves.png, metrics.png

Both run-folder shapes are read (see `sidrec.utils.runs`):

* classic runs (`SequentialTrainer`, `train_popularity`): metrics.json has "model", "train_time_s",
  "best_epoch", "stopped_early" and one dict per split; history.jsonl has one line per epoch
  ({"epoch", "train_loss", "lr", "train_time_s", optional "valid": {...}, "eval_time_s", "best"}).
  Popularity runs have no history.
* LLM runs (`sidrec.llm.trainer`): metrics.json has "method", "train": {"steps", "time_s",
  "best_step", "stopped", ...} and one dict per split; history.jsonl mixes training records
  ({"step", "epoch", "loss", "lr", "time_s", ...}) and evaluation records ({"step", "epoch",
  "valid": {...}, "eval_time_s", "time_s", "improved"}); "valid" holds ranking metrics or {"loss"}.

Split metrics are {"hr@5": ..., "n": ..., "ci95": {"hr@5": [lo, hi], ...}}. When metrics.json lacks
the split, metrics_<split>.json (written by `sidrec eval --run`) is used.

report.md holds the metrics table (mean [95% CI] per metric, n, training time), and when every run
has ranks_<split>.parquet, a paired bootstrap comparison of each run against the first one
(`sidrec.evaluation.compare.paired_bootstrap`, on the examples both runs were evaluated on).
curves.png: training loss (and validation loss, dashed, where recorded) and the validation metric
against step (LLM runs) or epoch (classic runs). metrics.png: grouped bars with CI error bars.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sidrec.errors import DataError, SidrecError
from sidrec.utils.io import atomic_path, read_yaml, write_text

if TYPE_CHECKING:
    import pandas as pd

    from sidrec.evaluation.compare import PairedResult

DEFAULT_METRICS: tuple[str, ...] = ("hr@5", "ndcg@5", "hr@10", "ndcg@10")
VALID_CURVE_METRIC = "ndcg@10"
MISSING = "—"


# ---------------------------------------------------------------------- one run
@dataclass
class RunSummary:
    """What a report needs from one run folder."""

    name: str  # the folder name
    path: Path
    method: str  # LLM "method" (sft, tiger, ...) or classic "model" (sasrec, gru4rec, popularity)
    kind: str  # "llm" or "classic"
    metrics: dict[str, dict[str, Any]]  # split → {"hr@10": ..., "n": ..., "ci95": {...}, ...}
    history: list[dict[str, Any]] = field(default_factory=list)
    train_time_s: float | None = None
    best: str | None = None  # "step 1200" / "epoch 16"
    stopped: str | None = None
    dataset: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)  # metrics.json as read
    warnings: list[str] = field(default_factory=list)

    @property
    def x_unit(self) -> str:
        """The x axis of this run's curves: 'step' (LLM runs) or 'epoch' (classic runs)."""
        return "step" if any("step" in r for r in self.history) else "epoch"

    def split_metrics(self, split: str) -> dict[str, Any]:
        return self.metrics.get(split, {})

    def value(self, split: str, metric: str) -> float | None:
        v = self.split_metrics(split).get(metric)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    def ci(self, split: str, metric: str) -> tuple[float, float] | None:
        ci = (self.split_metrics(split).get("ci95") or {}).get(metric)
        if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(isinstance(x, (int, float)) for x in ci):
            return float(ci[0]), float(ci[1])
        return None

    def n(self, split: str) -> int | None:
        v = self.split_metrics(split).get("n")
        return int(v) if isinstance(v, (int, float)) else None

    def ranks_path(self, split: str) -> Path | None:
        p = self.path / f"ranks_{split}.parquet"
        return p if p.is_file() else None

    def _x(self, record: dict[str, Any]) -> float | None:
        x = record.get(self.x_unit)
        return float(x) if isinstance(x, (int, float)) else None

    def loss_curve(self) -> list[tuple[float, float]]:
        """(x, training loss): LLM training records' "loss", classic epochs' "train_loss"."""
        out = []
        for r in self.history:
            x = self._x(r)
            loss = r.get("train_loss", r.get("loss") if "valid" not in r else None)
            if x is not None and isinstance(loss, (int, float)):
                out.append((x, float(loss)))
        return out

    def valid_curve(self, metric: str) -> list[tuple[float, float]]:
        """(x, validation `metric`) of the evaluation records that have it ("loss" for a validation loss)."""
        out = []
        for r in self.history:
            x, v = self._x(r), (r.get("valid") or {}).get(metric)
            if x is not None and isinstance(v, (int, float)):
                out.append((x, float(v)))
        return out


def load_run(path: str | Path) -> RunSummary:
    """Read a run folder (classic or LLM). Raises DataError naming the folder when metrics.json is missing."""
    path = Path(path)
    if not path.is_dir():
        raise SidrecError(f"run folder {path} not found")
    metrics_file = path / "metrics.json"
    if not metrics_file.is_file():
        raise DataError(
            f"run folder {path} has no metrics.json",
            path=path,
            hint="the run has not finished (metrics.json is written last), or this is not a run folder",
        )
    raw = _read_json(metrics_file)
    if not isinstance(raw, dict):
        raise DataError("expected a JSON object", path=metrics_file)
    config = _read_optional_yaml(path / "config.yaml")
    warnings: list[str] = []

    kind = "llm" if ("method" in raw or isinstance(raw.get("train"), dict)) else "classic"
    method = _first_str(raw.get("method"), raw.get("model"), config.get("method"), config.get("model")) or "unknown"

    metrics: dict[str, dict[str, Any]] = {}
    for key, value in raw.items():
        if key != "train" and isinstance(value, dict) and any(_is_metric_name(k) for k in value):
            metrics[key] = value
    for extra in sorted(path.glob("metrics_*.json")):
        split = extra.stem[len("metrics_"):]
        if split and split not in metrics:
            data = _read_json(extra)
            if isinstance(data, dict):
                metrics[split] = data

    history, bad = _read_history(path / "history.jsonl")
    if bad:
        warnings.append(f"{path / 'history.jsonl'}: skipped unreadable line(s) {', '.join(map(str, bad[:5]))}"
                        + (" …" if len(bad) > 5 else ""))

    train = raw.get("train") if isinstance(raw.get("train"), dict) else {}
    train_time = _number(train.get("time_s"), raw.get("train_time_s"))
    if train_time is None and history:
        times = [r["time_s"] for r in history if isinstance(r.get("time_s"), (int, float))]
        if times:
            train_time = float(max(times))
        else:
            per_epoch = [r["train_time_s"] for r in history if isinstance(r.get("train_time_s"), (int, float))]
            train_time = float(sum(per_epoch)) if per_epoch else None

    if kind == "llm":
        best = f"step {train['best_step']}" if train.get("best_step") is not None else None
        stopped = str(train["stopped"]) if train.get("stopped") is not None else None
    else:
        best = f"epoch {raw['best_epoch']}" if raw.get("best_epoch") is not None else None
        stopped = None
        if "stopped_early" in raw:
            stopped = "early stopping" if raw["stopped_early"] else f"max epochs ({raw.get('epochs_run', '?')})"
    dataset = _first_str(raw.get("dataset"))
    if dataset is None and _first_str(config.get("dataset")):
        dataset = Path(str(config["dataset"])).name

    return RunSummary(name=path.resolve().name or str(path), path=path, method=method, kind=kind, metrics=metrics,
                      history=history, train_time_s=train_time, best=best, stopped=stopped, dataset=dataset,
                      raw=raw, warnings=warnings)


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DataError(f"invalid JSON: {e.msg}", path=path, line=e.lineno) from None


def _read_optional_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = read_yaml(path)
    except Exception:  # a broken config.yaml only costs the fallbacks it would give
        return {}
    return data if isinstance(data, dict) else {}


def _read_history(path: Path) -> tuple[list[dict[str, Any]], list[int]]:
    """Records of history.jsonl and the 1-based numbers of lines that are not JSON objects
    (an interrupted append can leave a partial last line)."""
    if not path.is_file():
        return [], []
    records, bad = [], []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            bad.append(i)
            continue
        if isinstance(rec, dict):
            records.append(rec)
        else:
            bad.append(i)
    return records, bad


def _is_metric_name(key: str) -> bool:
    return key == "mrr" or re.fullmatch(r"(hr|ndcg|recall|precision)@\d+", key) is not None


def _first_str(*values: Any) -> str | None:
    for v in values:
        if isinstance(v, str) and v:
            return v
    return None


def _number(*values: Any) -> float | None:
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


# ---------------------------------------------------------------------- paired comparison
@dataclass
class Comparison:
    """One run against the baseline (the first run) on the examples both were evaluated on."""

    run: str
    results: list[PairedResult]
    aligned: str  # "same examples" or "N common examples (…)"


def _paired_ranks(a: pd.DataFrame, b: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, str]:
    """Ranks of A and B on the same examples, in the same order.

    Identical (user_id, target) columns pair row by row; otherwise the examples are matched on
    (user_id, target, occurrence) so that a run evaluated on a sample pairs with the full split.
    """
    ua, ub = a["user_id"].astype(str).to_numpy(), b["user_id"].astype(str).to_numpy()
    ta, tb = a["target"].astype(str).to_numpy(), b["target"].astype(str).to_numpy()
    if len(a) == len(b) and np.array_equal(ua, ub) and np.array_equal(ta, tb):
        return a["rank"].to_numpy(), b["rank"].to_numpy(), "same examples"
    import pandas as pd

    def keyed(df: pd.DataFrame, users: np.ndarray, targets: np.ndarray) -> pd.DataFrame:
        k = pd.DataFrame({"u": users, "t": targets, "rank": df["rank"].to_numpy()})
        k["occ"] = k.groupby(["u", "t"]).cumcount()
        return k

    merged = keyed(a, ua, ta).merge(keyed(b, ub, tb), on=["u", "t", "occ"], suffixes=("_a", "_b"))
    return (merged["rank_a"].to_numpy(), merged["rank_b"].to_numpy(),
            f"{len(merged):,} common examples ({len(a):,} vs {len(b):,} rows)")


def _ks_of(metrics: Sequence[str]) -> tuple[int, ...]:
    ks = sorted({int(m.split("@", 1)[1]) for m in metrics if "@" in m and m.split("@", 1)[1].isdigit()})
    return tuple(ks) or (10,)


def compare_to_first(
    runs: Sequence[RunSummary], split: str, metrics: Sequence[str], *, n_boot: int = 10000, seed: int = 0,
    names: Sequence[str] | None = None,
) -> tuple[list[Comparison], list[str]]:
    """Paired bootstrap of every run after the first against the first; (comparisons, notes).

    Needs ranks_<split>.parquet in every run: otherwise no comparison and a note saying which are missing.
    """
    from sidrec.evaluation.compare import paired_bootstrap
    from sidrec.evaluation.ranking import load_ranks

    if len(runs) < 2:
        return [], []
    missing = [str(r.path / f"ranks_{split}.parquet") for r in runs if r.ranks_path(split) is None]
    if missing:
        return [], [f"no paired comparison: missing {', '.join(missing)}"]
    paired_metrics = [m for m in metrics if m == "mrr" or re.fullmatch(r"(hr|ndcg)@\d+", m)]
    if not paired_metrics:
        return [], [f"no paired comparison: none of {', '.join(metrics)} is computable from ranks"]
    ks = _ks_of(paired_metrics)
    names = list(names) if names is not None else [r.name for r in runs]
    base = load_ranks(runs[0].ranks_path(split))  # type: ignore[arg-type]
    comparisons, notes = [], []
    for name, run in zip(names[1:], runs[1:], strict=True):
        ranks = load_ranks(run.ranks_path(split))  # type: ignore[arg-type]
        ra, rb, aligned = _paired_ranks(base, ranks)
        if len(ra) == 0:
            notes.append(f"{name}: no example in common with {names[0]} on {split}: not compared")
            continue
        results = paired_bootstrap(ra, rb, metrics=paired_metrics, ks=ks, n_boot=n_boot, seed=seed)
        comparisons.append(Comparison(name, results, aligned))
    return comparisons, notes


# ---------------------------------------------------------------------- formatting
def format_value(value: float | None, ci: tuple[float, float] | None) -> str:
    """`0.0744 [0.071, 0.078]` (mean with 4 decimals, 95% CI with 3), `0.0744` without a CI."""
    if value is None:
        return MISSING
    return f"{value:.4f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci is not None else "")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return MISSING
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def format_p(p: float) -> str:
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]], align: Sequence[str]) -> str:
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(_md_cell(h) for h in header) + " |", "| " + " | ".join(sep) + " |"]
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ---------------------------------------------------------------------- the report
@dataclass
class Report:
    """Everything report.md shows; `write(out_dir)` writes report.md, curves.png and metrics.png."""

    runs: list[RunSummary]
    names: list[str]  # display names (folder names, made unique)
    split: str
    metrics: tuple[str, ...]
    comparisons: list[Comparison]
    notes: list[str]
    n_boot: int

    # rows shared by the markdown and the CLI's rich tables
    def metric_header(self) -> list[str]:
        return ["run", "method", *self.metrics, "n", "train time"]

    def metric_rows(self) -> list[list[str]]:
        rows = []
        for name, run in zip(self.names, self.runs, strict=True):
            n = run.n(self.split)
            rows.append([name, run.method,
                         *(format_value(run.value(self.split, m), run.ci(self.split, m)) for m in self.metrics),
                         f"{n:,}" if n is not None else MISSING, format_duration(run.train_time_s)])
        return rows

    def comparison_header(self) -> list[str]:
        base = self.names[0]
        return ["run", "metric", base, "run value", f"Δ (run − {base})", "95% CI of Δ", "p"]

    def comparison_rows(self) -> list[list[str]]:
        rows = []
        for c in self.comparisons:
            for r in c.results:
                rows.append([c.run, r.metric, f"{r.a:.4f}", f"{r.b:.4f}", f"{r.diff:+.4f}",
                             f"[{r.ci_low:+.4f}, {r.ci_high:+.4f}]", format_p(r.p_value)])
        return rows

    def markdown(self) -> str:
        s = self.split
        parts = [
            f"# Run comparison · {s} split",
            "",
            f"{len(self.runs)} run(s), written by `sidrec report` on "
            f"{dt.datetime.now().isoformat(timespec='seconds')}.",
            "",
            f"## Metrics ({s})",
            "",
            _md_table(self.metric_header(), self.metric_rows(), ["l", "l", *"r" * len(self.metrics), "r", "r"]),
            "",
            "Mean over the split's examples with its 95% bootstrap confidence interval in brackets; "
            "n = examples evaluated; train time = the run's recorded training time.",
        ]
        if self.comparisons:
            parts += [
                "",
                f"## Paired comparison against {self.names[0]} ({s})",
                "",
                _md_table(self.comparison_header(), self.comparison_rows(), ["l", "l", "r", "r", "r", "r", "r"]),
                "",
                f"Paired bootstrap over the examples both runs were evaluated on ({self.n_boot:,} resamples, "
                f"`ranks_{s}.parquet`); Δ = run − {self.names[0]}; p is two-sided.",
            ]
            for c in self.comparisons:
                if c.aligned != "same examples":
                    parts.append(f"{c.run} was paired with {self.names[0]} on {c.aligned}.")
        parts += ["", "## Plots", "", "![training curves](curves.png)", "", "![metrics](metrics.png)", "",
                  "## Runs", ""]
        detail_rows = [[name, r.kind, str(r.path), r.dataset or MISSING, r.best or MISSING, r.stopped or MISSING]
                       for name, r in zip(self.names, self.runs, strict=True)]
        parts.append(_md_table(["run", "kind", "folder", "dataset", "best", "stopped"], detail_rows,
                               ["l"] * 6))
        notes = list(self.notes) + [w for r in self.runs for w in r.warnings]
        if notes:
            parts += ["", "## Notes", ""] + [f"- {_md_cell(n)}" for n in notes]
        return "\n".join(parts) + "\n"

    def write(self, out_dir: str | Path) -> dict[str, Path]:
        """Write report.md, curves.png and metrics.png (each atomically); returns their paths."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = {"curves": out / "curves.png", "metrics": out / "metrics.png", "report": out / "report.md"}
        plot_curves(self.runs, paths["curves"], names=self.names)
        plot_metrics(self.runs, paths["metrics"], split=self.split, metrics=self.metrics, names=self.names)
        write_text(paths["report"], self.markdown())
        return paths


def _unique_names(runs: Sequence[RunSummary]) -> list[str]:
    folder_names = [r.name for r in runs]
    names = list(folder_names)
    for i, r in enumerate(runs):
        if folder_names.count(r.name) > 1:  # runs/a/sasrec and runs/b/sasrec → a/sasrec, b/sasrec
            names[i] = f"{r.path.resolve().parent.name}/{r.name}"
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        seen[n] = seen.get(n, 0) + 1
        if seen[n] > 1:
            names[i] = f"{n} ({seen[n]})"
    return names


def make_report(
    runs: Sequence[RunSummary | str | Path],
    split: str = "test",
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    n_boot: int = 10000,
    seed: int = 0,
) -> Report:
    """Load the runs (paths or RunSummary) and run the paired comparisons; nothing is written."""
    if not runs:
        raise SidrecError("no run folder given")
    loaded = [r if isinstance(r, RunSummary) else load_run(r) for r in runs]
    metrics = tuple(metrics) or DEFAULT_METRICS
    if not any(split in r.metrics for r in loaded):
        have = sorted({s for r in loaded for s in r.metrics})
        raise SidrecError(f"no run has '{split}' metrics (splits found: {', '.join(have) or 'none'})")
    notes = [f"{r.name} has no '{split}' metrics" for r in loaded if split not in r.metrics]
    names = _unique_names(loaded)
    comparisons, more = compare_to_first(loaded, split, metrics, n_boot=n_boot, seed=seed, names=names)
    return Report(loaded, names, split, metrics, comparisons, notes + more, n_boot)


def write_report(
    runs: Sequence[RunSummary | str | Path],
    out_dir: str | Path,
    split: str = "test",
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    n_boot: int = 10000,
    seed: int = 0,
) -> Path:
    """Write out_dir/report.md, curves.png and metrics.png comparing `runs`; returns report.md's path."""
    return make_report(runs, split, metrics, n_boot=n_boot, seed=seed).write(out_dir)["report"]


# ---------------------------------------------------------------------- plots
def _new_figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)  # the Agg backend, without touching pyplot's global state
    return fig


def _save_png(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def plot_curves(runs: Sequence[RunSummary], path: str | Path, *, names: Sequence[str] | None = None,
                metric: str = VALID_CURVE_METRIC) -> Path:
    """Two panels: training loss (validation loss dashed) and validation `metric`, per run, against step/epoch."""
    path = Path(path)
    names = list(names) if names is not None else [r.name for r in runs]
    fig = _new_figure(11, 4.2)
    ax_loss, ax_valid = fig.subplots(1, 2)
    units = sorted({r.x_unit for r in runs if r.history})
    xlabel = " / ".join(units) if units else "step"
    any_loss = any_valid = False
    for name, run, color in zip(names, runs, _colors(len(runs)), strict=True):
        label = f"{name} ({run.x_unit})" if len(units) > 1 else name
        loss = run.loss_curve()
        if loss:
            ax_loss.plot(*zip(*loss, strict=True), color=color, label=label, lw=1.5)
            any_loss = True
        vloss = run.valid_curve("loss")
        if vloss:
            ax_loss.plot(*zip(*vloss, strict=True), color=color, ls="--", marker=".", label=f"{label} · valid loss")
            any_loss = True
        curve = run.valid_curve(metric)
        if curve:
            ax_valid.plot(*zip(*curve, strict=True), color=color, marker="o", ms=3, label=label, lw=1.5)
            any_valid = True
    for ax, has, title, ylabel in ((ax_loss, any_loss, "training loss", "loss"),
                                   (ax_valid, any_valid, f"validation {metric}", metric)):
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if has:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no history recorded", ha="center", va="center", transform=ax.transAxes, color="gray")
    _save_png(fig, path)
    return path


def plot_metrics(runs: Sequence[RunSummary], path: str | Path, *, split: str = "test",
                 metrics: Sequence[str] = DEFAULT_METRICS, names: Sequence[str] | None = None) -> Path:
    """Grouped bars: one group per metric, one bar per run, 95% CI as error bars."""
    path = Path(path)
    names = list(names) if names is not None else [r.name for r in runs]
    fig = _new_figure(max(6.0, 1.2 + 0.5 * len(metrics) * max(len(runs), 2)), 4.2)
    ax = fig.subplots()
    x = np.arange(len(metrics))
    width = 0.8 / max(len(runs), 1)
    for i, (name, run, color) in enumerate(zip(names, runs, _colors(len(runs)), strict=True)):
        values = np.array([run.value(split, m) if run.value(split, m) is not None else np.nan for m in metrics])
        err = np.zeros((2, len(metrics)))
        for j, m in enumerate(metrics):
            ci = run.ci(split, m)
            if ci is not None and not np.isnan(values[j]):
                err[:, j] = [max(values[j] - ci[0], 0.0), max(ci[1] - values[j], 0.0)]
        ax.bar(x + (i - (len(runs) - 1) / 2) * width, np.nan_to_num(values), width, yerr=err, capsize=3,
               color=color, label=name, error_kw={"elinewidth": 1})
    ax.set_xticks(x, list(metrics))
    ax.set_ylabel(f"{split} value")
    ax.set_title(f"{split} metrics (95% CI)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    _save_png(fig, path)
    return path
