"""Regression tests of runtime.testing: each pins a defect a user of the helpers hit."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from runtime import InvalidParams, ToolContext, ToolRegistry, config_from_dict
from runtime.testing import (
    FaultPlan,
    RuntimeStateMachine,
    ScriptedTool,
    open_test_runtime,
    params_from_schema,
    params_key,
)
from runtime.tools.schema import compile_schema

CTX = ToolContext("tenant-1")


# -- FaultPlan.fail_at: the given calls fail, the others before them succeed --------------


def test_fail_at_with_another_tail_fails_only_the_given_calls() -> None:
    plan = FaultPlan.fail_at(0, 2, then="hang")
    assert [plan.action_for(k) for k in range(5)] == ["fail", "ok", "fail", "hang", "hang"]
    assert [FaultPlan.fail_at(1, then="fail").action_for(k) for k in range(3)] == [
        "ok",
        "fail",
        "fail",
    ]


# -- params_key: any params the runtime runs a tool with -----------------------------------


def test_params_key_does_not_depend_on_set_iteration_order() -> None:
    first, second = {1, 9}, {9, 1}  # equal sets, iterated in different orders
    assert first == second
    assert repr(first) != repr(second)
    assert params_key({"s": first}) == params_key({"s": second})


@pytest.mark.anyio
async def test_a_scripted_tool_runs_with_keys_of_mixed_types_like_any_tool() -> None:
    # The runtime cannot cache these params (non-string keys), so it bypasses the cache
    # and runs the tool; the fake must run and record the call, not crash.
    tool = ScriptedTool("FAKE", "op")
    registry = ToolRegistry()
    tool.register(registry)
    params: dict[Any, Any] = {1: "a", "b": 2}
    async with open_test_runtime(registry) as runtime:
        result = await runtime.execute_result("FAKE", "op", params, CTX)
    assert result.success, result
    [call] = tool.calls
    assert call.outcome == "ok"
    assert call.key == params_key({"b": 2, 1: "a"})


# -- params_from_schema: bounds that are not whole numbers ----------------------------------

FRACTIONAL = {
    "type": "object",
    "fields": {
        "ratio": {"type": "number", "min": 0.5, "max": 2.5, "required": True},
        "narrow": {"type": "number", "min": 0.25, "max": 0.75},
        "count": {"type": "int", "min": 0.5, "max": 3.5},
    },
}


def accepts(schema: dict[str, Any], value: Any) -> bool:
    try:
        compile_schema(schema).validate(value, "USER", "op")
    except InvalidParams:
        return False
    return True


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_params_from_schema_handles_fractional_bounds(data: st.DataObject) -> None:
    value = data.draw(params_from_schema(FRACTIONAL))
    assert accepts(FRACTIONAL, value), value
    assert not accepts(FRACTIONAL, data.draw(params_from_schema(FRACTIONAL, invalid=True)))


# -- RuntimeStateMachine.advance: as long as asked, whatever call_timeout ----------------------


class LongTtlMachine(RuntimeStateMachine):
    def make_registry(self) -> ToolRegistry:
        self.tool = ScriptedTool("KV", "get")
        registry = ToolRegistry()
        self.tool.register(registry)
        return registry

    def make_config(self) -> Any:
        return config_from_dict({"cache": {"ttl": {"KV": {"get": 86_400.0}}}})

    @rule()
    def noop(self) -> None:
        pass


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_advance_can_pass_a_day_on_virtual_time(backend: str) -> None:
    machine = type("Machine", (LongTtlMachine,), {"backend": backend})()
    try:
        start = machine.now()
        machine.execute("KV", "get", {"k": 1}, "t")
        machine.advance(86_399.0)
        machine.execute("KV", "get", {"k": 1}, "t")  # still cached
        machine.advance(2.0)
        machine.execute("KV", "get", {"k": 1}, "t")  # expired: runs again
        assert machine.now() - start == pytest.approx(86_401.0)
        assert machine.tool.call_count == 2
    finally:
        machine.teardown()
