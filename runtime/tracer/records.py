"""Trace records: one immutable value per tool call, pipeline run or pipeline step.

A :class:`TraceRecord` is built from a :class:`~runtime.calls.CallReport` off the
caller's path:

* ``params`` and ``metadata`` are redacted (:mod:`runtime.tracer.redact`) into plain JSON
  data; values hidden in ``params`` are scrubbed from ``error_message`` too;
* the result is not kept: ``result_count`` (exact) and ``result_size_bytes`` (the compact
  JSON length, measured or estimated per :mod:`runtime.tracer.sizing`, with
  ``result_size_estimated`` saying which; ``None`` without data) stand for it;
* ``duration_ms`` comes from the monotonic clock; ``started_wall`` is a Unix timestamp cut
  to whole microseconds, so the ISO text the exports print reads back to the same float.

Nothing here raises on odd data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

import attrs

from runtime.calls import CallReport, Status
from runtime.tracer.redact import DEFAULT_REDACT_KEYS, Redactor
from runtime.tracer.sizing import COUNT_KEYS, result_count, result_size_bytes

__all__ = [
    "COUNT_KEYS",
    "FIELD_NAMES",
    "MAX_ERROR_CHARS",
    "Kind",
    "Status",
    "TraceRecord",
    "duration_ms_of",
    "iso_from_wall",
    "record_from_dict",
    "record_from_report",
    "record_to_dict",
    "result_count",
    "result_size_bytes",
    "wall_from_iso",
]

Kind = Literal["tool_call", "pipeline", "step"]

# Error messages can embed whole payloads; the ring buffer must stay small.
MAX_ERROR_CHARS = 1000


@attrs.frozen(slots=True)
class TraceRecord:
    """What the tracer keeps about one call, run or step.

    ``span_id`` / ``trace_id`` come from :class:`runtime.calls.IdGenerator` (a random
    prefix plus a counter, never the clock).  ``started_at`` is monotonic seconds
    (``anyio.current_time()``), only meaningful relative to other records of the same
    process; ``started_wall`` is Unix seconds (microsecond resolution) for humans.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    kind: Kind
    tool_type: str
    operation: str
    tenant: str
    started_at: float
    started_wall: float
    duration_ms: float
    status: Status
    error_type: str | None = None
    error_message: str | None = None
    cache_hit: bool = False
    coalesced: bool = False
    params: Mapping[str, Any] = attrs.field(factory=dict)
    result_size_bytes: int | None = None
    result_count: int | None = None
    result_size_estimated: bool = False
    retries: int = 0
    fallback_used: bool = False
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    selection: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def started_iso(self) -> str:
        return iso_from_wall(self.started_wall)

    @property
    def failed(self) -> bool:
        return self.status != "ok"


FIELD_NAMES: tuple[str, ...] = tuple(a.name for a in attrs.fields(TraceRecord))


def duration_ms_of(report: CallReport) -> float:
    """The report's duration in ms; negative or non-finite durations count as 0."""
    duration_ms = report.duration_s * 1000.0
    return duration_ms if 0.0 < duration_ms < math.inf else 0.0


def _wall_to_microseconds(wall: float) -> float:
    if not math.isfinite(wall):
        return 0.0
    return round(wall * 1_000_000) / 1_000_000


def _cut(message: str | None) -> str | None:
    if message is None or len(message) <= MAX_ERROR_CHARS:
        return message
    return message[: MAX_ERROR_CHARS - 3] + "..."


def record_from_report(
    report: CallReport,
    *,
    redact_keys: Redactor | Iterable[str] = DEFAULT_REDACT_KEYS,
) -> TraceRecord:
    """The trace record of ``report``: redacted, sized, counted, timestamped.

    Pass a :class:`Redactor` (as :class:`~runtime.tracer.state.TracerState` does) rather
    than a list of keys on hot paths: it memoises the per-key verdict.
    """
    redactor = redact_keys if isinstance(redact_keys, Redactor) else Redactor(redact_keys)
    data = report.data
    if data is None:
        count = report.result_count
        size = report.result_size_bytes
        estimated = report.result_size_estimated
    else:
        count, size, estimated = result_count(data), result_size_bytes(data), False
    return TraceRecord(
        trace_id=report.trace_id,
        span_id=report.span_id,
        parent_span_id=report.parent_span_id,
        kind=report.kind,
        tool_type=str(report.tool_type),
        operation=report.operation,
        tenant=report.tenant_id,
        started_at=report.started_at,
        started_wall=_wall_to_microseconds(report.started_wall),
        duration_ms=duration_ms_of(report),
        status=report.status,
        error_type=report.error_type,
        error_message=_cut(
            redactor.scrub(report.error_message, report.params)
            if report.error_message and report.params
            else report.error_message
        ),
        cache_hit=report.cache_hit,
        coalesced=report.coalesced,
        params=redactor(report.params) if report.params else {},
        result_size_bytes=size,
        result_count=count,
        result_size_estimated=estimated,
        retries=report.retries,
        fallback_used=report.fallback_used,
        metadata=redactor(report.metadata) if report.metadata else {},
        selection=dict(report.selection) if report.selection else {},
    )


# -- the JSON shape shared by every export ----------------------------------------------


def iso_from_wall(wall: float) -> str:
    """``2025-01-02T03:04:05.123456Z`` for a Unix timestamp."""
    moment = datetime.fromtimestamp(wall, UTC)
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def wall_from_iso(text: str) -> float:
    """The Unix timestamp of an ISO 8601 string (naive strings are taken as UTC)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def record_to_dict(record: TraceRecord) -> dict[str, Any]:
    """A JSON-ready dict of ``record``, fields in declaration order, wall clock as ISO."""
    out = {name: getattr(record, name) for name in FIELD_NAMES}
    out["started_wall"] = iso_from_wall(record.started_wall)
    out["params"] = dict(record.params)
    out["metadata"] = dict(record.metadata)
    out["selection"] = dict(record.selection)
    return out


def record_from_dict(data: Mapping[str, Any]) -> TraceRecord:
    """The inverse of :func:`record_to_dict`; unknown keys are ignored."""
    values = {name: data[name] for name in FIELD_NAMES if name in data}
    wall = values.get("started_wall")
    if isinstance(wall, str):
        values["started_wall"] = wall_from_iso(wall)
    return TraceRecord(**values)
