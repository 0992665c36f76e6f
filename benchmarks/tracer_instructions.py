"""What tracing costs in CPU instructions, counted under valgrind: figures noise cannot move.

``tracer_bench.py`` times the tracer against an OpenTelemetry span in the same run,
because on a shared VM a microsecond wanders by tens of percent from one run to the
next.  That is good enough to report a ratio, not to tell whether a change saved 5% of
it.  Counting instructions is: valgrind's ``cachegrind`` runs the program on a synthetic
CPU and reports the same count on every run.  What it leaves out is what each instruction
costs in time (cache misses, mispredicted branches), so this complements the timings and
does not replace them: use it to decide whether a change to the per-call path pays.

Each figure is per call, from two runs of a child process that differ only in the number
of calls: ``(I(n2) - I(n1)) / (n2 - n1)``, so start-up cancels out.  Every child first
makes ``warm_up`` calls, enough to fill the tracer's 10,000-record ring: the steady state
is what is measured, not the filling.  The executors are ``tracer_bench``'s
(``bench_executors``): ``bare``, ``handoff`` (an observer that discards every report) and
``traced`` (a ``TracerActor``, default batch window).  The anchor is ``tracer_bench``'s
OpenTelemetry span, exporter thread included (valgrind runs threads one at a time and
counts them all).

Figures: ``executor_call_instructions_{trio,asyncio}``;
``report_handoff_instructions_*`` and ``tracer_overhead_instructions_*`` (minus bare);
``otel_span_instructions``; and ``tracer_vs_otel_span_instructions`` -- the larger of the
backends' overheads over the span (the instruction-count view of the issue's goal of
0.1).  ``--quick`` measures trio only.

    python benchmarks/tracer_instructions.py [--quick]

Needs ``valgrind`` (Debian: ``apt install valgrind``).  Without it the last line is a
JSON object with ``"skipped"`` saying so.  Takes about 1 minute with ``--quick`` and 4
without (valgrind runs Python about 50 times slower).
"""

from __future__ import annotations

import gc
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _common import emit, have_valgrind, instructions, parse_args

HERE = Path(__file__).resolve()
WARM_UP = 12_000


def _child(argv: list[str]) -> None:
    """``--child executor BACKEND VARIANT CALLS`` or ``--child otel SPANS``."""
    if argv[0] == "otel":
        from tracer_bench import measure_otel_span_loop

        measure_otel_span_loop(int(argv[1]))
        return
    import anyio
    from tracer_bench import BENCH_PARAMS, bench_executors

    from runtime.tools import ToolContext
    from runtime.tracer.actor import TracerActor

    backend, variant, calls = argv[1], argv[2], int(argv[3])

    async def run() -> None:
        tracer = TracerActor(10_000, batch_window=0.002)
        executor = bench_executors(tracer)[variant]
        ctx = ToolContext(tenant_id="acme")
        async with anyio.create_task_group() as tg:
            await tg.start(tracer.serve)
            for _ in range(WARM_UP):
                await executor.execute("CI", "search", BENCH_PARAMS, ctx)
            # Every run starts the measured calls from the same collector state, so the
            # collections they pay for fall at the same calls in every run.
            gc.collect()
            for _ in range(calls):
                await executor.execute("CI", "search", BENCH_PARAMS, ctx)
            await anyio.sleep(0.01)  # let the tracer drain
            tg.cancel_scope.cancel()

    anyio.run(run, backend=backend)


def _instructions(args: list[str]) -> int:
    return instructions(HERE, args)


def _per_call(pool: ThreadPoolExecutor, args: list[str], n1: int, n2: int) -> float:
    """Instructions per call: two runs that differ only in the number of calls."""
    low, high = pool.map(_instructions, [[*args, str(n1)], [*args, str(n2)]])
    return (high - low) / (n2 - n1)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1:])
        return
    args = parse_args(__doc__, argv)
    if not have_valgrind():
        emit("tracer_instructions", {"skipped": "valgrind not found"}, quick=args.quick)
        return
    n1, n2 = (1_000, 4_000) if args.quick else (2_000, 12_000)
    # Quick: trio only, to stay well inside run_all's two minutes per quick benchmark.
    backends = ("trio",) if args.quick else ("trio", "asyncio")
    figures: dict[str, float] = {}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        figures["otel_span_instructions"] = _per_call(pool, ["otel"], n1, n2)
        for backend in backends:
            per_call = {
                variant: _per_call(pool, ["executor", backend, variant], n1, n2)
                for variant in ("bare", "handoff", "traced")
            }
            bare = per_call["bare"]
            figures[f"executor_call_instructions_{backend}"] = bare
            figures[f"report_handoff_instructions_{backend}"] = per_call["handoff"] - bare
            figures[f"tracer_overhead_instructions_{backend}"] = per_call["traced"] - bare
    overhead = max(figures[f"tracer_overhead_instructions_{b}"] for b in backends)
    figures["tracer_vs_otel_span_instructions"] = overhead / figures["otel_span_instructions"]
    emit(
        "tracer_instructions",
        {name: round(value, 3) if value < 10 else round(value) for name, value in figures.items()},
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
