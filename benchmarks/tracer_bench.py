"""What tracing costs, against one OpenTelemetry SDK span measured in the same run.

The anchor, ``otel_span_us``: one span of the OpenTelemetry SDK with a
``BatchSpanProcessor(InMemorySpanExporter)``, named ``execute_tool CI`` with five GenAI
attributes set at start and one after, ``force_flush()`` inside the timed region (so the
exporter thread's work is paid for too).

Ours, per call.  In the caller's task, while the executor builds its report:
``result_sizer_us`` -- ``ResultSizer.size`` on a 20-row result as most calls see it (an
exact count and an estimated size), and ``result_size_exact_us`` -- the exact size (its
compact JSON length), paid on one result in ``DEFAULT_SIZE_EVERY`` per operation.  In
the actor's task: ``tracer_observe_lazy_us`` -- ``TracerState.observe_many`` over batches
of 256 reports with lazy records (the default: count each in its aggregate and sketch,
keep the report in the ring; the record is built when read); ``tracer_record_us`` --
``record_from_report`` (redaction) plus keeping the record (``lazy_records=False``).
Measured for a typical report (four params, one of them a secret; a 20-row result's
count and size, as the executor sends them) and a minimal one (no params, no result).

Also: our quantile sketch against ``ddsketch`` (add cost, accuracy, size), and the
OpenTelemetry bridge's cost per record (``OtelBridge.emit`` into the same batch exporter).

Figures are process-CPU microseconds per item (medians of repeated runs), except the
``*_wall_us`` ones.  Each measurement is a named function returning a dict of figures;
the final JSON line is their union.

End to end: ``tracer_overhead_us`` -- process-CPU per call of ``Executor.execute`` with a
running ``TracerActor`` (default batch window) as its observer, minus the same without
it, alternating in one event loop, so the actor's own work is paid for too (paired
differences: the median over rounds of traced minus bare in the same round);
``report_handoff_us`` -- the same with an observer that discards every report, i.e. what
the executor pays to hand a report over (params snapshot, report, hand-off) before any
tracer work; and ``tracer_vs_otel_span`` -- ``tracer_overhead_us`` over ``otel_span_us``
(goal <= 0.1).  The executors are built as ``open_runtime`` builds its own
(``bench_executors``).  ``tracer_instructions.py`` counts the same three in instructions.

    python benchmarks/tracer_bench.py [--quick]
"""

from __future__ import annotations

import gc
import math
import random
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import anyio
from _common import emit, parse_args

from runtime._loop import loop_cancel_check, loop_clock
from runtime.calls import CallObserver, CallReport
from runtime.executor import Executor
from runtime.tools import ToolContext, ToolRegistry
from runtime.tracer.actor import TracerActor
from runtime.tracer.records import TraceRecord, record_from_report
from runtime.tracer.redact import Redactor
from runtime.tracer.sizing import ResultSizer, result_size_bytes
from runtime.tracer.sketch import QuantileSketch
from runtime.tracer.state import TracerState

Figures = dict[str, Any]


def _per_call(
    clock: Callable[[], float], repeats: int, n: int, run: Callable[[int], None]
) -> float:
    samples = []
    for _ in range(repeats):
        gc.collect()
        started = clock()
        run(n)
        samples.append((clock() - started) / n * 1e6)
    return statistics.median(samples)


def _per_call_us(repeats: int, n: int, run: Callable[[int], None]) -> float:
    """Median over ``repeats`` runs of the process CPU time per iteration, in us.

    Process CPU time (which includes the span processor's worker thread) rather than wall
    time: on a shared VM it does not count other processes' time slices, so the ratios
    hold steady from run to run.
    """
    return _per_call(time.process_time, repeats, n, run)


def _per_call_wall_us(repeats: int, n: int, run: Callable[[int], None]) -> float:
    return _per_call(time.perf_counter, repeats, n, run)


# -- the anchor ------------------------------------------------------------------------------


