"""Random compositions over fake tools with random faults, checked against a reference.

Written only against the public APIs of ``runtime`` and ``runtime.testing`` (as a user
would write it).  Each example draws a pipeline (sequential steps, parallel groups, error
policies, retries, timeouts, conditions) over three scripted tools with random fault
plans, runs it on a fresh test runtime on virtual time, and compares every step's status,
attempts, error type and result -- and the run's duration -- with a sequential reference
interpreter of the same composition that reads the fault plans.

Parallel groups are where a sequential reference needs care: when a fail-fast step fails
at virtual time ``f``, siblings that ended before ``f`` keep their outcome, those still
running are ``cancelled``, and a sibling ending at the very same instant may go either
way (the scheduler decides), so the reference allows both.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import (
    Parallel,
    Pipeline,
    PipelineError,
    PipelineResult,
    State,
    Step,
    ToolContext,
    ToolRegistry,
    config_from_dict,
)
from runtime.testing import (
    FaultPlan,
    ScriptedTool,
    assert_quiescent,
    compositions,
    fault_plans,
    open_test_runtime,
    params_key,
)

pytestmark = pytest.mark.anyio

OPERATIONS = (("FAKE", "a"), ("FAKE", "b"), ("FAKE", "c"))
DEFAULT_TIMEOUT = 10.0
EPS = 1e-6
CONFIG = config_from_dict(
    {
        "executor": {"default_timeout": DEFAULT_TIMEOUT},
        "pipeline": {"default_deadline": 0},  # no run deadline: every step is bounded
    }
)


# -- the reference interpreter ---------------------------------------------------------------


@attrs.define
class Predicted:
    """What the reference says one top-level step ends as, and when."""

    status: str
    end: float
    value: Any = None
    attempts: int = 0
    error_type: str | None = None
    fallback_used: bool = False
    fatal: bool = False


@attrs.define
class Attempts:
    ok: bool
    end: float
    attempts: int
    value: Any = None
    error_type: str | None = None


class Reference:
    """Interprets a Pipeline sequentially, reading each tool's fault plan."""

    def __init__(self, tools: Mapping[tuple[str, str], ScriptedTool], context: ToolContext):
        self.tools = tools
        self.context = context
        self.calls: dict[tuple[str, str, str], int] = defaultdict(int)

    def call(self, step: Step, params: Mapping[str, Any], start: float) -> Attempts:
        tool = self.tools[(step.tool, step.operation)]
        key = params_key(params)
        index = self.calls[(step.tool, step.operation, key)]
        self.calls[(step.tool, step.operation, key)] += 1
        action = tool.plan.action_for(index, key)
        latency = tool.plan.latency_for(index)
        timeout = step.timeout if step.timeout is not None else DEFAULT_TIMEOUT
        if action == "hang" or latency > timeout:
            return Attempts(False, start + timeout, 1, error_type="ToolTimeout")
        if action == "fail":
            return Attempts(False, start + latency, 1, error_type="ToolExecutionError")
        if action == "invalid":
            return Attempts(False, start + latency, 1, error_type="InvalidParams")
        return Attempts(True, start + latency, 1, value=tool.data_for(action, self.context, params))

    def with_retries(self, step: Step, state: State, start: float) -> Attempts:
        params = step.params(state) if callable(step.params) else step.params
        now, attempts, retry = start, 0, 0
        while True:
            outcome = self.call(step, params, now)
            attempts += 1
            now = outcome.end
            if outcome.ok:
                return attrs.evolve(outcome, attempts=attempts)
            retryable = outcome.error_type != "InvalidParams"  # the default retry_on
            if retry >= step.retries or not retryable:
                return attrs.evolve(outcome, attempts=attempts)
            backoff = step.backoff
            now += min(backoff.max, backoff.base * backoff.factor**retry)  # jitter is 0
            retry += 1

    def member(self, step: Step, state: State, start: float) -> Predicted:
        if step.condition is not None and not step.condition(state):
            return Predicted("skipped", start)
        own = self.with_retries(step, state, start)
        if own.ok:
            return Predicted("ok", own.end, own.value, own.attempts)
        if step.on_error == "fallback":
            assert step.fallback is not None
            backup = self.with_retries(step.fallback, state, own.end)
            if backup.ok:
                return Predicted(
                    "fallback", backup.end, backup.value, own.attempts, own.error_type, True
                )
            fatal = step.fallback.on_error == "fail_fast"
            return Predicted(
                "failed", backup.end, None, own.attempts, backup.error_type, True, fatal
            )
        fatal = step.on_error == "fail_fast"
        return Predicted("failed", own.end, None, own.attempts, own.error_type, False, fatal)

    def run(self, pipeline: Pipeline) -> tuple[dict[str, set[str]], dict[str, Predicted], Any]:
        """(acceptable statuses by step, predictions, (failed steps, end time))."""
        allowed: dict[str, set[str]] = {}
        predicted: dict[str, Predicted] = {}
        results: dict[str, Any] = {}
        now = 0.0
        for index, stage in enumerate(pipeline.steps):
            state = State({}, results)
            members = stage.steps if isinstance(stage, Parallel) else (stage,)
            outcomes = {step.name: self.member(step, state, now) for step in members}
            fatal = [p.end for p in outcomes.values() if p.fatal]
            failed_at = min(fatal) if fatal else None
            for name, outcome in outcomes.items():
                predicted[name] = outcome
                if (
                    failed_at is None
                    or outcome.status == "skipped"
                    or outcome.end < failed_at - EPS
                ):
                    allowed[name] = {outcome.status}
                elif outcome.end > failed_at + EPS:
                    allowed[name] = {"cancelled"}
                else:
                    allowed[name] = {outcome.status, "cancelled"}
            for name, outcome in outcomes.items():
                if outcome.status in ("ok", "fallback") and allowed[name] == {outcome.status}:
                    results[name] = outcome.value
            if failed_at is not None:
                culprits = {
                    name
                    for name, p in outcomes.items()
                    if p.fatal and abs(p.end - failed_at) <= EPS
                }
                for later in pipeline.steps[index + 1 :]:
                    for step in later.steps if isinstance(later, Parallel) else (later,):
                        allowed[step.name] = {"not_run"}
                return allowed, predicted, (culprits, failed_at)
            now = max(p.end for p in outcomes.values())
        return allowed, predicted, (set(), now)


