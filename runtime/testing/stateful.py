"""A stateful-test base that drives one live runtime across hypothesis rules.

The machine owns an anyio **blocking portal** (an event loop on a worker thread) for its
whole life: ``__init__`` enters :func:`~runtime.testing.runtime.open_test_runtime` inside
it, rules call the runtime through the portal, and ``teardown`` leaves the runtime and
stops the loop -- nothing outlives an example.  The loop runs on virtual time by default,
so :meth:`advance` moves the clock by exactly the amount asked, instantly.

Built-in invariants, checked after every rule while :meth:`is_idle`:

* :meth:`no_leaked_waiters` -- no actor holds a deferred reply, no follower waits;
* :meth:`single_flight_empty` -- the cache's single-flight table is empty;
* :meth:`cache_stats_add_up` -- per registered :class:`~runtime.testing.fakes.ScriptedTool`:
  executions = misses - coalesced + bypasses (see :attr:`exact_cache_accounting`);
* :meth:`no_cross_tenant_hit` -- every answer that names a tenant named the caller's.

Subclasses add rules and invariants, and may override :meth:`make_registry` (required),
:meth:`make_config`, :meth:`is_idle` and :meth:`answer_tenant`; rules reach the runtime
through :attr:`runtime` and the helpers (:meth:`run`, :meth:`execute`, :meth:`compose`,
:meth:`invalidate`, :meth:`advance`...).  Virtual time moves only inside those calls
(:class:`~runtime.testing.clock.PortalTime`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    ExitStack,
    asynccontextmanager,
    nullcontext,
)
from typing import Any, ClassVar, TypeVar

import anyio
import attrs
import trio
import trio.from_thread
import trio.lowlevel
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis.stateful import RuleBasedStateMachine, invariant

from runtime.cache.service import CacheReport
from runtime.cache.store import CacheCounters
from runtime.config import RuntimeConfig
from runtime.handles import CacheHandle
from runtime.pipeline import Pipeline, PipelineResult
from runtime.runtime import Runtime, RuntimeHealth
from runtime.testing.clock import PortalTime
from runtime.testing.fakes import ScriptedTool
from runtime.testing.runtime import open_test_runtime
from runtime.tools import ToolContext, ToolRegistry, ToolResult

__all__ = ["BACKEND_ENV", "IdleSnapshot", "RuntimeStateMachine"]

T = TypeVar("T")

BACKEND_ENV = "RUNTIME_TEST_BACKEND"
"""Environment variable naming the backend when the class does not (default ``trio``)."""


@attrs.frozen(slots=True)
class IdleSnapshot:
    """The runtime as the idle invariants see it after a step."""

    health: RuntimeHealth
    cache: CacheReport | None
    calls: Mapping[tuple[str, str], int]
    pipelines: int


class RuntimeStateMachine(RuleBasedStateMachine):
    """Base class of stateful tests against a live runtime; see the module docstring."""

    backend: ClassVar[str | None] = None
    """``"trio"`` or ``"asyncio"``; None reads :data:`BACKEND_ENV` (default ``trio``)."""
    virtual_time: ClassVar[bool] = True
    """Run the portal's loop on virtual time."""
    seed: ClassVar[int | str] = 0
    """Seed of the runtime's ids (see :func:`~runtime.testing.runtime.open_test_runtime`)."""
    call_timeout: ClassVar[float] = 3600.0
    """Bound on every call made through the helpers (virtual seconds, when virtual)."""
    exact_cache_accounting: ClassVar[bool] = True
    """Set False when rules cancel callers: a cancelled leader's lookup never runs the tool."""

    def __init__(self) -> None:
        super().__init__()
        self.cross_tenant_answers: list[str] = []
        self._idle_snapshot: IdleSnapshot | None = None
        self.answers_checked = 0
        self.registry = self.make_registry()
        self._stack = ExitStack()
        backend = self.backend_name()
        self._time = PortalTime(backend) if self.virtual_time else None
        options = self._time.backend_options() if self._time is not None else {}
        try:
            self.portal: BlockingPortal = self._stack.enter_context(
                start_blocking_portal(backend, options)
            )
            # Once the runtime has stopped, tasks a rule left in the portal are cancelled:
            # a hang there must fail an invariant, not freeze the teardown.
            self._stack.callback(self.portal.call, self.portal.stop, True)
            runtime = open_test_runtime(
                self.registry, self.make_config(), seed=self.seed, check_quiescent=False
            )
            self.runtime: Runtime = self._stack.enter_context(
                self.portal.wrap_async_context_manager(self._in_time(runtime))
            )
            # On trio, trio's own from_thread.run is one hand-off each way; the portal's
            # call is two (schedule the task, then wait for its result): measured ~2x.
            self._trio_token: Any = (
                self.portal.call(trio.lowlevel.current_trio_token) if backend == "trio" else None
            )
        except BaseException:
            self._stack.close()
            raise

    # -- hooks ------------------------------------------------------------------------------

    def make_registry(self) -> ToolRegistry:
        """The tools of the runtime under test (called once per example, in ``__init__``)."""
        raise NotImplementedError(f"{type(self).__name__} must define make_registry()")

    def make_config(self) -> RuntimeConfig | None:
        """The runtime's configuration (default: the defaults)."""
        return None

    def is_idle(self) -> bool:
        """Whether nothing is in progress between rules (the idle invariants apply)."""
        return True

    def answer_tenant(self, data: Any) -> str | None:
        """The tenant an answer belongs to, or None if it does not say.

        Default: ``data["tenant"]``, looking through a ``"result"`` wrapper (the form of
        a scripted tool's ``huge`` answer).
        """
        while isinstance(data, Mapping):
            tenant = data.get("tenant")
            if isinstance(tenant, str):
                return tenant
            data = data.get("result")
        return None

    @classmethod
    def backend_name(cls) -> str:
        backend = cls.backend or os.environ.get(BACKEND_ENV) or "trio"
        if backend not in ("trio", "asyncio"):
            raise ValueError(f"backend must be 'trio' or 'asyncio', got {backend!r}")
        return backend

    # -- helpers for rules --------------------------------------------------------------------

    def run(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Run ``await function(*args)`` in the runtime's loop, bounded by ``call_timeout``.

        Virtual time moves only while such a call runs (and in :meth:`advance`): between
        rules the loop waits for the next call and its clock stands still.
        """
        self._idle_snapshot = None  # whatever ran may have changed what it shows
        result: T = self._call(self._bounded, function, args)
        return result

    def _call(self, function: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``await function(*args)`` in the loop, from this (the test's) thread."""
        if self._trio_token is not None:
            result: T = trio.from_thread.run(function, *args, trio_token=self._trio_token)
            return result
        return self.portal.call(function, *args)

    async def _bounded(self, function: Callable[..., Awaitable[T]], args: tuple[Any, ...]) -> T:
        with self._time_moves(), anyio.fail_after(self.call_timeout):
            return await function(*args)

    def _time_moves(self) -> AbstractContextManager[None]:
        return self._time.running() if self._time is not None else nullcontext()

    @asynccontextmanager
    async def _in_time(self, manager: AbstractAsyncContextManager[T]) -> AsyncIterator[T]:
        # Starting and stopping the runtime may wait on timers too.
        with self._time_moves():
            value = await manager.__aenter__()
        try:
            yield value
        except BaseException as exc:
            with self._time_moves():
                if not await manager.__aexit__(type(exc), exc, exc.__traceback__):
                    raise
        else:
            with self._time_moves():
                await manager.__aexit__(None, None, None)

    def execute(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        context: ToolContext | str,
        *,
        timeout: float | None = None,
    ) -> Any:
        """``runtime.execute`` through the portal; the answer is checked for its tenant."""
        ctx = context if isinstance(context, ToolContext) else ToolContext(context)
        data = self.run(self._execute, tool_type, operation, params, ctx, timeout)
        self.check_answer(ctx, data)
        return data

    async def _execute(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        ctx: ToolContext,
        timeout: float | None,
    ) -> Any:
        return await self.runtime.execute(tool_type, operation, params, ctx, timeout=timeout)

    def execute_result(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        context: ToolContext | str,
        *,
        timeout: float | None = None,
    ) -> ToolResult:
        """``runtime.execute_result`` through the portal; a success is tenant-checked."""
        ctx = context if isinstance(context, ToolContext) else ToolContext(context)
        result: ToolResult = self.run(
            self._execute_result, tool_type, operation, params, ctx, timeout
        )
        if result.success:
            self.check_answer(ctx, result.data)
        return result

    async def _execute_result(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        ctx: ToolContext,
        timeout: float | None,
    ) -> ToolResult:
        return await self.runtime.execute_result(tool_type, operation, params, ctx, timeout=timeout)

    def compose(
        self,
        composition: str | Pipeline,
        params: Mapping[str, Any],
        context: ToolContext | str,
    ) -> PipelineResult:
        """``runtime.compose`` through the portal; every step's answer is tenant-checked.

        A fail-fast failure raises :class:`~runtime.errors.PipelineError` as usual.
        """
        ctx = context if isinstance(context, ToolContext) else ToolContext(context)
        result: PipelineResult = self.run(self._compose, composition, params, ctx)
        for data in result.results.values():
            self.check_answer(ctx, data)
        return result

    async def _compose(
        self, composition: str | Pipeline, params: Mapping[str, Any], ctx: ToolContext
    ) -> PipelineResult:
        return await self.runtime.compose(composition, params, ctx)

    def check_answer(self, context: ToolContext, data: Any) -> None:
        """Record ``data`` as an answer to ``context``'s tenant (see no_cross_tenant_hit)."""
        self.answers_checked += 1
        tenant = self.answer_tenant(data)
        if tenant is not None and tenant != context.tenant_id:
            self.cross_tenant_answers.append(
                f"tenant {context.tenant_id!r} was answered with {tenant!r}'s data: {data!r:.200}"
            )

    def now(self) -> float:
        """The runtime's clock (``anyio.current_time()`` in its loop)."""
        return self._call(self._current_time)

    @staticmethod
    async def _current_time() -> float:
        return anyio.current_time()

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass in the runtime's loop (instant on virtual time).

        Not bounded by :attr:`call_timeout`: a TTL of a day is a day.
        """
        self._idle_snapshot = None
        self._call(self._sleep, seconds)

    async def _sleep(self, seconds: float) -> None:
        with self._time_moves():
            await anyio.sleep(seconds)

    def invalidate(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        context: ToolContext | str,
    ) -> int:
        """``runtime.cache.invalidate`` through the portal: entries removed (0 or 1)."""
        ctx = context if isinstance(context, ToolContext) else ToolContext(context)
        removed: int = self.run(self._require_cache().invalidate, tool_type, operation, params, ctx)
        return removed

    def invalidate_tool(self, tool_type: str, operation: str | None = None) -> int:
        """``runtime.cache.invalidate_tool`` through the portal: entries removed."""
        removed: int = self.run(self._require_cache().invalidate_tool, tool_type, operation)
        return removed

    def clear_cache(self) -> int:
        """``runtime.cache.clear`` through the portal: entries removed."""
        removed: int = self.run(self._require_cache().clear)
        return removed

    def _require_cache(self) -> CacheHandle:
        if self.runtime.cache is None:
            raise RuntimeError("the cache is disabled in this runtime")
        return self.runtime.cache

    def cache_stats(self) -> CacheReport:
        if self.runtime.cache is None:
            raise RuntimeError("the cache is disabled in this runtime")
        return self.run(self.runtime.cache.stats)

    def scripted_tools(self) -> dict[tuple[str, str], ScriptedTool]:
        """The registered :class:`ScriptedTool` instances by (tool_type, operation)."""
        return {
            spec.key: spec.tool
            for spec in self.registry.specs()
            if isinstance(spec.tool, ScriptedTool)
        }

    # -- built-in invariants ------------------------------------------------------------------

    def check_invariants(self, *args: Any, **kwargs: Any) -> None:
        # One snapshot of the runtime per check (one portal round trip), not one per
        # invariant: hypothesis calls this after every step.
        self._idle_snapshot = None
        super().check_invariants(*args, **kwargs)

    def idle_snapshot(self) -> IdleSnapshot:
        """What the idle invariants read, taken in the runtime's loop once per step."""
        if self._idle_snapshot is None:
            self._idle_snapshot = self._call(self._take_snapshot)
        return self._idle_snapshot

    async def _take_snapshot(self) -> IdleSnapshot:
        runtime = self.runtime
        report = await runtime.cache.stats() if runtime.cache is not None else None
        return IdleSnapshot(
            runtime.health(), report, runtime.calls_in_flight(), runtime.running_pipelines
        )

    @invariant()
    def no_leaked_waiters(self) -> None:
        if not self.is_idle():
            return
        snapshot = self.idle_snapshot()
        for name, stats in snapshot.health.actors.items():
            assert stats.deferred_replies == 0, (
                f"actor {name!r} holds {stats.deferred_replies} deferred replies while idle"
            )
        if snapshot.cache is not None:
            waiting = snapshot.cache.snapshot.waiting_followers
            assert waiting == 0, f"{waiting} cache followers wait while idle"

    @invariant()
    def nothing_in_flight(self) -> None:
        if not self.is_idle():
            return
        snapshot = self.idle_snapshot()
        calls = ", ".join(f"{t}.{o} x{n}" for (t, o), n in sorted(snapshot.calls.items()))
        assert not calls, f"tool calls started and not finished while idle: {calls}"
        assert snapshot.pipelines == 0, f"{snapshot.pipelines} pipeline runs while idle"

    @invariant()
    def single_flight_empty(self) -> None:
        if not self.is_idle():
            return
        report = self.idle_snapshot().cache
        if report is None:
            return
        in_flight = report.snapshot.in_flight
        assert in_flight == 0, f"{in_flight} keys are in flight while idle"

    @invariant()
    def cache_stats_add_up(self) -> None:
        if not self.is_idle():
            return
        report = self.idle_snapshot().cache
        if report is None:
            return
        l2_hits: int = getattr(report, "l2_hits", 0)
        for key, tool in self.scripted_tools().items():
            counters = report.snapshot.store.by_operation.get(key, CacheCounters())
            executions = tool.call_count
            # L2 hits are counted in total, not per operation: exact only without them.
            exact = self.exact_cache_accounting and l2_hits == 0
            expected = counters.misses - counters.coalesced + counters.bypasses
            where = f"{key[0]}.{key[1]}"
            if exact:
                assert executions == expected, (
                    f"{where}: {executions} tool executions, but misses - coalesced + "
                    f"bypasses = {counters.misses} - {counters.coalesced} + "
                    f"{counters.bypasses} = {expected}"
                )
            else:
                bound = counters.misses + counters.bypasses + report.actor_unavailable
                assert executions <= bound, (
                    f"{where}: {executions} tool executions, more than the {bound} "
                    "lookups that missed or bypassed the cache"
                )

    @invariant()
    def no_cross_tenant_hit(self) -> None:
        assert not self.cross_tenant_answers, "\n".join(self.cross_tenant_answers)

    def teardown(self) -> None:
        """Leave the runtime and stop the portal's loop."""
        self._stack.close()
