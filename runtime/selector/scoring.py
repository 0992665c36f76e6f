"""Scoring and ranking candidates: pure functions, no state, no clock.

Each candidate has six *factors*, each in [0, 1] where 1 is best: ``accuracy`` and
``completeness`` (the profile), ``latency`` (``ref / (ref + latency)``, ``ref`` the
smallest latency prior among the intent's candidates), ``load`` (``1 / (1 + pending)``),
``cache`` (1 when the caller found this candidate's answer cached) and ``intent`` (the
profile's bonus).

- A *strategy* is a non-negative weight vector; the confidence is
  ``reliability * sum(w * f) / sum(w)`` with ``reliability = 1 - error_rate``, so it lies
  in [0, 1] and raising any factor never lowers it.
- BALANCED is 0.3 accuracy, 0.25 latency, 0.15 cache, 0.2 load, 0.1 intent, 0
  completeness; configuration may change any vector and add strategies.
- Ranking is deterministic: by confidence, then by ``(tool_type, operation)``.  Spreading
  load among near-equal candidates is :func:`choose`'s job.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from runtime.selector.intents import Candidate

__all__ = [
    "DEFAULT_STRATEGIES",
    "FACTORS",
    "FactorScore",
    "Factors",
    "Ranked",
    "Strategy",
    "Weights",
    "choose",
    "confidence",
    "explain",
    "latency_score",
    "load_score",
    "rank",
]

FACTORS: tuple[str, ...] = ("accuracy", "completeness", "latency", "load", "cache", "intent")


class Strategy(enum.StrEnum):
    """The built-in strategies; configuration may define more by name."""

    BALANCED = "BALANCED"
    FASTEST = "FASTEST"
    MOST_ACCURATE = "MOST_ACCURATE"
    MOST_COMPLETE = "MOST_COMPLETE"
    LEAST_LOAD = "LEAST_LOAD"


def _weight(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0.0):
        raise ValueError(f"weight {attribute.name} must be a finite number >= 0, got {value!r}")


@attrs.frozen(slots=True)
class Factors:
    """One candidate's six normalised factors (1 = best)."""

    accuracy: float
    completeness: float
    latency: float
    load: float
    cache: float
    intent: float

    def __attrs_post_init__(self) -> None:
        # One check for all six (instead of six attrs validators): this runs per candidate
        # per ranking, on the selection path.
        for name, value in zip(FACTORS, self.values(), strict=True):
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"factor {name} must be in [0, 1], got {value!r}")

    def values(self) -> tuple[float, float, float, float, float, float]:
        """The factors in :data:`FACTORS` order."""
        return (self.accuracy, self.completeness, self.latency, self.load, self.cache, self.intent)


@attrs.frozen(slots=True)
class Weights:
    """A strategy: non-negative weights over the factors, not all zero.

    They need not sum to 1; :func:`confidence` normalises.
    """

    accuracy: float = attrs.field(default=0.0, validator=_weight)
    completeness: float = attrs.field(default=0.0, validator=_weight)
    latency: float = attrs.field(default=0.0, validator=_weight)
    load: float = attrs.field(default=0.0, validator=_weight)
    cache: float = attrs.field(default=0.0, validator=_weight)
    intent: float = attrs.field(default=0.0, validator=_weight)

    def __attrs_post_init__(self) -> None:
        try:
            total = self.total()
        except OverflowError:  # fsum's answer to finite weights whose sum is not
            total = math.inf
        if total <= 0.0:
            raise ValueError("a strategy needs at least one positive weight")
        if math.isinf(total):
            raise ValueError("the weights' sum must be finite (normalising divides by it)")

    def total(self) -> float:
        return math.fsum(getattr(self, name) for name in FACTORS)

    def normalised(self) -> tuple[float, ...]:
        """The weights in :data:`FACTORS` order, divided by their sum."""
        total = self.total()
        return tuple(getattr(self, name) / total for name in FACTORS)

    def as_dict(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in FACTORS}


DEFAULT_STRATEGIES: Mapping[str, Weights] = {
    Strategy.BALANCED: Weights(accuracy=0.3, latency=0.25, cache=0.15, load=0.2, intent=0.1),
    Strategy.FASTEST: Weights(latency=0.6, load=0.15, cache=0.15, intent=0.1),
    Strategy.MOST_ACCURATE: Weights(accuracy=0.8, intent=0.2),
    Strategy.MOST_COMPLETE: Weights(completeness=0.8, intent=0.2),
    Strategy.LEAST_LOAD: Weights(load=0.8, cache=0.1, intent=0.1),
}


def latency_score(latency_s: float, reference_s: float) -> float:
    """``ref / (ref + latency)``: 1 for an instant answer, 0.5 at the reference, → 0."""
    if latency_s <= 0.0:
        return 1.0
    if math.isinf(latency_s):
        return 0.0
    return reference_s / (reference_s + latency_s)


def load_score(pending: int) -> float:
    """``1 / (1 + pending)``: 1 when idle (calls in flight plus reserved choices)."""
    return 1.0 / (1.0 + max(pending, 0))


@attrs.frozen(slots=True)
class FactorScore:
    """One line of an explanation: a factor's value, its normalised weight, their product."""

    factor: str
    value: float
    weight: float
    contribution: float


