"""SelectorActor: the task that owns a :class:`SelectorState` and serves it.

- It is a :class:`~runtime.calls.CallObserver`: the executor casts every call start and
  finish to it; ranking and choosing are calls.  Cache availability is an *input* of those
  calls -- the selector never calls another actor.
- Observations carry their own time (a start at ``started_at``, a finish at
  ``started_at + duration_s``); queries use the actor's clock.
- A finished call counts as ``ok``; ``error`` and ``timeout`` as failures; ``cancelled``
  as a censored sample; cache hits, coalesced followers and ``rejected`` calls (params
  refused: ``InvalidParams`` or a subclass, as the executor classified it) as unmeasured.
  Pipeline and step reports are ignored.
- A restart begins from a fresh state (the profiles' priors).
- Only the actor task touches the state.  Callers read one thing, the published
  :attr:`SelectorActor.reserved_view`: a frozenset the actor replaces (never mutates)
  after each step that can change it.  A call's end is never dropped for a full mailbox
  (it balances a start); an end whose start was dropped finds the count at zero, and
  the state keeps counts from going below it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from runtime.actor import Actor, ReplySlot
from runtime.calls import CallReport, CallStart
from runtime.selector.intents import Candidate, Intent, intent_name
from runtime.selector.observations import Outcome
from runtime.selector.scoring import Ranked, Weights
from runtime.selector.settings import SelectorSettings
from runtime.selector.state import SelectorState, ToolSnapshot

if TYPE_CHECKING:
    from runtime.config import SelectorConfig

__all__ = ["SelectorActor", "outcome_of"]


@attrs.frozen(slots=True)
class Rank:
    """Call: the ranking of an intent's candidates (deterministic, for explanations)."""

    intent: str
    strategy: str | Weights | None = None
    cached: frozenset[Candidate] = frozenset()


@attrs.frozen(slots=True)
class Choose:
    """Call: one candidate, picked without herding; reserves load on it by default."""

    intent: str
    strategy: str | Weights | None = None
    cached: frozenset[Candidate] = frozenset()
    reserve: bool = True
    with_ranking: bool = False


@attrs.frozen(slots=True)
class Snapshot:
    """Call: the live statistics of every operation observed so far."""


def outcome_of(report: CallReport) -> Outcome:
    """How a finished tool call counts for the selector (see the module docstring)."""
    status = report.status
    if report.cache_hit or report.coalesced or status == "rejected":
        return "unmeasured"
    if status == "ok":
        return "ok"
    if status == "cancelled":
        return "censored"
    return "error"


