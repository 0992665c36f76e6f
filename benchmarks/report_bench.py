"""Trace report and timeline export on a full ring: time to render, page size.

    python benchmarks/report_bench.py [--quick]

A ring of 10,000 records like a busy service's: tool calls over nine operations with
cache outcomes, params and some failures, and composition runs (a run, its steps, their
tool calls, parallel steps side by side).  Measured, best of N:

* ``report_render_s`` -- :func:`runtime.report.report_html` of the ring (aggregation and
  rendering); goal < 2 s (issue 21);
* ``report_size_bytes`` / ``report_size_mb`` -- the page; goal < ~2 MB;
* ``json_export_s`` -- the anchor, in the same run: the tracer's own ``json`` export of
  the same records; ``report_vs_json_export`` is the ratio;
* ``chrome_export_s``, ``chrome_size_bytes`` -- the Chrome trace-event export.

``--quick`` renders the same 10,000 records with fewer repeats.
"""

from __future__ import annotations

import random
from typing import Any

from _common import best_of, emit, parse_args, timed

from runtime.report import report_html
from runtime.tracer import export
from runtime.tracer.records import TraceRecord

OPERATIONS = [
    ("CI", "search"),
    ("CI", "get"),
    ("METRIC", "series"),
    ("METRIC", "aggregate"),
    ("GRAPH", "expand"),
    ("GRAPH", "path"),
    ("HISTORY", "event_log"),
    ("CEP", "simulate"),
    ("CI", "aggregate"),
]
OUTCOMES = ("hit", "hit", "hit", "miss", "coalesced", "bypass")


def ring(size: int, seed: int = 7) -> list[TraceRecord]:
    rng = random.Random(seed)
    records: list[TraceRecord] = []
    clock = 1000.0
    ids = iter(range(1, 10**9))

    def record(kind: str, parent: str | None, tool: str, op: str, start: float, ms: float,
               **extra: Any) -> TraceRecord:  # fmt: skip
        return TraceRecord(
            trace_id="t1",
            span_id=f"bench-{next(ids):x}",
            parent_span_id=parent,
            kind=kind,  # type: ignore[arg-type]
            tool_type=tool,
            operation=op,
            tenant=rng.choice(["acme", "globex"]),
            started_at=start,
            started_wall=1_765_000_000.0 + start,
            duration_ms=ms,
            **{"status": "ok", **extra},
        )

    while len(records) < size:
        clock += rng.expovariate(40.0)
        if rng.random() < 0.02:  # a composition run: two sequential steps, two in parallel
            run = record("pipeline", None, "pipeline", "impact_analysis", clock, 0.0)
            at, steps = clock, []
            for name, parallel in (("get", False), ("expand", False), ("m", True), ("e", True)):
                ms = rng.lognormvariate(1.5, 0.6)
                step = record("step", run.span_id, "impact_analysis", name, at, ms + 0.05)
                call = record("tool_call", step.span_id, "GRAPH", "expand", at + 0.00002, ms)
                steps += [step, call]
                if not parallel:
                    at += (ms + 0.1) / 1000
            end = max(s.started_at + s.duration_ms / 1000 for s in steps)
            finished = TraceRecord(**{**_fields(run), "duration_ms": (end - clock) * 1000})
            records += [*steps, finished]
            continue
        tool, op = rng.choice(OPERATIONS)
        outcome = rng.choice(OUTCOMES)
        failed = rng.random() < 0.02
        records.append(
            record(
                "tool_call", None, tool, op, clock,
                rng.lognormvariate(-3 if outcome == "hit" else 2, 0.8),
                status="error" if failed else "ok",
                error_type="ToolError" if failed else None,
                error_message="backend unavailable" if failed else None,
                cache_hit=outcome == "hit",
                coalesced=outcome == "coalesced",
                params={"keywords": ["web", "db"], "limit": 20, "ci_id": rng.randint(1, 500)},
                metadata={"cache": outcome},
            )
        )  # fmt: skip
    return records[:size]


def _fields(rec: TraceRecord) -> dict[str, Any]:
    return {name: getattr(rec, name) for name in rec.__slots__ if not name.startswith("__")}


def main() -> None:
    args = parse_args(__doc__)
    repeats = 2 if args.quick else 5
    records = ring(10_000)
    page = report_html(records)
    chrome = export(records, "chrome")
    render, render_median = best_of(repeats, lambda: timed(lambda: report_html(records)))
    json_export, _ = best_of(repeats, lambda: timed(lambda: export(records, "json")))
    chrome_export, _ = best_of(repeats, lambda: timed(lambda: export(records, "chrome")))
    size = len(page.encode("utf-8"))
    emit(
        "report_bench",
        {
            "records": len(records),
            "report_render_s": round(render, 4),
            "report_render_median_s": round(render_median, 4),
            "report_size_bytes": size,
            "report_size_mb": round(size / 1_000_000, 3),
            "json_export_s": round(json_export, 4),
            "report_vs_json_export": round(render / json_export, 3),
            "chrome_export_s": round(chrome_export, 4),
            "chrome_size_bytes": len(chrome.encode("utf-8")),
        },
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
