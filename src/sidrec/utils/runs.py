"""A run folder holds everything needed to trust and regenerate a number.

    runs/NAME/
      config.yaml     the resolved config (feed it back with --config to rerun)
      command.txt     the command line that produced the run
      run.json        versions, machine, start/end times
      log.txt         the run's log
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

from sidrec.utils.io import read_json, write_json, write_text, write_yaml


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


class RunDir:
    """Create (or reopen, for --resume) a run folder and log into it."""

    def __init__(self, path: str | Path, *, resume: bool = False, overwrite: bool = False) -> None:
        self.path = Path(path)
        if self.path.exists() and any(self.path.iterdir()) and not (resume or overwrite):
            from sidrec.errors import SidrecError

            raise SidrecError(
                f"run folder {self.path} already exists: pass --resume to continue it, "
                "--overwrite to start it again, or choose another --out"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        self.logger = self._make_logger()

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
