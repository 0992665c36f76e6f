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
import logging
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, Literal, NamedTuple, Protocol

import attrs

from runtime.errors import InvalidParams, ToolTimeout
from runtime.jsondata import MAX_DEPTH

__all__ = [
    "CURRENT_SPAN",
    "CacheOutcome",
    "CallObserver",
    "CallReport",
    "CallStart",
    "GuardedObserver",
    "IdGenerator",
    "SpanRef",
    "Status",
    "new_report",
    "snapshot_params",
    "status_of",
]

Status = Literal["ok", "error", "timeout", "rejected", "cancelled"]
"""How a call ended -- decided once, by :func:`status_of`, where the exception is known.

``rejected``: its params were refused (:class:`~runtime.errors.InvalidParams` or a
subclass) before any work -- the caller's mistake, not the tool's ill health."""
CacheOutcome = Literal["off", "bypass", "miss", "hit", "coalesced"]
"""How the cache took part in a call: ``miss`` means this call ran the tool as leader."""
Kind = Literal["tool_call", "pipeline", "step"]
_NO_ITEMS: Mapping[str, Any] = MappingProxyType({})


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


class CallReport(NamedTuple):
    """Everything known about one finished call, pipeline run or pipeline step.

    A named tuple rather than an attrs class, unlike the house's other values, for what
    it costs on the per-call path: the executor builds one per traced call with a single
    C call (:data:`new_report`), where an attrs ``__init__`` stores 24 attributes one by
    one (measured under ``valgrind``: ~1,500 instructions fewer per traced call, about 4%
    of what tracing costs; see docs/tracer.md).  It is immutable like the other values;
    ``report._replace(status="error")`` makes a changed copy.

    ``params`` is unredacted -- redaction happens in the tracer, off the caller's path --
    and, from the executor, a :func:`snapshot_params` copy.

    ``data`` is the result -- except when an observer sizes results (one with a
    ``size_result`` method: the tracer).  Then the executor asks it for
    ``result_count``, ``result_size_bytes`` and ``result_size_estimated`` while it builds
    the report and leaves ``data`` ``None``: results kept in a mailbox or a ring cost the
    garbage collector more than the rest of tracing together (see
    :mod:`runtime.tracer.sizing`).  Pipeline and step reports are sized the same way
    when :meth:`~runtime.executor.Executor.report` hands them over.  A report that does
    carry ``data`` (no sizing observer) is sized by the tracer on arrival, exactly, and
    the data is not kept.

    ``executed``: whether this call ran the tool itself (a cache hit or a coalesced
    follower did not; load-tracking observers heard ``call_started`` only for calls that
    did).

    ``selection``: for a call ``execute_best`` made, why the selector picked it (see
    :func:`runtime.selector.explain.selection_summary`); empty otherwise.
    """

    kind: Kind
    trace_id: str
    span_id: str
    tool_type: str
    operation: str
    tenant_id: str
    started_at: float
    """Monotonic seconds: the event loop's clock."""
    started_wall: float
    """A Unix timestamp, for humans."""
    duration_s: float
    status: Status
    parent_span_id: str | None = None
    """None for a call that starts its trace."""
    error_type: str | None = None
    error_message: str | None = None
    cache_hit: bool = False
    coalesced: bool = False
    retries: int = 0
    fallback_used: bool = False
    result_count: int | None = None
    result_size_bytes: int | None = None
    result_size_estimated: bool = False
    executed: bool = True
    params: Mapping[str, Any] = _NO_ITEMS
    metadata: Mapping[str, Any] = _NO_ITEMS
    data: Any = None
    selection: Mapping[str, Any] = _NO_ITEMS


new_report: Final = tuple.__new__
"""``new_report(CallReport, values)``: a report from a tuple of all its fields, in order,
without the Python-level ``__new__`` (the executor's per-call path)."""


def status_of(error: BaseException | None) -> Status:
    """The status of a call that finished with ``error`` (``None``: it succeeded).

    By ``isinstance``, so a tool's own subclass of :class:`InvalidParams` is ``rejected``
    and one of :class:`ToolTimeout` a ``timeout``.  Cancellation is decided by the caller
    (a call with no result at all), never from an exception's name.
    """
    if error is None:
        return "ok"
    if isinstance(error, InvalidParams):
        return "rejected"
    if isinstance(error, ToolTimeout):
        return "timeout"
    return "error"


_ATOMS = frozenset({str, int, float, bool, type(None)})
_CONTAINERS = frozenset({dict, list, tuple})


