"""What the trace report shows, computed from trace records: a pure function, no I/O.

:func:`build_report` turns records into a :class:`ReportData`; the HTML rendering
(:mod:`runtime.report.html`) only draws it.  Invariants (tested):

* the aggregates are the tracer's own: the records are counted by a
  :class:`~runtime.tracer.state.TracerState`, so ``data.stats`` equals what the tracer
  reports for the same records (same sketch, same percentiles);
* a waterfall's rows are its run's span tree: each row's ``parent`` is the row of its
  record's ``parent_span_id``, children follow their parent (start order); steps the run
  lists but never started (``skipped``, ``not_run``) are rows without a span;
* sizes are bounded whatever the number of records: per operation a histogram of at
  most :data:`HISTOGRAM_BINS` bins and :data:`TIME_BUCKETS` time buckets, at most
  ``waterfalls`` runs, ``top`` slowest and ``top`` failing calls;
* params shown are redacted again (records from a file may come from anywhere).

Selector choices are read from tool-call records whose ``selection`` carries ``intent``
(``execute_best`` sets it), with ``runner_up`` where recorded; the first attempt
(``fallback_used`` false) is the choice.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from runtime.tracer.chrome import event_name
from runtime.tracer.records import TraceRecord
from runtime.tracer.redact import redact
from runtime.tracer.state import TracerState
from runtime.tracer.stats import OperationStats, TracerStats

__all__ = [
    "CACHE_OUTCOMES",
    "HISTOGRAM_BINS",
    "TIME_BUCKETS",
    "CallRow",
    "IntentChoices",
    "OperationReport",
    "ReportData",
    "Waterfall",
    "WaterfallRow",
    "build_report",
]

CACHE_OUTCOMES = ("hit", "miss", "coalesced", "bypass", "off")
TIME_BUCKETS = 24
BINS_PER_DECADE = 4
HISTOGRAM_BINS = 40


@attrs.frozen(slots=True)
class OperationReport:
    """One (kind, tool, operation): the tracer's stats plus what only records tell."""

    kind: str
    tool_type: str
    operation: str
    stats: OperationStats
    histogram: tuple[tuple[float, float, int], ...]
    """``(low_ms, high_ms, count)`` per log-spaced bin, from the first to the last used."""
    cache: Mapping[str, int]
    """Calls per cache outcome (:data:`CACHE_OUTCOMES`; ``off``: the cache took no part)."""
    cache_over_time: tuple[Mapping[str, int], ...]
    """Per time bucket of the report, calls per cache outcome."""

    @property
    def name(self) -> str:
        return f"{self.tool_type}.{self.operation}"


@attrs.frozen(slots=True)
class WaterfallRow:
    label: str
    kind: str
    status: str
    depth: int
    parent: int | None
    """Index of the parent row (None for the run)."""
    offset_ms: float
    duration_ms: float
    span_id: str | None
    """None for a step the run lists but never started."""


@attrs.frozen(slots=True)
class Waterfall:
    name: str
    started_wall: float
    duration_ms: float
    status: str
    rows: tuple[WaterfallRow, ...]


@attrs.frozen(slots=True)
class IntentChoices:
    intent: str
    chosen: Mapping[str, int]
    over_time: tuple[Mapping[str, int], ...]
    runner_up: Mapping[str, int]


@attrs.frozen(slots=True)
class CallRow:
    started_wall: float
    name: str
    kind: str
    status: str
    duration_ms: float
    tenant: str
    cache: str
    error: str
    params: Any


@attrs.frozen(slots=True)
class ReportData:
    records: int
    first_wall: float
    last_wall: float
    bucket_s: float
    stats: TracerStats
    operations: tuple[OperationReport, ...]
    waterfalls: tuple[Waterfall, ...]
    runs: int
    intents: tuple[IntentChoices, ...]
    slowest: tuple[CallRow, ...]
    failing: tuple[CallRow, ...]
    failures: int