def _otel_spans() -> tuple[Callable[[int], None], Callable[[], None]]:
    """``(spans, shutdown)``: ``spans(n)`` makes n anchor spans and flushes them."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    tracer = provider.get_tracer("bench")
    attributes = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "CI",
        "gen_ai.tool.call.id": "call-1",
        "runtime.operation": "search",
        "runtime.tenant": "acme",
    }

    def spans(n: int) -> None:
        for _ in range(n):
            with tracer.start_as_current_span("execute_tool CI", attributes=attributes) as span:
                span.set_attribute("runtime.cache_hit", False)
        provider.force_flush()
        exporter.clear()

    return spans, provider.shutdown


def measure_otel_span(quick: bool) -> Figures:
    spans, shutdown = _otel_spans()
    n, repeats = (5_000, 5) if quick else (20_000, 9)
    spans(500)  # warm-up
    figures = {
        "otel_span_us": _per_call_us(repeats, n, spans),
        "otel_span_wall_us": _per_call_wall_us(repeats, n, spans),
    }
    shutdown()
    return figures


def measure_otel_span_loop(count: int) -> None:
    """``count`` anchor spans, flushed every 1,000 (for ``tracer_instructions.py``)."""
    spans, shutdown = _otel_spans()
    spans(500)  # as measure_otel_span's warm-up
    gc.collect()
    for _ in range(count // 1000):
        spans(1000)
    spans(count % 1000)
    shutdown()


# -- our per-record pipeline -----------------------------------------------------------------


TYPICAL_RESULT = {
    "records": [
        {"ci_id": f"ci-{k}", "name": f"web-{k:02d}", "type": "server", "status": "up"}
        for k in range(20)
    ]
}


def _typical_report(i: int) -> CallReport:
    return CallReport(
        kind="tool_call",
        trace_id="t-bench",
        span_id=f"s-{i}",
        parent_span_id="s-0",
        tool_type="CI",
        operation="search",
        tenant_id="acme",
        started_at=float(i),
        started_wall=1_700_000_000.0 + i,
        duration_s=0.004 + (i % 97) * 1e-4,
        status="ok",
        params={"query": "web", "limit": 20, "api_key": "k-123", "filters": {"env": "prod"}},
        result_count=20,
        result_size_bytes=1283,  # result_size_bytes(TYPICAL_RESULT)
        result_size_estimated=True,
    )


def _minimal_report(i: int) -> CallReport:
    return CallReport(
        kind="tool_call",
        trace_id="t-bench",
        span_id=f"s-{i}",
        parent_span_id=None,
        tool_type="CI",
        operation="search",
        tenant_id="acme",
        started_at=float(i),
        started_wall=1_700_000_000.0 + i,
        duration_s=0.004 + (i % 97) * 1e-4,
        status="ok",
    )


def measure_record_pipeline(quick: bool) -> Figures:
    n, repeats = (5_000, 5) if quick else (20_000, 9)
    typical = [_typical_report(i) for i in range(1000)]
    minimal = [_minimal_report(i) for i in range(1000)]
    redactor = Redactor()
    records = [record_from_report(r, redact_keys=redactor) for r in typical]

    def observe(reports: list[CallReport], *, lazy: bool) -> Callable[[int], None]:
        batches = [reports[i : i + 250] for i in range(0, 1000, 250)]

        def run(count: int) -> None:
            # As the tracer actor does: whole batches (250 here, so that they tile 1000).
            state = TracerState(capacity=1000, lazy_records=lazy)
            observe_many = state.observe_many
            for i in range(count // 250):
                observe_many(batches[i % 4])

        return run

    sizer = ResultSizer()

    def size_results(count: int) -> None:
        size = sizer.size
        for _ in range(count):
            size("CI", "search", TYPICAL_RESULT)

    def size_exactly(count: int) -> None:
        for _ in range(count):
            result_size_bytes(TYPICAL_RESULT)

    def build(reports: list[CallReport]) -> Callable[[int], None]:
        def run(count: int) -> None:
            for i in range(count):
                record_from_report(reports[i % 1000], redact_keys=redactor)

        return run

    def observe_built(count: int) -> None:
        state = TracerState(capacity=1000)
        observe = state.observe_record
        for i in range(count):
            observe(records[i % 1000])

    return {
        # In the caller's task: count the result, estimate its size (measure 1 in N).
        "result_sizer_us": _per_call_us(repeats, n, size_results),
        "result_size_exact_us": _per_call_us(repeats, n // 10, size_exactly),
        # What the tracer actor does per report by default: count it, keep the report.
        "tracer_observe_lazy_us": _per_call_us(repeats, n, observe(typical, lazy=True)),
        # record_from_report + observe: the record built at once (lazy_records=False).
        "tracer_record_us": _per_call_us(repeats, n, observe(typical, lazy=False)),
        "tracer_record_minimal_us": _per_call_us(repeats, n, observe(minimal, lazy=False)),
        "record_from_report_us": _per_call_us(repeats, n, build(typical)),
        "record_from_report_minimal_us": _per_call_us(repeats, n, build(minimal)),
        "state_observe_record_us": _per_call_us(repeats, n, observe_built),
    }


def measure_otel_bridge(quick: bool) -> Figures:
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from runtime.tracer.otel import OtelBridge

    exporter = InMemorySpanExporter()
    bridge = OtelBridge([BatchSpanProcessor(exporter)])
    records: list[TraceRecord] = [record_from_report(_typical_report(i)) for i in range(1000)]

    def run(count: int) -> None:
        for i in range(count):
            bridge.emit(records[i % 1000])
        bridge.force_flush()
        exporter.clear()

    n, repeats = (5_000, 5) if quick else (20_000, 9)
    run(500)
    figures = {"otel_bridge_emit_us": _per_call_us(repeats, n, run)}
    bridge.shutdown()
    return figures


# -- the sketch against ddsketch -------------------------------------------------------------


def _lower_quantile(ordered: list[float], q: float) -> float:
    return ordered[math.floor(q * (len(ordered) - 1))]


def measure_sketches(quick: bool) -> Figures:
    from ddsketch import DDSketch

    rng = random.Random(42)
    size = 50_000 if quick else 200_000
    lognormal = [rng.lognormvariate(math.log(20.0), 1.0) for _ in range(size)]
    bimodal = [
        rng.lognormvariate(math.log(20.0), 0.3)
        if rng.random() < 0.99
        else rng.lognormvariate(math.log(500.0), 0.3)
        for _ in range(size)
    ]
    quantiles = (0.5, 0.95, 0.99, 0.999)
    contenders: dict[str, tuple[Callable[[], Any], str, Callable[[Any, float], float]]] = {
        "ours": (lambda: QuantileSketch(0.01), "add", lambda s, q: s.quantile(q)),
        "ddsketch": (lambda: DDSketch(0.01), "add", lambda s, q: s.get_quantile_value(q)),
    }
    figures: Figures = {}
    repeats = 3 if quick else 5
    for name, (make, add_name, quantile) in contenders.items():

        def fill(count: int, make: Callable[[], Any] = make, add_name: str = add_name) -> None:
            add = getattr(make(), add_name)
            for value in lognormal[:count]:
                add(value)

        figures[f"sketch_{name}_add_us"] = _per_call_us(repeats, size, fill)
        for label, data in (("lognormal", lognormal), ("bimodal", bimodal)):
            sketch = make()
            for value in data:
                sketch.add(value)
            ordered = sorted(data)
            for q in quantiles:
                exact = _lower_quantile(ordered, q)
                error = (quantile(sketch, q) - exact) / exact * 100.0
                figures[f"sketch_{name}_{label}_p{q * 100:g}_err_pct"] = round(error, 3)
        gc.collect()
        tracemalloc.start()
        sketch = make()
        for value in lognormal:
            sketch.add(value)
        figures[f"sketch_{name}_bytes"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        if isinstance(sketch, QuantileSketch):
            figures[f"sketch_{name}_buckets"] = sketch.bucket_count
        else:
            # Bins in use (the dense store allocates in chunks of 128).
            figures[f"sketch_{name}_buckets"] = sum(1 for count in sketch._store.bins if count)
    figures["sketch_add_speedup_vs_ddsketch"] = round(
        figures["sketch_ddsketch_add_us"] / figures["sketch_ours_add_us"], 2
    )
    return figures


class _DiscardingObserver:
    """Takes every report and keeps nothing: what handing a report over costs the executor
    (the params snapshot, the report, the hand-off) before any tracer does any work."""

    observes_starts = False

    def call_started(self, start: Any) -> None:
        del start

    def call_finished(self, report: CallReport) -> None:
        del report


BENCH_PARAMS = {"keywords": ["db"], "limit": 20, "api_key": "s3cret"}


def bench_executors(tracer: TracerActor) -> dict[str, Executor]:
    """The executors compared, built as ``open_runtime`` builds its own (the loop's
    clock and cancel check bound once; call inside the event loop): ``bare`` without
    observers, ``handoff`` with one that discards every report, ``traced`` with
    ``tracer``.  Their one tool returns a 20-row result."""
    registry = ToolRegistry()

    @registry.tool("CI", "search")
    async def search(ctx: ToolContext, params: Any) -> Any:
        return {"records": [{"ci_id": i, "ci_name": f"host-{i}"} for i in range(20)]}

    def executor(*observers: CallObserver) -> Executor:
        return Executor(
            registry, observers=observers, clock=loop_clock(), cancel_check=loop_cancel_check()
        )

    return {
        "bare": executor(),
        "handoff": executor(_DiscardingObserver()),
        "traced": executor(tracer),
    }


async def _overhead(calls: int, rounds: int) -> dict[str, float]:
    """Per-call process CPU of three executors over the same tool, in alternating order.

    Differences are paired: each round times every executor once (the order rotating from
    round to round) and the figure is the median over rounds of (executor - bare) in that
    round, so that the machine's slow spells cancel out instead of landing on one side.
    """
    ctx = ToolContext(tenant_id="acme")
    params = BENCH_PARAMS
    tracer = TracerActor(10_000, batch_window=0.002)
    executors = bench_executors(tracer)
    names = list(executors)
    per_call: dict[str, list[float]] = {name: [] for name in names}
    async with anyio.create_task_group() as tg:
        await tg.start(tracer.serve)
        for round_ in range(rounds):
            shift = round_ % len(names)
            for name in names[shift:] + names[:shift]:
                executor = executors[name]
                started = time.process_time()
                for _ in range(calls):
                    await executor.execute("CI", "search", params, ctx)
                await anyio.sleep(0.01)  # let the tracer drain inside the timed region
                per_call[name].append((time.process_time() - started) / calls * 1e6)
        tg.cancel_scope.cancel()
    bare = per_call["bare"]
    return {
        "bare": statistics.median(bare),
        **{
            name: statistics.median(a - b for a, b in zip(per_call[name], bare, strict=True))
            for name in ("handoff", "traced")
        },
    }


def measure_tracer_overhead(quick: bool) -> Figures:
    calls, rounds = (2_000, 9) if quick else (5_000, 21)
    figures: Figures = {}
    for backend in ("trio", "asyncio"):
        measured = anyio.run(_overhead, calls, rounds, backend=backend)
        figures[f"executor_call_us_{backend}"] = measured["bare"]
        figures[f"tracer_overhead_us_{backend}"] = max(measured["traced"], 0.0)
        figures[f"report_handoff_us_{backend}"] = max(measured["handoff"], 0.0)
    for name in ("tracer_overhead_us", "report_handoff_us"):
        figures[name] = max(figures[f"{name}_trio"], figures[f"{name}_asyncio"])
    return figures


MEASUREMENTS: dict[str, Callable[[bool], Figures]] = {
    "tracer_overhead": measure_tracer_overhead,
    "otel_span": measure_otel_span,
    "record_pipeline": measure_record_pipeline,
    "otel_bridge": measure_otel_bridge,
    "sketches": measure_sketches,
}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    figures: Figures = {}
    for name, measure in MEASUREMENTS.items():
        result = measure(args.quick)
        print(f"{name}: {result}")
        figures.update(result)
    for name in (
        "tracer_overhead_us",
        "report_handoff_us",
        "tracer_observe_lazy_us",
        "tracer_record_us",
        "tracer_record_minimal_us",
    ):
        ratio_name = name.removesuffix("_us") + "_vs_otel_span"
        figures[ratio_name] = round(figures[name] / figures["otel_span_us"], 3)
    # The name for the headline figure.
    figures["tracer_vs_otel_span"] = figures["tracer_overhead_vs_otel_span"]
    for key, value in figures.items():
        if isinstance(value, float):
            figures[key] = round(value, 3)
    emit("tracer_bench", figures, quick=args.quick)


if __name__ == "__main__":
    main()
