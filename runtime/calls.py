"""What the executor tells observers about a call, and the span that encloses it.

This is one of the tiny modules at the bottom of the house: the executor and the pipeline
produce :class:`CallReport` values, the tracer and the selector consume them, and none of
them import each other.

The current span travels in a context variable.  anyio and trio copy the spawning task's
context into every child task and into ``to_thread`` workers, so a tool call made inside a
pipeline step is parented under that step without passing ids by hand.
"""

from __future__ import annotations

import contextvars
import itertools
import os
from collections.abc import Mapping
from typing import Any, Literal, Protocol

import attrs

__all__ = [
    "CURRENT_SPAN",
    "CacheOutcome",
    "CallObserver",
    "CallReport",
    "CallStart",
    "IdGenerator",
    "SpanRef",
    "Status",
]

Status = Literal["ok", "error", "timeout", "cancelled"]
CacheOutcome = Literal["off", "bypass", "miss", "hit", "coalesced"]
"""How the cache took part in a call: ``miss`` means this call ran the tool as leader."""
Kind = Literal["tool_call", "pipeline", "step"]


@attrs.frozen(slots=True)
class SpanRef:
    """The identity of an open span: enough to parent children under it."""

    trace_id: str
    span_id: str


CURRENT_SPAN: contextvars.ContextVar[SpanRef | None] = contextvars.ContextVar(
    "runtime_current_span", default=None
)


class IdGenerator:
    """Unique span and trace ids that are not derived from the clock.

    A random per-generator prefix plus a counter: unique within a process without a
    syscall per id, unique across processes with overwhelming probability, and fully
    deterministic when a ``seed`` prefix is given (for replayable test runs).
    """

    __slots__ = ("_counter", "_prefix")

    def __init__(self, seed: str | None = None) -> None:
        self._prefix = seed if seed is not None else os.urandom(6).hex()
        self._counter = itertools.count(1)

    def span_id(self) -> str:
        return f"{self._prefix}-{next(self._counter):x}"

    def trace_id(self) -> str:
        return f"t{self._prefix}-{next(self._counter):x}"


@attrs.frozen(slots=True)
class CallStart:
    """A call began: observers that track load (the selector) count it as in flight."""

    tool_type: str
    operation: str
    started_at: float


@attrs.define(slots=True)
class CallReport:
    """Everything known about one finished call, pipeline run or pipeline step.

    Not frozen, unlike the house's other values, and never to be mutated: one report is
    built per tool call and shared by every observer, and a frozen attrs ``__init__``
    (``object.__setattr__`` per field) costs ~1 us more for these 23 fields -- measured
    about 5% of an OpenTelemetry span, half the tracer's whole budget
    (``benchmarks/tracer_bench.py``).  It is not hashable.

    ``started_at`` is monotonic (``anyio.current_time()``), ``started_wall`` a Unix
    timestamp for humans.  ``params`` is the raw mapping: redaction happens in the tracer,
    off the caller's path.

    ``data`` is the result -- except when an observer sizes results (one with a
    ``size_result`` method: the tracer).  Then the executor asks it for
    ``result_count``, ``result_size_bytes`` and ``result_size_estimated`` while it builds
    the report and leaves ``data`` ``None``: results kept in a mailbox or a ring cost the
    garbage collector more than the rest of tracing together (see
    :mod:`runtime.tracer.sizing`).  A report that does carry ``data`` (pipeline steps)
    is sized by the tracer on arrival, exactly, and the data is not kept.
    """

    kind: Kind
    trace_id: str
    span_id: str
    parent_span_id: str | None
    tool_type: str
    operation: str
    tenant_id: str
    started_at: float
    started_wall: float
    duration_s: float
    status: Status
    error_type: str | None = None
    error_message: str | None = None
    cache_hit: bool = False
    coalesced: bool = False
    params: Mapping[str, Any] = attrs.field(factory=dict)
    data: Any = None
    retries: int = 0
    fallback_used: bool = False
    metadata: Mapping[str, Any] = attrs.field(factory=dict)
    result_count: int | None = None
    result_size_bytes: int | None = None
    result_size_estimated: bool = False
    executed: bool = True
    """Whether this call ran the tool itself (a cache hit or a coalesced follower did not;
    load-tracking observers heard ``call_started`` only for calls that did)."""


class CallObserver(Protocol):
    """Receives call events by cast: implementations must never block or raise.

    ``call_started`` is sent when a tool actually starts running (not for cache hits or
    coalesced followers; see ``CallReport.executed``).  An observer with a false
    ``observes_starts`` attribute is not sent it at all.  An observer may also offer
    ``size_result(tool_type, operation, data) -> (count, size_bytes, estimated)``: the
    first one that does sizes each result for the report, which then carries no data.
    """

    def call_started(self, start: CallStart) -> None: ...

    def call_finished(self, report: CallReport) -> None: ...