def build_report(
    records: Iterable[TraceRecord], *, waterfalls: int = 5, top: int = 25
) -> ReportData:
    """Everything the report page shows about ``records`` (see the module docstring)."""
    records = list(records)
    state = TracerState(capacity=0)
    for record in records:
        state.observe_record(record)
    first = min((r.started_wall for r in records), default=0.0)
    last = max((r.started_wall + r.duration_ms / 1000 for r in records), default=0.0)
    bucket_s = max(last - first, 1e-6) / TIME_BUCKETS

    def bucket(record: TraceRecord) -> int:
        return min(int((record.started_wall - first) / bucket_s), TIME_BUCKETS - 1)

    calls = [r for r in records if r.kind == "tool_call"]
    failing = [r for r in calls if r.status != "ok"]
    return ReportData(
        records=len(records),
        first_wall=first,
        last_wall=last,
        bucket_s=bucket_s,
        stats=state.stats(),
        operations=_operations(records, state.stats(), bucket),
        waterfalls=_waterfalls(records, waterfalls),
        runs=sum(1 for r in records if r.kind == "pipeline"),
        intents=_intents(calls, bucket),
        slowest=tuple(_row(r) for r in sorted(calls, key=lambda r: -r.duration_ms)[:top]),
        failing=tuple(_row(r) for r in sorted(failing, key=lambda r: -r.started_wall)[:top]),
        failures=len(failing),
    )


def _cache_outcome(record: TraceRecord) -> str:
    outcome = record.metadata.get("cache")
    return outcome if outcome in CACHE_OUTCOMES else "off"


def histogram_bin(duration_ms: float) -> int:
    """The bin of a duration: bin ``k`` holds ``[10**(k/4), 10**((k+1)/4))`` ms."""
    if not duration_ms > 0 or math.isinf(duration_ms):
        return -1_000  # zero (a cache hit measured as nothing) sorts first
    return math.floor(math.log10(duration_ms) * BINS_PER_DECADE)


def _histogram(durations: Sequence[float]) -> tuple[tuple[float, float, int], ...]:
    counts = Counter(map(histogram_bin, durations))
    used = sorted(counts)
    if not used:
        return ()
    low = max(used[0], used[-1] - HISTOGRAM_BINS + 1)
    if used[0] < low:  # the shortest calls are folded into the first bin shown
        counts[low] += sum(counts.pop(k) for k in list(counts) if k < low)
    return tuple(
        (10 ** (k / BINS_PER_DECADE), 10 ** ((k + 1) / BINS_PER_DECADE), counts.get(k, 0))
        for k in range(low, used[-1] + 1)
    )


_TABLES = (("pipeline", "pipelines"), ("step", "steps"), ("tool_call", "tools"))


Bucketer = Callable[[TraceRecord], int]


def _operations(
    records: Sequence[TraceRecord], stats: TracerStats, bucket: Bucketer
) -> tuple[OperationReport, ...]:
    grouped: dict[tuple[str, str, str], list[TraceRecord]] = {}
    for record in records:
        kind: str = record.kind if record.kind in ("pipeline", "step") else "tool_call"
        grouped.setdefault((kind, record.tool_type, record.operation), []).append(record)
    out = []
    for kind, table in _TABLES:
        for (tool_type, operation), figures in sorted(getattr(stats, table).items()):
            mine = grouped.get((kind, tool_type, operation), [])
            over_time: list[Counter[str]] = [Counter() for _ in range(TIME_BUCKETS)]
            for record in mine:
                over_time[bucket(record)][_cache_outcome(record)] += 1
            out.append(
                OperationReport(
                    kind=kind,
                    tool_type=tool_type,
                    operation=operation,
                    stats=figures,
                    histogram=_histogram([r.duration_ms for r in mine]),
                    cache=dict(Counter(map(_cache_outcome, mine))),
                    cache_over_time=tuple(dict(c) for c in over_time),
                )
            )
    return tuple(out)


