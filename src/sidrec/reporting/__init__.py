"""Reports over finished run folders: `sidrec report RUN [RUN ...] --out DIR`."""

from __future__ import annotations

from sidrec.reporting.report import Report, RunSummary, load_run, make_report, write_report

__all__ = ["Report", "RunSummary", "load_run", "make_report", "write_report"]
