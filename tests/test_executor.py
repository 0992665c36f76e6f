"""The tool model, the registry and the executor: lookup, failures, timeouts, reports."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from runtime.calls import CURRENT_SPAN, CallReport, CallStart, IdGenerator
from runtime.config import ExecutorConfig
from runtime.errors import InvalidParams, ToolExecutionError, ToolNotFound, ToolTimeout
from runtime.executor import YIELD_EVERY, Executor
from runtime.ops.preset import ToolType
from runtime.tools import ToolContext, ToolRegistry, ToolResult

pytestmark = pytest.mark.anyio

CTX = ToolContext(tenant_id="acme", request_id="r-1")


class Recorder:
    def __init__(self) -> None:
        self.started: list[CallStart] = []
        self.finished: list[CallReport] = []

    def call_started(self, start: CallStart) -> None:
        self.started.append(start)

    def call_finished(self, report: CallReport) -> None:
        self.finished.append(report)


class Doubler:
    async def execute(self, ctx: ToolContext, params: Mapping[str, Any]) -> ToolResult:
        return ToolResult.ok(params["n"] * 2, source="doubler")


def make_registry() -> ToolRegistry:
    registry = ToolRegistry()
    registry.register(ToolType.CI, "double", Doubler())

    @registry.tool("CI", "echo")
    async def echo(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        """Return the params."""
        return {"tenant": ctx.tenant_id, **params}

    @registry.tool("CI", "explode")
    async def explode(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        raise KeyError("no such column")

    @registry.tool("CI", "reject")
    async def reject(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        raise InvalidParams("CI", "reject", "limit", "must be <= 100")

    @registry.tool("CI", "soft_fail")
    async def soft_fail(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        return ToolResult.failure("backend said no", "BackendRefused")

    @registry.tool("METRIC", "slow")
    async def slow(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        await anyio.sleep(params.get("seconds", 10))
        return "done"

    @registry.tool("custom-tool", "nested")
    async def nested(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        span = CURRENT_SPAN.get()
        return span.span_id if span is not None else None

    return registry


def test_tool_type_is_a_plain_string_for_builtins() -> None:
    assert ToolType.METRIC == "METRIC"
    assert str(ToolType.GRAPH) == "GRAPH"


def test_context_requires_a_tenant() -> None:
    with pytest.raises(ValueError, match="tenant_id"):
        ToolContext(tenant_id="")
    with pytest.raises(TypeError, match="user_id"):
        ToolContext(tenant_id="a", user_id=3)  # type: ignore[arg-type]


def test_registry_lists_and_refuses_duplicates() -> None:
    registry = make_registry()
    assert registry.operations("CI") == (
        "double",
        "echo",
        "explode",
        "reject",
        "soft_fail",
    )
    assert ("METRIC", "slow") in registry
    assert registry.get("CI", "echo").description == "Return the params."
    with pytest.raises(ValueError, match=r"already registered for \(CI, echo\)"):
        registry.register("CI", "echo", Doubler())
    with pytest.raises(TypeError, match="async"):
        registry.register("CI", "sync", lambda ctx, params: 1)  # type: ignore[arg-type,return-value]


def test_unknown_tool_names_the_pair_and_lists_what_is_registered() -> None:
    registry = make_registry()
    with pytest.raises(ToolNotFound) as caught:
        registry.get("CI", "serch")
    message = str(caught.value)
    assert "(CI, serch)" in message
    assert "double, echo, explode, reject, soft_fail" in message
    with pytest.raises(ToolNotFound, match="no operation is registered for tool 'NOPE'"):
        registry.get("NOPE", "x")


async def test_execute_returns_plain_data_and_toolresult_data_alike() -> None:
    executor = Executor(make_registry())
    assert await executor.execute("CI", "double", {"n": 21}, CTX) == 42
    assert await executor.execute("CI", "echo", {"a": 1}, CTX) == {"tenant": "acme", "a": 1}
    result = await executor.execute_result("CI", "double", {"n": 1}, CTX)
    assert result == ToolResult.ok(2, source="doubler")


async def test_with_every_feature_off_results_equal_a_plain_call() -> None:
    registry = make_registry()
    executor = Executor(registry)
    direct = await Doubler().execute(CTX, {"n": 5})
    assert await executor.execute_result("CI", "double", {"n": 5}, CTX) == direct


async def test_tool_exception_becomes_tool_execution_error_with_the_original_type() -> None:
    executor = Executor(make_registry())
    with pytest.raises(ToolExecutionError) as caught:
        await executor.execute("CI", "explode", {}, CTX)
    assert caught.value.error_type == "KeyError"
    assert caught.value.tool_type == "CI"
    assert caught.value.operation == "explode"
    assert isinstance(caught.value.__cause__, KeyError)
    result = await executor.execute_result("CI", "explode", {}, CTX)
    assert not result.success
    assert result.error_type == "KeyError"


async def test_failed_results_raise_with_their_declared_type() -> None:
    executor = Executor(make_registry())
    with pytest.raises(ToolExecutionError, match="BackendRefused: backend said no"):
        await executor.execute("CI", "soft_fail", {}, CTX)


async def test_invalid_params_are_raised_as_they_were() -> None:
    executor = Executor(make_registry())
    with pytest.raises(InvalidParams) as caught:
        await executor.execute("CI", "reject", {"limit": 1000}, CTX)
    assert caught.value.param == "limit"
    assert "'limit'" in str(caught.value)


async def test_unknown_tool_through_the_executor() -> None:
    executor = Executor(make_registry())
    with pytest.raises(ToolNotFound, match=r"\(GRAPH, expand\)"):
        await executor.execute("GRAPH", "expand", {}, CTX)
    result = await executor.execute_result("GRAPH", "expand", {}, CTX)
    assert result.error_type == "ToolNotFound"


async def test_bad_arguments_are_type_errors_naming_the_problem() -> None:
    executor = Executor(make_registry())
    with pytest.raises(TypeError, match=r"params for CI\.echo must be a mapping"):
        await executor.execute("CI", "echo", [1, 2], CTX)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="context must be a ToolContext"):
        await executor.execute("CI", "echo", {}, "acme")  # type: ignore[arg-type]


@pytest.mark.virtual_time
async def test_timeout_from_config_raises_tool_timeout_and_the_executor_keeps_serving() -> None:
    config = ExecutorConfig(default_timeout=30.0, timeouts={"METRIC": {"slow": 2.0}})
    recorder = Recorder()
    executor = Executor(make_registry(), config, observers=[recorder])
    started = anyio.current_time()
    with anyio.fail_after(100):
        with pytest.raises(ToolTimeout) as caught:
            await executor.execute("METRIC", "slow", {"seconds": 10}, CTX)
        assert anyio.current_time() - started == pytest.approx(2.0)
        assert caught.value.timeout == 2.0
        assert await executor.execute("METRIC", "slow", {"seconds": 1}, CTX) == "done"
        # An explicit timeout wins over the configured one.
        with pytest.raises(ToolTimeout):
            await executor.execute("METRIC", "slow", {"seconds": 1}, CTX, timeout=0.5)
    assert [r.status for r in recorder.finished] == ["timeout", "ok", "timeout"]
    assert recorder.finished[0].duration_s == pytest.approx(2.0)


@pytest.mark.virtual_time
async def test_reports_cover_ok_error_and_cancelled_calls() -> None:
    recorder = Recorder()
    executor = Executor(make_registry(), observers=[recorder], ids=IdGenerator(seed="s"))
    await executor.execute_result("CI", "double", {"n": 2}, CTX)
    await executor.execute_result("CI", "explode", {}, CTX)
    with anyio.move_on_after(1.5):
        await executor.execute("METRIC", "slow", {"seconds": 5}, CTX)
    assert [(s.tool_type, s.operation) for s in recorder.started] == [
        ("CI", "double"),
        ("CI", "explode"),
        ("METRIC", "slow"),
    ]
    ok, error, cancelled = recorder.finished
    assert (ok.status, ok.data, ok.tenant_id, ok.kind) == ("ok", 4, "acme", "tool_call")
    assert (error.status, error.error_type) == ("error", "KeyError")
    assert cancelled.status == "cancelled"
    assert cancelled.duration_s == pytest.approx(1.5)
    assert len({r.span_id for r in recorder.finished}) == 3
    assert all(r.span_id.startswith("s-") for r in recorder.finished)


async def test_calls_inside_a_span_are_parented_and_tools_see_their_own_span() -> None:
    recorder = Recorder()
    executor = Executor(make_registry(), observers=[recorder])
    seen_span = await executor.execute("custom-tool", "nested", {}, CTX)
    report = recorder.finished[-1]
    assert seen_span == report.span_id
    assert report.parent_span_id is None
    assert CURRENT_SPAN.get() is None

    with_trace = ToolContext(tenant_id="acme", trace_id="trace-from-caller")
    await executor.execute("CI", "double", {"n": 1}, with_trace)
    assert recorder.finished[-1].trace_id == "trace-from-caller"


def test_id_generator_never_repeats_and_is_replayable_with_a_seed() -> None:
    ids = IdGenerator()
    many = {ids.span_id() for _ in range(10_000)}
    assert len(many) == 10_000
    first, second = IdGenerator(seed="x"), IdGenerator(seed="x")
    assert [first.span_id() for _ in range(3)] == [second.span_id() for _ in range(3)]


async def test_a_loop_of_calls_that_never_await_still_lets_other_tasks_run() -> None:
    # Cooperative budget: one call in YIELD_EVERY yields to the scheduler, the others
    # only check for cancellation -- so a hot loop neither starves the other tasks nor
    # pays a scheduler pass on every call.
    executor = Executor(make_registry())
    turns = 0

    async def other_task() -> None:
        nonlocal turns
        while True:
            turns += 1
            await anyio.lowlevel.checkpoint()

    calls = 10 * YIELD_EVERY
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(other_task)
        await anyio.lowlevel.checkpoint()  # let it start
        before = turns
        for _ in range(calls):
            assert await executor.execute("CI", "double", {"n": 2}, CTX) == 4
        ran = turns - before
        tasks.cancel_scope.cancel()
    assert calls // YIELD_EVERY - 1 <= ran <= calls // YIELD_EVERY + 1


async def test_a_cancelled_caller_is_stopped_at_the_call_even_if_nothing_would_yield() -> None:
    recorder = Recorder()
    executor = Executor(make_registry(), observers=[recorder])
    reached_after = False
    with anyio.CancelScope() as scope:
        scope.cancel()
        await executor.execute("CI", "double", {"n": 2}, CTX)
        reached_after = True
    assert scope.cancelled_caught
    assert not reached_after
    assert recorder.started == []
    assert recorder.finished == []
    assert await executor.execute("CI", "double", {"n": 2}, CTX) == 4  # and it still serves


class ScriptedCache:
    """A ResultCache whose answers the test decides: a hit, or a miss with a token."""

    def __init__(self, hit: ToolResult | None) -> None:
        self.hit = hit
        self.missed_with: list[object] = []

    def cached(self, spec: Any, params: Mapping[str, Any], context: ToolContext) -> Any:
        return self.hit if self.hit is not None else ("token", spec.operation, dict(params))

    async def fetch_missed(self, missed: object, compute: Any) -> tuple[ToolResult, str]:
        self.missed_with.append(missed)
        return await compute(), "miss"


async def test_a_hit_is_answered_from_cached_without_running_or_fetching() -> None:
    recorder = Recorder()
    cache = ScriptedCache(ToolResult.ok({"from": "memory"}))
    executor = Executor(make_registry(), cache=cache, observers=[recorder])
    assert await executor.execute("CI", "double", {"n": 2}, CTX) == {"from": "memory"}
    assert cache.missed_with == []
    assert recorder.started == []  # the tool never started
    (report,) = recorder.finished
    assert (report.cache_hit, report.executed, report.metadata) == (True, False, {"cache": "hit"})


async def test_a_miss_hands_the_caches_own_token_to_fetch_missed_and_runs_the_tool() -> None:
    recorder = Recorder()
    cache = ScriptedCache(None)
    executor = Executor(make_registry(), cache=cache, observers=[recorder])
    assert await executor.execute("CI", "double", {"n": 2}, CTX) == 4
    assert cache.missed_with == [("token", "double", {"n": 2})]
    (report,) = recorder.finished
    assert (report.cache_hit, report.executed, report.metadata) == (False, True, {"cache": "miss"})
