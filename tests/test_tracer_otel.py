"""The OpenTelemetry bridge, checked with the SDK's in-memory exporter."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode

from runtime.calls import CallReport
from runtime.tracer.actor import TracerActor
from runtime.tracer.otel import OtelBridge, otel_span_id, otel_trace_id
from runtime.tracer.records import TraceRecord, record_from_report


def make_record(span_id: str, **overrides: Any) -> TraceRecord:
    values: dict[str, Any] = {
        "kind": "tool_call",
        "trace_id": "t-run",
        "span_id": span_id,
        "parent_span_id": None,
        "tool_type": "CI",
        "operation": "search",
        "tenant_id": "acme",
        "started_at": 5.0,
        "started_wall": 1_700_000_000.5,
        "duration_s": 0.25,
        "status": "ok",
    }
    values.update(overrides)
    return record_from_report(CallReport(**values))


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def bridge(exporter: InMemorySpanExporter) -> Iterator[OtelBridge]:
    bridge = OtelBridge([SimpleSpanProcessor(exporter)])
    yield bridge
    bridge.shutdown()


def by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


def test_tool_call_span_follows_the_genai_conventions(
    bridge: OtelBridge, exporter: InMemorySpanExporter
) -> None:
    record = make_record(
        "s-1",
        cache_hit=True,
        coalesced=True,
        retries=1,
        fallback_used=True,
        data={"records": [1, 2, 3]},
        params={"password": "pw"},
    )
    bridge.emit(record)
    (span,) = exporter.get_finished_spans()
    assert span.name == "execute_tool CI"
    assert span.kind is SpanKind.INTERNAL
    attributes = dict(span.attributes or {})
    assert attributes["gen_ai.operation.name"] == "execute_tool"
    assert attributes["gen_ai.tool.name"] == "CI"
    assert attributes["gen_ai.tool.call.id"] == "s-1"
    assert "gen_ai.tool.call.arguments" not in attributes  # opt-in only
    assert "error.type" not in attributes
    assert attributes["runtime.operation"] == "search"
    assert attributes["runtime.tenant"] == "acme"
    assert attributes["runtime.cache_hit"] is True
    assert attributes["runtime.coalesced"] is True
    assert attributes["runtime.result_count"] == 3
    assert attributes["runtime.result_size_bytes"] == len('{"records":[1,2,3]}')
    assert attributes["runtime.result_size_estimated"] is False
    assert attributes["runtime.retries"] == 1
    assert attributes["runtime.fallback_used"] is True
    assert span.status.status_code is StatusCode.UNSET
    assert span.start_time == 1_700_000_000_500_000_000
    assert span.end_time == 1_700_000_000_750_000_000
    assert span.context is not None
    assert span.context.trace_id == otel_trace_id("t-run")
    assert span.context.span_id == otel_span_id("s-1")
    assert span.parent is None


@pytest.mark.parametrize(
    ("status", "error_type", "expected"),
    [
        ("error", "ToolExecutionError", "ToolExecutionError"),
        ("error", None, "_OTHER"),
        ("timeout", "ToolTimeout", "timeout"),
        ("cancelled", "Cancelled", "cancelled"),
    ],
)
def test_failures_timeouts_and_cancellations_are_errors(
    bridge: OtelBridge,
    exporter: InMemorySpanExporter,
    status: str,
    error_type: str | None,
    expected: str,
) -> None:
    bridge.emit(
        make_record("s-1", status=status, error_type=error_type, error_message="it went wrong")
    )
    (span,) = exporter.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "it went wrong"
    attributes = dict(span.attributes or {})
    assert attributes["error.type"] == expected
    assert attributes["runtime.status"] == status
    (event,) = span.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.message"] == "it went wrong"


def test_parentage_is_preserved_when_records_arrive_child_first(
    bridge: OtelBridge, exporter: InMemorySpanExporter
) -> None:
    # The order the tracer sees them: the tool call ends first, the pipeline last.
    bridge.emit(make_record("s-call", parent_span_id="s-step"))
    bridge.emit(make_record("s-step", kind="step", parent_span_id="s-run", operation="lookup"))
    bridge.emit(make_record("s-run", kind="pipeline", tool_type="pipeline", operation="triage"))
    spans = by_name(exporter)
    call, step, run = spans["execute_tool CI"], spans["step CI.lookup"], spans["pipeline triage"]
    assert run.parent is None
    assert step.parent is not None
    assert call.parent is not None
    assert run.context is not None
    assert step.context is not None
    assert call.context is not None
    assert step.parent.span_id == run.context.span_id
    assert call.parent.span_id == step.context.span_id
    assert {call.context.trace_id, step.context.trace_id, run.context.trace_id} == {
        otel_trace_id("t-run")
    }
    # Pipeline and step spans are not tool executions.
    assert "gen_ai.operation.name" not in dict(step.attributes or {})
    assert dict(run.attributes or {})["runtime.kind"] == "pipeline"


def test_emitted_spans_ignore_whatever_span_is_current(
    bridge: OtelBridge, exporter: InMemorySpanExporter
) -> None:
    outer_provider = TracerProvider()
    with outer_provider.get_tracer("app").start_as_current_span("request"):
        bridge.emit(make_record("s-1"))
    (span,) = exporter.get_finished_spans()
    assert span.parent is None
    assert trace.get_current_span() is trace.INVALID_SPAN
    outer_provider.shutdown()


def test_arguments_are_opt_in_and_redacted(exporter: InMemorySpanExporter) -> None:
    bridge = OtelBridge([SimpleSpanProcessor(exporter)], include_arguments=True)
    bridge(make_record("s-1", params={"ci": "web", "auth": {"token": "abc123"}}))
    bridge.shutdown()
    (span,) = exporter.get_finished_spans()
    arguments = json.loads(str(dict(span.attributes or {})["gen_ai.tool.call.arguments"]))
    assert arguments == {"ci": "web", "auth": {"token": "***"}}


def test_batch_processor_exports_everything_on_flush(exporter: InMemorySpanExporter) -> None:
    bridge = OtelBridge([BatchSpanProcessor(exporter)])
    bridge.emit_all(make_record(f"s-{i}") for i in range(50))
    assert bridge.force_flush()
    assert len(exporter.get_finished_spans()) == 50
    assert len({s.context.span_id for s in exporter.get_finished_spans() if s.context}) == 50
    bridge.shutdown()


def test_ratio_sampling_keeps_or_drops_whole_traces(exporter: InMemorySpanExporter) -> None:
    bridge = OtelBridge([SimpleSpanProcessor(exporter)], sampler=TraceIdRatioBased(0.5))
    for t in range(40):
        bridge.emit(make_record(f"c-{t}", trace_id=f"t-{t}", parent_span_id=f"r-{t}"))
        bridge.emit(make_record(f"r-{t}", trace_id=f"t-{t}", kind="pipeline"))
    bridge.shutdown()
    spans = exporter.get_finished_spans()
    per_trace: dict[int, int] = {}
    for span in spans:
        assert span.context is not None
        per_trace[span.context.trace_id] = per_trace.get(span.context.trace_id, 0) + 1
    assert 0 < len(per_trace) < 40
    assert set(per_trace.values()) == {2}


def test_the_core_package_does_not_import_opentelemetry() -> None:
    code = (
        "import sys, runtime.tracer as t; "
        "assert not any(m.startswith('opentelemetry') for m in sys.modules), 'eager'; "
        "assert t.OtelBridge.__name__ == 'OtelBridge'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


@pytest.mark.anyio
async def test_the_bridge_as_a_tracer_sink(exporter: InMemorySpanExporter) -> None:
    bridge = OtelBridge([SimpleSpanProcessor(exporter)])
    tracer = TracerActor(sinks=[bridge])
    report = CallReport(
        kind="tool_call",
        trace_id="t-1",
        span_id="s-1",
        parent_span_id=None,
        tool_type="GRAPH",
        operation="neighbours",
        tenant_id="acme",
        started_at=0.0,
        started_wall=1_700_000_000.0,
        duration_s=0.01,
        status="timeout",
        error_type="ToolTimeout",
    )
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            tracer.call_finished(report)
            stats = await tracer.tracer_stats()
            tracer.stop()
    bridge.shutdown()
    (span,) = exporter.get_finished_spans()
    assert span.name == "execute_tool GRAPH"
    assert dict(span.attributes or {})["error.type"] == "timeout"
    assert stats.sink_errors == 0
