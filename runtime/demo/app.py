"""``python -m runtime demo``: the runtime doing its main job, end to end.

1. make sure the sample CMDB exists (build it, with a progress bar, when absent or built
   with other sizes);
2. start the runtime on trio (or asyncio) with the nine ops tools over that database;
3. run the scripted operator session (:mod:`runtime.demo.session`): discovery and an
   incident walk-through through the selector and the named compositions, then a replay
   of Zipf-skewed repeated questions by several concurrent operators;
4. report: the answers, a per-tool table, database queries issued vs tool calls made, the
   cache hit rate, where the traces were exported, and -- last -- the path of the HTML
   trace report written beside them (:mod:`runtime.report`).

:func:`run_demo` returns a :class:`DemoReport`; :meth:`DemoReport.to_dict` is what
``--json`` prints.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import anyio
import attrs

from runtime.calls import CallReport, CallStart
from runtime.demo.console import Progress, print_table
from runtime.demo.session import Answer, Asker, ReplayResult, discover, replay, walk_through
from runtime.demo.workload import distinct_count, question_catalogue, zipf_sample
from runtime.ops import (
    BuildSummary,
    OpsDatabase,
    ensure_database,
    existing_database,
    register_ops_tools,
)
from runtime.ops.config import OpsRuntimeConfig
from runtime.runtime import Runtime, open_runtime
from runtime.tools import ToolContext, ToolRegistry

__all__ = [
    "CallCounter",
    "DemoReport",
    "ToolFigures",
    "prepare_database",
    "print_report",
    "report_json",
    "run_demo",
]

Backend = Literal["trio", "asyncio"]


class CallCounter:
    """The demo's own tally of finished tool calls, per operation.

    A :class:`~runtime.calls.CallObserver` next to the tracer: the figures that must add
    up (calls, errors, cache hits) do not depend on the tracer being enabled or on its
    buffer, and it is cheap (a few counter increments per call, on the caller's task).
    """

    observes_starts = False

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.hits: Counter[str] = Counter()

    def call_started(self, start: CallStart) -> None:
        """Not called (``observes_starts`` is false); part of the observer protocol."""

    def call_finished(self, report: CallReport) -> None:
        if report.kind != "tool_call":
            return
        name = f"{report.tool_type}.{report.operation}"
        self.calls[name] += 1
        if report.status != "ok":
            self.errors[name] += 1
        if report.cache_hit:
            self.hits[name] += 1


@attrs.frozen(slots=True)
class ToolFigures:
    """One row of the per-tool table."""

    tool: str
    calls: int
    p50_ms: float | None
    """Latency percentiles come from the tracer: None when it is disabled."""
    p95_ms: float | None
    cache_hit_rate: float
    errors: int
    db_queries: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "p50_ms": None if self.p50_ms is None else round(self.p50_ms, 3),
            "p95_ms": None if self.p95_ms is None else round(self.p95_ms, 3),
            "cache_hit_rate": round(self.cache_hit_rate, 4),
            "errors": self.errors,
            "db_queries": self.db_queries,
        }


@attrs.frozen(slots=True)
class DemoReport:
    """Everything the demo found out, for the terminal and for ``--json``."""

    backend: str
    tenant: str
    database: BuildSummary
    answers: tuple[Answer, ...]
    tools: tuple[ToolFigures, ...]
    pipelines: dict[str, dict[str, Any]]
    calls: int
    db_queries: int
    cache_hits: int
    hit_rate: float
    replay: ReplayResult
    selector_failed_attempts: int
    distinct_questions: int
    skew: float
    traces: tuple[str, ...]
    elapsed_s: float
    report: str | None = None
    """The HTML trace report beside the exported traces (None without a tracer)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "tenant": self.tenant,
            "database": {
                "path": self.database.path,
                "cis": self.database.cis,
                "days": self.database.days,
                "seed": self.database.seed,
                "built": self.database.built,
            },
            "calls": self.calls,
            "db_queries": self.db_queries,
            "cache_hits": self.cache_hits,
            "hit_rate": round(self.hit_rate, 4),
            "errors": sum(row.errors for row in self.tools),
            # Calls the selector tried first that failed before a fallback answered:
            # they are among ``errors`` (each is a real, traced call).
            "selector_failed_attempts": self.selector_failed_attempts,
            "tools": {row.tool: row.to_dict() for row in self.tools},
            "pipelines": self.pipelines,
            "replay": {
                "questions": self.replay.calls,
                "distinct_questions": self.distinct_questions,
                "skew": self.skew,
                "callers": self.replay.callers,
                "errors": self.replay.errors,
                "elapsed_s": round(self.replay.elapsed_s, 4),
                "calls_per_s": round(self.replay.calls_per_s, 1),
            },
            "answers": [
                {"question": a.question, "answer": a.answer, "via": a.via, "why": a.why}
                for a in self.answers
            ],
            "traces": list(self.traces),
            "report": self.report,
            "elapsed_s": round(self.elapsed_s, 3),
        }


