"""The trace report: one self-contained HTML page about a set of trace records.

:func:`build_report` (pure) computes what the page shows -- the tracer's own aggregates,
latency histograms, cache outcomes over time, waterfalls of the slowest composition runs,
the selector's choices, the slowest and failing calls; :func:`render_report` draws it as
HTML with inline SVG; :func:`report_html` does both and :func:`write_report` also writes
the file.  ``python -m runtime traces report TRACES.jsonl -o report.html`` is the CLI.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from runtime.report.data import ReportData, build_report
from runtime.report.html import render_report, report_html
from runtime.tracer.records import TraceRecord

__all__ = ["ReportData", "build_report", "render_report", "report_html", "write_report"]


def write_report(
    records: Iterable[TraceRecord],
    path: str | os.PathLike[str],
    *,
    title: str = "Trace report",
) -> str:
    """Write the report page of ``records`` to ``path`` (blocking file I/O: from async
    code, call it in a worker thread); returns the page."""
    page = report_html(records, title=title)
    # A lone surrogate (kept as a client sent it) has no UTF-8 form: written escaped.
    with open(path, "w", encoding="utf-8", errors="backslashreplace") as stream:
        stream.write(page)
    return page
