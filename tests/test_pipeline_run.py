"""Running pipelines: fan-out, error policies, retries, timeouts, cancellation, tracing.

A small fake :class:`~runtime.pipeline.run.StepExecutor` runs registered async functions
the way the real executor does (timeout -> ``ToolTimeout``, a tool-call span parented
under ``CURRENT_SPAN``, one report per call), so the pipeline is tested on its own.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import pytest

from runtime.calls import CURRENT_SPAN, CallReport, IdGenerator, SpanRef
from runtime.errors import (
    InvalidParams,
    PipelineError,
    ToolExecutionError,
    ToolNotFound,
    ToolTimeout,
)
from runtime.pipeline import (
    Backoff,
    Parallel,
    Pipeline,
    PipelineResult,
    State,
    Step,
    compile_params,
    run_pipeline,
)
from runtime.tools import ToolContext

pytestmark = pytest.mark.anyio

CTX = ToolContext(tenant_id="acme", request_id="r-1")
ToolFn = Callable[[Mapping[str, Any]], Awaitable[Any]]


class FakeExecutor:
    """Runs ``tools[(tool, op)](params)``; reports tool calls and whatever it is handed."""

    def __init__(self, tools: Mapping[tuple[str, str], ToolFn]) -> None:
        self.ids = IdGenerator(seed="test")
        self.tools = dict(tools)
        self.reports: list[CallReport] = []
        self.calls: list[tuple[str, str, dict[str, Any], float]] = []

    async def execute(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        context: ToolContext,
        *,
        timeout: float | None = None,
    ) -> Any:
        parent = CURRENT_SPAN.get()
        trace_id = parent.trace_id if parent is not None else self.ids.trace_id()
        span = SpanRef(trace_id, self.ids.span_id())
        started = anyio.current_time()
        self.calls.append((tool_type, operation, dict(params), started))
        status: Any = "cancelled"
        error: BaseException | None = None
        token = CURRENT_SPAN.set(span)
        try:
            function = self.tools.get((tool_type, operation))
            if function is None:
                raise ToolNotFound(tool_type, operation)
            try:
                if timeout is None:
                    data = await function(params)
                else:
                    data = None
                    with anyio.move_on_after(timeout) as scope:
                        data = await function(params)
                    if scope.cancelled_caught:
                        raise ToolTimeout(tool_type, operation, timeout)
            except (ToolExecutionError, ToolNotFound):
                raise
            except Exception as exc:
                raise ToolExecutionError(
                    tool_type, operation, type(exc).__name__, str(exc)
                ) from exc
            status = "ok"
            return data
        except Exception as exc:
            error = exc
            status = "timeout" if isinstance(exc, ToolTimeout) else "error"
            raise
        finally:
            CURRENT_SPAN.reset(token)
            self.reports.append(
                CallReport(
                    kind="tool_call",
                    trace_id=trace_id,
                    span_id=span.span_id,
                    parent_span_id=parent.span_id if parent is not None else None,
                    tool_type=tool_type,
                    operation=operation,
                    tenant_id=context.tenant_id,
                    started_at=started,
                    started_wall=0.0,
                    duration_s=anyio.current_time() - started,
                    status=status,
                    error_type=type(error).__name__ if error is not None else None,
                )
            )

    def report(self, report: CallReport) -> None:
        self.reports.append(report)

    def of_kind(self, kind: str) -> list[CallReport]:
        return [r for r in self.reports if r.kind == kind]


def sleeper(seconds: float, value: Any = None, log: list[str] | None = None) -> ToolFn:
    async def tool(params: Mapping[str, Any]) -> Any:
        await anyio.sleep(seconds)
        if log is not None:
            log.append(str(value))
        return value if value is not None else dict(params)

    return tool


def failer(message: str = "boom", after: float = 0.0) -> ToolFn:
    async def tool(params: Mapping[str, Any]) -> Any:
        await anyio.sleep(after)
        raise RuntimeError(message)

    return tool


async def echo(params: Mapping[str, Any]) -> Any:
    return dict(params)


# -- state and results ----------------------------------------------------------------


async def test_every_step_sees_initial_params_and_all_earlier_results() -> None:
    seen: list[State] = []

    def third_params(state: State) -> Mapping[str, Any]:
        seen.append(state)
        return {"first": state["first"]["n"], "second": state["second"]["m"], **state.params}

    pipeline = Pipeline(
        "chain",
        [
            Step("first", "A", "echo", {"n": 1}),
            Step("second", "A", "echo", lambda s: {"m": s["first"]["n"] + 1}),
            Step("third", "A", "echo", third_params),
        ],
    )
    executor = FakeExecutor({("A", "echo"): echo})
    with anyio.fail_after(5):
        result = await run_pipeline(pipeline, {"q": "x"}, CTX, executor)
    assert result.results["third"] == {"first": 1, "second": 2, "q": "x"}
    assert result.primary == {"n": 1}
    assert result.enriched == {"second": {"m": 2}, "third": {"first": 1, "second": 2, "q": "x"}}
    assert result.to_dict()["execution_trace"] == ["first", "second", "third"]
    assert set(result.to_dict()) == {"primary", "enriched", "execution_trace", "steps"}
    assert result.to_dict()["steps"]["second"]["status"] == "ok"
    assert result.ok
    # A step sees a read-only snapshot.
    with pytest.raises(TypeError):
        seen[0].results["first"] = 0  # type: ignore[index]


async def test_defaults_are_overridden_by_run_params() -> None:
    pipeline = Pipeline(
        "d",
        [Step("only", "A", "echo", lambda s: dict(s.params))],
        defaults={"limit": 20, "metric": "cpu"},
    )
    with anyio.fail_after(5):
        result = await run_pipeline(
            pipeline, {"limit": 5}, CTX, FakeExecutor({("A", "echo"): echo})
        )
    assert result.primary == {"limit": 5, "metric": "cpu"}


# -- fan-out ----------------------------------------------------------------------------


@pytest.mark.virtual_time
async def test_parallel_group_runs_side_by_side() -> None:
    pipeline = Pipeline(
        "fan",
        [
            Parallel(
                Step("a", "T", "slow", {"n": 1}),
                Step("b", "T", "slow", {"n": 2}),
                Step("c", "T", "slow", {"n": 3}),
            )
        ],
    )
    executor = FakeExecutor({("T", "slow"): sleeper(1.0)})
    with anyio.fail_after(10):
        started = anyio.current_time()
        result = await run_pipeline(pipeline, {}, CTX, executor)
        elapsed = anyio.current_time() - started
    assert 1.0 <= elapsed < 1.5, elapsed
    assert result.results == {"a": {"n": 1}, "b": {"n": 2}, "c": {"n": 3}}
    assert result.primary == {"n": 1}


@pytest.mark.virtual_time
async def test_max_concurrency_bounds_a_group() -> None:
    pipeline = Pipeline(
        "fan",
        [Parallel(*(Step(f"s{i}", "T", "slow") for i in range(4)), max_concurrency=2)],
    )
    with anyio.fail_after(10):
        started = anyio.current_time()
        await run_pipeline(pipeline, {}, CTX, FakeExecutor({("T", "slow"): sleeper(1.0)}))
        elapsed = anyio.current_time() - started
    assert 2.0 <= elapsed < 2.5, elapsed


@pytest.mark.virtual_time
async def test_a_run_wide_cap_applies_to_groups_without_their_own() -> None:
    pipeline = Pipeline(
        "fan",
        [
            Parallel(*(Step(f"a{i}", "T", "slow") for i in range(3))),
            Parallel(*(Step(f"b{i}", "T", "slow") for i in range(3)), max_concurrency=3),
        ],
    )
    executor = FakeExecutor({("T", "slow"): sleeper(1.0)})
    with anyio.fail_after(10):
        started = anyio.current_time()
        await run_pipeline(pipeline, {}, CTX, executor, max_concurrency=1)
        elapsed = anyio.current_time() - started
    assert 4.0 <= elapsed < 4.5, elapsed  # 3 s one at a time, then 1 s side by side


async def test_group_members_see_the_state_before_the_group() -> None:
    seen: dict[str, tuple[bool, bool]] = {}

    def looking_for(me: str, other: str) -> Callable[[State], Mapping[str, Any]]:
        def params(state: State) -> Mapping[str, Any]:
            seen[me] = (other in state, "before" in state)
            return {}

        return params

    pipeline = Pipeline(
        "snap",
        [
            Step("before", "T", "echo"),
            # One at a time: whichever goes second starts after the first has finished.
            Parallel(
                Step("one", "T", "echo", looking_for("one", "two")),
                Step("two", "T", "echo", looking_for("two", "one")),
                max_concurrency=1,
            ),
            Step("after", "T", "echo", lambda s: {"one": "one" in s, "two": "two" in s}),
        ],
    )
    executor = FakeExecutor({("T", "echo"): echo})
    with anyio.fail_after(5):
        result = await run_pipeline(pipeline, {}, CTX, executor)
    assert seen == {"one": (False, True), "two": (False, True)}
    assert result.results["after"] == {"one": True, "two": True}


# -- fail fast ----------------------------------------------------------------------------


@pytest.mark.virtual_time
async def test_fail_fast_cancels_a_sibling_before_its_side_effect() -> None:
    side_effects: list[str] = []
    pipeline = Pipeline(
        "ff",
        [
            Parallel(
                Step("boom", "T", "fail"),
                Step("writer", "T", "write"),
            ),
            Step("after", "T", "write"),
        ],
    )
    executor = FakeExecutor(
        {
            ("T", "fail"): failer("kaput", after=0.05),
            ("T", "write"): sleeper(0.3, "committed", side_effects),
        }
    )
    with anyio.fail_after(10):
        started = anyio.current_time()
        with pytest.raises(PipelineError) as caught:
            await run_pipeline(pipeline, {}, CTX, executor)
        failed_at = anyio.current_time() - started
        await anyio.sleep(1.0)  # were the sibling still running, it would commit now
    error = caught.value
    assert not isinstance(error, BaseExceptionGroup)
    assert error.step == "boom"
    assert error.pipeline == "ff"
    assert isinstance(error.cause, ToolExecutionError)
    assert error.__cause__ is error.cause
    assert "kaput" in str(error)
    assert side_effects == []
    assert failed_at < 0.3
    partial: PipelineResult = error.partial
    assert partial.status("boom") == "failed"
    assert partial.status("writer") == "cancelled"
    assert "boom" in (partial.outcomes["writer"].error or "")
    assert partial.status("after") == "not_run"
    run_reports = executor.of_kind("pipeline")
    assert [r.status for r in run_reports] == ["error"]


async def test_fail_fast_in_a_sequence_stops_the_run() -> None:
    calls: list[str] = []

    async def tracked(params: Mapping[str, Any]) -> Any:
        calls.append("ran")
        return 1

    pipeline = Pipeline(
        "seq",
        [Step("first", "T", "ok"), Step("second", "T", "fail"), Step("third", "T", "ok")],
    )
    executor = FakeExecutor({("T", "ok"): tracked, ("T", "fail"): failer()})
    with anyio.fail_after(5), pytest.raises(PipelineError) as caught:
        await run_pipeline(pipeline, {}, CTX, executor)
    assert caught.value.step == "second"
    assert calls == ["ran"]
    assert caught.value.partial.primary == 1
    assert caught.value.partial.status("third") == "not_run"


async def test_a_sibling_that_had_not_started_when_its_group_failed_stays_not_run() -> None:
    # "bad" fails before yielding (its params cannot be derived), so a sibling whose task
    # runs after it finds its group already cancelled: it never started.  Which task runs
    # first is up to the scheduler (trio shuffles), hence several runs.
    started: list[int] = []

    async def tracked(params: Mapping[str, Any]) -> Any:
        started.append(1)
        await anyio.sleep(1.0)
        return 1

    pipeline = Pipeline(
        "sync_fail",
        [
            Parallel(
                Step("bad", "T", "ok", lambda s: {"x": s["missing"]}),
                Step("other", "T", "ok"),
            )
        ],
    )
    seen_not_run = False
    for _ in range(24):
        started.clear()
        executor = FakeExecutor({("T", "ok"): tracked})
        with anyio.fail_after(5), pytest.raises(PipelineError) as caught:
            await run_pipeline(pipeline, {}, CTX, executor)
        other = caught.value.partial.outcomes["other"]
        step_spans = [r.operation for r in executor.of_kind("step")]
        if started:
            assert other.status == "cancelled"
            assert "other" in caught.value.partial.execution_trace
        else:
            seen_not_run = True
            assert (other.status, other.attempts) == ("not_run", 0)
            assert caught.value.partial.execution_trace == ("bad",)
            assert step_spans == ["bad"]
    assert seen_not_run


@pytest.mark.virtual_time
async def test_a_step_reached_after_the_deadline_stays_not_run() -> None:
    calls: list[str] = []

    async def committing(params: Mapping[str, Any]) -> Any:
        # A commit that must finish: it outlasts the deadline, then returns without
        # yielding, so the next stage is reached with the run already cancelled.
        with anyio.CancelScope(shield=True):
            await anyio.sleep(2.0)
        return "done"

    async def tracked(params: Mapping[str, Any]) -> Any:
        calls.append("later")
        await anyio.sleep(1.0)
        return 1

    pipeline = Pipeline("late", [Step("commit", "T", "commit"), Step("later", "T", "later")])
    executor = FakeExecutor({("T", "commit"): committing, ("T", "later"): tracked})
    with anyio.fail_after(30), pytest.raises(PipelineError) as caught:
        await run_pipeline(pipeline, {}, CTX, executor, deadline=1.0)
    assert isinstance(caught.value.cause, TimeoutError)
    assert caught.value.step == "later"
    partial: PipelineResult = caught.value.partial
    assert partial.status("commit") == "ok"
    later = partial.outcomes["later"]
    assert (later.status, later.attempts) == ("not_run", 0)
    assert partial.execution_trace == ("commit",)
    assert calls == []


# -- skip and fallback --------------------------------------------------------------------


async def test_skip_records_the_error_and_goes_on() -> None:
    pipeline = Pipeline(
        "sk",
        [
            Step("first", "T", "ok", {"v": 1}),
            Step("flaky", "T", "fail", on_error="skip"),
            Step("last", "T", "ok", lambda s: {"saw_flaky": "flaky" in s}),
        ],
    )
    executor = FakeExecutor({("T", "ok"): echo, ("T", "fail"): failer("nope")})
    with anyio.fail_after(5):
        result = await run_pipeline(pipeline, {}, CTX, executor)
    flaky = result.outcomes["flaky"]
    assert flaky.status == "failed"
    assert flaky.error_type == "ToolExecutionError"
    assert "nope" in (flaky.error or "")
    assert flaky.attempts == 1
    assert "flaky" not in result.results
    assert result.results["last"] == {"saw_flaky": False}
    assert not result.ok
    assert result.to_dict()["steps"]["flaky"]["error"] == flaky.error


async def test_fallback_runs_and_its_result_takes_the_steps_place() -> None:
    pipeline = Pipeline(
        "fb",
        [
            Step(
                "primary_source",
                "T",
                "fail",
                on_error="fallback",
                fallback=Step("backup", "T", "ok", {"from": "backup"}),
            ),
            Step("next", "T", "ok", lambda s: {"got": s["primary_source"]["from"]}),
        ],
    )
    executor = FakeExecutor({("T", "ok"): echo, ("T", "fail"): failer("primary down")})
    with anyio.fail_after(5):
        result = await run_pipeline(pipeline, {}, CTX, executor)
    outcome = result.outcomes["primary_source"]
    assert outcome.status == "fallback"
    assert outcome.fallback_used
    assert "primary down" in (outcome.error or "")
    assert result.primary == {"from": "backup"}
    assert result.results["next"] == {"got": "backup"}
    steps = executor.of_kind("step")
    primary_span = next(r for r in steps if r.operation == "primary_source")
    backup_span = next(r for r in steps if r.operation == "backup")
    assert primary_span.fallback_used
    assert backup_span.parent_span_id == primary_span.span_id


async def test_a_failing_fallback_fails_the_step() -> None:
    pipeline = Pipeline(
        "fb2",
        [
            Step(
                "s",
                "T",
                "fail",
                on_error="fallback",
                fallback=Step("backup", "T", "fail2"),
            )
        ],
    )
    executor = FakeExecutor({("T", "fail"): failer("one"), ("T", "fail2"): failer("two")})
    with anyio.fail_after(5), pytest.raises(PipelineError) as caught:
        await run_pipeline(pipeline, {}, CTX, executor)
    assert caught.value.step == "s"
    assert "two" in str(caught.value.cause)
    outcome = caught.value.partial.outcomes["s"]
    assert (outcome.status, outcome.fallback_used) == ("failed", True)


# -- retries ------------------------------------------------------------------------------


def flaky_tool(failures: int, log: list[float], error: type[Exception] = RuntimeError) -> ToolFn:
    async def tool(params: Mapping[str, Any]) -> Any:
        log.append(anyio.current_time())
        if len(log) <= failures:
            raise error("transient")
        return "finally"

    return tool


@pytest.mark.virtual_time
async def test_retries_count_attempts_and_back_off_exponentially() -> None:
    times: list[float] = []
    step = Step(
        "s",
        "T",
        "flaky",
        retries=3,
        backoff=Backoff(base=1.0, factor=2.0, max=10.0, jitter=0.0),
    )
    executor = FakeExecutor({("T", "flaky"): flaky_tool(2, times)})
    with anyio.fail_after(30):
        result = await run_pipeline(Pipeline("r", [step]), {}, CTX, executor)
    assert result.primary == "finally"
    assert result.outcomes["s"].attempts == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert gaps == pytest.approx([1.0, 2.0])
    assert executor.of_kind("step")[0].retries == 2


@pytest.mark.virtual_time
async def test_retry_jitter_is_bounded_and_reproducible_with_a_seed() -> None:
    def run_once() -> Awaitable[list[float]]:
        async def go() -> list[float]:
            times: list[float] = []
            step = Step(
                "s", "T", "flaky", retries=4, backoff=Backoff(base=1.0, factor=2.0, jitter=0.5)
            )
            executor = FakeExecutor({("T", "flaky"): flaky_tool(4, times)})
            await run_pipeline(Pipeline("r", [step]), {}, CTX, executor, rng=random.Random(7))
            return [b - a for a, b in itertools.pairwise(times)]

        return go()

    with anyio.fail_after(60):
        first = await run_once()
        second = await run_once()
    assert first == pytest.approx(second)
    for retry, gap in enumerate(first):
        nominal = 2.0**retry
        assert nominal * 0.5 - 1e-9 <= gap <= nominal * 1.5 + 1e-9
    assert len(set(round(g / 2.0**i, 6) for i, g in enumerate(first))) > 1  # jitter applied


@pytest.mark.virtual_time
async def test_retries_stop_at_the_limit_and_on_non_matching_errors() -> None:
    times: list[float] = []
    exhausted = Step("s", "T", "flaky", retries=2, on_error="skip", backoff=Backoff(jitter=0.0))
    executor = FakeExecutor({("T", "flaky"): flaky_tool(10, times)})
    with anyio.fail_after(30):
        result = await run_pipeline(Pipeline("r", [exhausted]), {}, CTX, executor)
    assert result.outcomes["s"].attempts == 3
    assert len(times) == 3

    times.clear()
    only_timeouts = Step("s", "T", "flaky", retries=5, on_error="skip", retry_on=(ToolTimeout,))
    with anyio.fail_after(30):
        result = await run_pipeline(Pipeline("r", [only_timeouts]), {}, CTX, executor)
    assert result.outcomes["s"].attempts == 1

    times.clear()

    async def rejects(params: Mapping[str, Any]) -> Any:
        times.append(0.0)
        raise InvalidParams("T", "reject", "limit", "too big")

    default_policy = Step("s", "T", "reject", retries=5, on_error="skip")
    executor = FakeExecutor({("T", "reject"): rejects})
    with anyio.fail_after(30):
        result = await run_pipeline(Pipeline("r", [default_policy]), {}, CTX, executor)
    assert result.outcomes["s"].attempts == 1  # invalid params are not retried by default
    assert result.outcomes["s"].error_type == "InvalidParams"


# -- timeouts and deadline ----------------------------------------------------------------


@pytest.mark.virtual_time
async def test_per_step_timeout() -> None:
    pipeline = Pipeline(
        "to",
        [
            Step("slow", "T", "slow", timeout=0.5, on_error="skip"),
            Step("after", "T", "ok"),
        ],
    )
    executor = FakeExecutor({("T", "slow"): sleeper(10.0), ("T", "ok"): echo})
    with anyio.fail_after(30):
        started = anyio.current_time()
        result = await run_pipeline(pipeline, {}, CTX, executor)
        elapsed = anyio.current_time() - started
    assert 0.5 <= elapsed < 1.0, elapsed
    slow = result.outcomes["slow"]
    assert (slow.status, slow.error_type) == ("failed", "ToolTimeout")
    assert result.status("after") == "ok"
    slow_span = next(r for r in executor.of_kind("step") if r.operation == "slow")
    assert slow_span.status == "timeout"


@pytest.mark.virtual_time
async def test_overall_deadline_cancels_the_run() -> None:
    pipeline = Pipeline(
        "dl",
        [
            Step("quick", "T", "quick"),
            Parallel(Step("slow", "T", "slow"), Step("slower", "T", "slower")),
            Step("never", "T", "quick"),
        ],
    )
    executor = FakeExecutor(
        {
            ("T", "quick"): sleeper(0.5),
            ("T", "slow"): sleeper(10.0),
            ("T", "slower"): sleeper(20.0),
        }
    )
    with anyio.fail_after(60):
        started = anyio.current_time()
        with pytest.raises(PipelineError) as caught:
            await run_pipeline(pipeline, {}, CTX, executor, deadline=2.0)
        elapsed = anyio.current_time() - started
    assert 2.0 <= elapsed < 2.5, elapsed
    error = caught.value
    assert isinstance(error.cause, TimeoutError)
    assert error.step == "slow"
    partial: PipelineResult = error.partial
    assert partial.status("quick") == "ok"
    assert partial.status("slow") == partial.status("slower") == "cancelled"
    assert "deadline" in (partial.outcomes["slow"].error or "")
    assert partial.status("never") == "not_run"
    assert [r.status for r in executor.of_kind("pipeline")] == ["timeout"]


# -- conditions ---------------------------------------------------------------------------


async def test_a_false_condition_skips_the_step() -> None:
    pipeline = Pipeline(
        "cond",
        [
            Step("search", "T", "search"),
            Step("details", "T", "echo", condition=lambda s: bool(s["search"]["records"])),
            Step("always", "T", "echo", condition=lambda s: "search" in s),
        ],
    )

    async def empty_search(params: Mapping[str, Any]) -> Any:
        return {"records": []}

    executor = FakeExecutor({("T", "search"): empty_search, ("T", "echo"): echo})
    with anyio.fail_after(5):
        result = await run_pipeline(pipeline, {}, CTX, executor)
    details = result.outcomes["details"]
    assert (details.status, details.attempts, details.error) == ("skipped", 0, None)
    assert result.status("always") == "ok"
    assert [c[1] for c in executor.calls] == ["search", "echo"]
    assert result.execution_trace == ("search", "always")
    assert result.ok


async def test_a_condition_that_raises_is_the_steps_failure_under_its_policy() -> None:
    def broken(state: State) -> bool:
        raise ZeroDivisionError("condition bug")

    pipeline = Pipeline(
        "cond_raises",
        [
            Step(
                "guarded",
                "T",
                "echo",
                {"from": "primary"},
                condition=broken,
                on_error="fallback",
                fallback=Step("backup", "T", "echo", {"from": "backup"}),
            ),
            Step("optional", "T", "echo", condition=broken, on_error="skip"),
            Step("strict", "T", "echo", condition=broken),
        ],
    )
    executor = FakeExecutor({("T", "echo"): echo})
    with anyio.fail_after(5), pytest.raises(PipelineError) as caught:
        await run_pipeline(pipeline, {}, CTX, executor)
    assert caught.value.step == "strict"
    assert isinstance(caught.value.cause, ZeroDivisionError)
    partial: PipelineResult = caught.value.partial
    guarded = partial.outcomes["guarded"]
    assert (guarded.status, guarded.fallback_used, guarded.attempts) == ("fallback", True, 0)
    assert guarded.error_type == "ZeroDivisionError"
    assert partial.results["guarded"] == {"from": "backup"}
    assert (partial.status("optional"), partial.outcomes["optional"].attempts) == ("failed", 0)
    assert partial.status("strict") == "failed"
    # Each of them has its step span, like any step that failed.
    spans = {r.operation: r.status for r in executor.of_kind("step")}
    assert spans == {"backup": "ok", "guarded": "ok", "optional": "error", "strict": "error"}
    assert [c[2] for c in executor.calls] == [{"from": "backup"}]


# -- caller cancellation --------------------------------------------------------------------


@pytest.mark.virtual_time
async def test_caller_cancellation_cancels_every_running_step() -> None:
    committed: list[str] = []
    unwound: list[str] = []

    def guarded(name: str, seconds: float) -> ToolFn:
        async def tool(params: Mapping[str, Any]) -> Any:
            try:
                await anyio.sleep(seconds)
                committed.append(name)
            finally:
                unwound.append(name)
            return name

        return tool

    pipeline = Pipeline(
        "cx",
        [
            Step("first", "T", "first"),
            Parallel(Step("left", "T", "left"), Step("right", "T", "right")),
            Step("later", "T", "first"),
        ],
    )
    executor = FakeExecutor(
        {
            ("T", "first"): guarded("first", 0.1),
            ("T", "left"): guarded("left", 5.0),
            ("T", "right"): guarded("right", 7.0),
        }
    )
    tasks_before = len(anyio.get_running_tasks())
    reached_end = False
    with anyio.fail_after(30):
        with anyio.CancelScope() as scope:

            async def cancel_soon() -> None:
                await anyio.sleep(1.0)
                scope.cancel()

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(cancel_soon)
                await run_pipeline(pipeline, {}, CTX, executor)
                reached_end = True
        assert scope.cancelled_caught
        await anyio.sleep(10.0)  # a leaked step would commit meanwhile
    assert not reached_end
    assert committed == ["first"]
    assert sorted(unwound) == ["first", "left", "right"]
    assert len(anyio.get_running_tasks()) == tasks_before
    step_status = {r.operation: r.status for r in executor.of_kind("step")}
    assert step_status == {"first": "ok", "left": "cancelled", "right": "cancelled"}
    (run_report,) = executor.of_kind("pipeline")
    assert run_report.status == "cancelled"
    assert run_report.metadata["steps"] == {
        "first": "ok",
        "left": "cancelled",
        "right": "cancelled",
        "later": "not_run",
    }
    tool_status = {r.operation: r.status for r in executor.of_kind("tool_call")}
    assert tool_status == {"first": "ok", "left": "cancelled", "right": "cancelled"}


# -- reuse and isolation ------------------------------------------------------------------


@pytest.mark.virtual_time
async def test_concurrent_runs_of_one_pipeline_share_nothing() -> None:
    pipeline = Pipeline(
        "iso",
        [
            Step("a", "T", "slow_echo", lambda s: {"who": s.params["who"]}),
            Parallel(
                Step("b", "T", "slow_echo", lambda s: {"who": s["a"]["who"], "step": "b"}),
                Step("c", "T", "slow_echo", lambda s: {"who": s["a"]["who"], "step": "c"}),
            ),
        ],
    )

    async def slow_echo(params: Mapping[str, Any]) -> Any:
        # Interleave the runs: the later caller's first step finishes first.
        await anyio.sleep(1.0 if params["who"] == "alice" else 0.5)
        return dict(params)

    executor = FakeExecutor({("T", "slow_echo"): slow_echo})
    results: dict[str, PipelineResult] = {}

    async def run(who: str) -> None:
        results[who] = await run_pipeline(pipeline, {"who": who}, CTX, executor)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tasks:
            for who in ("alice", "bob", "carol"):
                tasks.start_soon(run, who)
    for who, result in results.items():
        assert result.results == {
            "a": {"who": who},
            "b": {"who": who, "step": "b"},
            "c": {"who": who, "step": "c"},
        }
        assert result.execution_trace[0] == "a"
    run_ids = {r.span_id for r in executor.of_kind("pipeline")}
    assert len(run_ids) == 3


async def test_a_tool_that_changes_its_params_does_not_change_the_pipeline() -> None:
    # Static params belong to the pipeline, which every run shares: each run's tool gets
    # its own copy, so a tool filling in defaults cannot leak into the next run.
    pipeline = Pipeline("static", [Step("s", "T", "fill", {"limit": 10, "ids": [1], "f": {}})])

    async def fill(params: Any) -> Any:
        seen = {"limit": params["limit"], "ids": list(params["ids"]), "f": dict(params["f"])}
        params["limit"] = 99
        params["ids"].append(2)
        params["f"]["env"] = "prod"
        return seen

    executor = FakeExecutor({("T", "fill"): fill})
    with anyio.fail_after(5):
        first = await run_pipeline(pipeline, {}, CTX, executor)
        second = await run_pipeline(pipeline, {}, CTX, executor)
    assert first.results["s"] == second.results["s"] == {"limit": 10, "ids": [1], "f": {}}


# -- tracing --------------------------------------------------------------------------------


async def test_trace_hierarchy_run_steps_tool_calls() -> None:
    pipeline = Pipeline(
        "traced",
        [Step("first", "T", "echo"), Parallel(Step("x", "T", "echo"), Step("y", "T", "echo"))],
    )
    executor = FakeExecutor({("T", "echo"): echo})
    outer = SpanRef("trace-outer", "span-outer")
    token = CURRENT_SPAN.set(outer)
    try:
        with anyio.fail_after(5):
            await run_pipeline(pipeline, {}, CTX, executor)
    finally:
        CURRENT_SPAN.reset(token)
    (run,) = executor.of_kind("pipeline")
    steps = {r.operation: r for r in executor.of_kind("step")}
    calls = executor.of_kind("tool_call")
    assert (run.tool_type, run.operation, run.parent_span_id) == (
        "pipeline",
        "traced",
        "span-outer",
    )
    assert run.status == "ok"
    assert set(steps) == {"first", "x", "y"}
    assert all(s.parent_span_id == run.span_id for s in steps.values())
    assert all(s.tool_type == "traced" and s.metadata["tool"] == "T" for s in steps.values())
    assert sorted(c.parent_span_id or "" for c in calls) == sorted(
        s.span_id for s in steps.values()
    )
    everything = [run, *steps.values(), *calls]
    assert {r.trace_id for r in everything} == {"trace-outer"}
    assert len({r.span_id for r in everything}) == len(everything)
    assert CURRENT_SPAN.get() is None


async def test_a_run_without_an_outer_span_starts_its_own_trace() -> None:
    executor = FakeExecutor({("T", "echo"): echo})
    context = ToolContext(tenant_id="acme", trace_id="req-trace")
    with anyio.fail_after(5):
        await run_pipeline(Pipeline("p", [Step("s", "T", "echo")]), {}, context, executor)
    (run,) = executor.of_kind("pipeline")
    assert run.parent_span_id is None
    assert {r.trace_id for r in executor.reports} == {"req-trace"}


# -- params derivation failures ---------------------------------------------------------


async def test_an_unresolvable_reference_is_the_steps_invalid_params() -> None:
    template = compile_params({"ci_ids": "$search.records[*].ci_id"})
    pipeline = Pipeline(
        "refs",
        [Step("search", "T", "echo", {"nothing": 1}), Step("metrics", "T", "echo", template)],
    )
    executor = FakeExecutor({("T", "echo"): echo})
    with anyio.fail_after(5), pytest.raises(PipelineError) as caught:
        await run_pipeline(pipeline, {}, CTX, executor)
    cause = caught.value.cause
    assert isinstance(cause, InvalidParams)
    assert cause.param == "ci_ids"
    assert "records" in str(cause)
    assert caught.value.partial.outcomes["metrics"].attempts == 0
    assert len(executor.calls) == 1


async def test_unknown_tool_fails_the_step() -> None:
    executor = FakeExecutor({})
    with anyio.fail_after(5), pytest.raises(PipelineError) as caught:
        await run_pipeline(Pipeline("p", [Step("s", "NOPE", "x")]), {}, CTX, executor)
    assert isinstance(caught.value.cause, ToolNotFound)


async def test_run_pipeline_checks_its_arguments() -> None:
    executor = FakeExecutor({})
    pipeline = Pipeline("p", [Step("s", "T", "x")])
    with pytest.raises(TypeError):
        await run_pipeline("p", {}, CTX, executor)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await run_pipeline(pipeline, [], CTX, executor)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="deadline"):
        await run_pipeline(pipeline, {}, CTX, executor, deadline=0)
    for cap in (0, 2.5, True):
        with pytest.raises(ValueError, match="max_concurrency"):
            await run_pipeline(pipeline, {}, CTX, executor, max_concurrency=cap)  # type: ignore[arg-type]
    assert executor.reports == []
