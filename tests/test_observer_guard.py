"""Extra observers given to open_runtime are not the runtime's own: one that raises must
not fail the call it watches, nor keep the observers after it from hearing of it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.calls import CallReport, CallStart, GuardedObserver

pytestmark = pytest.mark.anyio

CTX = ToolContext("acme")


class FlakyExporter:
    """A user's observer (open_runtime(observers=...)) whose backend is down."""

    def call_started(self, start: CallStart) -> None:
        pass

    def call_finished(self, report: CallReport) -> None:
        raise ConnectionError("metrics backend unreachable")


class Recorder:
    observes_starts = False

    def __init__(self) -> None:
        self.finished: list[CallReport] = []

    def call_started(self, start: CallStart) -> None:
        raise AssertionError("observes_starts is false: never told of starts")

    def call_finished(self, report: CallReport) -> None:
        self.finished.append(report)


def registry() -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool("AUDIT", "ok")
    async def ok(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        return {"n": params.get("n", 0)}

    @reg.tool("AUDIT", "slow")
    async def slow(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        await anyio.sleep(60)
        return None

    return reg


async def test_a_failing_observer_neither_fails_the_call_nor_starves_the_others() -> None:
    flaky, recorder = FlakyExporter(), Recorder()
    with anyio.fail_after(10):
        async with open_runtime(registry(), observers=(flaky, recorder)) as rt:
            answer = await rt.execute("AUDIT", "ok", {"n": 7}, CTX)
            assert answer == {"n": 7}
            await rt.execute("AUDIT", "ok", {"n": 8}, CTX)
            guards = [o for o in rt.executor.observers if isinstance(o, GuardedObserver)]
    # The observer after the failing one heard of both calls.
    assert [r.status for r in recorder.finished] == ["ok", "ok"]
    assert [g.observer for g in guards] == [flaky, recorder]
    assert (guards[0].failures, guards[1].failures) == (2, 0)


async def test_a_failing_observer_does_not_replace_a_cancellation() -> None:
    recorder = Recorder()
    with anyio.fail_after(10):
        async with open_runtime(registry(), observers=(FlakyExporter(), recorder)) as rt:
            with anyio.move_on_after(0.5) as scope:
                await rt.execute("AUDIT", "slow", {}, CTX)
    assert scope.cancelled_caught
    assert [r.status for r in recorder.finished] == ["cancelled"]


def test_a_sizing_observer_that_fails_sizes_nothing() -> None:
    class BrokenSizer(Recorder):
        def size_result(self, tool_type: str, operation: str, data: Any) -> Any:
            raise ValueError("cannot size")

    guard = GuardedObserver(BrokenSizer())
    assert guard.size_result("CI", "get", {"rows": [1]}) == (None, None, False)
    assert guard.failures == 1
    assert getattr(GuardedObserver(Recorder()), "size_result", None) is None
