"""Robustness: malformed inputs to every importer and command, and kill -9 at chosen points of training.

    python benchmarks/robustness.py            # ≈ 3 minutes on 2 cores

1. Importers (`sidrec.testing.fuzz`): small clean copies of every layout (subsets of the shared
   LC-Rec / MiniOneRec / RecBole datasets and the raw-format fixtures), each file given one defect
   at a time; `sidrec data import` must end with a one-line error naming the file, or an explicit
   counted filter in dataset.json.
2. Commands (`sidrec.testing.cli_cases`): bad options, config values, files and run kinds for every
   command; each must end with one `error:` line naming the field / option / file.
3. Resume (`sidrec.testing.kill`): SFT and SASRec runs killed with SIGKILL at chosen points (optimizer
   steps, inside a checkpoint write, between the two renames of a checkpoint swap, while metrics
   are written) and at seeded random steps and checkpoint-file writes, resumed each time, must end
   with the uninterrupted run's metrics and weights.

Writes benchmarks/results/robustness.json: summary keys `fuzz.cases`, `fuzz.tracebacks`, `fuzz.silent`,
`fuzz.clear_errors`, `fuzz.counted_filters` (importer and command cases together, and per part under
`fuzz.importers.*` / `fuzz.commands.*`), `resume.kill_points`, `resume.identical`; and a table of
outcomes by importer (copied into docs/datasets.md).
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.table import Table

from _common import ROOT, SHARED_DATA, console, write_result
from sidrec.testing import cli_cases, fuzz, kill


def run_importers(work: Path) -> list[dict[str, Any]]:
    bases = fuzz.build_bases(work, SHARED_DATA if SHARED_DATA.is_dir() else None, ROOT / "tests" / "fixtures")
    cases = fuzz.corpus(bases, work / "cases")
    clean = fuzz.clean_filters(bases, work / "out")
    return [vars(fuzz.run_case(c, work / "out", clean[c.base.name])) for c in cases]


def run_commands(work: Path) -> list[dict[str, Any]]:
    cli_cases.prepare(work)
    return [vars(cli_cases.run_case(args, expect, work)) for args, expect in cli_cases.CASES]


def run_resume(work: Path, seeds: int) -> list[dict[str, Any]]:
    setups = kill.make_setups(work)
    out = []
    for kind, specs in (("sft", kill.SFT_KILLS), ("sasrec", kill.SASREC_KILLS)):
        t0 = time.time()
        full = kill.uninterrupted(setups, kind, work / f"{kind}-full")
        reached: list[str] = []
        cut = kill.kill_then_resume(setups, kind, work / f"{kind}-cut", specs, reached=reached)
        out.append({"trainer": kind, "kill_points": reached, "identical": kill.same_result(kind, full, cut),
                    "seconds": round(time.time() - t0, 1)})
        for seed in range(seeds):  # seeded random points (steps and checkpoint-file writes) in a row
            t0, reached = time.time(), []
            specs = kill.random_kills(kind, seed)
            cut = kill.kill_then_resume(setups, kind, work / f"{kind}-random{seed}", specs, allow_unreached=True,
                                        reached=reached)
            out.append({"trainer": kind, "kill_points": reached, "planned": specs, "random_seed": seed,
                        "identical": kill.same_result(kind, full, cut), "seconds": round(time.time() - t0, 1)})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--random-seeds", type=int, default=2, help="runs killed at seeded random points, per trainer")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="sidrec-robustness-") as tmp:
        work = Path(tmp)
        t0 = time.time()
        importers = run_importers(work / "importers")
        commands = run_commands(work / "commands")
        resume = run_resume(work / "resume", args.random_seeds)
        seconds = time.time() - t0

    def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
        c = collections.Counter(r["kind"] for r in rows)
        return {"cases": len(rows), "tracebacks": c["traceback"], "silent": c["silent"] + c["accepted"],
                "clear_errors": c["clear_error"], "counted_filters": c["counted_filter"]}

    both = counts(importers + commands)
    summary: dict[str, Any] = {f"fuzz.{k}": v for k, v in both.items()}
    summary.update({f"fuzz.importers.{k}": v for k, v in counts(importers).items()})
    summary.update({f"fuzz.commands.{k}": v for k, v in counts(commands).items()})
    summary["resume.kill_points"] = sum(len(r["kill_points"]) for r in resume)
    summary["resume.identical"] = sum(len(r["kill_points"]) for r in resume if r["identical"])
    summary["resume.trainers_identical"] = all(r["identical"] for r in resume)

    by_importer: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for r in importers:
        by_importer[r["importer"]][r["kind"]] += 1
    table = Table(title="malformed inputs by importer (sidrec data import)")
    for col in ("importer", "cases", "clear error", "counted filter", "silent", "traceback"):
        table.add_column(col, justify="left" if col == "importer" else "right")
    rows = {}
    for name, c in sorted(by_importer.items()):
        rows[name] = {"cases": sum(c.values()), "clear_error": c["clear_error"], "counted_filter": c["counted_filter"],
                      "silent": c["silent"], "traceback": c["traceback"]}
        table.add_row(name, *(str(v) for v in rows[name].values()))
    table.add_row("commands", str(len(commands)), str(both["clear_errors"] - counts(importers)["clear_errors"]), "0",
                  str(counts(commands)["silent"]), str(counts(commands)["tracebacks"]))
    console.print(table)
    for r in resume:
        console.print(f"resume {r['trainer']}{' (random ' + str(r['random_seed']) + ')' if 'random_seed' in r else ''}: "
                      f"{len(r['kill_points'])} kill points → "
                      f"{'identical' if r['identical'] else 'DIFFERENT'} metrics ({r['seconds']} s)")
    bad = [r for r in importers + commands if r["kind"] in ("traceback", "silent", "accepted")]
    for r in bad:
        console.print(f"[red]{r['kind']}[/]: {r.get('case') or r.get('command')}: {r['message'][:160]}")
    path = write_result("robustness", summary=summary,
                        config={"threads": args.threads, "shared_data": SHARED_DATA.is_dir(), "seconds": round(seconds)},
                        raw={"importers": importers, "commands": commands, "resume": resume},
                        by_importer=rows)
    console.print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
