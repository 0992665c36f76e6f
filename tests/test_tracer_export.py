"""Exports: JSON round trip, JSON lines, CSV shape, unknown formats, no secret in any text."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.calls import CallReport
from runtime.tracer.export import FORMATS, export, records_from_json, records_from_jsonl
from runtime.tracer.records import FIELD_NAMES, TraceRecord, record_from_report

SECRETS = ("hunter2", "Bearer-abc.def", "sk-live-123", "very-private-pem")


def make_report(n: int, **overrides: Any) -> CallReport:
    values: dict[str, Any] = {
        "kind": "tool_call",
        "trace_id": "t-9",
        "span_id": f"s-{n}",
        "parent_span_id": "s-0" if n else None,
        "tool_type": "CI",
        "operation": "search",
        "tenant_id": "acme",
        "started_at": 12.5 + n,
        "started_wall": 1_700_000_000.123456 + n,
        "duration_s": 0.001 * (n + 1),
        "status": "ok",
    }
    values.update(overrides)
    return CallReport(**values)


def sample_records() -> list[TraceRecord]:
    secret_params = {
        "query": 'db, "quoted"\nnewline',
        "password": SECRETS[0],
        "headers": {"Authorization": SECRETS[1]},
        "targets": [{"name": "x", "api_key": SECRETS[2]}],
        "deep": {"a": [{"b": {"private_key": SECRETS[3]}}]},
    }
    return [
        record_from_report(make_report(0, params=secret_params, data={"rows": [1, 2]})),
        record_from_report(
            make_report(1, status="error", error_type="KeyError", error_message="no, ci")
        ),
        record_from_report(make_report(2, status="timeout", error_type="ToolTimeout")),
        record_from_report(
            make_report(3, status="cancelled", kind="step", metadata={"token": SECRETS[0]})
        ),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_secret_appears_in_any_export(fmt: str) -> None:
    text = export(sample_records(), fmt)
    assert "***" in text
    for secret in SECRETS:
        assert secret not in text


def test_json_export_parses_back_to_the_same_records() -> None:
    records = sample_records()
    text = export(records, "json")
    loaded = json.loads(text)
    assert loaded[0]["started_wall"] == "2023-11-14T22:13:20.123456Z"
    assert records_from_json(text) == records


def test_jsonl_has_one_line_per_record_and_parses_back() -> None:
    records = sample_records()
    text = export(records, "jsonl")
    assert len(text.splitlines()) == len(records)
    assert records_from_jsonl(text) == records
    assert records_from_json(text) == records


def test_csv_has_a_header_and_one_row_per_record() -> None:
    records = sample_records()
    text = export(records, "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == FIELD_NAMES
    assert len(rows) == len(records) + 1
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [row["span_id"] for row in parsed] == [r.span_id for r in records]
    assert [row["status"] for row in parsed] == ["ok", "error", "timeout", "cancelled"]
    first = parsed[0]
    assert json.loads(first["params"])["query"] == records[0].params["query"]
    assert json.loads(first["params"])["password"] == "***"
    assert first["cache_hit"] == "false"
    assert first["error_type"] == ""
    assert first["started_wall"] == "2023-11-14T22:13:20.123456Z"
    assert first["result_count"] == "2"


def test_empty_exports() -> None:
    assert records_from_json(export([], "json")) == []
    assert export([], "jsonl") == ""
    assert export([], "csv").splitlines() == [",".join(FIELD_NAMES)]


def test_unknown_format_names_the_supported_ones() -> None:
    with pytest.raises(ValueError, match="xml") as caught:
        export(sample_records(), "xml")
    for fmt in FORMATS:
        assert fmt in str(caught.value)


def test_format_names_are_case_insensitive() -> None:
    assert export(sample_records(), "JSON") == export(sample_records(), "json")


@pytest.mark.parametrize("fmt", FORMATS)
def test_path_writes_the_same_text_it_returns(tmp_path: Path, fmt: str) -> None:
    target = tmp_path / f"traces.{fmt}"
    text = export(sample_records(), fmt, target)
    assert target.read_text(encoding="utf-8") == text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)


@given(
    st.lists(
        st.builds(
            make_report,
            st.integers(0, 1000),
            status=st.sampled_from(["ok", "error", "timeout", "cancelled"]),
            kind=st.sampled_from(["tool_call", "step", "pipeline"]),
            started_wall=st.floats(0, 4e9),
            started_at=st.floats(-1e9, 1e9),
            duration_s=st.floats(0, 1e5),
            error_message=st.none() | st.text(max_size=20),
            params=st.dictionaries(st.text(max_size=6), json_values, max_size=4),
            data=json_values,
            retries=st.integers(0, 5),
        ),
        max_size=5,
    )
)
def test_json_round_trip_for_any_records(reports: list[CallReport]) -> None:
    records = [record_from_report(report) for report in reports]
    assert records_from_json(export(records, "json")) == records
    assert records_from_jsonl(export(records, "jsonl")) == records