def prepare_database(
    config: OpsRuntimeConfig,
    progress: Progress | None = None,
    asked: Mapping[str, int] | None = None,
) -> BuildSummary:
    """The configured sample CMDB: an existing one as it is (``ValueError`` when it differs
    from a size in ``asked`` -- ``cis``/``days``/``seed`` the user gave), else built."""
    ops = config.ops
    found = existing_database(ops.database, **(asked or {}))
    if found is not None:
        return found
    return ensure_database(
        ops.database, cis=ops.cis, days=ops.days, seed=ops.seed, progress=progress
    )


def run_demo(
    config: OpsRuntimeConfig,
    *,
    backend: Backend = "trio",
    progress: Callable[[], Any] | None = None,
    asked: Mapping[str, int] | None = None,
) -> DemoReport:
    """Build the database if needed, run the session on ``backend``, return the report.

    ``progress`` is a context-manager factory yielding a ``progress(stage, done, total)``
    callback (see :func:`runtime.demo.console.progress_bar`); it is entered only when the
    database has to be built.  An existing database is used as it is (see
    :func:`prepare_database` for ``asked``), never resized.
    """
    started = time.perf_counter()
    summary = _ensure(config, progress, asked)
    report: DemoReport = anyio.run(_session, config, summary, backend, backend=backend)
    return attrs.evolve(report, elapsed_s=time.perf_counter() - started)


def _ensure(
    config: OpsRuntimeConfig, progress: Callable[[], Any] | None, asked: Mapping[str, int] | None
) -> BuildSummary:
    if progress is None:
        return prepare_database(config, asked=asked)
    with progress() as callback:
        return prepare_database(config, callback, asked)


async def _session(config: OpsRuntimeConfig, summary: BuildSummary, backend: str) -> DemoReport:
    ops = config.ops
    db = await OpsDatabase.open(summary.path)
    try:
        registry = ToolRegistry()
        register_ops_tools(registry, db)
        ctx = ToolContext(tenant_id=ops.demo_tenant, user_id="on-call")
        counter = CallCounter()
        async with open_runtime(registry, config, observers=(counter,)) as rt:
            asker = Asker(rt, ctx)
            estate = await discover(asker)
            answers = await walk_through(asker, estate)
            catalogue = question_catalogue(estate, seed=ops.seed)
            workload = zipf_sample(catalogue, ops.demo_questions, skew=ops.demo_skew, seed=ops.seed)
            replayed = await replay(rt, ctx, workload, callers=ops.demo_callers)
            tools, pipelines = await _tool_figures(rt, db, counter)
            hits, hit_rate = await _cache_figures(rt)
            traces = await _export_traces(rt, Path(config.tracer.export_dir))
            page = await _write_report(rt, Path(config.tracer.export_dir))
    finally:
        db.close()
    return DemoReport(
        backend=backend,
        tenant=ops.demo_tenant,
        database=summary,
        answers=tuple(answers),
        tools=tools,
        pipelines=pipelines,
        calls=sum(counter.calls.values()),
        db_queries=db.query_count,
        cache_hits=hits,
        hit_rate=hit_rate,
        replay=replayed,
        selector_failed_attempts=len(asker.failed_attempts),
        distinct_questions=distinct_count(workload),
        skew=ops.demo_skew,
        traces=traces,
        elapsed_s=0.0,
        report=page,
    )


