"""A run folder holds everything needed to trust and regenerate a number.

    runs/NAME/
      config.yaml     the resolved config (feed it back with --config to rerun)
      command.txt     the command line that produced the run
      run.json        versions, machine, start/end times
      log.txt         the run's log
      fingerprint.json  the resolved config and content digests of the dataset / SID table
                      (`--resume` refuses a run whose inputs or settings changed)
      metrics.json    final metrics (written atomically, last)
"""

from __future__ import annotations

import datetime as dt
import logging
import platform
import shlex
import sys
from pathlib import Path
from typing import Any

from sidrec.utils.io import read_json, reconcile_atomic_leftovers, write_json, write_text, write_yaml


def environment_info() -> dict[str, Any]:
    """Machine and library versions, recorded in every run and benchmark result."""
    import numpy
    import pandas
    import torch

    import sidrec

    info: dict[str, Any] = {
        "sidrec": sidrec.__version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "pandas": pandas.__version__,
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpu_count": _cpu_count(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch_threads": torch.get_num_threads(),
    }
    return info


def _cpu_count() -> int:
    import os

    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


# Files a run folder holds before its first checkpoint or result: a folder with nothing else is the
# remnant of a start that failed (bad config, killed at once) and may be reused without --overwrite.
SCAFFOLDING = frozenset({"config.yaml", "command.txt", "run.json", "log.txt", "fingerprint.json", "stage.json"})
# written by `sidrec run` around a stage's run (its cache key): --overwrite leaves it to the pipeline
PIPELINE_FILES = frozenset({"stage.json"})


class RunDir:
    """Create (or reopen, for --resume) a run folder and log into it.

    - a folder that holds a run (anything beyond `SCAFFOLDING`) is refused unless `resume` or
      `overwrite` is given; `overwrite` deletes everything in it but the `keep` names (inputs the
      caller just put there);
    - `resume` first finishes or undoes what a killed atomic write left (`reconcile_atomic_leftovers`);
    - `write_fingerprint` / `check_fingerprint` record what the run depends on and refuse to resume
      it on anything else.
    """

    def __init__(self, path: str | Path, *, resume: bool = False, overwrite: bool = False,
                 keep: frozenset[str] | set[str] = frozenset()) -> None:
        from sidrec.errors import SidrecError

        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise SidrecError(f"run folder {self.path} is a file: choose another --out")
        self.reconciled: list[str] = []
        contents = {p.name for p in self.path.iterdir()} if self.path.is_dir() else set()
        visible = {n for n in contents if not n.startswith(".")}
        keep = set(keep) | PIPELINE_FILES
        if overwrite and contents:
            if visible - keep and not visible & SCAFFOLDING:
                raise SidrecError(f"--overwrite: {self.path} is not a sidrec run folder (no config.yaml, run.json or "
                                  "log.txt); refusing to delete its contents: choose another --out")
            self._clear(keep)
        elif resume:
            self.reconciled = reconcile_atomic_leftovers(self.path)
        elif visible and not visible <= SCAFFOLDING:
            raise SidrecError(
                f"run folder {self.path} already exists: pass --resume to continue it, "
                "--overwrite to start it again, or choose another --out"
            )
        elif contents:
            self._clear(PIPELINE_FILES)  # the remnant of a start that failed before its first checkpoint
        self.created = not resume
        self.path.mkdir(parents=True, exist_ok=True)
        self.logger = self._make_logger()
        for line in self.reconciled:
            self.log(f"run folder: {line}")

    @classmethod
    def attach(cls, path: str | Path) -> RunDir:
        """Open a run folder another process prepared (the other ranks of a distributed run): no
        checks, no clean-up, only logging."""
        self = cls.__new__(cls)
        self.path = Path(path)
        self.reconciled = []
        self.created = False
        self.logger = self._make_logger()
        return self

    def _clear(self, keep: frozenset[str] | set[str]) -> None:
        import shutil

        for p in self.path.iterdir():
            if p.name in keep:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()

    def discard_if_unstarted(self) -> None:
        """Remove a folder this object created when the run failed before writing anything but
        scaffolding (e.g. its config did not validate), so the corrected retry starts cleanly."""
        import shutil

        self.close()
        if self.created and self.path.is_dir() and {p.name for p in self.path.iterdir()} <= SCAFFOLDING:
            shutil.rmtree(self.path, ignore_errors=True)

    def write_fingerprint(self, fp: dict[str, Any]) -> None:
        write_json(self.path / "fingerprint.json", fp)

    def check_fingerprint(self, fp: dict[str, Any], free: set[str] = frozenset(),  # type: ignore[assignment]
                          saved_config: dict[str, Any] | None = None) -> None:
        """Refuse to resume when an input's content or a config value differs from what the run
        recorded (runs from before fingerprints: the config is compared with config.yaml)."""
        from sidrec.errors import ConfigError
        from sidrec.utils.fingerprint import fingerprint_diff, flatten

        path = self.path / "fingerprint.json"
        if path.is_file():
            saved = read_json(path)
        elif saved_config is not None:
            saved = {"config": flatten(saved_config), "inputs": fp.get("inputs", {})}
            self.log("resume: no fingerprint.json (a run from an older sidrec): only the config is compared")
        else:
            return
        diff = fingerprint_diff(saved, fp, free)
        if diff:
            more = f" (and {len(diff) - 3} more)" if len(diff) > 3 else ""
            raise ConfigError(f"cannot resume {self.path}: " + "; ".join(diff[:3]) + more
                              + ". Resume with the original dataset and settings, or start again with --overwrite")

    def _make_logger(self) -> logging.Logger:
        logger = logging.getLogger(f"sidrec.run.{self.path.resolve()}")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        for h in list(logger.handlers):
            logger.removeHandler(h)
            h.close()
        fh = logging.FileHandler(self.path / "log.txt", encoding="utf-8")
        fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(fh)
        return logger

    def close(self) -> None:
        for h in list(self.logger.handlers):
            self.logger.removeHandler(h)
            h.close()

    def log(self, message: str) -> None:
        self.logger.info(message)

    def write_config(self, config: dict[str, Any]) -> None:
        write_yaml(self.path / "config.yaml", config)
        write_text(self.path / "command.txt", " ".join(shlex.quote(a) for a in sys.argv) + "\n")
        info = environment_info()
        info["started"] = dt.datetime.now().isoformat(timespec="seconds")
        write_json(self.path / "run.json", info)

    def write_metrics(self, metrics: dict[str, Any], name: str = "metrics.json") -> None:
        write_json(self.path / name, metrics)

    def read_metrics(self, name: str = "metrics.json") -> dict[str, Any]:
        return read_json(self.path / name)
