"""Pipeline fan-out overhead, fail-fast cancel latency, and what ``asyncio.gather`` leaks.

Three figures, each against an anchor measured in the same run (real time: this measures
wall overhead, so no virtual clock):

* ``fanout_overhead_ratio`` -- wall time of a run whose only stage is a ``Parallel`` group
  of k=10 steps, each a tool that sleeps 20 ms, divided by 20 ms (goal <= 1.05).  The
  same fan-out on a bare anyio task group (``fanout_floor_ratio``) shows what the event
  loop and anyio cost with no pipeline at all, and ``fanout_vs_floor`` is ours over that
  floor.  ``fanout_native_floor_ratio`` is the loop's own floor: ten of its native sleeps
  (``trio.sleep`` / ``asyncio.sleep``) in its native task group (a trio nursery /
  ``asyncio.TaskGroup``), no anyio, no tool function -- on trio it is already ~1.045-1.05,
  the whole budget (the timer fires late, and each woken sleep unwinds a cancel scope).
  Medians over the repeats; the headline is the worst backend's.
* ``cancel_latency_ms`` -- one step fails at 50 ms, nine siblings are due to commit a side
  effect at 300 ms: the time from the failing tool's ``raise`` to the moment the last
  sibling has stopped (each notes the time in ``finally``).  Median, worst backend
  (goal <= 1 ms).
* ``side_effects`` -- siblings that still committed after the run failed, the most in any
  run, both backends (goal 0), next to ``gather_side_effects``: the same scenario with
  ``asyncio.gather`` (the most in any run, of ``siblings_per_run``), which returns the
  error at once and leaves the siblings running to commit.

The executor is a minimal one (look the tool up, await it) so the figures are the
pipeline's own cost, not the cache's or the tracer's.

    python benchmarks/pipeline_bench.py [--quick]
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from _common import emit, parse_args

from runtime.calls import CallReport, IdGenerator
from runtime.errors import PipelineError
from runtime.pipeline import Parallel, Pipeline, Step, run_pipeline
from runtime.tools import ToolContext

FANOUT = 10
STEP_S = 0.020
FAIL_AT_S = 0.050
COMMIT_AT_S = 0.300
SIBLINGS = 9
CTX = ToolContext(tenant_id="bench")

ToolFn = Callable[[Mapping[str, Any]], Awaitable[Any]]


class MinimalExecutor:
    """Just runs the tool: the pipeline's overhead is what remains."""

    def __init__(self, tools: Mapping[tuple[str, str], ToolFn]) -> None:
        self.ids = IdGenerator()
        self.tools = tools

    async def execute(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        context: ToolContext,
        *,
        timeout: float | None = None,
    ) -> Any:
        return await self.tools[(tool_type, operation)](params)

    def report(self, report: CallReport) -> None:
        pass


async def _sleep_tool(params: Mapping[str, Any]) -> Any:
    await anyio.sleep(STEP_S)
    return params


FANOUT_PIPELINE = Pipeline(
    "fanout", [Parallel(*(Step(f"s{i}", "T", "sleep", {"i": i}) for i in range(FANOUT)))]
)


async def fanout_ours() -> float:
    executor = MinimalExecutor({("T", "sleep"): _sleep_tool})
    started = time.perf_counter()
    await run_pipeline(FANOUT_PIPELINE, {}, CTX, executor)
    return time.perf_counter() - started


async def fanout_floor() -> float:
    started = time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for i in range(FANOUT):
            tasks.start_soon(_sleep_tool, {"i": i})
    return time.perf_counter() - started


async def fanout_native_floor(backend: str) -> float:
    """The event loop alone: its own sleeps in its own task group."""
    started = time.perf_counter()
    if backend == "trio":
        import trio

        async with trio.open_nursery() as nursery:
            for _ in range(FANOUT):
                nursery.start_soon(trio.sleep, STEP_S)
    else:
        async with asyncio.TaskGroup() as group:
            for _ in range(FANOUT):
                group.create_task(asyncio.sleep(STEP_S))
    return time.perf_counter() - started


class FailFastScenario:
    """One failing branch, nine siblings due to commit later; notes the times."""

    def __init__(self) -> None:
        self.raised_at = 0.0
        self.stopped_at: list[float] = []
        self.committed = 0

    async def fail(self, params: Mapping[str, Any]) -> Any:
        await anyio.sleep(FAIL_AT_S)
        self.raised_at = time.perf_counter()
        raise RuntimeError("branch failed")

    async def commit(self, params: Mapping[str, Any]) -> Any:
        try:
            await anyio.sleep(COMMIT_AT_S)
            self.committed += 1
        finally:
            self.stopped_at.append(time.perf_counter())
        return params

    def latency_ms(self) -> float:
        return (max(self.stopped_at) - self.raised_at) * 1000.0


