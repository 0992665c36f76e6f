"""OpenTelemetry bridge: each trace record becomes a span (extra ``otel``).

Importing this module imports the OpenTelemetry API and SDK; nothing else in
:mod:`runtime.tracer` does (``runtime.tracer.OtelBridge`` resolves lazily).

- Tool calls follow the GenAI "Execute tool span" conventions: named
  ``execute_tool {tool_type}``, kind ``INTERNAL``, ``gen_ai.operation.name``,
  ``gen_ai.tool.name`` and ``gen_ai.tool.call.id``; pipeline runs and steps are
  ``pipeline {name}`` / ``step {name}`` without ``gen_ai.*``; our fields go under
  ``runtime.*``.
- Every non-``ok`` status is an error span with ``error.type`` (the error's type name for
  ``error`` and ``rejected``, else ``"timeout"`` or ``"cancelled"``) and, for failures,
  an ``exception`` event.
- ``gen_ai.tool.call.arguments`` holds the *redacted* params, only with
  ``include_arguments=True``.
- Span and trace ids are derived from ours (blake2b), so spans are exported at once in
  any order and a child names its parent before the parent exists; hence the bridge owns
  its ``TracerProvider`` (pass span processors; the sampler defaults to ``ALWAYS_ON``).
  W3C ids (32 / 16 lowercase hex digits: a ``traceparent`` an MCP client sent) are kept
  as they are, so the spans join the caller's trace.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from runtime.tracer.records import TraceRecord

__all__ = [
    "INSTRUMENTATION_NAME",
    "OtelBridge",
    "error_type",
    "otel_span_id",
    "otel_trace_id",
    "span_name",
]

INSTRUMENTATION_NAME = "runtime.tracer"
_HEX = re.compile(r"[0-9a-f]+")


def _digest(text: str, size: int) -> int:
    value = int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=size).digest())
    return value or 1  # all-zero ids are invalid in OpenTelemetry


def _w3c(text: str, digits: int) -> int | None:
    # An id that came from a W3C traceparent (an MCP request's _meta) is kept as it is,
    # so the exported span joins the caller's trace; ours never look like one.
    if len(text) == digits and _HEX.fullmatch(text) is not None:
        return int(text, 16) or None
    return None


def otel_trace_id(trace_id: str) -> int:
    """The 128-bit OpenTelemetry trace id of our trace id: itself when it is 32 lowercase
    hex digits (a W3C trace id), else derived."""
    return _w3c(trace_id, 32) or _digest(trace_id, 16)


def otel_span_id(span_id: str) -> int:
    """The 64-bit OpenTelemetry span id of our span id: itself when it is 16 lowercase
    hex digits (a W3C parent id), else derived."""
    return _w3c(span_id, 16) or _digest(span_id, 8)


def span_name(record: TraceRecord) -> str:
    if record.kind == "tool_call":
        return f"execute_tool {record.tool_type}"
    if record.tool_type in ("", record.kind):
        return f"{record.kind} {record.operation}"
    return f"{record.kind} {record.tool_type}.{record.operation}"


def error_type(record: TraceRecord) -> str | None:
    """The ``error.type`` of a record: ``None`` for ``ok``."""
    if record.status == "ok":
        return None
    if record.status in ("error", "rejected"):
        return record.error_type or "_OTHER"
    return record.status  # "timeout" | "cancelled"


class _ScriptedIds(IdGenerator):
    """Returns the ids the bridge chose for the span being started; random otherwise."""

    def __init__(self) -> None:
        self.next_trace_id: int | None = None
        self.next_span_id: int | None = None
        self._random = RandomIdGenerator()

    def generate_trace_id(self) -> int:
        chosen, self.next_trace_id = self.next_trace_id, None
        return chosen if chosen is not None else self._random.generate_trace_id()

    def generate_span_id(self) -> int:
        chosen, self.next_span_id = self.next_span_id, None
        return chosen if chosen is not None else self._random.generate_span_id()


class OtelBridge:
    """Turns :class:`TraceRecord` values into finished OpenTelemetry spans.

    Call it (or :meth:`emit`) with each record, from one task at a time — the tracer
    actor's task.  ``force_flush`` / ``shutdown`` pass through to the span processors.
    """

    def __init__(
        self,
        span_processors: Iterable[SpanProcessor] = (),
        *,
        resource: Resource | None = None,
        sampler: Sampler | None = None,
        include_arguments: bool = False,
    ) -> None:
        self._ids = _ScriptedIds()
        self._provider = TracerProvider(
            sampler=sampler if sampler is not None else ALWAYS_ON,
            resource=resource,
            id_generator=self._ids,
            shutdown_on_exit=False,
        )
        for processor in span_processors:
            self._provider.add_span_processor(processor)
        self._tracer = self._provider.get_tracer(INSTRUMENTATION_NAME)
        self._include_arguments = include_arguments

    @property
    def provider(self) -> TracerProvider:
        return self._provider

    def __call__(self, record: TraceRecord) -> None:
        self.emit(record)

    def emit_all(self, records: Iterable[TraceRecord]) -> None:
        for record in records:
            self.emit(record)

    def emit(self, record: TraceRecord) -> None:
        """Export ``record`` as one finished span with its recorded start and end."""
        trace_id = otel_trace_id(record.trace_id)
        if record.parent_span_id:
            parent = SpanContext(
                trace_id=trace_id,
                span_id=otel_span_id(record.parent_span_id),
                is_remote=False,
                trace_flags=TraceFlags(TraceFlags.SAMPLED),
            )
            context = trace.set_span_in_context(NonRecordingSpan(parent))
        else:
            # An empty context, so the span never adopts whatever span happens to be
            # current in the emitting task.
            context = Context()
        start_ns = round(record.started_wall * 1_000_000) * 1000
        end_ns = start_ns + round(record.duration_ms * 1_000_000)
        self._ids.next_trace_id = trace_id
        self._ids.next_span_id = otel_span_id(record.span_id)
        try:
            span = self._tracer.start_span(
                span_name(record),
                context=context,
                kind=SpanKind.INTERNAL,
                attributes=self._attributes(record),
                start_time=start_ns,
            )
        finally:
            self._ids.next_trace_id = self._ids.next_span_id = None
        failure = error_type(record)
        if failure is not None:
            description = record.error_message or failure
            span.add_event(
                "exception",
                {"exception.type": record.error_type or failure, "exception.message": description},
                timestamp=end_ns,
            )
            span.set_status(Status(StatusCode.ERROR, description))
        span.end(end_time=end_ns)

    def _attributes(self, record: TraceRecord) -> dict[str, Any]:
        attributes: dict[str, Any] = {}
        if record.kind == "tool_call":
            attributes["gen_ai.operation.name"] = "execute_tool"
            attributes["gen_ai.tool.name"] = record.tool_type
            attributes["gen_ai.tool.call.id"] = record.span_id
            if self._include_arguments:
                attributes["gen_ai.tool.call.arguments"] = json.dumps(
                    record.params, ensure_ascii=False, default=repr
                )
        failure = error_type(record)
        if failure is not None:
            attributes["error.type"] = failure
        attributes["runtime.kind"] = record.kind
        attributes["runtime.tool_type"] = record.tool_type
        attributes["runtime.operation"] = record.operation
        attributes["runtime.tenant"] = record.tenant
        attributes["runtime.status"] = record.status
        attributes["runtime.cache_hit"] = record.cache_hit
        attributes["runtime.coalesced"] = record.coalesced
        attributes["runtime.retries"] = record.retries
        attributes["runtime.fallback_used"] = record.fallback_used
        attributes["runtime.trace_id"] = record.trace_id
        attributes["runtime.span_id"] = record.span_id
        if record.result_count is not None:
            attributes["runtime.result_count"] = record.result_count
        if record.result_size_bytes is not None:
            attributes["runtime.result_size_bytes"] = record.result_size_bytes
            attributes["runtime.result_size_estimated"] = record.result_size_estimated
        if record.error_type is not None:
            attributes["runtime.error_type"] = record.error_type
        return attributes

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._provider.shutdown()
