"""Live statistics of one tool operation, learned from the calls it actually served.

Pure functions of frozen values; ``now`` is always a parameter.

- **Latency** is a peak-EWMA: it jumps to any slower sample at once and otherwise moves
  toward new samples with weight ``exp(-dt / decay_time)``; before the first sample, and
  while idle, it reverts toward the profile's prior (not toward zero).
- **Cold penalty**: with no completed call yet but calls in flight, the latency is
  ``cold_penalty`` times the prior.
- **Failures never look fast**: a failed call's duration may raise the estimate, never
  lower it.  The error rate is a per-call EWMA (``error_alpha``) that decays toward zero
  with ``error_decay_time`` while no calls arrive, and inflates the ranking latency:
  ``effective = latency * (1 + failure_penalty * error_rate)``.
"""

from __future__ import annotations

import math
from typing import Literal

import attrs

__all__ = [
    "ObservationSettings",
    "Outcome",
    "ToolStats",
    "effective_latency",
    "error_rate_at",
    "finished",
    "fresh",
    "latency_at",
    "load_cost",
    "started",
]

Outcome = Literal["ok", "error", "censored", "unmeasured"]
"""How a finished call counts.

``ok`` / ``error``: the tool ran and answered (or failed) in ``duration_s``.  ``censored``:
the call was cancelled by its caller after ``duration_s``, which is only a lower bound on the
tool's latency, so it may raise the estimate but is not an error.  ``unmeasured``: the tool did
not run for this caller (a cache hit or a coalesced follower): only the in-flight count
changes.
"""


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0.0):
        raise ValueError(f"{attribute.name} must be a positive number, got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{attribute.name} must be a non-negative number, got {value!r}")


def _alpha(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 < value <= 1.0):
        raise ValueError(f"{attribute.name} must be in (0, 1], got {value!r}")


def _at_least_one(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 1.0):
        raise ValueError(f"{attribute.name} must be a number >= 1, got {value!r}")


@attrs.frozen(slots=True)
class ObservationSettings:
    """How fast the live statistics learn and forget (see the module docstring)."""

    decay_time: float = attrs.field(default=10.0, validator=_positive)
    error_alpha: float = attrs.field(default=0.1, validator=_alpha)
    error_decay_time: float = attrs.field(default=10.0, validator=_positive)
    failure_penalty: float = attrs.field(default=4.0, validator=_non_negative)
    cold_penalty: float = attrs.field(default=10.0, validator=_at_least_one)


@attrs.frozen(slots=True)
class ToolStats:
    """What has been observed of one operation, as of ``stamp`` (the last finished call).

    ``latency_s`` and ``error_rate`` are the values right after the last sample; read them
    through :func:`latency_at` and :func:`error_rate_at`, which account for the time since.
    """

    prior_s: float
    latency_s: float
    error_rate: float = 0.0
    stamp: float | None = None
    in_flight: int = 0
    samples: int = 0
    failures: int = 0


def fresh(prior_s: float) -> ToolStats:
    """The statistics of an operation never seen: its prior, nothing in flight."""
    return ToolStats(prior_s=prior_s, latency_s=prior_s)


def started(stats: ToolStats, now: float) -> ToolStats:
    """A call began."""
    return ToolStats(
        stats.prior_s,
        stats.latency_s,
        stats.error_rate,
        stats.stamp,
        stats.in_flight + 1,
        stats.samples,
        stats.failures,
    )


def _weight(stats: ToolStats, now: float, tau: float) -> float:
    """How much of the state at ``stamp`` survives until ``now``."""
    if stats.stamp is None:
        return 0.0
    return math.exp(-max(now - stats.stamp, 0.0) / tau)


def latency_at(stats: ToolStats, now: float, settings: ObservationSettings) -> float:
    """The peak-EWMA latency estimate at ``now``, drifting back to the prior while idle."""
    if stats.stamp is None:
        return stats.prior_s
    w = _weight(stats, now, settings.decay_time)
    return stats.prior_s + (stats.latency_s - stats.prior_s) * w


def error_rate_at(stats: ToolStats, now: float, settings: ObservationSettings) -> float:
    """The error-rate estimate at ``now``, forgotten toward zero while idle."""
    return stats.error_rate * _weight(stats, now, settings.error_decay_time)


def finished(
    stats: ToolStats,
    duration_s: float,
    outcome: Outcome,
    now: float,
    settings: ObservationSettings,
) -> ToolStats:
    """A call ended; fold what it teaches into the statistics.

    The in-flight count never goes below zero: a finish whose start was never seen (a
    dropped or reordered cast) must not make the tool look like it has negative load.
    """
    in_flight = max(stats.in_flight - 1, 0)
    if outcome == "unmeasured":
        return ToolStats(
            stats.prior_s,
            stats.latency_s,
            stats.error_rate,
            stats.stamp,
            in_flight,
            stats.samples,
            stats.failures,
        )
    rtt = max(duration_s, 0.0)
    current = latency_at(stats, now, settings)
    if outcome in ("error", "censored"):
        rtt = max(rtt, current)
    base = stats.latency_s
    if stats.stamp is None or rtt >= base:
        # Slower than the last estimate: believed at once (the peak).  A failure, clamped
        # to the current estimate above, therefore never lowers it either.
        latency = rtt
    else:
        # Blend from the last estimate, not from its drift toward the prior: the drift is
        # for reads while idle.  Blending the drifted value would weigh the prior as much
        # as the samples for ever, and a tool with a pessimistic prior (a newcomer) would
        # settle halfway between its prior and what it really does.
        w = _weight(stats, now, settings.decay_time)
        latency = base * w + rtt * (1.0 - w)
    if outcome == "censored":
        # A lower bound: it may raise the estimate (done above) but is neither a success
        # nor a failure of the tool, so the error rate and the counters stay as they were.
        return ToolStats(
            stats.prior_s,
            latency,
            stats.error_rate,
            now,
            in_flight,
            stats.samples,
            stats.failures,
        )
    failed = outcome == "error"
    alpha = settings.error_alpha
    errors = error_rate_at(stats, now, settings) * (1.0 - alpha) + (alpha if failed else 0.0)
    return ToolStats(
        stats.prior_s,
        latency,
        errors,
        now,
        in_flight,
        stats.samples + 1,
        stats.failures + int(failed),
    )


def effective_latency(
    stats: ToolStats, now: float, settings: ObservationSettings, reserved: int = 0
) -> float:
    """The latency a ranking should believe: estimate, cold penalty and failure penalty.

    ``reserved`` counts calls the selector has sent this way whose start it has not heard
    of yet (see ``SelectorState.choose``); they are pending as far as the penalty goes.
    """
    if stats.samples == 0 and stats.in_flight + reserved > 0:
        latency = max(latency_at(stats, now, settings), stats.prior_s * settings.cold_penalty)
    else:
        latency = latency_at(stats, now, settings)
    return latency * (1.0 + settings.failure_penalty * error_rate_at(stats, now, settings))


def load_cost(
    stats: ToolStats, now: float, settings: ObservationSettings, reserved: int = 0
) -> float:
    """Finagle's load metric, ``cost * (pending + 1)``, on the effective latency."""
    pending = stats.in_flight + reserved
    return effective_latency(stats, now, settings, reserved) * (pending + 1)