FAIL_PIPELINE = Pipeline(
    "failfast",
    [
        Parallel(
            Step("fail", "T", "fail"),
            *(Step(f"sibling{i}", "T", "commit", {"i": i}) for i in range(SIBLINGS)),
        )
    ],
)


async def fail_fast_ours() -> tuple[float, int]:
    scenario = FailFastScenario()
    executor = MinimalExecutor({("T", "fail"): scenario.fail, ("T", "commit"): scenario.commit})
    try:
        await run_pipeline(FAIL_PIPELINE, {}, CTX, executor)
    except PipelineError:
        pass
    else:
        raise AssertionError("the pipeline should have failed")
    latency = scenario.latency_ms()
    await anyio.sleep(COMMIT_AT_S + 0.05)  # give a leaked sibling the time to commit
    return latency, scenario.committed


async def fail_fast_gather() -> int:
    scenario = FailFastScenario()
    with contextlib.suppress(RuntimeError):
        await asyncio.gather(scenario.fail({}), *(scenario.commit({}) for _ in range(SIBLINGS)))
    await asyncio.sleep(COMMIT_AT_S + 0.05)
    return scenario.committed


def measure(backend: str, repeats: int) -> dict[str, Any]:
    async def main() -> dict[str, Any]:
        ours: list[float] = []
        floor: list[float] = []
        native: list[float] = []
        for _ in range(2):  # warm-up
            await fanout_ours()
            await fanout_floor()
            await fanout_native_floor(backend)
        for _ in range(repeats):
            ours.append(await fanout_ours())
            floor.append(await fanout_floor())
            native.append(await fanout_native_floor(backend))
        latencies: list[float] = []
        side_effects = 0
        for _ in range(max(3, repeats // 4)):
            latency, committed = await fail_fast_ours()
            latencies.append(latency)
            side_effects = max(side_effects, committed)
        figures: dict[str, Any] = {
            "fanout_overhead_ratio": statistics.median(ours) / STEP_S,
            "fanout_best_ratio": min(ours) / STEP_S,
            "fanout_floor_ratio": statistics.median(floor) / STEP_S,
            "fanout_vs_floor": statistics.median(ours) / statistics.median(floor),
            "fanout_native_floor_ratio": statistics.median(native) / STEP_S,
            "cancel_latency_ms": statistics.median(latencies),
            "cancel_latency_max_ms": max(latencies),
            "side_effects": side_effects,
            "runs": len(latencies),
        }
        if backend == "asyncio":
            leaked = [await fail_fast_gather() for _ in range(len(latencies))]
            figures["gather_side_effects"] = max(leaked)
        return figures

    result: dict[str, Any] = anyio.run(main, backend=backend)
    return result


def main() -> None:
    args = parse_args(__doc__)
    repeats = 12 if args.quick else 60
    per_backend = {backend: measure(backend, repeats) for backend in ("asyncio", "trio")}
    for backend, figures in per_backend.items():
        print(
            f"{backend:8s} "
            + "  ".join(
                f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
            )
        )
    worst = max(per_backend.values(), key=lambda f: f["fanout_overhead_ratio"])
    slowest_cancel = max(per_backend.values(), key=lambda f: f["cancel_latency_ms"])
    emit(
        "pipeline_bench",
        {
            "k": FANOUT,
            "step_ms": STEP_S * 1000,
            "fanout_overhead_ratio": round(worst["fanout_overhead_ratio"], 4),
            "fanout_floor_ratio": round(worst["fanout_floor_ratio"], 4),
            "fanout_vs_floor": round(worst["fanout_vs_floor"], 4),
            "fanout_native_floor_ratio": round(worst["fanout_native_floor_ratio"], 4),
            "cancel_latency_ms": round(slowest_cancel["cancel_latency_ms"], 4),
            "side_effects": max(f["side_effects"] for f in per_backend.values()),
            "gather_side_effects": per_backend["asyncio"]["gather_side_effects"],
            "fail_fast_runs": per_backend["asyncio"]["runs"],
            "siblings_per_run": SIBLINGS,
            "per_backend": {
                backend: {k: round(v, 4) if isinstance(v, float) else v for k, v in f.items()}
                for backend, f in per_backend.items()
            },
            "goals": {
                "fanout_overhead_ratio": 1.05,
                "cancel_latency_ms": 1.0,
                "side_effects": 0,
            },
        },
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
