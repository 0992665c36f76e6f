"""One tool call: find the tool, consult the cache, run it under its timeout, report it.

The executor is deliberately not an actor: a tool call runs in the caller's task, so
cancelling the caller cancels the tool, and the only shared state it touches lives in
actors it talks to (the cache by call, the observers by cast).

A tool with a ``params_schema`` or ``validator`` has its params checked first
(:meth:`~runtime.tools.ToolSpec.check_params`): a rejected call never reaches the cache or
the tool, and the cache key and the tool both see the normalised params, so a call and
its default-filled twin share one cache entry.  A tool with neither pays one attribute
test.

Its collaborators plug in through two small seams, so that with every feature off a call
is exactly a plain call of the tool:

* a :class:`ResultCache` answers a hit at once, without waiting; otherwise it decides
  whether the call waits for another's run or runs ``compute`` (as the single-flight
  leader) and keeps the result;
* :class:`~runtime.calls.CallObserver` instances (tracer, selector) are told that a call
  started and how it finished -- by cast, never waiting, even when the caller is
  cancelled (a cancelled call still produces its report).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Protocol

import anyio
import anyio.lowlevel
import attrs

from runtime._loop import CancelCheck, Clock
from runtime.calls import (
    CURRENT_SPAN,
    CacheOutcome,
    CallObserver,
    CallReport,
    CallStart,
    IdGenerator,
    SpanRef,
    Status,
    new_report,
    snapshot_params,
    status_of,
)
from runtime.config import ExecutorConfig
from runtime.errors import ToolExecutionError, ToolNotFound, ToolTimeout
from runtime.tools import ToolContext, ToolRegistry, ToolResult, ToolSpec, safe_execute

__all__ = ["Executor", "ResultCache", "data_or_raise", "failure_exception"]

# How many calls may finish in a row without yielding to the scheduler; see execute_result.
YIELD_EVERY: Final = 32

SizeResult = Callable[[str, str, Any], tuple[int | None, int | None, bool]]
"""``size_result(tool_type, operation, data) -> (count, size_bytes, estimated)``."""


class ResultCache(Protocol):
    """The cache seam: a hit answered at once, or the tool run once for everyone waiting.

    :meth:`cached` returns the result of a live entry, or an opaque "missed" value that
    :meth:`fetch_missed` goes on with; the executor holds nothing of it in between.  A
    hit is thus a plain call: no coroutine, no ``compute`` built for it.
    """

    def cached(
        self, spec: ToolSpec, params: Mapping[str, Any], context: ToolContext
    ) -> ToolResult | Any: ...

    async def fetch_missed(
        self, missed: Any, compute: Callable[[], Awaitable[ToolResult]]
    ) -> tuple[ToolResult, CacheOutcome]: ...


class Executor:
    """Runs single tool calls through the cache and reports them to the observers."""

    def __init__(
        self,
        registry: ToolRegistry,
        config: ExecutorConfig | None = None,
        *,
        cache: ResultCache | None = None,
        observers: Sequence[CallObserver] = (),
        ids: IdGenerator | None = None,
        clock: Clock | None = None,
        cancel_check: CancelCheck | None = None,
    ) -> None:
        self.registry = registry
        self.config = config if config is not None else ExecutorConfig()
        self.cache = cache
        self.observers = tuple(observers)
        self._start_observers = tuple(
            o for o in self.observers if getattr(o, "observes_starts", True)
        )
        # The first observer that sizes results (the tracer) sizes them for everyone.
        sizers = [getattr(o, "size_result", None) for o in self.observers]
        self._size_result: SizeResult | None = next((f for f in sizers if f is not None), None)
        self.ids = ids if ids is not None else IdGenerator()
        # open_runtime passes its loop's clock and cancel check, bound once (runtime._loop).
        self._now: Clock = clock if clock is not None else anyio.current_time
        self._cancel_check: CancelCheck = (
            cancel_check if cancel_check is not None else anyio.lowlevel.checkpoint_if_cancelled
        )
        self._calls_since_yield = 0
        # Calls started and not finished, by a number of their own (cheap to add and drop
        # on every call); the quiescence check reads it through in_flight().
        self._in_flight: dict[int, ToolSpec] = {}
        self._calls_started = 0

    def in_flight(self) -> dict[tuple[str, str], int]:
        """How many calls of each tool have started and not finished, right now: cached
        or not, side effects or not, from user tasks and pipeline steps alike."""
        counts: dict[tuple[str, str], int] = {}
        for spec in self._in_flight.values():
            counts[spec.key] = counts.get(spec.key, 0) + 1
        return counts

    async def execute(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        context: ToolContext,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Run the call and return its data, or raise.

        Raises :class:`ToolNotFound`, :class:`ToolTimeout`, the tool's own
        :class:`ToolExecutionError` subclass (such as ``InvalidParams``) as it was raised,
        or :class:`ToolExecutionError` carrying the original error type and chained to
        the original exception.
        """
        result = await self.execute_result(tool_type, operation, params, context, timeout=timeout)
        return data_or_raise(tool_type, operation, result)

    async def execute_result(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        context: ToolContext,
        *,
        timeout: float | None = None,
        fallback_used: bool = False,
        selection: Mapping[str, Any] | None = None,
    ) -> ToolResult:
        """Run the call and return its :class:`ToolResult`; failures are results, not raised.

        ``fallback_used`` marks the trace record as ``execute_best``'s fallback;
        ``selection`` (why the selector chose the call) is carried into its report.
        """
        # On a cache hit each Python-level call is a measurable share of the whole, so the
        # common case of each step below is inline and its helper runs only otherwise.
        if type(context) is not ToolContext or type(params) is not dict:
            _check_arguments(tool_type, operation, params, context)
        # Every call checks for cancellation, and one in YIELD_EVERY yields, so a loop of
        # hits cannot starve the loop (docs/architecture.md, "Decisions and why").
        self._calls_since_yield += 1
        if self._calls_since_yield >= YIELD_EVERY:
            self._calls_since_yield = 0
            await anyio.lowlevel.checkpoint()
        else:
            await self._cancel_check()
        try:
            spec = self.registry.get(tool_type, operation)
        except ToolNotFound as exc:
            return ToolResult.from_exception(exc)
        if timeout is None:
            timeout = self.config.timeout_for(spec.tool_type, spec.operation)
        else:
            timeout = self._checked_timeout(spec, timeout)
        if spec.checks_params:
            reported_params, params, rejected = self._checked_params(spec, params)
        else:  # reported params are taken now, as in _checked_params
            reported_params = snapshot_params(params) if self.observers else params
            rejected = None
        parent = CURRENT_SPAN.get()
        ids = self.ids
        trace_id = parent.trace_id if parent is not None else context.trace_id or ids.trace_id()
        span_id = ids.span_id()
        started = self._now()
        started_wall = time.time()
        result: ToolResult | None = None
        outcome: CacheOutcome = "off"
        run: _ToolRun | None = None
        number = self._calls_started = self._calls_started + 1
        self._in_flight[number] = spec
        try:
            if rejected is not None:
                result = rejected
            elif self.cache is not None and isinstance(
                found := self.cache.cached(spec, params, context), ToolResult
            ):
                result, outcome = found, "hit"
            else:
                run = _ToolRun(self, spec, params, context, timeout, SpanRef(trace_id, span_id))
                if self.cache is None:
                    result = await run()
                else:
                    result, outcome = await self.cache.fetch_missed(found, run)
            return result
        finally:
            del self._in_flight[number]
            if self.observers:
                self._tell_finished(
                    spec, reported_params, context, result, outcome, trace_id, span_id,
                    parent, started, started_wall, fallback_used, run, selection,
                )  # fmt: skip

    def _checked_params(
        self, spec: ToolSpec, params: Mapping[str, Any]
    ) -> tuple[Mapping[str, Any], Mapping[str, Any], ToolResult | None]:
        """(params as reported, params as the tool gets them, the rejection or None)."""
        # Reported params are taken now: the report outlives the call, and the caller
        # may change its params once the call returns (or, shared, while it runs).
        reported = snapshot_params(params) if self.observers else params
        if spec.checks_params:
            try:
                return reported, spec.check_params(params), None
            except Exception as exc:  # a failed result, traced, before any cache work
                return reported, params, ToolResult.from_exception(exc)
        return reported, params, None

    @staticmethod
    def _checked_timeout(spec: ToolSpec, timeout: float) -> float:
        if not timeout > 0:  # NaN too
            # In config 0 means "no timeout"; on a call it would time out at once, so it
            # is refused rather than guessed at (math.inf lifts the configured timeout).
            raise ValueError(
                f"timeout for {spec.tool_type}.{spec.operation} must be a positive number of "
                f"seconds (math.inf for none, None for the configured one), got {timeout!r}"
            )
        return timeout

    def _tell_finished(
        self,
        spec: ToolSpec,
        params: Mapping[str, Any],
        context: ToolContext,
        result: ToolResult | None,
        outcome: CacheOutcome,
        trace_id: str,
        span_id: str,
        parent: SpanRef | None,
        started: float,
        started_wall: float,
        fallback_used: bool,
        run: _ToolRun | None,
        selection: Mapping[str, Any] | None,
    ) -> None:
        """Build the call's report and cast it to every observer (never blocks).

        On every traced call, so the report is built positionally.  When an observer
        sizes results (the tracer's ``size_result``), the result is sized here and *not*
        carried: kept in a mailbox or a ring it would cost the collector more than the
        rest of tracing together (see runtime.tracer.sizing).  Otherwise the report
        carries it as data.
        """
        duration = self._now() - started
        count = size = data = None
        estimated = False
        if result is None:
            status: Status = "cancelled"
            error_type: str | None = "Cancelled"
            message: str | None = "the caller was cancelled"
        elif result.success:
            status, error_type, message = "ok", None, None
            data = result.data
            if data is not None and self._size_result is not None:
                count, size, estimated = self._size_result(spec.tool_type, spec.operation, data)
                data = None
        else:
            # A tool that returned a failed result itself (no exception) is an error.
            status = "error" if result.exception is None else status_of(result.exception)
            error_type, message = result.error_type, result.error
        report = new_report(
            CallReport,
            (
                "tool_call",
                trace_id,
                span_id,
                spec.tool_type,
                spec.operation,
                context.tenant_id,
                started,
                started_wall,
                duration,
                status,
                parent.span_id if parent is not None else None,
                error_type,
                message,
                outcome == "hit",
                outcome == "coalesced",
                0,  # retries
                fallback_used,
                count,
                size,
                estimated,
                run is not None and run.executed,
                params,
                _CACHE_METADATA[outcome],
                data,
                selection or _NO_SELECTION,
            ),
        )
        for observer in self.observers:
            observer.call_finished(report)

    @staticmethod
    async def _run(
        spec: ToolSpec, params: Mapping[str, Any], context: ToolContext, timeout: float | None
    ) -> ToolResult:
        if timeout is None:
            return await safe_execute(spec, context, params)
        with anyio.move_on_after(timeout):
            return await safe_execute(spec, context, params)
        error = ToolTimeout(spec.tool_type, spec.operation, timeout)
        return ToolResult.from_exception(error)

    def report(self, report: CallReport) -> None:
        """Hand a finished pipeline or step report to the observers (never blocks).

        A report carrying a result is sized now, as a tool call's is, and then carries
        the figures instead: the result is the application's, which may change it once
        the step returns, long before an observer gets to the report.
        """
        size_result = self._size_result
        if report.data is not None and size_result is not None:
            count, size, estimated = size_result(report.tool_type, report.operation, report.data)
            report = report._replace(
                result_count=count,
                result_size_bytes=size,
                result_size_estimated=estimated,
                data=None,
            )
        for observer in self.observers:
            observer.call_finished(report)


