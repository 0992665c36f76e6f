"""Running a pipeline: one task group per parallel stage, inside one cancel scope per run.

Structured concurrency does the hard parts.  No step outlives its run, because every
step runs in the run's own task or in a task group the run waits for.  A ``fail_fast``
failure cancels the siblings still running in its group at their next checkpoint, before
they can commit a side effect (``asyncio.gather`` leaves them running).

Errors never escape a step's task.  Each child catches its own failure, records it, and
for ``fail_fast`` cancels its group's scope itself, so the caller gets one plain
:class:`~runtime.errors.PipelineError`, not an ``ExceptionGroup``.  Cancellation is the one
thing a step never swallows: a step that is cancelled records ``cancelled`` and re-raises,
so a cancelled caller gets its cancellation back with every record written.

Tracing: the run is a span (``kind="pipeline"``), each step a child span (``kind="step"``).
While a step runs, :data:`runtime.calls.CURRENT_SPAN` holds the step's span, so the
executor parents the tool call under it.  Every span is reported through
``executor.report`` when it ends, on success, failure and cancellation alike.

All run state lives in a :class:`_Run` created per call, so concurrent runs of one
:class:`~runtime.pipeline.steps.Pipeline` share nothing.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Mapping
from typing import Any, Protocol

import anyio
import attrs

from runtime._loop import loop_cancel_check, loop_clock
from runtime.calls import (
    CURRENT_SPAN,
    CallReport,
    IdGenerator,
    SpanRef,
    Status,
    snapshot_params,
    status_of,
)
from runtime.errors import InvalidParams, PipelineError
from runtime.pipeline.refs import UnresolvedReference
from runtime.pipeline.result import PipelineResult, StepOutcome, StepStatus
from runtime.pipeline.state import State
from runtime.pipeline.steps import Parallel, Pipeline, Step, backoff_delay, should_retry
from runtime.tools import ToolContext

__all__ = ["PIPELINE_TOOL_TYPE", "StepExecutor", "run_pipeline"]

PIPELINE_TOOL_TYPE = "pipeline"
"""The ``tool_type`` of a run's report; its ``operation`` is the pipeline's name."""


class StepExecutor(Protocol):
    """What a run needs from the executor: run one tool call, and pass reports on."""

    ids: IdGenerator

    async def execute(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        context: ToolContext,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Return the tool's data or raise (``ToolExecutionError``, ``ToolNotFound``)."""
        ...

    def report(self, report: CallReport) -> None:
        """Hand a finished pipeline/step report to the observers; never blocks."""
        ...


async def run_pipeline(
    pipeline: Pipeline,
    params: Mapping[str, Any],
    context: ToolContext,
    executor: StepExecutor,
    *,
    deadline: float | None = None,
    max_concurrency: int | None = None,
    rng: random.Random | None = None,
) -> PipelineResult:
    """Run ``pipeline`` with ``params`` (over ``pipeline.defaults``) and return its result.

    ``deadline`` is the run's time budget in seconds (``None``: unbounded); when it runs
    out the running steps are cancelled and :class:`PipelineError` is raised with a
    ``TimeoutError`` cause.  ``max_concurrency`` caps every parallel group that sets no
    cap of its own (``PipelineConfig.max_concurrency``).  A ``fail_fast`` failure raises
    :class:`PipelineError` naming the step, chained to the failure, with the partial
    :class:`PipelineResult` in ``partial``.  ``rng`` draws the retry jitter (seed it for
    reproducible delays).  Cancelling the caller cancels every step and re-raises the cancellation.
    """
    if not isinstance(pipeline, Pipeline):
        raise TypeError(f"pipeline must be a Pipeline, got {type(pipeline).__name__}")
    if not isinstance(params, Mapping):
        raise TypeError(f"params must be a mapping, got {type(params).__name__}")
    if not isinstance(context, ToolContext):
        raise TypeError(f"context must be a ToolContext, got {type(context).__name__}")
    if deadline is not None and not deadline > 0:
        raise ValueError(f"deadline must be a positive number of seconds, got {deadline!r}")
    # Checked as Parallel checks its own cap: a float would otherwise be accepted here and
    # fail only when a large enough group is reached, after earlier steps have run.
    if max_concurrency is not None and (
        not isinstance(max_concurrency, int)
        or isinstance(max_concurrency, bool)
        or max_concurrency < 1
    ):
        raise ValueError(f"max_concurrency must be a positive integer, got {max_concurrency!r}")
    run = _Run(pipeline, {**pipeline.defaults, **params}, context, executor, rng, deadline)
    run.max_concurrency = max_concurrency
    return await run.run()


