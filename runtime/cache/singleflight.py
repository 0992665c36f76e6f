"""The single-flight table: who runs a key's tool, who waits, and who is answered with what.

A pure state machine (no I/O, no event loop, no clock): the cache actor feeds it lookups
and its leaders' reports and maps each decision onto reply slots.  Waiters are opaque
tokens ``W``; the table only asks ``gave_up(waiter)``.

* :meth:`SingleFlight.lookup` with no flight for the key opens one: the caller **leads**
  (:class:`Lead`, with a fresh lease).  Otherwise it **follows** (:data:`FOLLOW`), or, if
  an invalidation overtook the flight's leader, it follows **late** (:data:`FOLLOW_LATE`):
  it must not be given that leader's value.
* :meth:`SingleFlight.finish` (the leader reports a value, a failure, or "cannot share")
  answers every follower with the leader's outcome, then the first late follower still
  waiting leads a new run that the other late followers follow; else the flight ends.
* :meth:`SingleFlight.release` (the leader was cancelled) hands the lead to the first
  follower still waiting (late followers join first: whoever takes over runs after the
  invalidation); with nobody waiting the flight ends.  No waiter that gave up ever leads.
* A lease is never handed out twice in the table's life (:meth:`restart` does not reset
  it); a report whose lease is not its key's current leader's changes nothing.
* ``coalesced`` in a decision counts the lookups that just became shared rather than run:
  a follower when it joins, a late follower when it follows or gives up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable
from typing import Final, Generic, TypeVar

import attrs

__all__ = ["FOLLOW", "FOLLOW_LATE", "Follow", "Handoff", "Lead", "SingleFlight"]

K = TypeVar("K", bound=Hashable)
W = TypeVar("W")


@attrs.frozen(slots=True)
class Lead:
    """Run the tool: ``epoch`` is the invalidation epoch the run starts in, ``lease`` the
    token the run's report must carry."""

    epoch: int
    lease: int


@attrs.frozen(slots=True)
class Follow:
    """Wait for the flight's leader; ``late`` waiters joined after an invalidation."""

    late: bool


FOLLOW: Final = Follow(late=False)
FOLLOW_LATE: Final = Follow(late=True)


@attrs.frozen(slots=True)
class Handoff(Generic[W]):
    """What a leader's report decided, for the shell to deliver.

    ``answered`` get the leader's outcome; ``lead`` (if any) is a waiter that now leads a
    new run; ``dropped`` gave up before they could lead and get nothing meaningful;
    ``current`` is whether the leader's run started after the last invalidation (only then
    may its value be stored); ``coalesced`` as in the module docstring.
    """

    answered: tuple[W, ...]
    lead: tuple[W, Lead] | None
    dropped: tuple[W, ...]
    current: bool
    coalesced: int


class _Flight(Generic[W]):
    __slots__ = ("epoch", "followers", "late", "lease")

    def __init__(self, epoch: int, lease: int) -> None:
        self.epoch = epoch  # the epoch its current leader was given
        self.lease = lease
        self.followers: deque[W] = deque()
        self.late: deque[W] = deque()  # joined after an invalidation overtook the leader


class SingleFlight(Generic[K, W]):
    """One flight per key; see the module docstring for the rules."""

    __slots__ = ("_epoch", "_flights", "_gave_up", "_leases")

    def __init__(self, gave_up: Callable[[W], bool]) -> None:
        self._gave_up = gave_up
        self._flights: dict[K, _Flight[W]] = {}
        self._epoch = 0
        self._leases = 0

    # -- reading --------------------------------------------------------------------

    @property
    def epoch(self) -> int:
        """Bumped by every invalidation and restart."""
        return self._epoch

    @property
    def leases_granted(self) -> int:
        """The last lease handed out (leases count from 1; 0 means none yet)."""
        return self._leases

    def __len__(self) -> int:
        return len(self._flights)

    def __contains__(self, key: object) -> bool:
        return key in self._flights

    def holds(self, key: K, lease: int) -> bool:
        """Whether ``lease`` is the current lead of ``key``'s flight."""
        flight = self._flights.get(key)
        return flight is not None and flight.lease == lease

    def waiting(self) -> int:
        """Waiters (followers and late followers) across all flights."""
        return sum(len(f.followers) + len(f.late) for f in self._flights.values())

    # -- events ---------------------------------------------------------------------

    def restart(self) -> None:
        """Forget every flight (the shell fails their waiters); leases keep counting."""
        self._flights = {}
        self._epoch += 1

    def invalidate(self) -> None:
        """A value may have changed: running leaders' values must not reach later callers."""
        self._epoch += 1

    def lookup(self, key: K, waiter: W) -> Lead | Follow:
        """A miss for ``key``: lead a new flight, or wait on the running one."""
        flight = self._flights.get(key)
        if flight is None:
            self._leases += 1
            self._flights[key] = _Flight(self._epoch, self._leases)
            return Lead(self._epoch, self._leases)
        if flight.epoch != self._epoch:
            flight.late.append(waiter)
            return FOLLOW_LATE
        flight.followers.append(waiter)
        return FOLLOW

    def finish(self, key: K, lease: int) -> Handoff[W] | None:
        """The leader holding ``lease`` has an outcome for its followers; None if stale."""
        flight = self._flights.get(key)
        if flight is None or flight.lease != lease:
            return None
        answered = tuple(flight.followers)
        flight.followers.clear()
        current = flight.epoch == self._epoch
        dropped: list[W] = []
        coalesced = 0
        late = flight.late
        while late:
            waiter = late.popleft()
            if not self._gave_up(waiter):
                # A new run; its lookup stays a plain miss, the others follow it.
                lead = self._lead(flight)
                flight.followers, flight.late = late, deque()
                coalesced += len(late)
                return Handoff(answered, (waiter, lead), tuple(dropped), current, coalesced)
            dropped.append(waiter)
            coalesced += 1  # waited, then gave up
        del self._flights[key]
        return Handoff(answered, None, tuple(dropped), current, coalesced)

    def release(self, key: K, lease: int) -> Handoff[W] | None:
        """The leader holding ``lease`` was cancelled: pass the lead on; None if stale."""
        flight = self._flights.get(key)
        if flight is None or flight.lease != lease:
            return None
        current = flight.epoch == self._epoch
        coalesced = len(flight.late)
        if flight.late:
            flight.followers.extend(flight.late)
            flight.late.clear()
        dropped: list[W] = []
        followers = flight.followers
        while followers:
            waiter = followers.popleft()
            if not self._gave_up(waiter):
                return Handoff((), (waiter, self._lead(flight)), tuple(dropped), current, coalesced)
            dropped.append(waiter)
        del self._flights[key]
        return Handoff((), None, tuple(dropped), current, coalesced)

    def _lead(self, flight: _Flight[W]) -> Lead:
        self._leases += 1
        flight.lease = self._leases
        flight.epoch = self._epoch
        return Lead(self._epoch, self._leases)
