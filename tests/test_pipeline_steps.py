"""Steps, groups and pipelines as validated immutable values; backoff; results."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.errors import InvalidParams, ToolExecutionError, ToolNotFound, ToolTimeout
from runtime.ops.preset import ToolType
from runtime.pipeline import (
    Backoff,
    Parallel,
    Pipeline,
    PipelineResult,
    State,
    Step,
    StepOutcome,
    backoff_delay,
    default_retry_on,
)
from runtime.pipeline.steps import should_retry


def test_a_step_is_frozen_and_copies_its_params() -> None:
    params = {"limit": 5}
    step = Step("s", ToolType.CI, "search", params)
    params["limit"] = 50
    assert step.params == {"limit": 5}
    assert step.tool == "CI"
    assert type(step.tool) is str
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        step.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"tool": " "}, ValueError, "tool"),
        ({"params": [1]}, TypeError, "params"),
        ({"on_error": "ignore"}, ValueError, "on_error"),
        ({"on_error": "fallback"}, ValueError, "needs a fallback"),
        ({"fallback": Step("b", "T", "x")}, ValueError, "use on_error='fallback'"),
        ({"on_error": "fallback", "fallback": "b"}, TypeError, "must be a Step"),
        (
            {"on_error": "fallback", "fallback": Step("b", "T", "x", condition=lambda s: True)},
            ValueError,
            "cannot have a condition",
        ),
        ({"timeout": 0}, ValueError, "timeout"),
        ({"timeout": float("inf")}, ValueError, "timeout"),
        ({"timeout": "1"}, TypeError, "timeout"),
        ({"retries": -1}, ValueError, "retries"),
        ({"retries": 1.5}, TypeError, "retries"),
        ({"retries": True}, TypeError, "retries"),
        ({"retry_on": (ValueError, "x")}, TypeError, "retry_on"),
        ({"retry_on": 3}, TypeError, "retry_on"),
        ({"condition": True}, TypeError, "condition"),
        ({"backoff": {"base": 1}}, TypeError, "Backoff"),
    ],
)
def test_a_step_is_validated_at_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    arguments: dict[str, Any] = {"name": "s", "tool": "T", "operation": "op", **kwargs}
    with pytest.raises(error, match=message):
        Step(**arguments)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": -1}, "base"),
        ({"factor": 0.5}, "factor"),
        ({"base": 2, "max": 1}, "max"),
        ({"jitter": 1.5}, "jitter"),
        ({"base": float("nan")}, "finite"),
    ],
)
def test_backoff_is_validated(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Backoff(**kwargs)


backoffs = st.builds(
    lambda base, factor, extra, jitter: Backoff(base, factor, base + extra, jitter),
    st.floats(0, 5),
    st.floats(1, 4),
    st.floats(0, 60),
    st.floats(0, 1),
)


@given(backoffs, st.integers(0, 60), st.floats(0, 1, exclude_max=True))
def test_backoff_delay_is_capped_and_within_the_jitter_band(
    backoff: Backoff, retry: int, draw: float
) -> None:
    delay = backoff_delay(backoff, retry, draw)
    nominal = min(backoff.max, backoff.base * backoff.factor**retry)
    assert delay >= 0
    assert nominal * (1 - backoff.jitter) - 1e-9 <= delay <= nominal * (1 + backoff.jitter) + 1e-9


@given(st.integers(2000, 10**6), st.floats(0, 1, exclude_max=True))
def test_huge_retry_counts_wait_the_cap(retry: int, draw: float) -> None:
    backoff = Backoff(base=0.5, factor=3.0, max=30.0, jitter=0.2)
    assert 24.0 - 1e-9 <= backoff_delay(backoff, retry, draw) <= 36.0 + 1e-9


@given(backoffs, st.integers(0, 30))
def test_without_jitter_delays_never_shrink(backoff: Backoff, retry: int) -> None:
    steady = attrs.evolve(backoff, jitter=0.0)
    assert backoff_delay(steady, retry, 0.3) <= backoff_delay(steady, retry + 1, 0.9)


def test_backoff_delay_rejects_negative_retries() -> None:
    with pytest.raises(ValueError, match="retry"):
        backoff_delay(Backoff(), -1, 0.5)


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (ToolExecutionError("T", "op", "KeyError", "x"), True),
        (ToolTimeout("T", "op", 1.0), True),
        (InvalidParams("T", "op", "limit", "too big"), False),
        (ToolNotFound("T", "op"), False),
        (RuntimeError("bug"), False),
    ],
)
def test_default_retry_policy(error: Exception, retried: bool) -> None:
    assert default_retry_on(error) is retried
    assert should_retry(default_retry_on, error) is retried


def test_retry_on_accepts_types_or_a_predicate() -> None:
    assert should_retry((ToolTimeout,), ToolTimeout("T", "op", 1.0))
    assert not should_retry((ToolTimeout,), ToolExecutionError("T", "op", "E", "m"))
    assert should_retry(lambda e: "rate" in str(e), RuntimeError("rate limited"))


def test_parallel_takes_steps_positionally() -> None:
    a, b = Step("a", "T", "x"), Step("b", "T", "x")
    group = Parallel(a, b, max_concurrency=2)
    assert group.steps == (a, b)
    assert group.max_concurrency == 2
    with pytest.raises(ValueError, match="at least one"):
        Parallel()
    with pytest.raises(TypeError, match="no nesting"):
        Parallel(a, Parallel(b))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_concurrency"):
        Parallel(a, max_concurrency=0)


def test_a_pipeline_checks_its_stages_and_names() -> None:
    a, b = Step("a", "T", "x"), Step("b", "T", "x")
    pipeline = Pipeline("p", [a, Parallel(b, Step("c", "T", "x"))])
    assert pipeline.step_names == ("a", "b", "c")
    assert isinstance(pipeline.steps, tuple)
    with pytest.raises(ValueError, match="duplicate step name 'a'"):
        Pipeline("p", [a, Parallel(b, Step("a", "T", "y"))])
    with pytest.raises(ValueError, match="no steps"):
        Pipeline("p", [])
    with pytest.raises(TypeError, match="stage"):
        Pipeline("p", [a, "b"])  # type: ignore[list-item]


def test_state_is_a_read_only_snapshot() -> None:
    results = {"search": {"total": 1}}
    state = State({"q": 1}, results)
    results["later"] = 2
    assert "later" not in state
    assert state["search"] == {"total": 1}
    assert state.get("missing", "default") == "default"
    assert list(state) == ["search"]
    with pytest.raises(TypeError):
        state.params["q"] = 2  # type: ignore[index]


def test_result_keeps_the_original_shape() -> None:
    outcomes = {
        "search": StepOutcome("search", "ok", "CI", "search", attempts=1),
        "metrics": StepOutcome("metrics", "failed", "METRIC", "aggregate", 2, 0.5, "E: x", "E"),
        "events": StepOutcome("events", "ok", "HISTORY", "event_log", attempts=1),
    }
    result = PipelineResult(
        "p",
        results={"search": {"records": []}, "events": {"events": []}},
        outcomes=outcomes,
        execution_trace=("search", "metrics", "events"),
    )
    shaped = result.to_dict()
    assert shaped["primary"] == {"records": []}
    assert shaped["enriched"] == {"events": {"events": []}}
    assert shaped["execution_trace"] == ["search", "metrics", "events"]
    assert shaped["steps"]["metrics"] == {
        "status": "failed",
        "tool": "METRIC",
        "operation": "aggregate",
        "attempts": 2,
        "duration_s": 0.5,
        "error": "E: x",
        "error_type": "E",
        "fallback_used": False,
    }
    assert not result.ok
