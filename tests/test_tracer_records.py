"""Trace records: one per status with the right fields, redaction, sizing and counting."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.calls import CallReport
from runtime.tracer.records import (
    FIELD_NAMES,
    MAX_ERROR_CHARS,
    iso_from_wall,
    record_from_dict,
    record_from_report,
    record_to_dict,
    result_count,
    result_size_bytes,
    wall_from_iso,
)
from runtime.tracer.redact import (
    CYCLE,
    DEFAULT_REDACT_KEYS,
    MAX_CONTAINERS,
    MAX_DEPTH,
    REDACTED,
    TOO_DEEP,
    TOO_LARGE,
    Redactor,
    redact,
)


def make_report(**overrides: Any) -> CallReport:
    values: dict[str, Any] = {
        "kind": "tool_call",
        "trace_id": "tabc-1",
        "span_id": "abc-2",
        "parent_span_id": None,
        "tool_type": "CI",
        "operation": "search",
        "tenant_id": "acme",
        "started_at": 100.0,
        "started_wall": 1_700_000_000.25,
        "duration_s": 0.0125,
        "status": "ok",
    }
    values.update(overrides)
    return CallReport(**values)


STATUS_CASES = [
    ("ok", None, None, [1, 2, 3]),
    ("error", "ToolExecutionError", "cmdb exploded", None),
    ("timeout", "ToolTimeout", "CI.search timed out after 2.5 s", None),
    ("cancelled", "Cancelled", "cancelled by caller", None),
]


@pytest.mark.parametrize(("status", "error_type", "message", "data"), STATUS_CASES)
def test_one_record_per_status_with_the_right_fields(
    status: str, error_type: str | None, message: str | None, data: Any
) -> None:
    report = make_report(
        status=status,
        error_type=error_type,
        error_message=message,
        data=data,
        duration_s=2.5,
        cache_hit=status == "ok",
        coalesced=status == "error",
        retries=2,
        fallback_used=status == "timeout",
        parent_span_id="abc-1",
        params={"ci_id": "web-01", "api_key": "k-123"},
        metadata={"step": "lookup"},
    )
    record = record_from_report(report)
    assert record.status == status
    assert record.error_type == error_type
    assert record.error_message == message
    assert record.failed is (status != "ok")
    assert record.duration_ms == 2500.0
    assert (record.trace_id, record.span_id, record.parent_span_id) == ("tabc-1", "abc-2", "abc-1")
    assert (record.kind, record.tool_type, record.operation, record.tenant) == (
        "tool_call",
        "CI",
        "search",
        "acme",
    )
    assert record.started_at == 100.0
    assert record.started_wall == 1_700_000_000.25
    assert record.cache_hit is (status == "ok")
    assert record.coalesced is (status == "error")
    assert record.fallback_used is (status == "timeout")
    assert record.retries == 2
    assert record.params == {"ci_id": "web-01", "api_key": REDACTED}
    assert record.metadata == {"step": "lookup"}
    if data is None:
        assert record.result_size_bytes is None
        assert record.result_count is None
    else:
        assert record.result_size_bytes == len("[1,2,3]")
        assert record.result_count == 3


def test_durations_are_never_negative_or_non_finite() -> None:
    assert record_from_report(make_report(duration_s=-1.0)).duration_ms == 0.0
    assert record_from_report(make_report(duration_s=math.nan)).duration_ms == 0.0
    assert record_from_report(make_report(duration_s=math.inf)).duration_ms == 0.0


def test_long_error_messages_are_cut() -> None:
    record = record_from_report(make_report(status="error", error_message="x" * 50_000))
    assert record.error_message is not None
    assert len(record.error_message) == MAX_ERROR_CHARS
    assert record.error_message.endswith("...")


# -- redaction ---------------------------------------------------------------------------


def test_redaction_reaches_every_depth_and_lists() -> None:
    params = {
        "query": "web",
        "Password": "hunter2",
        "auth": {"Authorization": "Bearer abc", "user": "bob"},
        "targets": [{"name": "db", "db_password": "pw1"}, {"X-Api-Key": "k"}],
        "nested": [[{"client_secret": "s"}]],
        "credentials": {"user": "u", "pass": "p"},
        "refresh_TOKEN": ["t1", "t2"],
        "limit": 5,
    }
    assert redact(params) == {
        "query": "web",
        "Password": REDACTED,
        "auth": {"Authorization": REDACTED, "user": "bob"},
        "targets": [{"name": "db", "db_password": REDACTED}, {"X-Api-Key": REDACTED}],
        "nested": [[{"client_secret": REDACTED}]],
        "credentials": REDACTED,
        "refresh_TOKEN": REDACTED,
        "limit": 5,
    }


def test_redaction_uses_the_configured_keys_only() -> None:
    redactor = Redactor(["ssn"])
    assert redactor({"SSN_number": "1", "password": "p"}) == {
        "SSN_number": REDACTED,
        "password": "p",
    }
    assert Redactor([]).fragments == ()


def test_redaction_makes_plain_json_data() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return "<opaque>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    cleaned = redact({1: (1, 2), "f": math.inf, "o": Opaque(), "b": Broken(), "s": {3}})
    assert cleaned == {
        "1": [1, 2],
        "f": "inf",
        "o": "<opaque>",
        "b": "<unrepresentable Broken>",
        "s": [3],
    }
    json.dumps(cleaned, allow_nan=False)


def test_a_reference_cycle_becomes_a_marker() -> None:
    cyclic: dict[str, Any] = {"a": 1, "token": "abcdef"}
    cyclic["self"] = cyclic
    cyclic["twice"] = [cyclic, (cyclic,)]
    assert redact(cyclic) == {
        "a": 1,
        "token": REDACTED,
        "self": CYCLE,
        "twice": [CYCLE, [CYCLE]],
    }
    # The same container met again on another branch is no cycle: written out again.
    shared = {"k": 1}
    assert redact({"x": shared, "y": [shared]}) == {"x": {"k": 1}, "y": [{"k": 1}]}


def test_deep_nesting_is_cut_at_the_depth_limit() -> None:
    nested: dict[str, Any] = {"a": 1}
    for _ in range(100):
        nested = {"in": nested}
    node: Any = redact(nested)
    depth = 0
    while isinstance(node, dict):
        node = node["in"]
        depth += 1
    assert node == TOO_DEEP
    assert depth == MAX_DEPTH


def _finishes_within(seconds: float, work: Callable[[], Any]) -> Any:
    """``work()``'s value, failing (not hanging) when it takes longer than ``seconds``."""
    done: list[Any] = []
    worker = threading.Thread(target=lambda: done.append(work()), daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    assert done, f"did not finish in {seconds} s"
    return done[0]


def test_shared_references_are_bounded_not_expanded_exponentially() -> None:
    # Forty lists, but written out as a tree 2**40 of them: the walk stops at
    # MAX_CONTAINERS and marks the rest.
    tower: Any = ["leaf"]
    for _ in range(40):
        tower = [tower, tower]
    doubled: dict[str, Any] = {"password": "hunter22"}
    doubled["a"] = doubled
    doubled["b"] = doubled
    params = {"doubled": doubled, "tower": tower}
    redactor = Redactor()
    cleaned = _finishes_within(30, lambda: redactor(params))
    text = json.dumps(cleaned)
    assert TOO_LARGE in text
    assert text.count("[") <= MAX_CONTAINERS + 1
    assert cleaned["doubled"] == {"password": REDACTED, "a": CYCLE, "b": CYCLE}
    scrubbed = _finishes_within(30, lambda: redactor.scrub("refused hunter22", params))
    assert scrubbed == f"refused {REDACTED}"


SECRET = "S3CR3T-VALUE"
secret_keys = st.sampled_from(
    ["password", "Authorization", "x-api-key", "db_password", "SECRET", "access_token"]
)
plain_keys = st.sampled_from(["query", "limit", "ci_id", "name", "since"])
leaves = st.one_of(st.integers(), st.text(max_size=5), st.none(), st.booleans())


def _documents(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(plain_keys, children, max_size=3),
        st.dictionaries(secret_keys, st.just(SECRET) | st.lists(st.just(SECRET)), max_size=2),
    )


documents = st.recursive(leaves, _documents, max_leaves=20)


@given(documents)
def test_no_secret_survives_redaction_at_any_depth(document: Any) -> None:
    cleaned = redact(document, DEFAULT_REDACT_KEYS)
    assert SECRET not in json.dumps(cleaned)


# -- sizing and counting -------------------------------------------------------------------


def test_result_size_is_the_compact_json_length_and_never_raises() -> None:
    assert result_size_bytes({"a": [1, 2]}) == len('{"a":[1,2]}')
    assert result_size_bytes(None) is None
    assert result_size_bytes(object()) == len(json.dumps(repr(object())))  # via default=repr
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    assert result_size_bytes(cyclic) == len(repr(cyclic))
    assert result_size_bytes({(1, 2): "tuple key"}) == len(repr({(1, 2): "tuple key"}))

    class Hopeless:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    bad: list[Any] = [Hopeless()]
    bad.append(bad)
    assert result_size_bytes(bad) is None


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([1, 2, 3], 3),
        ((), 0),
        ({"records": [1, 2]}, 2),
        ({"rows": [1]}, 1),
        ({"items": [1, 2, 3, 4]}, 4),
        ({"events": []}, 0),
        ({"nodes": [1, 2], "edges": [1]}, 2),
        ({"records": "not a list"}, None),
        ({"count": 7}, None),
        ("text", None),
        (42, None),
        (None, None),
    ],
)
def test_result_count(data: Any, expected: int | None) -> None:
    assert result_count(data) == expected


