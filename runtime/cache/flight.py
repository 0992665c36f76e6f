"""Cross-replica single-flight: how long a waiter keeps waiting on another replica's lease.

Pure (no I/O, ``now`` passed in); :mod:`runtime.cache.lease` is the Redis shell around it.
A replica whose L1 leader misses L2 *claims* the key in one atomic step: the value if it
is there, else the lease (``SET NX PX``) if nobody holds it, else the holder's lease token
and what is left of its TTL (:class:`Held`).  A waiter feeds each :class:`Held` to
:meth:`Waiter.observe`, which answers how long to sleep before claiming again, or that the
lease is stuck and the caller must run the tool itself.

Invariants (tested with hypothesis in tests/test_cache_flight_core.py):

- the delay is in ``(0, poll_max]`` and doubles from ``poll_initial`` while one lease is
  held, so a finished flight is noticed within one ``poll_max``;
- a lease seen with ``ttl_left`` is claimed again just after it expires, and never
  waited on past ``seen + ttl_left + poll_max``
  (leases expire by Redis' clock; one that does not -- written without a TTL, or by a
  foreign program -- is given up on then, so nothing waits on a dead lease past its TTL);
- a new holder (another token: the old one died or finished with nothing to share and a
  waiter took over) starts a fresh bound: its own TTL, measured from when it was seen.
"""

from __future__ import annotations

import math
from typing import Final

import attrs

__all__ = ["FlightPolicy", "GiveUp", "Held", "Sleep", "Waiter"]

# Past a lease's expiry by this much, so the next claim finds it gone (PTTL is in ms).
_EXPIRY_SLACK: Final = 0.001


@attrs.frozen(slots=True)
class FlightPolicy:
    """``lease_ttl``: life of a lease (s); ``poll_initial`` / ``poll_max``: claim again after."""

    lease_ttl: float
    poll_initial: float
    poll_max: float

    def __attrs_post_init__(self) -> None:
        for name in ("lease_ttl", "poll_initial", "poll_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not (
                isinstance(value, int | float) and math.isfinite(value) and value > 0
            ):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.poll_initial > self.poll_max:
            raise ValueError(
                f"poll_initial ({self.poll_initial:g}) must not exceed poll_max ({self.poll_max:g})"
            )


@attrs.frozen(slots=True)
class Held:
    """What a claim saw: another replica's lease, ``token``, with ``ttl_left`` seconds to live.

    ``ttl_left`` is None when the lease has no expiry (not written by this runtime).
    """

    token: str
    ttl_left: float | None


@attrs.frozen(slots=True)
class Sleep:
    """Claim again after ``delay`` seconds."""

    delay: float


@attrs.frozen(slots=True)
class GiveUp:
    """Stop waiting and run the tool here: the lease outlived its TTL."""

    reason: str


@attrs.frozen(slots=True)
class Waiter:
    """One replica's wait for one key's value; start with :meth:`start`."""

    policy: FlightPolicy
    token: str | None = None
    expires: float = 0.0
    deadline: float = 0.0
    delay: float = 0.0

    @classmethod
    def start(cls, policy: FlightPolicy) -> Waiter:
        return cls(policy)

    def observe(self, held: Held, now: float) -> tuple[Sleep | GiveUp, Waiter]:
        """The next step after a claim found ``held`` at ``now``."""
        policy = self.policy
        waiter = self
        if held.token != self.token:
            ttl_left = policy.lease_ttl if held.ttl_left is None else held.ttl_left
            # A lease never lives longer than we allow ours to, whatever Redis reports.
            ttl_left = min(max(ttl_left, 0.0), policy.lease_ttl)
            waiter = attrs.evolve(
                self,
                token=held.token,
                expires=now + ttl_left,
                deadline=now + ttl_left + policy.poll_max,
                delay=policy.poll_initial,
            )
        if now >= waiter.deadline:
            return GiveUp(f"lease {held.token!r} outlived its TTL"), waiter
        delay = min(waiter.delay, waiter.deadline - now)
        if now < waiter.expires:
            # Claim again the moment a dead holder's lease expires, not a poll later.
            delay = min(delay, waiter.expires - now + _EXPIRY_SLACK)
        return Sleep(delay), attrs.evolve(waiter, delay=min(waiter.delay * 2, policy.poll_max))
