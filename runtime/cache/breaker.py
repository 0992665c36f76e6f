"""The shared tier's circuit breaker, a pure value: every transition a function of ``now``.

Closed until ``failure_threshold`` consecutive failures; then open until ``retry_at``,
when one probe is admitted (half-open) with ``probe_timeout`` to report; a failed probe
reopens it with the backoff doubled up to ``backoff_max``, a success closes it.
"""

from __future__ import annotations

from typing import Literal

import attrs

__all__ = ["Breaker", "CircuitState"]

CircuitState = Literal["closed", "open", "half_open"]


@attrs.frozen(slots=True)
class Breaker:
    """Circuit-breaker state; every transition is a pure function of the state and ``now``.

    closed --(threshold consecutive failures)--> open --(backoff elapsed: one probe
    admitted)--> half_open --(probe succeeds)--> closed, or --(probe fails)--> open with
    the backoff doubled (capped).  A probe that never reports (its caller was cancelled) is
    replaced after ``probe_timeout``, so the breaker cannot stick in half_open.
    """

    threshold: int
    backoff_initial: float
    backoff_max: float
    probe_timeout: float
    state: CircuitState = "closed"
    failures: int = 0
    backoff: float = attrs.field(default=attrs.Factory(lambda s: s.backoff_initial, True))
    retry_at: float = 0.0
    probe_deadline: float = 0.0

    def admit(self, now: float) -> tuple[bool, Breaker]:
        """May a call go to Redis now?  (A call admitted from open/half_open is the probe.)"""
        if self.state == "closed":
            return True, self
        if self.state == "open" and now >= self.retry_at:
            return True, attrs.evolve(
                self, state="half_open", probe_deadline=now + self.probe_timeout
            )
        if self.state == "half_open" and now >= self.probe_deadline:
            return True, attrs.evolve(self, probe_deadline=now + self.probe_timeout)
        return False, self

    def succeeded(self) -> Breaker:
        if self.state == "closed" and self.failures == 0:
            return self
        return attrs.evolve(self, state="closed", failures=0, backoff=self.backoff_initial)

    def failed(self, now: float) -> Breaker:
        if self.state == "closed":
            failures = self.failures + 1
            if failures < self.threshold:
                return attrs.evolve(self, failures=failures)
            return attrs.evolve(self, state="open", failures=failures, retry_at=now + self.backoff)
        if self.state == "half_open":
            backoff = min(self.backoff * 2, self.backoff_max)
            return attrs.evolve(self, state="open", backoff=backoff, retry_at=now + backoff)
        return self  # a late failure of a call admitted before the circuit opened
