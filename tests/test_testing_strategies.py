"""The strategies: ops params valid and invalid per schema, intents, compositions."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import Phase, find, given, settings
from hypothesis import strategies as st

from runtime import InvalidParams, Parallel, Pipeline, Step
from runtime.ops.params import PARAMS_SCHEMAS, validate_params
from runtime.ops.preset import OPS_CANDIDATES
from runtime.ops.strategies import ops_intents, ops_params
from runtime.selector.intents import Intent
from runtime.testing import ResultPresent, compositions, params_from_schema

OPS = sorted(PARAMS_SCHEMAS)
# find() only needs a witness here, not the smallest one.
# Derandomized: these tests ask whether the strategy *can* reach a case, so the search
# must not depend on the run's seed (a rare branch once went unfound in 2000 tries).
NO_SHRINK = settings(max_examples=2000, database=None, phases=[Phase.generate], derandomize=True)
ids = [f"{tool}.{op}" for tool, op in OPS]


@pytest.mark.parametrize(("tool_type", "operation"), OPS, ids=ids)
@settings(max_examples=60)
@given(data=st.data())
def test_valid_params_are_accepted(tool_type: str, operation: str, data: st.DataObject) -> None:
    params = data.draw(ops_params(tool_type, operation))
    checked = validate_params(tool_type, operation, params)
    assert set(params) <= set(checked)


@pytest.mark.parametrize(("tool_type", "operation"), OPS, ids=ids)
@settings(max_examples=60)
@given(data=st.data())
def test_invalid_params_are_rejected(tool_type: str, operation: str, data: st.DataObject) -> None:
    params = data.draw(ops_params(tool_type, operation, invalid=True))
    with pytest.raises(InvalidParams) as caught:
        validate_params(tool_type, operation, params)
    assert caught.value.tool_type == tool_type
    assert caught.value.operation == operation


def rejection(tool_type: str, operation: str, params: Any) -> str:
    try:
        validate_params(tool_type, operation, params)
    except InvalidParams as error:
        return error.param
    return ""


@pytest.mark.parametrize(
    ("tool_type", "operation", "where"),
    [
        ("CI", "search", "filters[0].value"),  # inside a discriminated one_of in a list
        ("CI", "get", "ci_code"),  # exactly-one-of
        ("METRIC", "series", "time_range.from"),  # inside a plain one_of
        ("CEP", "simulate", "rule"),  # a pattern
    ],
)
def test_invalid_params_break_the_schema_at_every_depth(
    tool_type: str, operation: str, where: str
) -> None:
    found = find(
        ops_params(tool_type, operation, invalid=True),
        lambda params: rejection(tool_type, operation, params) == where,
        settings=NO_SHRINK,
    )
    assert rejection(tool_type, operation, found) == where


def test_ops_params_names_the_known_tools_when_asked_for_another() -> None:
    with pytest.raises(KeyError, match=r"CI\.search"):
        ops_params("CI", "nope")


SCHEMA = {
    "type": "object",
    "fields": {
        "name": {"type": "str", "min_length": 1, "max_length": 8, "required": True},
        "flag": {"type": "bool"},
    },
}


@given(
    good=params_from_schema(SCHEMA),
    bad=params_from_schema(SCHEMA, invalid=True),
)
def test_params_from_schema_serves_user_schemas(good: Any, bad: Any) -> None:
    assert isinstance(good, dict)
    assert 1 <= len(good["name"]) <= 8
    assert set(good) <= {"name", "flag"}
    ok = (
        isinstance(bad, dict)
        and set(bad) <= {"name", "flag"}
        and isinstance(bad.get("name"), str)
        and 1 <= len(bad["name"]) <= 8
        and not any("\ud800" <= char <= "\udfff" for char in bad["name"])
        and isinstance(bad.get("flag", True), bool)
    )
    assert not ok  # the spec, checked independently of the validator


@given(intent=ops_intents())
def test_intents_carry_params_for_one_of_their_candidates(intent: Intent) -> None:
    candidates = OPS_CANDIDATES[intent.type]
    accepted = []
    for tool_type, operation in candidates:
        try:
            validate_params(tool_type, operation, intent.params)
        except InvalidParams:
            continue
        accepted.append((tool_type, operation))
    assert accepted


OPERATIONS = [("FAKE", "a"), ("FAKE", "b")]


@given(pipeline=compositions(OPERATIONS, max_stages=4, max_parallel=3))
def test_compositions_are_well_formed(pipeline: Pipeline) -> None:
    seen: list[str] = []
    for stage in pipeline.steps:
        members = stage.steps if isinstance(stage, Parallel) else (stage,)
        assert 1 <= len(members) <= 3
        for step in members:
            assert (step.tool, step.operation) in OPERATIONS
            assert step.params == {"step": step.name}
            assert step.backoff.jitter == 0.0
            if step.condition is not None:
                assert isinstance(step.condition, ResultPresent)
                assert step.condition.step in seen  # an earlier stage, never its own
            assert (step.fallback is not None) == (step.on_error == "fallback")
            if step.fallback is not None:
                assert step.fallback.name == f"{step.name}_fallback"
                assert step.fallback.on_error in ("fail_fast", "skip")
        seen.extend(step.name for step in members)
    assert len(seen) <= 4 * 3


def test_compositions_cover_the_features() -> None:
    def has(predicate: Any) -> Pipeline:
        return find(
            compositions(OPERATIONS),
            lambda p: any(predicate(s) for s in p.iter_steps()),
            settings=NO_SHRINK,
        )

    assert has(lambda s: s.retries == 2)
    assert has(lambda s: s.timeout == 0.5)
    assert has(lambda s: s.on_error == "skip")
    assert has(lambda s: isinstance(s.condition, ResultPresent) and not s.condition.present)
    assert find(
        compositions(OPERATIONS),
        lambda p: any(isinstance(stage, Parallel) for stage in p.steps),
        settings=NO_SHRINK,
    )


def test_result_present_reads_the_state() -> None:
    from runtime import State

    state = State({}, {"a": 1})
    assert ResultPresent("a")(state)
    assert not ResultPresent("a", present=False)(state)
    assert ResultPresent("b", present=False)(state)
    step = Step("x", "FAKE", "a", condition=ResultPresent("a"))
    assert step.condition is not None