@attrs.define(slots=True)
class _Attempted:
    """How a step (with its retries and fallback) ended, short of cancellation."""

    ok: bool
    value: Any = None
    attempts: int = 0
    error: BaseException | None = None
    fallback_used: bool = False
    fatal: bool = False
    params: Mapping[str, Any] | None = None
    duration: float = 0.0


class _Run:
    """The mutable state of one run; never shared between runs."""

    def __init__(
        self,
        pipeline: Pipeline,
        params: Mapping[str, Any],
        context: ToolContext,
        executor: StepExecutor,
        rng: random.Random | None,
        deadline: float | None,
    ) -> None:
        self.pipeline = pipeline
        self.params = params
        self.context = context
        self.executor = executor
        self.rng = rng if rng is not None else random.Random()
        self.deadline = deadline
        self.deadline_at = math.inf
        self.results: dict[str, Any] = {}
        self.outcomes: dict[str, StepOutcome] = {}
        self.trace: list[str] = []
        self.failure: tuple[str, BaseException] | None = None
        self.run_span = SpanRef("", "")
        self.max_concurrency: int | None = None
        # Bound once per run (several reads per step): see runtime._loop.
        self.now = loop_clock()
        self.cancel_check = loop_cancel_check()

    # -- the run --------------------------------------------------------------------

    async def run(self) -> PipelineResult:
        parent = CURRENT_SPAN.get()
        ids = self.executor.ids
        if parent is not None:
            trace_id = parent.trace_id
        else:
            trace_id = self.context.trace_id or ids.trace_id()
        self.run_span = SpanRef(trace_id, ids.span_id())
        started = self.now()
        started_wall = time.time()
        if self.deadline is not None:
            self.deadline_at = started + self.deadline
        status: Status = "cancelled"
        error: PipelineError | None = None
        token = CURRENT_SPAN.set(self.run_span)
        try:
            with anyio.CancelScope(deadline=self.deadline_at) as scope:
                await self._stages()
            result = self._result(self.now() - started)
            if self.failure is not None:
                status = "error"
                step, cause = self.failure
                error = PipelineError(self.pipeline.name, step, cause, result)
            elif scope.cancelled_caught:
                status = "timeout"
                timeout = TimeoutError(
                    f"pipeline {self.pipeline.name!r} exceeded its deadline of {self.deadline:g}s"
                )
                # The step the deadline stopped: one it cancelled, else (it ran out between
                # stages) the first that never started.
                interrupted = [
                    n for n, o in result.outcomes.items() if o.status == "cancelled"
                ] or [n for n, o in result.outcomes.items() if o.status == "not_run"]
                error = PipelineError(
                    self.pipeline.name, interrupted[0] if interrupted else "", timeout, result
                )
            else:
                status = "ok"
        except BaseException as exc:
            if not isinstance(exc, anyio.get_cancelled_exc_class()):
                status = "error"
            raise
        finally:
            CURRENT_SPAN.reset(token)
            self._report_run(parent, started, started_wall, status, error)
        if error is not None:
            raise error from error.cause
        return result

    async def _stages(self) -> None:
        for stage in self.pipeline.steps:
            # Each stage sees a snapshot: a parallel group's steps all see the state as it
            # was before the group.
            state = State(self.params, self.results)
            if isinstance(stage, Parallel):
                await self._group(stage, state)
            else:
                await self._member(stage, state, None)
            if self.failure is not None:
                return

    async def _group(self, group: Parallel, state: State) -> None:
        cap = group.max_concurrency if group.max_concurrency is not None else self.max_concurrency
        limiter = anyio.CapacityLimiter(cap) if cap is not None and cap < len(group.steps) else None
        async with anyio.create_task_group() as tasks:
            for step in group.steps:
                if limiter is None:
                    tasks.start_soon(self._member, step, state, tasks.cancel_scope)
                else:
                    tasks.start_soon(self._limited, step, state, limiter, tasks.cancel_scope)

    async def _limited(
        self,
        step: Step,
        state: State,
        limiter: anyio.CapacityLimiter,
        scope: anyio.CancelScope,
    ) -> None:
        # A step cancelled while waiting here never started: it stays ``not_run``.
        async with limiter:
            await self._member(step, state, scope)

    async def _member(self, step: Step, state: State, group: anyio.CancelScope | None) -> None:
        """Run one top-level step and fold its outcome into the run."""
        # A step whose task gets to run only after its group or run was cancelled (a
        # fail-fast sibling that failed without yielding, the deadline, the caller) never
        # started: it stays ``not_run`` rather than ``cancelled`` with a phantom attempt.
        await self.cancel_check()
        refused: Exception | None = None
        if step.condition is not None:
            try:
                runs = bool(step.condition(state))
            except Exception as exc:
                # A condition that cannot be evaluated is the step's own failure, so it
                # goes where every failure goes: the step's span and its on_error policy
                # (a fallback runs, skip goes on, fail_fast stops the run).
                refused = exc
            else:
                if not runs:
                    self.outcomes[step.name] = StepOutcome(
                        step.name, "skipped", step.tool, step.operation
                    )
                    return
        attempted = await self._span(step, state, self.run_span, role="step", refused=refused)
        duration = attempted.duration
        if attempted.ok:
            self.results[step.name] = attempted.value
            status: StepStatus = "fallback" if attempted.fallback_used else "ok"
        else:
            status = "failed"
        self._record(step, attempted, status, duration)
        if not attempted.ok and attempted.error is not None:
            self._fail(step, attempted.error, attempted.fatal, group)

    def _fail(
        self, step: Step, error: BaseException, fatal: bool, group: anyio.CancelScope | None
    ) -> None:
        if not fatal or self.failure is not None:
            return
        self.failure = (step.name, error)
        if group is not None:
            group.cancel()

    def _record(
        self, step: Step, attempted: _Attempted, status: StepStatus, duration: float
    ) -> None:
        error = attempted.error
        self.outcomes[step.name] = StepOutcome(
            name=step.name,
            status=status,
            tool=step.tool,
            operation=step.operation,
            attempts=attempted.attempts,
            duration_s=duration,
            error=_describe(error) if error is not None else None,
            error_type=type(error).__name__ if error is not None else None,
            fallback_used=attempted.fallback_used,
            exception=error,
        )

    # -- one step, in its span ------------------------------------------------------

    async def _span(
        self,
        step: Step,
        state: State,
        parent: SpanRef,
        *,
        role: str,
        refused: Exception | None = None,
    ) -> _Attempted:
        """Run ``step`` (retries, then fallback) as a span under ``parent``; report it.

        ``refused`` is the error its condition raised: the step fails with it, unretried.
        """
        span = SpanRef(parent.trace_id, self.executor.ids.span_id())
        if role == "step":
            self.trace.append(step.name)
        started = self.now()
        started_wall = time.time()
        token = CURRENT_SPAN.set(span)
        attempted: _Attempted | None = None
        counter = _Counter()
        try:
            attempted = await self._attempt(step, state, span, counter, refused)
            return attempted
        except BaseException:
            if role == "step":
                self.outcomes[step.name] = StepOutcome(
                    name=step.name,
                    status="cancelled",
                    tool=step.tool,
                    operation=step.operation,
                    attempts=counter.attempts,
                    duration_s=self.now() - started,
                    error=self._cancel_reason(),
                    error_type="Cancelled",
                )
            raise
        finally:
            CURRENT_SPAN.reset(token)
            duration = self.now() - started
            if attempted is not None:
                attempted.duration = duration
            self._report_step(
                step, span, parent, role, attempted, counter, started, started_wall, duration
            )

    async def _attempt(
        self,
        step: Step,
        state: State,
        span: SpanRef,
        counter: _Counter,
        refused: Exception | None = None,
    ) -> _Attempted:
        try:
            if refused is not None:
                raise refused
            value = await self._call_with_retries(step, state, counter)
        except Exception as exc:
            if step.on_error == "fallback" and step.fallback is not None:
                backup = await self._span(step.fallback, state, span, role="fallback")
                return _Attempted(
                    ok=backup.ok,
                    value=backup.value,
                    attempts=counter.attempts,
                    error=exc if backup.ok else backup.error,
                    fallback_used=True,
                    fatal=backup.fatal,
                    params=counter.params,
                )
            return _Attempted(
                ok=False,
                attempts=counter.attempts,
                error=exc,
                fatal=step.on_error == "fail_fast",
                params=counter.params,
            )
        return _Attempted(ok=True, value=value, attempts=counter.attempts, params=counter.params)

    async def _call_with_retries(self, step: Step, state: State, counter: _Counter) -> Any:
        params = _derive_params(step, state)
        counter.params = params
        retry = 0
        while True:
            counter.attempts += 1
            try:
                return await self.executor.execute(
                    step.tool, step.operation, params, self.context, timeout=step.timeout
                )
            except Exception as exc:
                if retry >= step.retries or not should_retry(step.retry_on, exc):
                    raise
            await anyio.sleep(backoff_delay(step.backoff, retry, self.rng.random()))
            retry += 1

    def _cancel_reason(self) -> str:
        if self.failure is not None:
            return f"cancelled: step {self.failure[0]!r} failed"
        if self.now() >= self.deadline_at:
            return f"cancelled: the pipeline deadline of {self.deadline:g}s ran out"
        return "cancelled: the caller was cancelled"

    # -- results and reports --------------------------------------------------------

    def _result(self, duration: float) -> PipelineResult:
        outcomes: dict[str, StepOutcome] = {}
        results: dict[str, Any] = {}
        for step in self.pipeline.iter_steps():
            outcome = self.outcomes.get(step.name)
            if outcome is None:
                outcome = StepOutcome(step.name, "not_run", step.tool, step.operation)
            outcomes[step.name] = outcome
            if step.name in self.results:
                results[step.name] = self.results[step.name]
        return PipelineResult(
            pipeline=self.pipeline.name,
            results=results,
            outcomes=outcomes,
            execution_trace=tuple(self.trace),
            duration_s=duration,
        )

    def _report_step(
        self,
        step: Step,
        span: SpanRef,
        parent: SpanRef,
        role: str,
        attempted: _Attempted | None,
        counter: _Counter,
        started: float,
        started_wall: float,
        duration: float,
    ) -> None:
        status: Status
        error: BaseException | None = None
        if attempted is None:
            status = "cancelled"
            error_type: str | None = "Cancelled"
            message: str | None = self._cancel_reason()
        elif attempted.ok:
            status, error_type, message = "ok", None, None
        else:
            error = attempted.error
            status = status_of(error) if error is not None else "error"
            error_type = type(error).__name__ if error is not None else None
            message = str(error) if error is not None else None
        self.executor.report(
            CallReport(
                kind="step",
                trace_id=span.trace_id,
                span_id=span.span_id,
                parent_span_id=parent.span_id,
                tool_type=self.pipeline.name,
                operation=step.name,
                tenant_id=self.context.tenant_id,
                started_at=started,
                started_wall=started_wall,
                duration_s=duration,
                status=status,
                error_type=error_type,
                error_message=message,
                params=counter.params if counter.params is not None else {},
                data=attempted.value if attempted is not None and attempted.ok else None,
                retries=max(0, counter.attempts - 1),
                fallback_used=attempted.fallback_used if attempted is not None else False,
                metadata={
                    "pipeline": self.pipeline.name,
                    "step": step.name,
                    "role": role,
                    "tool": step.tool,
                    "operation": step.operation,
                    "attempts": counter.attempts,
                },
            )
        )

    def _report_run(
        self,
        parent: SpanRef | None,
        started: float,
        started_wall: float,
        status: Status,
        error: PipelineError | None,
    ) -> None:
        statuses = {
            step.name: self.outcomes[step.name].status if step.name in self.outcomes else "not_run"
            for step in self.pipeline.iter_steps()
        }
        if status == "cancelled":
            error_type: str | None = "Cancelled"
            message: str | None = "the caller was cancelled"
        elif error is not None:
            error_type = type(error.cause).__name__
            message = str(error)
        else:
            error_type = message = None
        self.executor.report(
            CallReport(
                kind="pipeline",
                trace_id=self.run_span.trace_id,
                span_id=self.run_span.span_id,
                parent_span_id=parent.span_id if parent is not None else None,
                tool_type=PIPELINE_TOOL_TYPE,
                operation=self.pipeline.name,
                tenant_id=self.context.tenant_id,
                started_at=started,
                started_wall=started_wall,
                duration_s=self.now() - started,
                status=status,
                error_type=error_type,
                error_message=message,
                params=self.params,
                metadata={
                    "pipeline": self.pipeline.name,
                    "steps": statuses,
                    "execution_trace": list(self.trace),
                    "failed_step": error.step if error is not None else None,
                },
            )
        )


@attrs.define(slots=True)
class _Counter:
    """Attempts and derived params, kept outside the call so a cancelled step still has them."""

    attempts: int = 0
    params: Mapping[str, Any] | None = None


def _derive_params(step: Step, state: State) -> Mapping[str, Any]:
    if not callable(step.params):
        # A copy per run: the step's dict belongs to the pipeline every run shares, and a
        # tool that fills in its params must not change them for the next run.
        return snapshot_params(step.params)
    try:
        params = step.params(state)
    except UnresolvedReference as exc:
        param = exc.param.removeprefix("params.") if exc.param else "params"
        raise InvalidParams(step.tool, step.operation, param, f"{exc.ref}: {exc.problem}") from exc
    if not isinstance(params, Mapping):
        raise TypeError(
            f"step {step.name!r}: params callable returned {type(params).__name__}, not a mapping"
        )
    return params


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"