def explain(factors: Factors, weights: Weights) -> tuple[FactorScore, ...]:
    """The per-factor breakdown; the contributions sum to the weighted mean.

    (The confidence is that sum times the candidate's reliability.)
    """
    return tuple(
        FactorScore(name, float(value), weight, value * weight)
        for name, value, weight in zip(FACTORS, factors.values(), weights.normalised(), strict=True)
    )


def _weighted_mean(values: tuple[float, ...], normalised: tuple[float, ...]) -> float:
    # Unrolled: this runs per candidate per ranking.
    a, b, c, d, e, f = values
    wa, wb, wc, wd, we, wf = normalised
    raw = a * wa + b * wb + c * wc + d * wd + e * we + f * wf
    # Rounding can overshoot by an ulp; the bound is part of the contract.
    return min(max(raw, 0.0), 1.0)


def confidence(factors: Factors, weights: Weights, reliability: float = 1.0) -> float:
    """``reliability`` times the weighted mean of the factors, in [0, 1]."""
    return _weighted_mean(factors.values(), weights.normalised()) * _unit(reliability)


def _unit(value: float) -> float:
    return min(max(value, 0.0), 1.0)


@attrs.frozen(slots=True)
class Ranked:
    """A candidate's place in a ranking, with why it got there.

    ``evidence`` holds the raw inputs behind the factors (latency estimate in seconds,
    calls in flight, error rate, cached) for explanations and dashboards.  ``explored`` is
    true on a choice made to learn about a candidate, not because it ranked best (see
    ``runtime.selector.exploration``).
    """

    tool_type: str
    operation: str
    confidence: float
    factors: Factors
    weights: Weights
    reliability: float = 1.0
    evidence: Mapping[str, Any] = attrs.field(factory=dict)
    explored: bool = False

    @property
    def name(self) -> str:
        """``TOOL.operation``."""
        return f"{self.tool_type}.{self.operation}"

    @property
    def candidate(self) -> Candidate:
        return (self.tool_type, self.operation)

    @property
    def breakdown(self) -> tuple[FactorScore, ...]:
        """Each factor's value, normalised weight and contribution to the confidence."""
        return explain(self.factors, self.weights)

    def explain(self) -> dict[str, Any]:
        """A JSON-able explanation: confidence, factor breakdown and evidence."""
        return {
            "tool_type": self.tool_type,
            "operation": self.operation,
            "confidence": self.confidence,
            "reliability": self.reliability,
            "explored": self.explored,
            "factors": {
                line.factor: {
                    "value": line.value,
                    "weight": line.weight,
                    "contribution": line.contribution,
                }
                for line in self.breakdown
            },
            "evidence": dict(self.evidence),
        }


def rank(
    scored: Sequence[tuple[Candidate, Factors, float, Mapping[str, Any]]], weights: Weights
) -> list[Ranked]:
    """Rank ``(candidate, factors, reliability, evidence)``, best first, ties broken by name."""
    normalised = weights.normalised()
    ranked = [
        Ranked(
            tool,
            op,
            _weighted_mean(factors.values(), normalised) * _unit(reliability),
            factors,
            weights,
            reliability,
            evidence,
        )
        for (tool, op), factors, reliability, evidence in scored
    ]
    ranked.sort(key=lambda r: (-r.confidence, r.tool_type, r.operation))
    return ranked


def choose(
    ranked: Sequence[Ranked],
    load: Callable[[Ranked], float],
    margin: float,
    rng: random.Random,
    choices: int = 0,
) -> Ranked:
    """Pick one candidate from a ranking without herding.

    Every candidate whose confidence is within ``margin`` of the best is *near-top*; when
    only one is, it wins.  Otherwise the pick goes by ``load`` (the selector passes Finagle's
    ``latency * (in_flight + 1)``):

    - ``choices == 2`` (power of two choices): two distinct near-top candidates are drawn
      with ``rng`` and the less loaded wins, the first drawn on a tie.  Mitzenmacher
      showed that sending every task to the apparently least-loaded server goes wrong when
      the load information is stale, and that best-of-two stays robust.
    - ``choices == 0`` (the default): the least loaded of *all* near-top candidates, with a
      tie broken at random.  This is safe only because the selector's own decisions never
      go stale: ``SelectorState.choose`` reserves load on what it picked until the call
      start arrives.  Measured in ``benchmarks/selector_bench.py``, it beats P2C on every
      scenario, the stale one included.
    - any other ``d``: power of ``d`` choices.

    Either way, candidates that tie in score *and* load are picked at random, so equal
    scores cannot pile all traffic onto whichever sorts first.
    """
    if not ranked:
        raise ValueError("cannot choose from an empty ranking")
    best = ranked[0].confidence
    near = [r for r in ranked if r.confidence >= best - margin]
    if len(near) == 1:
        return near[0]
    if choices == 2:
        # Drawn in random order, and the first drawn wins a tie: equal candidates share
        # the traffic evenly (a rank-order tie-break would starve the last of them).
        a, b = rng.sample(near, 2)
        return b if load(b) < load(a) else a
    pool = near if choices <= 0 or choices >= len(near) else rng.sample(near, choices)
    loads = [load(r) for r in pool]
    lowest = min(loads)
    tied = [r for r, value in zip(pool, loads, strict=True) if value == lowest]
    return tied[0] if len(tied) == 1 else rng.choice(tied)