async def _tool_figures(
    rt: Runtime, db: OpsDatabase, counter: CallCounter
) -> tuple[tuple[ToolFigures, ...], dict[str, dict[str, Any]]]:
    latencies: dict[str, tuple[float, float]] = {}
    pipelines: dict[str, dict[str, Any]] = {}
    if rt.tracer is not None:
        stats = await rt.tracer.tracer_stats()
        for (tool_type, operation), figures in stats.tools.items():
            latencies[f"{tool_type}.{operation}"] = (figures.p50_ms, figures.p95_ms)
        pipelines = {
            operation: {
                "runs": figures.count,
                "p50_ms": round(figures.p50_ms, 3),
                "p95_ms": round(figures.p95_ms, 3),
                "errors": figures.failures,
            }
            for (_, operation), figures in sorted(stats.pipelines.items())
        }
    queries = db.queries_by_tool()
    rows = []
    for name in sorted(counter.calls):
        calls = counter.calls[name]
        p50, p95 = latencies.get(name, (None, None))
        rows.append(
            ToolFigures(
                tool=name,
                calls=calls,
                p50_ms=p50,
                p95_ms=p95,
                cache_hit_rate=counter.hits[name] / calls if calls else 0.0,
                errors=counter.errors[name],
                db_queries=queries.get(name, 0),
            )
        )
    return tuple(rows), pipelines


async def _cache_figures(rt: Runtime) -> tuple[int, float]:
    if rt.cache is None:
        return 0, 0.0
    report = await rt.cache.stats()
    return int(report.snapshot.store.total.hits), float(report.hit_rate)


async def _export_traces(rt: Runtime, directory: Path) -> tuple[str, ...]:
    if rt.tracer is None:
        return ()
    await anyio.Path(directory).mkdir(parents=True, exist_ok=True)
    written = []
    for format, name in (("jsonl", "demo-traces.jsonl"), ("csv", "demo-traces.csv")):
        target = directory / name
        await rt.tracer.export(format, target)
        written.append(str(target))
    return tuple(written)


async def _write_report(rt: Runtime, directory: Path) -> str | None:
    if rt.tracer is None:
        return None
    from runtime.report import write_report

    records = await rt.tracer.records()
    target = directory / "demo-report.html"
    # Rendering and writing are blocking: off the event loop.
    await anyio.to_thread.run_sync(
        functools.partial(write_report, records, target, title="runtime demo: trace report")
    )
    return str(target)


def print_report(report: DemoReport, *, plain: bool = False) -> None:
    """The human-readable report on stdout."""
    db = report.database
    state = "built" if db.built else "reused"
    print(
        f"sample CMDB ({state}): {db.path} — {db.cis} CIs, {db.relations} relations, "
        f"{db.metric_points:,} metric points, {db.events:,} events over {db.days} days"
    )
    print(f"runtime on {report.backend}; the operator session (tenant {report.tenant!r}):\n")
    for answer in report.answers:
        print(f"  ? {answer.question}")
        print(f"    {answer.answer}")
        print(f"    [{answer.via}]")
        if answer.why:
            print(f"    why: {answer.why}")
    print()
    rows = [
        (
            row.tool,
            row.calls,
            "-" if row.p50_ms is None else row.p50_ms,
            "-" if row.p95_ms is None else row.p95_ms,
            f"{row.cache_hit_rate:.0%}",
            row.errors,
            row.db_queries,
        )
        for row in report.tools
    ]
    print_table(
        "per-tool figures (latency in ms, from the tracer)",
        ("tool", "calls", "p50 ms", "p95 ms", "cache hit rate", "errors", "db queries"),
        rows,
        plain=plain,
    )
    if report.pipelines:
        print_table(
            "compositions",
            ("composition", "runs", "p50 ms", "p95 ms", "errors"),
            [
                (name, fig["runs"], fig["p50_ms"], fig["p95_ms"], fig["errors"])
                for name, fig in report.pipelines.items()
            ],
            plain=plain,
        )
    replayed = report.replay
    print(
        f"\nreplayed {replayed.calls} operator questions ({report.distinct_questions} distinct, "
        f"Zipf s={report.skew:g}) with {replayed.callers} concurrent callers in "
        f"{replayed.elapsed_s:.2f}s ({replayed.calls_per_s:,.0f} calls/s, "
        f"{replayed.errors} errors)"
    )
    print(
        f"tool calls made: {report.calls}; database queries issued: {report.db_queries}; "
        f"answered from cache: {report.cache_hits} (hit rate {report.hit_rate:.0%})"
    )
    if report.selector_failed_attempts:
        print(
            f"{report.selector_failed_attempts} of the errors above are candidates that "
            "failed before the next one answered (execute_best's fallback)"
        )
    if report.traces:
        print("traces exported to: " + ", ".join(report.traces))
    print(f"done in {report.elapsed_s:.1f}s")
    if report.report:
        print(f"trace report (open it in a browser): {report.report}")


def report_json(report: DemoReport) -> str:
    return json.dumps(report.to_dict(), sort_keys=False, default=str)
