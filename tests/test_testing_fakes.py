"""Unit tests of the fake tools: plans, call records, each action, via a real runtime."""

from __future__ import annotations

import pickle

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import (
    InvalidParams,
    ToolContext,
    ToolExecutionError,
    ToolRegistry,
    ToolTimeout,
    config_from_dict,
)
from runtime.testing import (
    ACTIONS,
    FaultPlan,
    ScriptedFailure,
    ScriptedTool,
    Unserialisable,
    echo_result,
    fault_plans,
    open_test_runtime,
    params_key,
)

pytestmark = pytest.mark.anyio

CTX = ToolContext("tenant-1", request_id="r1")


# -- the plan (pure) ---------------------------------------------------------------------


def test_fail_at_fails_exactly_the_given_calls() -> None:
    plan = FaultPlan.fail_at(1, 3)
    assert [plan.action_for(k) for k in range(6)] == ["ok", "fail", "ok", "fail", "ok", "ok"]


def test_script_then_tail_and_latencies() -> None:
    plan = FaultPlan(script=("hang", "huge"), then="invalid", latency=2.0, latencies=(0.5,))
    assert [plan.action_for(k) for k in range(4)] == ["hang", "huge", "invalid", "invalid"]
    assert [plan.latency_for(k) for k in range(3)] == [0.5, 2.0, 2.0]


@given(plan=fault_plans(), index=st.integers(0, 50), key=st.text(max_size=5))
def test_decisions_are_pure(plan: FaultPlan, index: int, key: str) -> None:
    assert plan.action_for(index, key) == plan.action_for(index, key)
    assert plan.action_for(index, key) in ACTIONS


def test_fail_probability_is_seeded_and_roughly_right() -> None:
    plan = FaultPlan(fail_probability=0.3, seed=11)
    draws = [plan.action_for(k, "key") for k in range(1000)]
    assert 200 < draws.count("fail") < 400
    assert set(draws) == {"ok", "fail"}
    assert FaultPlan(fail_probability=0.3, seed=12) != plan
    assert draws != [
        FaultPlan(fail_probability=0.3, seed=12).action_for(k, "key") for k in range(1000)
    ]
    assert all(FaultPlan(fail_probability=1.0).action_for(k) == "fail" for k in range(20))


@pytest.mark.parametrize(
    "bad",
    [
        {"script": ("explode",)},
        {"then": "nope"},
        {"fail_probability": 1.5},
        {"latency": -1.0},
        {"latencies": (0.1, -0.1)},
    ],
)
def test_invalid_plans_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=r"FaultPlan\."):
        FaultPlan(**bad)  # type: ignore[arg-type]


def test_params_key_ignores_key_order() -> None:
    assert params_key({"a": 1, "b": [1, 2]}) == params_key({"b": [1, 2], "a": 1})
    assert params_key({"a": 1}) != params_key({"a": 2})


# -- the tool, under a runtime -----------------------------------------------------------------


def registry_with(*tools: ScriptedTool) -> ToolRegistry:
    registry = ToolRegistry()
    for tool in tools:
        tool.register(registry)
    return registry


@pytest.mark.virtual_time
async def test_calls_are_recorded_with_virtual_start_and_end_times() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan(latency=2.5))
    with anyio.fail_after(60):
        async with open_test_runtime(registry_with(tool)) as runtime:
            start = anyio.current_time()
            data = await runtime.execute("FAKE", "op", {"x": 1}, CTX)
            again = await runtime.execute("FAKE", "op", {"x": 1}, CTX)  # a cache hit
    assert data == again == echo_result("FAKE", "op", CTX, {"x": 1})
    assert data["tenant"] == "tenant-1"
    [call] = tool.calls
    assert call.params == {"x": 1}
    assert call.context == CTX
    assert call.outcome == "ok"
    assert call.started_at == pytest.approx(start)
    assert call.ended_at == pytest.approx(start + 2.5)
    assert tool.running == 0