# -- the property -------------------------------------------------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Pipeline, dict[tuple[str, str], FaultPlan]]:
    pipeline = draw(compositions(OPERATIONS, max_stages=3, max_parallel=3))
    plans = {pair: draw(fault_plans()) for pair in OPERATIONS}
    return pipeline, plans


def check(result: PipelineResult, ref: Reference, pipeline: Pipeline) -> None:
    allowed, predicted, (_, end) = ref.run(pipeline)
    assert list(result.outcomes) == list(pipeline.step_names)
    started = set()
    for name, outcome in result.outcomes.items():
        expected = predicted.get(name)
        assert outcome.status in allowed[name], (name, outcome, allowed[name], expected)
        if outcome.status in ("ok", "fallback", "failed", "cancelled"):
            started.add(name)
        if outcome.status in ("ok", "fallback"):
            assert expected is not None
            assert result.results[name] == expected.value, name
        else:
            assert name not in result.results, name
        if outcome.status in ("ok", "fallback", "failed"):
            assert expected is not None
            assert outcome.attempts == expected.attempts, (name, outcome, expected)
            assert outcome.error_type == expected.error_type, (name, outcome, expected)
            assert outcome.fallback_used == expected.fallback_used, (name, outcome, expected)
    assert set(result.execution_trace) == started
    assert result.duration_s == pytest.approx(end, abs=EPS)


@pytest.mark.virtual_time
@settings(max_examples=30, deadline=None)
@given(scenario=scenarios())
async def test_random_compositions_match_the_reference(
    scenario: tuple[Pipeline, dict[tuple[str, str], FaultPlan]],
) -> None:
    pipeline, plans = scenario
    registry = ToolRegistry()
    tools = {}
    for (tool_type, operation), plan in plans.items():
        tool = ScriptedTool(tool_type, operation, plan, index_by="params")
        tool.register(registry)
        tools[(tool_type, operation)] = tool
    context = ToolContext("tenant-a")
    with anyio.fail_after(10_000):  # virtual seconds: every step is bounded by its timeout
        async with open_test_runtime(registry, CONFIG) as runtime:
            try:
                result = await runtime.compose(pipeline, {}, context)
                culprit = None
            except PipelineError as error:
                result, culprit = error.partial, error.step
            await assert_quiescent(runtime)
    _, _, (culprits, _) = Reference(tools, context).run(pipeline)
    if culprits:
        assert culprit in culprits
    else:
        assert culprit is None
    check(result, Reference(tools, context), pipeline)
    assert all(tool.running == 0 for tool in tools.values())
