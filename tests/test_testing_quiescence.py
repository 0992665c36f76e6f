"""assert_quiescent: a runtime at rest passes; leftover waiters, flights and runs are named."""

from __future__ import annotations

import anyio
import pytest

from runtime import Backoff, Pipeline, Step, ToolContext, ToolRegistry, config_from_dict
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
                "1 tool calls started and have not finished: FAKE.op x1",
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


# -- every kind of leftover is seen on its own ------------------------------------------------

UNCACHED = config_from_dict({"cache": {"ttl": {"FAKE": {"op": 0}}}})
NO_CACHE = config_from_dict({"cache": {"enabled": False}})


async def planted_call(tool: ScriptedTool, config: object, *, via: str = "execute") -> list[str]:
    """The violations while one call of ``tool`` hangs in a user task."""
    registry = ToolRegistry()
    tool.register(registry)
    with anyio.fail_after(10):
        async with open_test_runtime(registry, config) as runtime:  # type: ignore[arg-type]
            async with anyio.create_task_group() as group:
                if via == "execute":
                    group.start_soon(
                        runtime.execute_result, tool.tool_type, tool.operation, {}, CTX
                    )
                else:
                    group.start_soon(runtime.execute_best, "NOTIFY", {}, CTX)
                await wait_until(lambda: tool.running == 1)
                problems = await quiescence_violations(runtime)
                group.cancel_scope.cancel()
            assert await quiescence_violations(runtime) == []
    return problems


async def test_an_uncached_call_left_hanging_is_detected() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("hang"))
    assert await planted_call(tool, UNCACHED) == [
        "1 tool calls started and have not finished: FAKE.op x1"
    ]


async def test_a_call_left_hanging_without_any_cache_is_detected() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("hang"))
    assert await planted_call(tool, NO_CACHE) == [
        "1 tool calls started and have not finished: FAKE.op x1"
    ]


async def test_a_side_effects_call_left_hanging_is_detected() -> None:
    tool = ScriptedTool("NOTIFY", "send", FaultPlan.always("hang"), side_effects=True)
    assert await planted_call(tool, None) == [
        "1 tool calls started and have not finished: NOTIFY.send x1"
    ]


async def test_a_cached_call_left_hanging_shows_as_flight_and_call() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("hang"))
    assert await planted_call(tool, None) == [
        "cache single-flight table holds 1 in-flight keys",
        "1 tool calls started and have not finished: FAKE.op x1",
    ]


async def test_a_pipeline_waiting_between_retries_is_detected() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("fail"))
    registry = ToolRegistry()
    tool.register(registry)
    step = Step(
        "only", "FAKE", "op", retries=1, backoff=Backoff(base=3600.0, max=3600.0, jitter=0.0)
    )
    with anyio.fail_after(10):
        async with (
            open_test_runtime(registry, UNCACHED) as runtime,
            anyio.create_task_group() as group,
        ):
            group.start_soon(runtime.compose, Pipeline("retrying", [step]), {}, CTX)
            await wait_until(lambda: tool.call_count == 1 and tool.running == 0)
            problems = await quiescence_violations(runtime)
            group.cancel_scope.cancel()
    assert problems == ["1 pipeline runs are in progress"]


@pytest.mark.virtual_time
async def test_a_mailbox_left_undrained_is_detected() -> None:
    tool = ScriptedTool("FAKE", "op")
    registry = ToolRegistry()
    tool.register(registry)
    lingering = config_from_dict({"selector": {"batch_window": "1h"}})
    async with open_test_runtime(
        registry, lingering, keep_batch_window=True, check_quiescent=False
    ) as runtime:
        for n in range(3):  # the selector lingers an hour after its first batch
            await runtime.execute("FAKE", "op", {"n": n}, CTX)
        problems = await quiescence_violations(runtime)
    assert len(problems) == 1
    assert problems[0].startswith("actor 'selector' has ")
    assert problems[0].endswith(" messages in its mailbox")


@pytest.mark.virtual_time
async def test_the_call_registry_empties_whatever_way_calls_end() -> None:
    plans = {
        "ok": FaultPlan(),
        "fail": FaultPlan.always("fail"),
        "slow": FaultPlan(latency=3600.0),
        "hang": FaultPlan.always("hang"),
    }
    tools = {name: ScriptedTool("FAKE", name, plan) for name, plan in plans.items()}
    registry = ToolRegistry()
    for tool in tools.values():
        tool.register(registry)
    async with open_test_runtime(registry) as runtime:
        for name in ("ok", "ok", "fail"):
            await runtime.execute_result("FAKE", name, {}, CTX)
        await runtime.execute_result("FAKE", "slow", {}, CTX, timeout=60.0)
        await runtime.execute_result("NOPE", "missing", {}, CTX)
        with anyio.move_on_after(60.0):
            await runtime.execute_result("FAKE", "hang", {}, CTX)
        assert runtime.calls_in_flight() == {}
        assert [t.running for t in tools.values()] == [0, 0, 0, 0]
        # (open_test_runtime checks the rest on exit)
