"""Checks across params and error messages that a user reads (issue 18, failure 5): an
inverted explicit time range is InvalidParams naming both ends, on every tool that takes
one, before any query; AllCandidatesFailed says each candidate's failure once."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ops_fixtures import (  # noqa: F401
    CTX,
    call,
    fixture_ops_db,
    fixture_ops_db_path,
    fixture_registry,
)

from runtime import AllCandidatesFailed, open_runtime
from runtime.errors import InvalidParams, ToolTimeout
from runtime.ops.config import ops_defaults
from runtime.ops.timerange import iso
from runtime.ops.tools import check_ops_params
from runtime.tools import ToolRegistry

pytestmark = pytest.mark.anyio

INVERTED = {"from": "2025-06-01T00:00:00", "to": "2025-05-31T00:00:00"}
TIME_RANGE_TOOLS: list[tuple[str, str, dict[str, Any]]] = [
    ("METRIC", "aggregate", {"metric": "cpu_usage"}),
    ("METRIC", "series", {"ci_id": 1, "metric": "cpu_usage"}),
    ("HISTORY", "event_log", {}),
    ("CEP", "simulate", {"rule": "cpu_usage > 50"}),
]


@pytest.mark.parametrize(("tool", "operation", "params"), TIME_RANGE_TOOLS)
async def test_an_inverted_time_range_is_invalid_params_naming_both_ends(
    registry: ToolRegistry, tool: str, operation: str, params: dict[str, Any]
) -> None:
    with pytest.raises(InvalidParams) as caught:
        await call(registry, tool, operation, {**params, "time_range": INVERTED})
    assert caught.value.param == "time_range.from"
    assert "time_range.from" in str(caught.value)
    assert "time_range.to" in str(caught.value)
    # The runtime stays usable, and the same range the right way round is answered.
    upright = {"from": INVERTED["to"], "to": INVERTED["from"]}
    assert isinstance(
        await call(registry, tool, operation, {**params, "time_range": upright}), dict
    )


@given(st.integers(0, 2 * 10**9), st.integers(0, 2 * 10**9))
def test_a_range_is_refused_exactly_when_from_is_after_to(start: int, end: int) -> None:
    params = {"metric": "cpu_usage", "time_range": {"from": iso(start), "to": iso(end)}}
    if start > end:
        with pytest.raises(InvalidParams):
            check_ops_params("METRIC", "aggregate", params)
    else:
        assert check_ops_params("METRIC", "aggregate", params)["time_range"]["from"] == iso(start)


def test_all_candidates_failed_says_each_failure_once() -> None:
    error = AllCandidatesFailed(
        "LOOKUP",
        [
            ("CI", "get", InvalidParams("CI", "get", "ci_id", "must be an integer")),
            ("CI", "search", ToolTimeout("CI", "search", 2.0)),
            ("X", "y", RuntimeError("boom")),
        ],
    )
    text = str(error)
    assert text == (
        "all candidates for intent 'LOOKUP' failed: "
        "CI.get: InvalidParams: param 'ci_id': must be an integer; "
        "CI.search: ToolTimeout: exceeded its timeout of 2s; X.y: RuntimeError: boom"
    )
    assert text.count("CI.get") == 1
    assert text.count("InvalidParams") == 1


async def test_an_ask_every_candidate_refuses_reads_once(registry: ToolRegistry) -> None:
    async with open_runtime(registry, ops_defaults()) as rt:
        with pytest.raises(AllCandidatesFailed) as caught:
            await rt.execute_best("LOOKUP", {"ci_id": "seven"}, CTX)
    text = str(caught.value)
    assert "failed with" not in text
    assert text.count("CI.get") == 1
