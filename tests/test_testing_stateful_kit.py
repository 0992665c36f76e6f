"""RuntimeStateMachine's machinery: time that moves only when asked, one snapshot per step,
and the idle invariants catching what is left behind."""

from __future__ import annotations

import threading
import time
from typing import Any

import anyio
import pytest
from hypothesis import settings
from hypothesis.stateful import rule, run_state_machine_as_test

from runtime import ToolContext, ToolRegistry
from runtime.testing import FaultPlan, PortalTime, RuntimeStateMachine, ScriptedTool

BACKENDS = ["asyncio", "trio"]


class HangMachine(RuntimeStateMachine):
    def make_registry(self) -> ToolRegistry:
        self.ok = ScriptedTool("KV", "get")
        self.hang = ScriptedTool("NOTIFY", "send", FaultPlan.always("hang"), side_effects=True)
        registry = ToolRegistry()
        self.ok.register(registry)
        self.hang.register(registry)
        return registry

    @rule()
    def read(self) -> None:
        self.execute("KV", "get", {"k": 1}, "t")


def machine_on(backend: str, base: type[RuntimeStateMachine] = HangMachine) -> Any:
    return type("Machine", (base,), {"backend": backend})()


@pytest.mark.parametrize("backend", BACKENDS)
def test_virtual_time_stands_still_between_calls(backend: str) -> None:
    machine = machine_on(backend)
    try:
        # A timer pending in the loop (a slow call in the background) must not be jumped
        # to while the test's own thread is busy between two calls.
        machine.portal.start_task_soon(anyio.sleep, 50.0)
        before = machine.now()
        time.sleep(0.05)  # real time passes in the test thread; virtual time must not
        assert machine.now() == before
        machine.advance(10.0)
        assert machine.now() == pytest.approx(before + 10.0)
        # and inside a call it runs: a 30 s tool latency takes no real time
        machine.run(anyio.sleep, 30.0)
        assert machine.now() == pytest.approx(before + 40.0)
    finally:
        machine.teardown()


@pytest.mark.parametrize("backend", BACKENDS)
def test_portal_time_lets_overlapping_calls_keep_time_moving(backend: str) -> None:
    machine = machine_on(backend)
    try:
        done = threading.Event()

        def long_call() -> None:
            machine.run(anyio.sleep, 100.0)
            done.set()

        worker = threading.Thread(target=long_call)
        worker.start()
        machine.run(anyio.sleep, 1.0)  # ends first; the other call must still finish
        worker.join(timeout=10)
        assert done.is_set()
    finally:
        machine.teardown()


def test_portal_time_refuses_an_unknown_backend() -> None:
    with pytest.raises(ValueError, match="curio"):
        PortalTime("curio")


class LeakyMachine(HangMachine):
    @rule()
    def leave_a_side_effect_call_hanging(self) -> None:
        self.portal.start_task_soon(
            self.runtime.execute_result, "NOTIFY", "send", {}, ToolContext("t")
        )
        self.run(anyio.sleep, 1.0)  # let it start


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_call_left_in_flight_fails_the_idle_invariants(backend: str) -> None:
    with pytest.raises(AssertionError, match=r"tool calls started and not finished.*NOTIFY\.send"):
        run_state_machine_as_test(
            lambda: machine_on(backend, LeakyMachine),
            settings=settings(max_examples=3, stateful_step_count=2, deadline=None, database=None),
        )


class CountingMachine(HangMachine):
    snapshots = 0

    async def _take_snapshot(self) -> Any:
        type(self).snapshots += 1
        return await super()._take_snapshot()


def test_the_idle_invariants_share_one_snapshot_per_step() -> None:
    CountingMachine.snapshots = 0
    steps = 5
    run_state_machine_as_test(
        lambda: machine_on("trio", CountingMachine),
        settings=settings(max_examples=1, stateful_step_count=steps, deadline=None, database=None),
    )
    # once after __init__ and once per step, however many invariants read it
    assert CountingMachine.snapshots <= steps + 1
