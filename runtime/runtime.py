"""``open_runtime()``: start the actors under one task group, wire them, stop them all.

Everything the runtime runs lives in the task group opened here, so leaving the ``async
with`` block leaves no task behind -- on trio and on asyncio alike.

Actors are supervised one-for-one (:mod:`runtime.supervisor`): a crashed actor is
restarted with fresh state, and one that crashes too often is left down while the
runtime degrades around it; :meth:`Runtime.health` says what is down and why.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import attrs

from runtime._loop import loop_cancel_check, loop_clock
from runtime.actor import Actor, ActorStats
from runtime.cache.actor import CacheActor
from runtime.cache.lease import SharedFlights
from runtime.cache.redis import RedisSettings, RedisTier
from runtime.cache.service import ResultCacheService
from runtime.calls import CallObserver, GuardedObserver, IdGenerator
from runtime.config import RedisConfig, RuntimeConfig
from runtime.errors import (
    AllCandidatesFailed,
    RuntimeClosed,
    ToolNotFound,
    UnknownComposition,
)
from runtime.executor import Executor, failure_exception
from runtime.handles import CacheHandle, SelectorHandle, TracerHandle
from runtime.pipeline import Pipeline, PipelineResult, StepExecutor, compile_compositions
from runtime.pipeline import run_pipeline as _run_pipeline
from runtime.selector import Candidate, Intent, Ranked, Weights
from runtime.selector.actor import SelectorActor
from runtime.selector.explain import runner_up_of, selection_summary, why_line
from runtime.selector.intents import intent_name
from runtime.supervisor import Supervisor
from runtime.tools import ToolContext, ToolRegistry, ToolResult
from runtime.tracer.actor import TracerActor

__all__ = ["BestResult", "Runtime", "RuntimeHealth", "open_runtime"]


@attrs.frozen(slots=True)
class RuntimeHealth:
    """Which actors are up, how often each was restarted, and why the dead ones died.

    ``closed``: the runtime's ``open_runtime`` block has ended (every actor stopped).
    """

    actors: Mapping[str, ActorStats]
    crashes: Mapping[str, int]
    down: Mapping[str, str]
    closed: bool = False

    @property
    def ok(self) -> bool:
        return not self.down and not self.closed


@attrs.frozen(slots=True)
class BestResult:
    """What :meth:`Runtime.execute_best` answered, and how it got there.

    ``chosen`` is the candidate that answered; ``fallback_used`` is true when a candidate
    ran and failed before it; ``attempts`` lists those failures in order; ``skipped`` the
    candidates not run because they would reject the params (or are not registered).
    ``runner_up`` is the best-ranked other candidate that could take the params (None
    when there is none); ``selection`` (also on the call's
    trace record) and ``why`` say why ``chosen`` won: its score's parts, the runner-up's
    score, and whether the choice explored.
    """

    data: Any
    chosen: Ranked
    fallback_used: bool
    attempts: tuple[tuple[str, str, BaseException], ...] = ()
    skipped: tuple[tuple[str, str, BaseException], ...] = ()
    runner_up: Ranked | None = None
    selection: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def explored(self) -> bool:
        """Whether the selector picked ``chosen`` to learn about it (exploration)."""
        return self.chosen.explored

    @property
    def why(self) -> str:
        """One line: the winner's score and its largest parts, over the runner-up's."""
        return why_line(self.chosen, self.runner_up)

    @property
    def tool_type(self) -> str:
        return self.chosen.tool_type

    @property
    def operation(self) -> str:
        return self.chosen.operation


class Runtime:
    """A started runtime; get one from :func:`open_runtime`."""

    def __init__(
        self,
        registry: ToolRegistry,
        config: RuntimeConfig,
        executor: Executor,
        actors: tuple[Actor[Any], ...],
        *,
        cache: ResultCacheService | None = None,
        tracer: TracerActor | None = None,
        selector: SelectorActor | None = None,
        compositions: Mapping[str, Pipeline] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.registry = registry
        self.config = config
        self.executor = executor
        # The components themselves stay inside: users get handles without the actor
        # protocol (runtime.handles), so no application can stop an actor by mistake.
        self._cache = cache
        self._tracer = tracer
        self._selector = selector
        self.cache = CacheHandle(cache) if cache is not None else None
        """Invalidation, clearing and statistics of the result cache (None when disabled)."""
        self.tracer = TracerHandle(tracer) if tracer is not None else None
        """Trace records, statistics, export and reset (None when disabled)."""
        self.selector = SelectorHandle(selector) if selector is not None else None
        """Rankings, choices and live snapshots (None when disabled)."""
        self.compositions: Mapping[str, Pipeline] = dict(compositions or {})
        """Named compositions: the built-in ones plus those declared in config."""
        self._actors = actors
        self._rng = rng if rng is not None else random.Random()
        self._running_pipelines = 0
        self._supervisor = Supervisor(config.supervision)
        # Set when the open_runtime block ends: a stale reference (app.state.runtime)
        # must fail loudly, not run tools without its cache, tracer and selector.
        self._closed = False

    @property
    def closed(self) -> bool:
        """Whether the ``open_runtime`` block has ended; every call then raises
        :class:`RuntimeClosed`."""
        return self._closed

    async def execute(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        context: ToolContext,
        *,
        timeout: float | None = None,
    ) -> Any:
        """Run one tool call and return its data; see :meth:`Executor.execute`."""
        if self._closed:
            raise RuntimeClosed()
        # Not Executor.execute: one coroutine layer fewer (it shows on a cache hit).
        result = await self.executor.execute_result(
            tool_type, operation, params, context, timeout=timeout
        )
        if result.success:
            return result.data
        raise failure_exception(str(tool_type), operation, result)

    async def execute_result(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        context: ToolContext,
        *,
        timeout: float | None = None,
    ) -> ToolResult:
        """Run one tool call and return its :class:`ToolResult`, never raising for failures."""
        if self._closed:
            raise RuntimeClosed()
        return await self.executor.execute_result(
            tool_type, operation, params, context, timeout=timeout
        )

    async def select(
        self,
        intent: Intent | str,
        params: Mapping[str, Any] | None = None,
        *,
        strategy: str | Weights | None = None,
        context: ToolContext | None = None,
    ) -> list[Ranked]:
        """The candidates for ``intent``, best first, each with its confidence breakdown.

        With ``params`` and ``context`` the cache is asked, here in the caller's task,
        which candidates already hold an answer; that is one of the scoring factors.
        Raises :class:`UnknownIntent` listing the known intents.
        """
        if self._closed:
            raise RuntimeClosed()
        selector = self._require_selector()
        cached = await self._cached_candidates(selector, intent, params, context)
        ranked: list[Ranked] = await selector.rank(intent, strategy, cached)
        return ranked

    async def execute_best(
        self,
        intent: Intent | str,
        params: Mapping[str, Any],
        context: ToolContext,
        *,
        strategy: str | Weights | None = None,
    ) -> BestResult:
        """Run the best candidate for ``intent``; on failure or timeout, the next one.

        The first candidate is the selector's choice (near-equal candidates are split by
        live load, so equal or stale scores do not herd); fallbacks follow the ranking.
        Every attempt is traced, fallbacks with ``fallback_used``.  Raises
        :class:`AllCandidatesFailed` listing every attempt when none succeeds.
        """
        if self._closed:
            raise RuntimeClosed()
        selector = self._require_selector()
        cached = await self._cached_candidates(selector, intent, params, context)
        first, ranked = await selector.plan(intent, strategy, cached)
        attempts: list[tuple[str, str, BaseException]] = []
        skipped: list[tuple[str, str, BaseException]] = []
        order: list[Ranked] = []
        for candidate in (first, *(r for r in ranked if r.candidate != first.candidate)):
            # Candidates that would reject the params are skipped, not run: a caller's
            # params that fit another tool are no failure of this one.
            rejected = self._rejection(candidate, params)
            if rejected is None:
                order.append(candidate)
            else:
                skipped.append((candidate.tool_type, candidate.operation, rejected))
        name = intent_name(intent)
        for tried, candidate in enumerate(order):
            # Among the candidates that could take the params: a skipped one is no rival.
            runner_up = runner_up_of(candidate, order)
            selection = selection_summary(name, candidate, runner_up)
            result = await self.executor.execute_result(
                candidate.tool_type,
                candidate.operation,
                params,
                context,
                fallback_used=tried > 0,
                selection=selection,
            )
            if result.success:
                return BestResult(
                    result.data,
                    candidate,
                    tried > 0,
                    tuple(attempts),
                    tuple(skipped),
                    runner_up,
                    selection,
                )
            error = failure_exception(candidate.tool_type, candidate.operation, result)
            attempts.append((candidate.tool_type, candidate.operation, error))
        raise AllCandidatesFailed(name, [*skipped, *attempts])

    def _rejection(self, candidate: Ranked, params: Mapping[str, Any]) -> Exception | None:
        if candidate.candidate not in self.registry:
            return ToolNotFound(
                candidate.tool_type,
                candidate.operation,
                self.registry.operations(candidate.tool_type),
            )
        return self.registry.get(*candidate.candidate).rejects(params)

    def _require_selector(self) -> SelectorActor:
        if self._selector is None:
            raise RuntimeError("the selector is disabled (selector.enabled is false)")
        return self._selector

    async def _cached_candidates(
        self,
        selector: SelectorActor,
        intent: Intent | str,
        params: Mapping[str, Any] | None,
        context: ToolContext | None,
    ) -> frozenset[Candidate]:
        if self._cache is None or params is None or context is None:
            return frozenset()
        found = []
        for candidate in selector.settings.candidates.get(intent_name(intent), ()):
            if candidate in self.registry:
                spec = self.registry.get(*candidate)
                if await self._cache.contains(spec, params, context):
                    found.append(candidate)
        return frozenset(found)

    async def compose(
        self,
        composition: str | Pipeline,
        params: Mapping[str, Any],
        context: ToolContext,
        *,
        deadline: float | None = None,
        executor: StepExecutor | None = None,
    ) -> PipelineResult:
        """Run a named composition (or a :class:`Pipeline`) and return its result.

        Every step goes through the executor, so caching, coalescing and tracing apply per
        step.  ``deadline`` defaults to ``pipeline.default_deadline`` (0: none).  Raises
        :class:`PipelineError` when a fail-fast step fails.  ``executor`` replaces the
        runtime's for this run: a wrapper around :attr:`executor` that also watches the
        step reports (the MCP server's progress does that).
        """
        if self._closed:
            raise RuntimeClosed()
        if isinstance(composition, Pipeline):
            pipeline = composition
        else:
            found = self.compositions.get(composition)
            if found is None:
                raise UnknownComposition(composition, self.compositions)
            pipeline = found
        if deadline is None:
            deadline = self.config.pipeline.default_deadline or None
        self._running_pipelines += 1
        try:
            return await _run_pipeline(
                pipeline,
                params,
                context,
                self.executor if executor is None else executor,
                deadline=deadline,
                max_concurrency=self.config.pipeline.max_concurrency,
                rng=self._rng,
            )
        finally:
            self._running_pipelines -= 1

    @property
    def running_pipelines(self) -> int:
        """Pipeline runs in progress (0 when the runtime is quiescent)."""
        return self._running_pipelines

    def calls_in_flight(self) -> dict[tuple[str, str], int]:
        """Tool calls started and not finished, by ``(tool_type, operation)`` (empty when
        the runtime is quiescent): cached or not, with side effects or not, from user
        tasks and pipeline steps alike."""
        return self.executor.in_flight()

    @asynccontextmanager
    async def _lifetime(self) -> AsyncIterator[Runtime]:
        """Run the actors in one task group for the block; closed once it ends.

        An error raised in the block is re-raised as itself once the actors have
        stopped, not wrapped in the task group's ExceptionGroup: the application's own
        exceptions should reach its own except clauses unchanged.
        """
        error: Exception | None = None
        try:
            async with anyio.create_task_group() as group:
                await self._supervisor.start(group, self._actors)
                try:
                    yield self
                except Exception as exc:
                    error = exc
                finally:
                    group.cancel_scope.cancel()
        finally:
            self._closed = True
        if error is not None:
            raise error

    def health(self) -> RuntimeHealth:
        return RuntimeHealth(
            actors={actor.name: actor.stats() for actor in self._actors},
            crashes=dict(self._supervisor.crashes),
            down=dict(self._supervisor.down),
            closed=self._closed,
        )


@asynccontextmanager
async def open_runtime(
    registry: ToolRegistry,
    config: RuntimeConfig | None = None,
    *,
    observers: tuple[CallObserver, ...] = (),
    ids: IdGenerator | None = None,
    rng: random.Random | None = None,
) -> AsyncIterator[Runtime]:
    """Start a runtime for the tools in ``registry``; stop everything on exit.

    ``observers`` are extra :class:`~runtime.calls.CallObserver` instances told about
    every call, next to the built-in tracer and selector; one that raises is counted and
    logged, never allowed to fail the call (:class:`~runtime.calls.GuardedObserver`).
    ``ids`` fixes the span/trace id generator (pass ``IdGenerator(seed="...")`` for
    replayable ids in tests), ``rng``
    the random source of retry jitter and of the selector's tie-breaks (pass a seeded
    ``random.Random`` to replay them).
    """
    if config is None:
        config = RuntimeConfig()
    elif not isinstance(config, RuntimeConfig):
        raise TypeError(
            f"config must be a RuntimeConfig (from load_config or config_from_dict), "
            f"got {type(config).__name__}"
        )
    ids = ids if ids is not None else IdGenerator()
    # Not ours: a raising one must not fail the calls it watches (see GuardedObserver).
    observers = tuple(GuardedObserver(observer) for observer in observers)
    # Compile before starting anything: a bad composition is a ConfigError at start-up.
    compositions = compile_compositions(config.compositions)
    async with AsyncExitStack() as stack:
        cache = await _open_cache(stack, config, registry)
        tracer = TracerActor.from_config(config.tracer) if config.tracer.enabled else None
        selector = None
        if config.selector.enabled:
            seeded = random.Random(rng.random()) if rng is not None else None
            selector = SelectorActor.from_config(config.selector, rng=seeded)
        parts = (cache.actor if cache is not None else None, tracer, selector)
        actors: list[Actor[Any]] = [actor for actor in parts if actor is not None]
        # The tracer first (it sizes results for the others), the selector last.
        observers = (*((tracer,) if tracer else ()), *observers, *((selector,) if selector else ()))
        executor = Executor(
            registry,
            config.executor,
            cache=cache,
            observers=observers,
            ids=ids,
            clock=loop_clock(),
            cancel_check=loop_cancel_check(),
        )
        runtime = Runtime(
            registry,
            config,
            executor,
            tuple(actors),
            cache=cache,
            tracer=tracer,
            selector=selector,
            compositions=compositions,
            rng=rng,
        )
        async with runtime._lifetime():
            yield runtime


async def _open_cache(
    stack: AsyncExitStack, config: RuntimeConfig, registry: ToolRegistry
) -> ResultCacheService | None:
    """The result cache of ``config`` (None when disabled), its Redis tier on ``stack``."""
    if not config.cache.enabled:
        return None
    l2: RedisTier | None = None
    flights: SharedFlights | None = None
    if config.cache.redis is not None:
        l2 = await stack.enter_async_context(RedisTier.open(redis_settings(config.cache.redis)))
        if l2.settings.shared_flight:
            flights = await stack.enter_async_context(SharedFlights.open(l2))
    actor = CacheActor(config.cache.max_entries, config.cache.max_bytes, config.cache.policy)
    return ResultCacheService(actor, config.cache, l2=l2, registry=registry, flights=flights)


def redis_settings(config: RedisConfig) -> RedisSettings:
    """The Redis tier's settings from the ``cache.redis`` config section."""
    return config.settings()