# -- wall clock and the dict shape ---------------------------------------------------------


@given(st.floats(min_value=0, max_value=4_000_000_000, allow_nan=False))
def test_wall_clock_round_trips_through_iso_text(wall: float) -> None:
    record = record_from_report(make_report(started_wall=wall))
    assert abs(record.started_wall - wall) <= 1e-6
    assert wall_from_iso(iso_from_wall(record.started_wall)) == record.started_wall


def test_iso_text_is_utc_with_microseconds() -> None:
    assert iso_from_wall(0.5) == "1970-01-01T00:00:00.500000Z"
    assert wall_from_iso("1970-01-01T00:00:01") == 1.0


def test_dict_shape_round_trips() -> None:
    record = record_from_report(make_report(params={"a": [1, {"token": "x"}]}, data={"rows": [1]}))
    as_dict = record_to_dict(record)
    assert tuple(as_dict) == FIELD_NAMES
    assert as_dict["started_wall"] == "2023-11-14T22:13:20.250000Z"
    assert record_from_dict(json.loads(json.dumps(as_dict))) == record


def test_a_report_without_data_brings_its_own_result_figures() -> None:
    sized = make_report(result_count=7, result_size_bytes=321, result_size_estimated=True)
    record = record_from_report(sized)
    assert (record.result_count, record.result_size_bytes, record.result_size_estimated) == (
        7,
        321,
        True,
    )
    # Data, when a report carries it, is measured exactly and wins over the figures.
    carried = make_report(data=[1, 2], result_count=7, result_size_bytes=321)
    record = record_from_report(carried)
    assert (record.result_count, record.result_size_bytes, record.result_size_estimated) == (
        2,
        len("[1,2]"),
        False,
    )
    assert record_from_dict(record_to_dict(record)) == record
    assert "result_size_estimated" in FIELD_NAMES
