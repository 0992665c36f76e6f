"""Per-(tool, operation) aggregates over every call, and their immutable snapshots.

The ring buffer only remembers the last N records; the aggregates here remember *all*
calls in constant space: counters, a running sum/min/max and a
:class:`~runtime.tracer.sketch.QuantileSketch` for p50/p95/p99 (relative error <= 1% by
default).  :class:`Aggregate` is mutable and owned by the tracer state (hence by the
tracer actor's task alone); readers only ever get :class:`OperationStats` /
:class:`TracerStats` snapshots, which are frozen and detached from the state.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from itertools import repeat
from operator import attrgetter, mul
from typing import Any

import attrs

from runtime.calls import CallReport
from runtime.tracer.records import TraceRecord
from runtime.tracer.sketch import QuantileSketch

__all__ = ["Aggregate", "OperationKey", "OperationStats", "TracerStats"]

OperationKey = tuple[str, str]
"""``(tool_type, operation)``."""


@attrs.frozen(slots=True)
class OperationStats:
    """A snapshot of one (tool, operation)'s aggregate.  Latencies are in milliseconds."""

    count: int
    ok: int
    error: int
    timeout: int
    cancelled: int
    total_ms: float
    mean_ms: float
    min_ms: float
    max_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    cache_hits: int
    cache_hit_rate: float
    coalesced: int
    retries: int
    fallbacks: int
    rejected: int = 0
    """Calls whose params were refused (``InvalidParams`` or a subclass)."""

    @property
    def failures(self) -> int:
        return self.error + self.timeout + self.cancelled + self.rejected

    @property
    def error_rate(self) -> float:
        """Share of calls that did not end ``ok`` (errors, timeouts, rejections and
        cancellations)."""
        return self.failures / self.count if self.count else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, and ``error_rate`` beside ``cache_hit_rate``."""
        return {**attrs.asdict(self), "error_rate": self.error_rate}


_STATUS = attrgetter("status")
_CACHE_HIT = attrgetter("cache_hit")
_COALESCED = attrgetter("coalesced")
_RETRIES = attrgetter("retries")
_FALLBACK_USED = attrgetter("fallback_used")
_DURATION_S = attrgetter("duration_s")


class Aggregate:
    """The running totals of one (tool, operation): O(1) per record, constant size."""

    __slots__ = (
        "cache_hits",
        "cancelled",
        "coalesced",
        "count",
        "error",
        "fallbacks",
        "ok",
        "rejected",
        "retries",
        "sketch",
        "timeout",
    )

    def __init__(self, *, relative_accuracy: float = 0.01, max_buckets: int = 2048) -> None:
        self.count = 0
        self.ok = 0
        self.error = 0
        self.timeout = 0
        self.rejected = 0
        self.cancelled = 0
        self.cache_hits = 0
        self.coalesced = 0
        self.retries = 0
        self.fallbacks = 0
        # The sketch also keeps the exact sum, min and max.
        self.sketch = QuantileSketch(relative_accuracy, max_buckets=max_buckets)

    def add(self, call: TraceRecord | CallReport, duration_ms: float) -> None:
        """Count one call: a record or a raw report (the fields read here have the same
        names in both); ``duration_ms`` is its sanitised duration."""
        self.count += 1
        status = call.status
        if status == "ok":
            self.ok += 1
        elif status == "error":
            self.error += 1
        elif status == "timeout":
            self.timeout += 1
        elif status == "rejected":
            self.rejected += 1
        else:
            self.cancelled += 1
        self.sketch.add(duration_ms)
        if call.cache_hit:
            self.cache_hits += 1
        if call.coalesced:
            self.coalesced += 1
        if call.retries:
            self.retries += call.retries
        if call.fallback_used:
            self.fallbacks += 1

    def add_reports(self, reports: Sequence[CallReport]) -> None:
        """Count a batch of reports of this (tool, operation): the same figures as
        :meth:`add` for each, in C-level passes over the batch (the tracer actor's
        per-call path; see :meth:`TracerState.observe_many`)."""
        n = len(reports)
        self.count += n
        statuses = Counter(map(_STATUS, reports))
        ok, error, timeout = statuses["ok"], statuses["error"], statuses["timeout"]
        rejected = statuses["rejected"]
        self.ok += ok
        self.error += error
        self.timeout += timeout
        self.rejected += rejected
        self.cancelled += n - ok - error - timeout - rejected
        self.cache_hits += sum(map(_CACHE_HIT, reports))
        self.coalesced += sum(map(_COALESCED, reports))
        self.retries += sum(map(_RETRIES, reports))
        self.fallbacks += sum(map(_FALLBACK_USED, reports))
        durations = list(map(mul, map(_DURATION_S, reports), repeat(1000.0)))
        # As duration_ms_of: a negative or non-finite duration counts as 0.  The sum is
        # NaN or inf when a value is, so one C pass screens the batch.
        if not (min(durations) > 0.0 and sum(durations) < math.inf):
            durations = [d if 0.0 < d < math.inf else 0.0 for d in durations]
        self.sketch.add_all(durations)

    def snapshot(self) -> OperationStats:
        sketch = self.sketch
        p50, p95, p99 = sketch.quantiles((0.5, 0.95, 0.99))
        count = self.count
        return OperationStats(
            count=count,
            ok=self.ok,
            error=self.error,
            timeout=self.timeout,
            cancelled=self.cancelled,
            total_ms=sketch.sum,
            mean_ms=sketch.sum / count if count else 0.0,
            min_ms=sketch.min or 0.0,
            max_ms=sketch.max or 0.0,
            p50_ms=p50 or 0.0,
            p95_ms=p95 or 0.0,
            p99_ms=p99 or 0.0,
            cache_hits=self.cache_hits,
            cache_hit_rate=self.cache_hits / count if count else 0.0,
            coalesced=self.coalesced,
            retries=self.retries,
            fallbacks=self.fallbacks,
            rejected=self.rejected,
        )


def _nest(table: Mapping[OperationKey, OperationStats]) -> dict[str, dict[str, Any]]:
    nested: dict[str, dict[str, Any]] = {}
    for (tool_type, operation), stats in sorted(table.items()):
        nested.setdefault(tool_type, {})[operation] = stats.to_dict()
    return nested


@attrs.frozen(slots=True)
class TracerStats:
    """Everything the tracer knows in aggregate, at one moment.

    ``tools`` covers tool calls (``kind == "tool_call"``); pipeline runs and pipeline
    steps are aggregated in their own tables, ``pipelines`` and ``steps``, keyed by the
    same ``(tool_type, operation)`` their reports carry, so a step's latency (which
    includes retries and fallbacks) never blends into the raw tool latency the selector
    and the operator compare.  ``observed`` counts every record since the last reset,
    ``buffered`` those still in the ring buffer (at most ``capacity``), ``dropped`` the
    reports lost because the tracer's mailbox was full, ``sink_errors`` the records a
    sink (such as the OpenTelemetry bridge) failed to take.
    """

    tools: Mapping[OperationKey, OperationStats]
    steps: Mapping[OperationKey, OperationStats]
    pipelines: Mapping[OperationKey, OperationStats]
    observed: int
    buffered: int
    capacity: int
    dropped: int
    sink_errors: int = 0

    def tool(self, tool_type: str, operation: str) -> OperationStats | None:
        return self.tools.get((str(tool_type), operation))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: tables nested as ``{tool_type: {operation: {...}}}``."""
        return {
            "observed": self.observed,
            "buffered": self.buffered,
            "capacity": self.capacity,
            "dropped": self.dropped,
            "sink_errors": self.sink_errors,
            "tools": _nest(self.tools),
            "steps": _nest(self.steps),
            "pipelines": _nest(self.pipelines),
        }
