"""``python -m runtime traces report|export``: the report page and format conversion.

* ``traces report TRACES.jsonl [-o report.html]`` -- the self-contained HTML report
  (default: beside the input, ``.html`` suffix); prints the path written.
* ``traces export TRACES.jsonl --format chrome|json|jsonl|csv [-o FILE]`` -- the records
  in another format (default: standard output).

The input is a ``jsonl`` or ``json`` trace export.  Bad input -- a missing or unreadable
file, a line that is not a trace record, an unknown format -- is one line on stderr
naming the file, line and problem, and exit status 2 (the CLI's usage-error status).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

__all__ = ["TraceInputError", "add_traces_parser", "read_records", "run_traces"]

PROG = "runtime"


class TraceInputError(ValueError):
    """The trace file cannot be read as trace records; the message names where."""


def add_traces_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``traces`` (with ``report`` and ``export``) to the CLI's subcommands."""
    traces = commands.add_parser(
        "traces",
        parents=[common],
        help="turn exported traces into a report page or another format",
        description="Read a JSONL (or JSON) trace export: render the HTML report, or convert.",
    )
    actions = traces.add_subparsers(dest="traces_command", metavar="ACTION", required=True)
    report = actions.add_parser(
        "report",
        help="write the self-contained HTML report",
        description="Write one self-contained HTML page about the traces (no network needed).",
    )
    report.add_argument("traces", metavar="TRACES", help="a jsonl or json trace export")
    report.add_argument("-o", "--output", metavar="FILE", help="default: TRACES with .html")
    report.add_argument("--title", default=None, help="the page title")
    export = actions.add_parser(
        "export",
        help="convert to chrome (Perfetto timeline), json, jsonl or csv",
        description="Convert a trace export; chrome is the trace-event timeline for Perfetto.",
    )
    export.add_argument("traces", metavar="TRACES", help="a jsonl or json trace export")
    export.add_argument("--format", default="chrome", help="chrome (default), json, jsonl or csv")
    export.add_argument("-o", "--output", metavar="FILE", help="default: standard output")


def read_records(path: str | Path) -> list[Any]:
    """The trace records in a jsonl or json export; :class:`TraceInputError` otherwise."""
    from runtime.tracer.records import record_from_dict

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TraceInputError(f"cannot read {path}: {reason}") from exc
    if text.lstrip().startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TraceInputError(f"{path} is not JSON: {exc}") from exc
        lines = list(enumerate(items, start=1))
        where = "item"
    else:
        lines = []
        for number, line in enumerate(text.split("\n"), start=1):
            if line.strip():
                try:
                    lines.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    raise TraceInputError(f"{path} line {number} is not JSON: {exc}") from exc
        where = "line"
    records = []
    for number, item in lines:
        if not isinstance(item, dict):
            kind = type(item).__name__
            raise TraceInputError(f"{path} {where} {number}: a {kind}, not a trace record")
        try:
            record = record_from_dict(item)
        except (TypeError, ValueError) as exc:
            raise TraceInputError(f"{path} {where} {number} is not a trace record: {exc}") from exc
        problem = _problem(record)
        if problem:
            raise TraceInputError(f"{path} {where} {number}: {problem}")
        records.append(record)
    return records


def _problem(record: Any) -> str | None:
    """What makes a record unusable (fields a hand-edited file may get wrong)."""
    for name in ("started_at", "started_wall", "duration_ms"):
        value = getattr(record, name)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"field {name} must be a number, got {value!r}"
    for name in ("params", "metadata"):
        if not isinstance(getattr(record, name), dict):
            return f"field {name} must be an object"
    for name in ("span_id", "kind", "status", "tool_type", "operation"):
        if not isinstance(getattr(record, name), str):
            return f"field {name} must be a string"
    return None


def run_traces(args: argparse.Namespace) -> int:
    """The ``traces`` command; 2 on bad input (one line on stderr)."""
    from runtime.tracer.export import check_format, export

    try:
        if args.traces_command == "export":
            fmt = check_format(args.format)
        records = read_records(args.traces)
    except (TraceInputError, ValueError) as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    if args.traces_command == "report":
        from runtime.report import write_report

        target = Path(args.output) if args.output else Path(args.traces).with_suffix(".html")
        title = args.title or f"Trace report: {Path(args.traces).name}"
        write_report(records, target, title=title)
        print(f"report written to {target} ({len(records):,} records)")
        return 0
    if args.output:
        export(records, fmt, args.output)
        print(f"{fmt} export written to {args.output} ({len(records):,} records)")
    else:
        sys.stdout.write(export(records, fmt))
    return 0