def _waterfalls(records: Sequence[TraceRecord], limit: int) -> tuple[Waterfall, ...]:
    children: dict[str, list[TraceRecord]] = {}
    for record in records:
        if record.parent_span_id is not None:
            children.setdefault(record.parent_span_id, []).append(record)
    runs = sorted((r for r in records if r.kind == "pipeline"), key=lambda r: -r.duration_ms)
    return tuple(_waterfall(run, children) for run in runs[: max(limit, 0)])


def _waterfall(run: TraceRecord, children: Mapping[str, list[TraceRecord]]) -> Waterfall:
    listed = run.metadata.get("steps")
    step_status: Mapping[str, Any] = listed if isinstance(listed, Mapping) else {}
    rows: list[WaterfallRow] = []
    seen = {run.span_id}

    def add(record: TraceRecord, depth: int, parent: int | None) -> None:
        status: str = record.status
        if record.kind == "step" and status == "ok":
            status = str(step_status.get(record.operation, "ok"))
        rows.append(
            WaterfallRow(
                label=event_name(record),
                kind=record.kind,
                status=status,
                depth=depth,
                parent=parent,
                offset_ms=(record.started_at - run.started_at) * 1000,
                duration_ms=record.duration_ms,
                span_id=record.span_id,
            )
        )
        mine = len(rows) - 1
        for child in sorted(children.get(record.span_id, ()), key=lambda r: r.started_at):
            if child.span_id not in seen:  # a cycle of ids in a hand-made file
                seen.add(child.span_id)
                add(child, depth + 1, mine)

    add(run, 0, None)
    started = {row.label.removeprefix("step ") for row in rows if row.kind == "step"}
    for step, status in step_status.items():
        if step not in started:
            rows.append(
                WaterfallRow(
                    label=f"step {step}",
                    kind="step",
                    status=str(status),
                    depth=1,
                    parent=0,
                    offset_ms=0.0,
                    duration_ms=0.0,
                    span_id=None,
                )
            )
    return Waterfall(
        name=run.operation,
        started_wall=run.started_wall,
        duration_ms=run.duration_ms,
        status=run.status,
        rows=tuple(rows),
    )


def _label(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and "tool_type" in value:
        return f"{value['tool_type']}.{value.get('operation', '')}"
    return None


def _intents(calls: Sequence[TraceRecord], bucket: Bucketer) -> tuple[IntentChoices, ...]:
    chosen: dict[str, Counter[str]] = {}
    over_time: dict[str, list[Counter[str]]] = {}
    runner_up: dict[str, Counter[str]] = {}
    for record in calls:
        source = record.selection
        intent = _label(source.get("intent"))
        if intent is None or record.fallback_used:
            continue
        name = f"{record.tool_type}.{record.operation}"
        chosen.setdefault(intent, Counter())[name] += 1
        buckets = over_time.setdefault(intent, [Counter() for _ in range(TIME_BUCKETS)])
        buckets[bucket(record)][name] += 1
        second = _label(source.get("runner_up"))
        if second is not None:
            runner_up.setdefault(intent, Counter())[second] += 1
    return tuple(
        IntentChoices(
            intent=intent,
            chosen=dict(chosen[intent].most_common()),
            over_time=tuple(dict(c) for c in over_time[intent]),
            runner_up=dict(runner_up.get(intent, Counter()).most_common()),
        )
        for intent in sorted(chosen)
    )


def _row(record: TraceRecord) -> CallRow:
    error = f"{record.error_type or ''}: {record.error_message or ''}" if record.failed else ""
    return CallRow(
        started_wall=record.started_wall,
        name=event_name(record),
        kind=record.kind,
        status=record.status,
        duration_ms=record.duration_ms,
        tenant=record.tenant,
        cache=_cache_outcome(record),
        error=error,
        params=redact(dict(record.params)),
    )
