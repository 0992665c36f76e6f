"""Trace records as a Chrome trace-event timeline (Perfetto, chrome://tracing).

The JSON object format: ``{"traceEvents": [...], "displayTimeUnit": "ms", "otherData":
{...}}``.  Every record is one *complete* event (``"ph": "X"``) with ``name``, ``cat``
(the record's kind), ``ts`` and ``dur`` in microseconds, ``pid``, ``tid`` and ``args``
(status, tenant, ids, cache outcome, redacted params, error).  Metadata events
(``"ph": "M"``) name the process and its tracks.

Invariants (tested, with hypothesis over generated record sets):

* time comes from the monotonic ``started_at`` (a process's records share that clock),
  aligned across processes by each one's wall clock; ``ts`` is relative to the earliest
  record, and ``ts``/``dur`` are multiples of 1/8 µs, so sums are exact in binary;
* a child's event lies inside its parent's interval (a child that ran over its parent's
  end by clock jitter is cut to it; ``args.duration_ms`` keeps the recorded figure);
* one ``pid`` per id generator (the span id's prefix: one per runtime); within it,
  events share a track (``tid``) only when disjoint or nested: a call nests on its
  parent's track unless a sibling still runs there -- so sequential steps stack under
  their run and parallel steps or concurrent callers get tracks side by side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from runtime.tracer.records import TraceRecord, iso_from_wall

__all__ = ["QUANTUM_US", "chrome_trace", "event_name"]

QUANTUM_US = 0.125
_PER_US = 8  # 1 / QUANTUM_US
_COLOURS = {"error": "terrible", "timeout": "bad", "rejected": "bad", "cancelled": "grey"}


def event_name(record: TraceRecord) -> str:
    """``CI.search`` for a tool call, ``step <name>`` and ``pipeline <name>`` otherwise."""
    if record.kind == "step":
        return f"step {record.operation}"
    if record.kind == "pipeline":
        return f"pipeline {record.operation}"
    return f"{record.tool_type}.{record.operation}"


def _process_of(span_id: str) -> str:
    prefix, dash, _ = span_id.rpartition("-")
    return prefix if dash else ""


def _ticks(records: Sequence[TraceRecord]) -> list[tuple[int, int]]:
    """(start, end) of each record in ticks of QUANTUM_US, on one shared time axis."""
    # Per process: the monotonic and wall clock readings of its first record.  Times
    # are differences of monotonic readings, shifted by the (small) wall-clock gap
    # between processes: no large wall timestamp enters the sums, so no precision is lost.
    anchors: dict[str, tuple[float, float]] = {}
    for record in records:
        anchors.setdefault(_process_of(record.span_id), (record.started_at, record.started_wall))
    first_wall = min((wall for _, wall in anchors.values()), default=0.0)
    shifts = {name: wall - first_wall - mono for name, (mono, wall) in anchors.items()}
    starts = [r.started_at + shifts[_process_of(r.span_id)] for r in records]
    origin = min(starts, default=0.0)
    spans = []
    for start, record in zip(starts, records, strict=True):
        begin = round((start - origin) * 1_000_000 * _PER_US)
        spans.append((begin, begin + max(0, round(record.duration_ms * 1000 * _PER_US))))
    return spans


def _nest(records: Sequence[TraceRecord], spans: list[tuple[int, int]]) -> list[int | None]:
    """Each record's parent index (None for roots), spans cut to lie inside parents."""
    index = {record.span_id: i for i, record in enumerate(records)}
    parents: list[int | None] = [index.get(r.parent_span_id or "") for r in records]
    for i, parent in enumerate(parents):  # a cycle of parents is broken at its first link
        seen = {i}
        while parent is not None and parent not in seen:
            seen.add(parent)
            parent = parents[parent]
        if parent is not None:
            parents[i] = None
    order = sorted(range(len(records)), key=lambda i: _depth(parents, i))
    for i in order:  # parents first, so a cut parent cuts its children in turn
        parent = parents[i]
        if parent is not None:
            low, high = spans[parent]
            start = min(max(spans[i][0], low), high)
            spans[i] = (start, min(max(spans[i][1], start), high))
    return parents