class SelectorActor(Actor[Any]):
    """Owns the selector's state; observes calls by cast, answers rank/choose by call."""

    def __init__(
        self,
        settings: SelectorSettings | None = None,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = anyio.current_time,
        name: str = "selector",
        mailbox_size: int = 4096,
        batch_window: float = 0.0,
    ) -> None:
        # ``batch_window`` batches observations; it never delays a ranking, since a call ends
        # the pause and casts sent before it are applied first (see runtime.actor).
        super().__init__(name, mailbox_size=mailbox_size, linger=batch_window)
        self._settings = settings if settings is not None else SelectorSettings()
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._state = SelectorState(self._settings)
        self.reserved_view: frozenset[Candidate] = frozenset()
        """The operations holding a reservation, as of the actor's last step: the one
        read of selector state made in callers' tasks (see call_finished).  Written only
        by the actor task, by replacing the frozenset; never mutated."""

    @classmethod
    def from_config(
        cls, config: SelectorConfig, *, rng: random.Random | None = None
    ) -> SelectorActor:
        """The selector of a :class:`runtime.config.SelectorConfig` section, as it is."""
        return cls(
            SelectorSettings.from_config(config),
            rng=rng,
            mailbox_size=config.mailbox_size,
            batch_window=config.batch_window,
        )

    @property
    def settings(self) -> SelectorSettings:
        return self._settings

    def on_start(self) -> None:
        self._state = SelectorState(self._settings)
        self.reserved_view = frozenset()

    # -- CallObserver (casts; never block, never raise) -----------------------------------

    def call_started(self, start: CallStart) -> None:
        self.cast(start)

    def call_finished(self, report: CallReport) -> None:
        if report.kind != "tool_call":
            return
        if report.executed:
            # A call's end balances its start in the load count, so it is never dropped
            # for a full mailbox: in a burst that would leave the call "in flight" for
            # ever and herd every later choice away from its tool.
            self.cast(report, bounded=False)
        elif (report.tool_type, report.operation) in self.reserved_view:
            # A cache hit or a coalesced follower teaches nothing and releases no load;
            # it matters only when it answers a choice (see handle_cast).  With no
            # reservation held the cast would be a no-op -- and, should a choice be made
            # before it is handled, it would settle that unrelated reservation.
            self.cast(report)

    # -- the caller's API -------------------------------------------------------------------

    async def rank(
        self,
        intent: Intent | str,
        strategy: str | Weights | None = None,
        cached: Iterable[Candidate] = (),
        *,
        timeout: float | None = None,
    ) -> list[Ranked]:
        """The intent's candidates, best first; raises UnknownIntent for an unknown intent."""
        message = Rank(intent_name(intent), strategy, frozenset(cached))
        result: list[Ranked] = await self.call(message, timeout=timeout)
        return result

    async def choose(
        self,
        intent: Intent | str,
        strategy: str | Weights | None = None,
        cached: Iterable[Candidate] = (),
        *,
        reserve: bool = True,
        timeout: float | None = None,
    ) -> Ranked:
        """One candidate to execute (the least loaded of the near-best; see scoring.choose)."""
        message = Choose(intent_name(intent), strategy, frozenset(cached), reserve)
        result: Ranked = await self.call(message, timeout=timeout)
        return result

    async def plan(
        self,
        intent: Intent | str,
        strategy: str | Weights | None = None,
        cached: Iterable[Candidate] = (),
        *,
        timeout: float | None = None,
    ) -> tuple[Ranked, list[Ranked]]:
        """:meth:`choose` (reserving the pick) and the ranking it chose from, in one call."""
        message = Choose(intent_name(intent), strategy, frozenset(cached), True, True)
        result: tuple[Ranked, list[Ranked]] = await self.call(message, timeout=timeout)
        return result

    async def snapshot(self, *, timeout: float | None = None) -> tuple[ToolSnapshot, ...]:
        result: tuple[ToolSnapshot, ...] = await self.call(Snapshot(), timeout=timeout)
        return result

    # -- handlers (run in the actor task only) ---------------------------------------------

    def handle_cast(self, message: Any) -> None:
        self._observe(message)
        if self.reserved_view:  # empty, it cannot shrink: no cast reserves
            self.reserved_view = self._state.reserved_operations()

    def _observe(self, message: Any) -> None:
        if isinstance(message, CallStart):
            self._state.observe_start(message.tool_type, message.operation, message.started_at)
        elif isinstance(message, CallReport):
            if not message.executed:
                # Served without running the tool: no load to release, nothing learned;
                # it only settles the reservation of the choice that led to it.
                self._state.settle(
                    message.tool_type, message.operation, message.started_at + message.duration_s
                )
                return
            self._state.observe_finish(
                message.tool_type,
                message.operation,
                message.duration_s,
                message.status == "ok",
                message.started_at + message.duration_s,
                outcome_of(message),
            )
        else:
            raise TypeError(f"selector cannot handle cast {message!r}")

    def handle_call(self, message: Any, slot: ReplySlot) -> Any:
        now = self._clock()
        if isinstance(message, Rank):
            try:
                return self._state.rank(message.intent, message.strategy, message.cached, now)
            except (LookupError, ValueError) as exc:
                # The caller's mistake (unknown intent or strategy): it is raised in the
                # caller, and the actor keeps running.
                slot.set_error(exc)
                return None
        if isinstance(message, Choose):
            try:
                chosen, ranked = self._state.plan(
                    message.intent,
                    message.strategy,
                    message.cached,
                    now,
                    self._rng,
                    reserve=message.reserve,
                )
                if message.reserve:
                    self.reserved_view = self._state.reserved_operations()
                return (chosen, ranked) if message.with_ranking else chosen
            except (LookupError, ValueError) as exc:
                slot.set_error(exc)
                return None
        if isinstance(message, Snapshot):
            return self._state.snapshot(now)
        raise TypeError(f"selector cannot handle call {message!r}")