@pytest.mark.virtual_time
async def test_a_scripted_failure_reaches_the_caller_and_is_recorded() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.fail_at(0))
    async with open_test_runtime(registry_with(tool)) as runtime:
        with pytest.raises(ToolExecutionError) as caught:
            await runtime.execute("FAKE", "op", {}, CTX)
        assert isinstance(caught.value.__cause__, ScriptedFailure)
        assert await runtime.execute("FAKE", "op", {}, CTX) == echo_result("FAKE", "op", CTX, {})
    assert [(c.index, c.action, c.outcome) for c in tool.calls] == [
        (0, "fail", "error"),
        (1, "ok", "ok"),
    ]
    assert isinstance(tool.calls[0].error, ScriptedFailure)


@pytest.mark.virtual_time
async def test_invalid_raises_invalid_params() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("invalid"))
    async with open_test_runtime(registry_with(tool)) as runtime:
        with pytest.raises(InvalidParams):
            await runtime.execute("FAKE", "op", {}, CTX)


@pytest.mark.virtual_time
async def test_a_hang_lasts_until_cancelled() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("hang", latency=1.0))
    async with open_test_runtime(registry_with(tool)) as runtime:
        start = anyio.current_time()
        with pytest.raises(ToolTimeout):
            await runtime.execute("FAKE", "op", {}, CTX, timeout=7.0)
    [call] = tool.calls
    assert call.outcome == "cancelled"
    assert call.ended_at is not None
    assert call.ended_at - start == pytest.approx(7.0)


@pytest.mark.virtual_time
async def test_huge_answers_carry_the_padding() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("huge", huge_size=123_456))
    async with open_test_runtime(registry_with(tool)) as runtime:
        data = await runtime.execute("FAKE", "op", {"q": 1}, CTX)
        assert runtime.cache is not None
        stats = (await runtime.cache.stats()).snapshot.store
    assert len(data["padding"]) == 123_456
    assert data["result"] == echo_result("FAKE", "op", CTX, {"q": 1})
    assert stats.bytes_used > 123_456  # it was stored


@pytest.mark.virtual_time
async def test_unserialisable_answers_are_answered_but_never_cached() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.always("unserialisable"))
    async with open_test_runtime(registry_with(tool)) as runtime:
        first = await runtime.execute("FAKE", "op", {"q": 1}, CTX)
        second = await runtime.execute("FAKE", "op", {"q": 1}, CTX)
        assert runtime.cache is not None
        counters = (await runtime.cache.stats()).snapshot.store.by_operation[("FAKE", "op")]
    assert isinstance(first, Unserialisable)
    assert first == second
    assert tool.call_count == 2  # no hit: it could not be stored
    # Each call led its own lookup (a miss, executed) and stored nothing.
    assert (counters.misses, counters.fills, counters.hits) == (2, 0, 0)
    assert counters.misses - counters.coalesced + counters.bypasses == tool.call_count
    with pytest.raises(TypeError):
        pickle.dumps(first)


async def test_index_by_params_numbers_each_params_separately() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan.fail_at(1), index_by="params")
    config = config_from_dict({"cache": {"enabled": False}})
    async with open_test_runtime(registry_with(tool), config) as runtime:
        for params in ({"p": 1}, {"p": 2}, {"p": 1}, {"p": 2}):
            await runtime.execute_result("FAKE", "op", params, CTX)
    assert [(c.params["p"], c.index, c.action) for c in tool.calls] == [
        (1, 0, "ok"),
        (2, 0, "ok"),
        (1, 1, "fail"),
        (2, 1, "fail"),
    ]
    assert tool.next_index({"p": 1}) == 2
    tool.reset()
    assert tool.calls == ()
    assert tool.next_index({"p": 1}) == 0


def test_data_for_predicts_the_answers() -> None:
    tool = ScriptedTool("FAKE", "op", FaultPlan(huge_size=10))
    assert tool.data_for("ok", CTX, {"a": 1}) == echo_result("FAKE", "op", CTX, {"a": 1})
    assert tool.data_for("huge", CTX, {"a": 1})["padding"] == "x" * 10
    assert tool.data_for("unserialisable", CTX, {"a": 1}) == tool.data_for(
        "unserialisable", CTX, {"a": 1}
    )


def test_a_side_effect_tool_registers_as_such() -> None:
    tool = ScriptedTool("FAKE", "write", side_effects=True)
    spec = tool.register(ToolRegistry())
    assert spec.side_effects
    assert spec.tool is tool