def _depth(parents: list[int | None], i: int) -> int:
    depth, parent = 0, parents[i]
    while parent is not None:
        depth, parent = depth + 1, parents[parent]
    return depth


def _tracks(order: list[int], spans: list[tuple[int, int]], parents: list[int | None]) -> list[int]:
    """A track per event: on its parent's track when nothing else runs there, else the
    first free one.  Each track is a stack of open events (ends), popped as time moves."""
    stacks: list[list[tuple[int, int]]] = []  # per track: (end, event index) still open
    track = [0] * len(spans)
    for i in order:
        start, end = spans[i]
        parent = parents[i]
        chosen = None
        if parent is not None:
            stack = stacks[track[parent]]
            while stack and stack[-1][0] <= start and stack[-1][1] != parent:
                stack.pop()
            if stack and stack[-1][1] == parent:
                chosen = track[parent]
        if chosen is None:
            for number, stack in enumerate(stacks):
                while stack and stack[-1][0] <= start:
                    stack.pop()
                if not stack:
                    chosen = number
                    break
            else:
                stacks.append([])
                chosen = len(stacks) - 1
        track[i] = chosen
        stacks[chosen].append((end, i))
    return track


def _args(record: TraceRecord) -> dict[str, Any]:
    args: dict[str, Any] = {
        "status": record.status,
        "tenant": record.tenant,
        "trace_id": record.trace_id,
        "span_id": record.span_id,
        "duration_ms": record.duration_ms,
        "started": iso_from_wall(record.started_wall),
    }
    if record.parent_span_id is not None:
        args["parent_span_id"] = record.parent_span_id
    cache = record.metadata.get("cache")
    if cache is not None:
        args["cache"] = cache
    if record.error_type is not None:
        args["error"] = f"{record.error_type}: {record.error_message or ''}"
    if record.params:
        args["params"] = dict(record.params)
    if record.retries:
        args["retries"] = record.retries
    if record.fallback_used:
        args["fallback_used"] = True
    return args


def chrome_trace(records: Iterable[TraceRecord]) -> dict[str, Any]:
    """The Chrome trace-event document of ``records`` (see the module docstring)."""
    records = list(records)
    spans = _ticks(records)
    parents = _nest(records, spans)
    processes: dict[str, int] = {}
    for record in records:
        processes.setdefault(_process_of(record.span_id), len(processes) + 1)
    pid = [processes[_process_of(r.span_id)] for r in records]
    events: list[dict[str, Any]] = []
    tracks_of: dict[int, int] = {}
    for number in processes.values():
        mine = [i for i in range(len(records)) if pid[i] == number]
        mine.sort(key=lambda i: (spans[i][0], -spans[i][1], _depth(parents, i)))
        track = _tracks(mine, spans, parents)
        for i in mine:
            tracks_of[i] = track[i] + 1
    for i, record in enumerate(records):
        start, end = spans[i]
        event: dict[str, Any] = {
            "name": event_name(record),
            "cat": record.kind,
            "ph": "X",
            "ts": start / _PER_US,
            "dur": (end - start) / _PER_US,
            "pid": pid[i],
            "tid": tracks_of[i],
            "args": _args(record),
        }
        colour = _COLOURS.get(record.status)
        if colour is not None:
            event["cname"] = colour
        events.append(event)
    events.sort(key=lambda e: (e["pid"], e["ts"], -e["dur"]))
    meta: list[dict[str, Any]] = []
    for prefix, number in processes.items():
        label = f"runtime {prefix}" if prefix else "runtime"
        meta.append(_meta("process_name", number, 0, label))
        used = sorted({tracks_of[i] for i in range(len(records)) if pid[i] == number})
        meta.extend(_meta("thread_name", number, tid, f"track {tid}") for tid in used)
    other: dict[str, Any] = {"records": len(records)}
    if records:
        other["started"] = iso_from_wall(min(r.started_wall for r in records))
    return {"traceEvents": meta + events, "displayTimeUnit": "ms", "otherData": other}


def _meta(name: str, pid: int, tid: int, label: str) -> dict[str, Any]:
    return {"name": name, "ph": "M", "pid": pid, "tid": tid, "args": {"name": label}}
