"""runtime.testing against its anchors, all measured in this run.

Figures (goals from issue 23):

- ``stateful_trio_vs_asyncio`` -- wall time per step of one stateful test
  (:class:`~runtime.testing.RuntimeStateMachine`: cached reads, side-effect writes,
  invalidations, virtual time), hypothesis derandomized so both backends run the same
  steps, trio / asyncio, median of alternating rounds (goal <= 1.5).
  ``stateful_ms_per_step_<backend>`` are the medians.
- ``portal_call_us_trio_virtual`` -- a call through the stateful base's portal
  (``RuntimeStateMachine.run``: virtual time, ``fail_after``) on trio, beside
  ``portal_call_us_bare_trio`` -- a bare ``start_blocking_portal("trio")`` call on the real
  clock; ``portal_virtual_vs_bare_trio`` is their ratio (goal <= 1.5).  Between calls the
  calling thread does a little Python work, as a rule does.  The same for asyncio, and
  ``portal_call_us_trio_autojump0`` -- the old set-up (``MockClock(autojump_threshold=0)``
  for the portal's whole life) -- for the record.
- ``quiescence_kinds_detected`` of ``quiescence_kinds_total`` -- leftovers planted one
  kind at a time (a hanging call: uncached, without a cache, with side effects, cached
  leader, waiting follower; a pipeline between retries; an undrained mailbox), counted
  when ``quiescence_violations`` reports them (goal: all).

    python benchmarks/testing_bench.py [--quick]
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import anyio
from _common import run_measurements
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule, run_state_machine_as_test
from trio.testing import MockClock

from runtime import Backoff, Pipeline, RuntimeConfig, Step, ToolContext, ToolRegistry
from runtime import config_from_dict as config
from runtime.testing import (
    FaultPlan,
    RuntimeStateMachine,
    ScriptedTool,
    open_test_runtime,
    quiescence_violations,
    virtual_time_backend_options,
)

Figures = dict[str, Any]
BACKENDS = ("trio", "asyncio")
CTX = ToolContext("bench")


# -- stateful steps per backend --------------------------------------------------------------


class BenchMachine(RuntimeStateMachine):
    steps: ClassVar[int] = 0

    def make_registry(self) -> ToolRegistry:
        self.reader = ScriptedTool("KV", "get", FaultPlan(fail_probability=0.1, seed=1))
        self.writer = ScriptedTool("KV", "write", side_effects=True)
        registry = ToolRegistry()
        self.reader.register(registry)
        self.writer.register(registry)
        return registry

    def make_config(self) -> RuntimeConfig:
        return config({"cache": {"ttl": {"KV": {"get": 10.0}}}})

    @rule(k=st.integers(0, 3), tenant=st.sampled_from(["a", "b"]))
    def read(self, k: int, tenant: str) -> None:
        type(self).steps += 1
        self.execute_result("KV", "get", {"k": k}, tenant)

    @rule(k=st.integers(0, 3))
    def write(self, k: int) -> None:
        type(self).steps += 1
        self.execute("KV", "write", {"k": k}, "a")

    @rule(k=st.integers(0, 3))
    def invalidate(self, k: int) -> None:
        type(self).steps += 1
        assert self.runtime.cache is not None
        self.run(self.runtime.cache.invalidate, "KV", "get", {"k": k}, CTX)

    @rule(seconds=st.sampled_from([1.0, 5.0, 11.0]))
    def wait(self, seconds: float) -> None:
        type(self).steps += 1
        self.advance(seconds)


def _stateful_round(backend: str, examples: int, steps: int) -> tuple[float, int]:
    machine = type(f"Bench_{backend}", (BenchMachine,), {"backend": backend, "steps": 0})
    started = time.perf_counter()
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=examples,
            stateful_step_count=steps,
            derandomize=True,
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        ),
    )
    return time.perf_counter() - started, machine.steps


def measure_stateful(quick: bool) -> Figures:
    examples, steps, rounds = (8, 20, 3) if quick else (25, 25, 5)
    per_step: dict[str, list[float]] = {backend: [] for backend in BACKENDS}
    counted: dict[str, int] = {}
    ratios = []
    for round_ in range(rounds):
        order = BACKENDS if round_ % 2 == 0 else BACKENDS[::-1]
        this_round = {}
        for backend in order:
            elapsed, ran = _stateful_round(backend, examples, steps)
            this_round[backend] = elapsed / max(ran, 1)
            counted[backend] = ran
            per_step[backend].append(this_round[backend] * 1e3)
        ratios.append(this_round["trio"] / this_round["asyncio"])
    figures: Figures = {
        f"stateful_ms_per_step_{backend}": round(statistics.median(values), 3)
        for backend, values in per_step.items()
    }
    figures["stateful_steps_per_round"] = counted["trio"]
    figures["stateful_same_steps"] = counted["trio"] == counted["asyncio"]
    figures["stateful_trio_vs_asyncio"] = round(statistics.median(ratios), 3)
    return figures


# -- portal round trips ----------------------------------------------------------------------


async def _nothing() -> int:
    return 1


def _rule_work() -> int:
    total = 0
    for i in range(300):  # ~10-20 us of Python, as a rule's bookkeeping
        total += i * i
    return total


def _calls_us(call: Callable[[], Any], calls: int) -> float:
    for _ in range(50):
        call()
    started = time.perf_counter()
    for _ in range(calls):
        call()
        _rule_work()
    return (time.perf_counter() - started) / calls * 1e6


class _PortalMachine(RuntimeStateMachine):
    def make_registry(self) -> ToolRegistry:
        return ToolRegistry()

    @rule()
    def nothing(self) -> None:
        """Never run: the benchmark calls ``run`` directly."""


def _kit_portal_us(backend: str, calls: int) -> float:
    machine = type("Machine", (_PortalMachine,), {"backend": backend})()
    try:
        return _calls_us(lambda: machine.run(_nothing), calls)
    finally:
        machine.teardown()


def _bare_portal_us(backend: str, options: dict[str, Any], calls: int) -> float:
    with start_blocking_portal(backend, options) as portal:
        return _calls_us(lambda: portal.call(_nothing), calls)


def measure_portal(quick: bool) -> Figures:
    calls, rounds = (500, 5) if quick else (3000, 7)
    samples: dict[str, list[float]] = {}
    variants: dict[str, Callable[[], float]] = {
        "portal_call_us_bare_trio": lambda: _bare_portal_us("trio", {}, calls),
        "portal_call_us_trio_virtual": lambda: _kit_portal_us("trio", calls),
        "portal_call_us_trio_autojump0": lambda: _bare_portal_us(
            "trio", {"clock": MockClock(autojump_threshold=0)}, calls
        ),
        "portal_call_us_bare_asyncio": lambda: _bare_portal_us("asyncio", {}, calls),
        "portal_call_us_asyncio_virtual": lambda: _kit_portal_us("asyncio", calls),
    }
    ratios = []
    for _ in range(rounds):
        this_round = {name: measure() for name, measure in variants.items()}
        for name, value in this_round.items():
            samples.setdefault(name, []).append(value)
        bare = this_round["portal_call_us_bare_trio"]
        ratios.append(this_round["portal_call_us_trio_virtual"] / bare)
    figures: Figures = {name: round(statistics.median(v), 1) for name, v in samples.items()}
    figures["portal_virtual_vs_bare_trio"] = round(statistics.median(ratios), 3)
    return figures


# -- quiescence: one planted leftover per kind -------------------------------------------------

UNCACHED = {"cache": {"ttl": {"FAKE": {"op": 0}}}}


async def _hanging_call(
    tool: ScriptedTool, settings_: dict[str, Any], followers: int = 0
) -> list[str]:
    registry = ToolRegistry()
    tool.register(registry)
    runtime = open_test_runtime(registry, config(settings_), check_quiescent=False)
    async with runtime as rt, anyio.create_task_group() as group:
        for _ in range(1 + followers):
            group.start_soon(rt.execute_result, tool.tool_type, tool.operation, {}, CTX)
        await anyio.sleep(1.0)  # virtual: everyone is waiting by now
        problems = await quiescence_violations(rt)
        group.cancel_scope.cancel()
    return problems


async def _pipeline_between_retries() -> list[str]:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("fail"))
    registry = ToolRegistry()
    tool.register(registry)
    step = Step("s", "FAKE", "op", retries=1, backoff=Backoff(base=3600, max=3600, jitter=0))
    runtime = open_test_runtime(registry, config(UNCACHED), check_quiescent=False)
    async with runtime as rt, anyio.create_task_group() as group:
        group.start_soon(rt.compose, Pipeline("p", [step]), {}, CTX)
        await anyio.sleep(1.0)
        problems = await quiescence_violations(rt)
        group.cancel_scope.cancel()
    return problems


async def _undrained_mailbox() -> list[str]:
    tool = ScriptedTool("FAKE", "op")
    registry = ToolRegistry()
    tool.register(registry)
    lingering = config({"selector": {"batch_window": "1h"}})
    async with open_test_runtime(
        registry, lingering, keep_batch_window=True, check_quiescent=False
    ) as rt:
        for n in range(3):
            await rt.execute("FAKE", "op", {"n": n}, CTX)
        return await quiescence_violations(rt)


def _hang(tool_type: str = "FAKE", operation: str = "op", **options: Any) -> ScriptedTool:
    return ScriptedTool(tool_type, operation, FaultPlan.always("hang"), **options)


KINDS: dict[str, tuple[Callable[[], Awaitable[list[str]]], str]] = {
    "call_uncached": (lambda: _hanging_call(_hang(), UNCACHED), "FAKE.op x1"),
    "call_no_cache": (
        lambda: _hanging_call(_hang(), {"cache": {"enabled": False}}),
        "FAKE.op x1",
    ),
    "call_side_effects": (
        lambda: _hanging_call(_hang("NOTIFY", "send", side_effects=True), {}),
        "NOTIFY.send x1",
    ),
    "cached_leader": (lambda: _hanging_call(_hang(), {}), "single-flight table holds 1"),
    "waiting_follower": (lambda: _hanging_call(_hang(), {}, followers=1), "followers waiting"),
    "pipeline_run": (_pipeline_between_retries, "pipeline runs are in progress"),
    "mailbox": (_undrained_mailbox, "messages in its mailbox"),
}


def measure_quiescence(quick: bool) -> Figures:
    detected: dict[str, bool] = {}
    for backend in BACKENDS:
        options = virtual_time_backend_options(backend)
        for kind, (plant, needle) in KINDS.items():
            problems = anyio.run(plant, backend=backend, backend_options=options)
            seen = any(needle in problem for problem in problems)
            detected[kind] = detected.get(kind, True) and seen
    figures: Figures = {f"quiescence_{kind}": seen for kind, seen in detected.items()}
    figures["quiescence_kinds_detected"] = sum(detected.values())
    figures["quiescence_kinds_total"] = len(KINDS)
    return figures


MEASUREMENTS = (measure_quiescence, measure_portal, measure_stateful)


def main(argv: list[str] | None = None) -> None:
    run_measurements("testing_bench", MEASUREMENTS, __doc__, argv)


if __name__ == "__main__":
    main()
