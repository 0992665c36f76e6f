"""assert_quiescent: a runtime at rest passes; leftover waiters, flights and runs are named."""

from __future__ import annotations

import anyio
import pytest

from runtime import Pipeline, Step, ToolContext, ToolRegistry
from runtime.testing import (
    FaultPlan,
    ScriptedTool,
    assert_quiescent,
    open_test_runtime,
    quiescence_violations,
)

pytestmark = pytest.mark.anyio

CTX = ToolContext("tenant-1")


async def wait_until(predicate, *, limit: int = 1000) -> None:  # type: ignore[no-untyped-def]
    for _ in range(limit):
        if predicate():
            return
        await anyio.sleep(0.001)
    raise AssertionError("condition never became true")


async def test_a_fresh_and_a_used_runtime_are_quiescent() -> None:
    tool = ScriptedTool("FAKE", "op")
    registry = ToolRegistry()
    tool.register(registry)
    with anyio.fail_after(10):
        async with open_test_runtime(registry) as runtime:
            await assert_quiescent(runtime)
            for n in range(20):
                await runtime.execute("FAKE", "op", {"n": n % 3}, CTX)
            assert await quiescence_violations(runtime) == []
            await assert_quiescent(runtime)


async def test_a_waiting_follower_and_its_flight_are_detected() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("hang"))
    registry = ToolRegistry()
    tool.register(registry)
    with anyio.fail_after(10):
        async with open_test_runtime(registry, check_quiescent=False) as runtime:
            async with anyio.create_task_group() as group:
                group.start_soon(runtime.execute_result, "FAKE", "op", {}, CTX)
                await wait_until(lambda: tool.running == 1)
                group.start_soon(runtime.execute_result, "FAKE", "op", {}, CTX)
                await wait_until(lambda: runtime.health().actors["cache"].deferred_replies == 1)
                with pytest.raises(AssertionError) as caught:
                    await assert_quiescent(runtime)
                group.cancel_scope.cancel()
            message = str(caught.value)
            assert "deferred replies" in message
            assert "1 in-flight keys" in message
            assert "1 followers waiting" in message
            # Cancelling both callers hands everything back: at rest again.
            await assert_quiescent(runtime)
    assert tool.running == 0


async def test_a_running_pipeline_is_detected() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("hang"))
    registry = ToolRegistry()
    tool.register(registry)
    pipeline = Pipeline("stuck", [Step("only", "FAKE", "op")])
    with anyio.fail_after(10):
        async with open_test_runtime(registry) as runtime:
            async with anyio.create_task_group() as group:
                group.start_soon(runtime.compose, pipeline, {}, CTX)
                await wait_until(lambda: tool.running == 1)
                problems = await quiescence_violations(runtime)
                group.cancel_scope.cancel()
            assert problems == [
                "cache single-flight table holds 1 in-flight keys",
                "1 pipeline runs are in progress",
            ]


async def test_open_test_runtime_checks_quiescence_on_exit() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("hang"))
    registry = ToolRegistry()
    tool.register(registry)
    caught: AssertionError | None = None
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            try:
                async with open_test_runtime(registry) as runtime:
                    group.start_soon(runtime.execute_result, "FAKE", "op", {}, CTX)
                    await wait_until(lambda: tool.running == 1)
            except AssertionError as error:
                caught = error
            group.cancel_scope.cancel()
    assert caught is not None
    assert "runtime is not quiescent" in str(caught)
    assert "1 in-flight keys" in str(caught)