def snapshot_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``params`` that later changes to the caller's objects cannot reach.

    A report outlives its call (in the tracer's ring, until somebody reads it), and
    callers do reuse their params -- ``params["offset"] += 20`` in a paging loop.  Without
    a copy every record of that loop would show the last offset.  Dicts, lists and tuples
    are copied, as deep as they nest (to a limit); anything else is immutable or the
    caller's own object, and is shared.

    A dict, or a list or tuple holding containers, reached twice is copied once, as
    :func:`copy.deepcopy` does: the copy shares what the params shared and keeps their
    cycles, and the work stays linear in the number of containers.  (Copied once per
    reference, ``d["a"] = d["b"] = d`` alone would be 2**32 copies before the depth limit
    stopped it.)  Sequences of plain values -- by far the common nested params, a list of
    ids -- are copied without that bookkeeping: they hold no container to meet again.
    """
    copied = params.copy() if type(params) is dict else dict(params)
    memo: dict[int, Any] | None = None
    for name, value in copied.items():
        kind = type(value)
        if kind is list or kind is tuple:
            # One C-level pass decides whether anything inside needs copying (a list of
            # 300 ids is checked in ~5 us; a Python loop over it costs three times that).
            if _ATOMS.issuperset(map(type, value)):
                if kind is list:
                    copied[name] = value.copy()  # an existing key: safe while iterating
                continue
        elif kind is not dict:
            continue
        if memo is None:
            memo = {id(params): copied}
        copied[name] = _snapshot(value, kind, 1, memo)
    return copied


def _snapshot(value: Any, kind: type, depth: int, memo: dict[int, Any]) -> Any:
    done = memo.get(id(value))
    if done is not None:
        return done
    if depth > MAX_DEPTH:
        return value
    if kind is dict:
        copied = value.copy()
        memo[id(value)] = copied  # before the items: a cycle back to it finds the copy
        for name, item in copied.items():
            inner = type(item)
            if inner is dict or inner is list or inner is tuple:
                copied[name] = _snapshot(item, inner, depth + 1, memo)
        return copied
    if _ATOMS.issuperset(map(type, value)):
        return value.copy() if kind is list else value
    if kind is list:
        items: list[Any] = []
        memo[id(value)] = items
        items.extend(
            _snapshot(item, type(item), depth + 1, memo) if type(item) in _CONTAINERS else item
            for item in value
        )
        return items
    # A tuple is built from its items, so it is remembered only once built; a cycle
    # through it is closed by the list or dict on the way round.
    snapshot = tuple(
        _snapshot(item, type(item), depth + 1, memo) if type(item) in _CONTAINERS else item
        for item in value
    )
    memo[id(value)] = snapshot
    return snapshot


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


_log = logging.getLogger("runtime")


class GuardedObserver:
    """An observer the runtime did not write, kept from breaking the calls it watches.

    Observers are called inline, in the caller's task, and must never raise; the
    runtime's own (the tracer, the selector) are written not to and called bare.  One
    that raises anyway would turn a successful call into its error (or replace a
    cancellation) and starve the observers after it -- the selector, always last, would
    count the call in flight for ever.  So ``open_runtime`` wraps the extra observers it
    is given in this: a failure is counted in :attr:`failures`, the first one is logged
    (on the ``runtime`` logger), and the call goes on.
    """

    __slots__ = ("failures", "observer", "observes_starts", "size_result")

    def __init__(self, observer: CallObserver) -> None:
        self.observer = observer
        self.failures = 0
        self.observes_starts: bool = getattr(observer, "observes_starts", True)
        if getattr(observer, "size_result", None) is not None:
            self.size_result = self._size_result

    def call_started(self, start: CallStart) -> None:
        try:
            self.observer.call_started(start)
        except Exception:
            self._failed()

    def call_finished(self, report: CallReport) -> None:
        try:
            self.observer.call_finished(report)
        except Exception:
            self._failed()

    def _size_result(
        self, tool_type: str, operation: str, data: Any
    ) -> tuple[int | None, int | None, bool]:
        try:
            sized: tuple[int | None, int | None, bool] = self.observer.size_result(  # type: ignore[attr-defined]
                tool_type, operation, data
            )
            return sized
        except Exception:
            self._failed()
            return None, None, False

    def _failed(self) -> None:
        self.failures += 1
        if self.failures == 1:
            _log.warning(
                "observer %r raised; the call goes on (further failures are only counted)",
                self.observer,
                exc_info=True,
            )
