"""The selector's functional core: what the SelectorActor owns and serves.

``SelectorState`` joins the static configuration (profiles, candidate map, strategy
weights) with the live statistics of every operation it has heard about.  It is plain,
synchronous and clock-free (every method that needs the time takes ``now``), and only its
owner mutates it, so it needs no locks and can be driven by a test or a simulation exactly
as the actor drives it.

Ranking is deterministic, for explanations.  Choosing is where randomness enters, and it
comes only from the ``random.Random`` the caller passes, so a seeded run replays exactly.

**Reservations.**  ``choose`` also counts its own decision as load on the chosen operation
until the matching call start arrives (or ``reservation_ttl`` passes, for a choice that
was never executed).  Observations reach the actor by cast, and so may arrive late.  Without
reservations, every request decided before the chosen tool's start is heard of sees the
same "idle" tool and goes there too: Mitzenmacher's herding on stale load information.  The
selector needs no observation to know what it decided itself.  The benchmark's ``stale``
scenario measured the difference: p99 about 4x P2C peak-EWMA without reservations.

**Exploration.**  ``plan`` may hand a bounded share of an intent's choices to a candidate
the ranking did not put first -- one never observed, or idle for a while -- so newcomers
are tried and tools that got better are found again (``exploration.py``); such a choice
is ``Ranked.explored``.  It needs no randomness: a seeded run still replays exactly.
"""

from __future__ import annotations

import bisect
import math
import random
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from runtime.errors import UnknownIntent, UnknownStrategy
from runtime.selector.exploration import pick_explored
from runtime.selector.intents import Candidate, Intent, intent_name
from runtime.selector.observations import (
    Outcome,
    ToolStats,
    effective_latency,
    error_rate_at,
    finished,
    fresh,
    latency_at,
    started,
)
from runtime.selector.profiles import ToolProfile
from runtime.selector.scoring import (
    Factors,
    Ranked,
    Weights,
    latency_score,
    load_score,
)
from runtime.selector.scoring import choose as choose_among
from runtime.selector.scoring import rank as rank_scored
from runtime.selector.settings import SelectorSettings

__all__ = ["SelectorState", "ToolSnapshot"]


@attrs.frozen(slots=True)
class ToolSnapshot:
    """The live view of one operation at one instant (for stats pages and tests)."""

    tool_type: str
    operation: str
    prior_s: float
    latency_s: float
    effective_latency_s: float
    error_rate: float
    in_flight: int
    samples: int
    failures: int

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