@attrs.define(slots=True)
class _ToolRun:
    """One call's run of its tool: the cache's ``compute``, or the call itself uncached.

    Built only when the tool may run (a hit never builds one).  Observers that track load
    hear of the call when the tool starts, not when it is asked: a hit or a coalesced
    follower puts no load on it.  The call's span is current only while the tool runs --
    the only code that can make child calls.
    """

    _executor: Executor
    _spec: ToolSpec
    _params: Mapping[str, Any]
    _context: ToolContext
    _timeout: float | None
    _span: SpanRef
    executed: bool = attrs.field(default=False, init=False)

    async def __call__(self) -> ToolResult:
        self.executed = True
        executor, spec = self._executor, self._spec
        if executor._start_observers:
            start = CallStart(spec.tool_type, spec.operation, executor._now())
            for observer in executor._start_observers:
                observer.call_started(start)
        token = CURRENT_SPAN.set(self._span)
        try:
            return await executor._run(spec, self._params, self._context, self._timeout)
        finally:
            CURRENT_SPAN.reset(token)


def _check_arguments(
    tool_type: str, operation: str, params: Mapping[str, Any], context: ToolContext
) -> None:
    if not isinstance(context, ToolContext):
        raise TypeError(f"context must be a ToolContext, got {type(context).__name__}")
    if type(params) is not dict and not isinstance(params, Mapping):
        raise TypeError(
            f"params for {tool_type}.{operation} must be a mapping, got {type(params).__name__}"
        )


# Shared and read-only: one fewer allocation per call (the tracer copies what it keeps).
_NO_SELECTION: Mapping[str, Any] = MappingProxyType({})
_CACHE_METADATA: dict[str, Mapping[str, Any]] = {
    outcome: MappingProxyType({"cache": outcome} if outcome != "off" else {})
    for outcome in ("off", "bypass", "miss", "hit", "coalesced")
}


def data_or_raise(tool_type: str, operation: str, result: ToolResult) -> Any:
    """A successful result's data; for a failed one, :func:`failure_exception` raised."""
    if result.success:
        return result.data
    raise failure_exception(str(tool_type), operation, result)


def failure_exception(tool_type: str, operation: str, result: ToolResult) -> Exception:
    """The exception :meth:`Executor.execute` raises for a failed result."""
    original = result.exception
    if isinstance(original, ToolExecutionError | ToolNotFound):
        return original.with_traceback(None)
    error = ToolExecutionError(
        tool_type, operation, result.error_type or "ToolError", result.error or "unknown error"
    )
    error.__cause__ = original
    return error