class SelectorState:
    """Profiles, candidates, strategies and live observations; see the module docstring."""

    __slots__ = (
        "_credit",
        "_explorations",
        "_intent_table",
        "_last_explored",
        "_reserved",
        "_settings",
        "_stats",
    )

    def __init__(self, settings: SelectorSettings | None = None) -> None:
        self._settings = settings if settings is not None else SelectorSettings()
        self._stats: dict[Candidate, ToolStats] = {}
        # Times of choices not yet matched by a call start, ascending, per candidate.
        self._reserved: dict[Candidate, list[float]] = {}
        # Per intent: its candidates with their profiles, and the latency reference (the
        # smallest prior among them).  The configuration is frozen, so this never goes stale.
        self._intent_table: dict[str, tuple[tuple[tuple[Candidate, ToolProfile], ...], float]] = {}
        # Exploration (see exploration.py): credit per intent, last probe per candidate.
        self._credit: dict[str, float] = {}
        self._last_explored: dict[Candidate, float] = {}
        self._explorations: dict[str, int] = {}

    @property
    def settings(self) -> SelectorSettings:
        return self._settings

    def intents(self) -> tuple[str, ...]:
        return tuple(sorted(self._settings.candidates))

    def strategies(self) -> tuple[str, ...]:
        return tuple(sorted(self._settings.strategies))

    def candidates(self, intent: Intent | str) -> tuple[Candidate, ...]:
        """The candidates of ``intent``; raises UnknownIntent listing the known intents."""
        name = intent_name(intent)
        try:
            return self._settings.candidates[name]
        except KeyError:
            raise UnknownIntent(name, self._settings.candidates) from None

    def weights(self, strategy: str | Weights | None) -> Weights:
        """A strategy's weight vector; a ``Weights`` is taken as is (a per-call preference)."""
        if isinstance(strategy, Weights):
            return strategy
        name = self._settings.default_strategy if strategy is None else str(strategy)
        try:
            return self._settings.strategies[name]
        except KeyError:
            raise UnknownStrategy(name, self._settings.strategies) from None

    def stats(self, tool_type: str, operation: str) -> ToolStats:
        """The statistics of one operation (its prior when never observed)."""
        key = (tool_type, operation)
        found = self._stats.get(key)
        if found is None:
            return fresh(self._settings.profile(key).latency_prior_s)
        return found

    def reserved(self, tool_type: str, operation: str, now: float) -> int:
        """Choices of this operation made in the last ``reservation_ttl`` not yet started."""
        stamps = self._reserved.get((tool_type, operation))
        if not stamps:
            return 0
        return len(stamps) - bisect.bisect_left(stamps, now - self._settings.reservation_ttl)

    def holds_reservations(self, tool_type: str, operation: str) -> bool:
        """Whether any reservation of the operation is held, live or not yet swept."""
        return bool(self._reserved.get((tool_type, operation)))

    def reserved_operations(self) -> frozenset[Candidate]:
        """Every operation holding a reservation, live or not yet swept."""
        return frozenset(key for key, stamps in self._reserved.items() if stamps)

    def _expire(self, key: Candidate, now: float) -> list[float]:
        stamps = self._reserved.setdefault(key, [])
        del stamps[: bisect.bisect_left(stamps, now - self._settings.reservation_ttl)]
        return stamps

    # -- observations --------------------------------------------------------------------

    def observe_start(self, tool_type: str, operation: str, now: float) -> None:
        """A call began; it settles the oldest live reservation of the same operation."""
        key = (tool_type, operation)
        self._stats[key] = started(self.stats(*key), now)
        self.settle(tool_type, operation, now)

    def settle(self, tool_type: str, operation: str, now: float) -> None:
        """Drop the oldest live reservation of an operation (its call was answered)."""
        stamps = self._expire((tool_type, operation), now)
        if stamps:
            del stamps[0]

    def observe_finish(
        self,
        tool_type: str,
        operation: str,
        duration_s: float,
        ok: bool,
        now: float,
        outcome: Outcome | None = None,
    ) -> None:
        """A call ended.  ``outcome`` overrides ``ok`` for cancelled or unmeasured calls."""
        key = (tool_type, operation)
        how: Outcome = outcome if outcome is not None else ("ok" if ok else "error")
        self._stats[key] = finished(
            self.stats(*key), duration_s, how, now, self._settings.observation
        )

    # -- ranking -------------------------------------------------------------------------

    def rank(
        self,
        intent: Intent | str,
        strategy: str | Weights | None = None,
        cached: Iterable[Candidate] = frozenset(),
        now: float = 0.0,
    ) -> list[Ranked]:
        """The intent's candidates, best first, each with confidence, breakdown, evidence."""
        name = intent_name(intent)
        table = self._intent_table.get(name)
        if table is None:
            profiled = tuple((pair, self._settings.profile(pair)) for pair in self.candidates(name))
            reference = min(profile.latency_prior_s for _, profile in profiled)
            table = self._intent_table[name] = (profiled, reference)
        profiled, reference = table
        weights = self.weights(strategy)
        hits = frozenset(cached)
        settings = self._settings.observation
        scored: list[tuple[Candidate, Factors, float, Mapping[str, Any]]] = []
        for pair, profile in profiled:
            stats = self.stats(*pair)
            reserved = self.reserved(*pair, now)
            latency = effective_latency(stats, now, settings, reserved)
            pending = stats.in_flight + reserved
            factors = Factors(
                accuracy=profile.accuracy,
                completeness=profile.completeness,
                latency=latency_score(latency, reference),
                load=load_score(pending),
                cache=1.0 if pair in hits else 0.0,
                intent=profile.bonus(name),
            )
            errors = error_rate_at(stats, now, settings)
            evidence = {
                "latency_s": latency,
                "in_flight": stats.in_flight,
                "reserved": reserved,
                "error_rate": errors,
                "cached": pair in hits,
                # Finagle's load metric, cost * (pending + 1), for the P2C pick.
                "load_cost": latency * (pending + 1),
            }
            scored.append((pair, factors, 1.0 - errors, evidence))
        return rank_scored(scored, weights)

    def choose(
        self,
        intent: Intent | str,
        strategy: str | Weights | None,
        cached: Iterable[Candidate],
        now: float,
        rng: random.Random,
        *,
        reserve: bool = True,
    ) -> Ranked:
        """One candidate: the best, or the least loaded of the near-best (``scoring.choose``).

        With ``reserve`` (the default) the choice counts as load on the chosen operation
        until its call start is observed; pass False for a choice that will not be executed.
        """
        return self.plan(intent, strategy, cached, now, rng, reserve=reserve)[0]

    def plan(
        self,
        intent: Intent | str,
        strategy: str | Weights | None,
        cached: Iterable[Candidate],
        now: float,
        rng: random.Random,
        *,
        reserve: bool = True,
    ) -> tuple[Ranked, list[Ranked]]:
        """:meth:`choose` plus the ranking it chose from (for fallbacks), computed once."""
        ranked = self.rank(intent, strategy, cached, now)
        chosen = choose_among(
            ranked,
            lambda r: float(r.evidence["load_cost"]),
            self._settings.herd_margin,
            rng,
            self._settings.choices,
        )
        probe = self._explore(intent_name(intent), ranked, chosen, now)
        if probe is not None:
            chosen = probe
        if reserve and self._settings.reservation_ttl > 0:
            bisect.insort(self._expire(chosen.candidate, now), now)
        return chosen, ranked

    def explorations(self, intent: Intent | str) -> int:
        """How many choices of ``intent`` explored so far."""
        return self._explorations.get(intent_name(intent), 0)

    def _explore(
        self, intent: str, ranked: list[Ranked], chosen: Ranked, now: float
    ) -> Ranked | None:
        """Spend the intent's exploration credit on a candidate worth learning about."""
        settings = self._settings
        share = settings.exploration_share
        if share <= 0.0 or len(ranked) < 2:
            return None
        credit = min(1.0, self._credit.get(intent, 1.0 - share) + share)
        self._credit[intent] = credit
        if credit < 1.0 or self.stats(*chosen.candidate).samples == 0:
            return None  # no budget, or the choice itself rests on a prior: learn it first
        others = [r for r in ranked if r.candidate != chosen.candidate]
        probe = pick_explored(
            [ranked[0], *(r for r in others if r is not ranked[0])],
            lambda pair: self.stats(*pair),
            lambda pair: self._last_explored.get(pair, -math.inf),
            now,
            settings.exploration_refresh,
            settings.exploration_max_error,
        )
        if probe is None:
            return None
        self._credit[intent] = credit - 1.0
        self._last_explored[probe.candidate] = now
        self._explorations[intent] = self._explorations.get(intent, 0) + 1
        return attrs.evolve(probe, explored=True)

    def snapshot(self, now: float) -> tuple[ToolSnapshot, ...]:
        """Every operation observed so far, sorted by name."""
        settings = self._settings.observation
        return tuple(
            ToolSnapshot(
                tool_type=tool,
                operation=op,
                prior_s=stats.prior_s,
                latency_s=latency_at(stats, now, settings),
                effective_latency_s=effective_latency(stats, now, settings),
                error_rate=error_rate_at(stats, now, settings),
                in_flight=stats.in_flight,
                samples=stats.samples,
                failures=stats.failures,
            )
            for (tool, op), stats in sorted(self._stats.items())
        )
