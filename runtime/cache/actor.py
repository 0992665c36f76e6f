"""``CacheActor``: the store plus a single-flight table, owned by one task.

A lookup gets one of three answers.  A **hit** carries the stored form of the value.  The
first miss for a key makes its caller the **leader**: it runs the tool in its own task and
then casts :class:`Fill` (success), :class:`Fail` (the tool failed: followers share the
failure, nothing is cached), :class:`Unshare` (the result cannot be stored: followers run
the tool themselves) or :class:`Release` (the leader was cancelled).  Later misses for the
same key **follow**: their reply is deferred until the leader reports.

On :class:`Release` the first follower still waiting is promoted to leader, so a
cancelled leader never strands its followers, and no follower is ever cancelled by
another caller's cancellation: followers that gave up are skipped (their reply slot is
``abandoned``).

Invalidation bumps an epoch.  A leader that looked up before an invalidation still hands
its value to its followers (they asked before it), but the value is not stored: it may be
exactly what the invalidation meant to remove.  For the same reason a caller that looks
up *after* the invalidation must not be given that value: it waits as a *late* follower,
and when the flight's leader reports, the first late follower still waiting leads a new
run (counted as a leader, not coalesced) that the other late followers follow.  (If the
leader is cancelled instead, the follower that takes over runs after the invalidation
anyway, so late followers simply join it.)  One flight per key at a time keeps the tool
from running twice at once for one question.

Each lead comes with a *lease*, a number never handed out twice in the actor's life (a
restart does not reset it), and the leader's Fill, Fail, Release or Unshare acts only on
the flight whose current leader holds that lease.  A flight is found by its key, and a
leader that asked before a restart -- whose flight died with the old state -- would
otherwise answer, or end, a newer flight for the same key: its followers would get a
value from before an invalidation, and a second leader would start while the first runs.

The mailbox is **unbounded**, unlike the other actors'.  Fill, Fail and Release are casts
that must never be dropped -- a dropped Fill would strand the followers -- and they are
sent from cancellation handlers where nothing may block.  Memory stays bounded anyway:
every call blocks its caller until the reply, so queued calls never outnumber concurrent
callers, and each cast follows a call its sender made.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import anyio
import attrs

from runtime._loop import Clock, loop_clock
from runtime.actor import DEFER, Actor, ReplySlot
from runtime.cache.keys import CacheKey
from runtime.cache.store import MISS, CacheStats, CacheStore, Policy
from runtime.cache.values import StoredValue
from runtime.tools import ToolResult

__all__ = [
    "CacheActor",
    "CacheSnapshot",
    "Fail",
    "Fill",
    "Hit",
    "Lead",
    "Lookup",
    "Release",
    "RunYourself",
    "Shared",
    "SharedFailure",
    "Unshare",
]


# -- messages -------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Lookup:
    key: CacheKey


@attrs.frozen(slots=True)
class Peek:
    key: CacheKey


@attrs.frozen(slots=True)
class Fill:
    key: CacheKey
    stored: StoredValue
    ttl: float
    epoch: int
    lease: int


@attrs.frozen(slots=True)
class Fail:
    key: CacheKey
    result: ToolResult
    lease: int


@attrs.frozen(slots=True)
class Release:
    key: CacheKey
    lease: int


@attrs.frozen(slots=True)
class Unshare:
    key: CacheKey
    lease: int


@attrs.frozen(slots=True)
class Invalidate:
    key: CacheKey | None = None
    tool_type: str | None = None
    operation: str | None = None
    tenant: str | None = None


@attrs.frozen(slots=True)
class RecordBypass:
    tool_type: str
    operation: str


@attrs.frozen(slots=True)
class GetStats:
    pass


# -- replies ----------------------------------------------------------------------------


@attrs.frozen(slots=True)
class Hit:
    stored: StoredValue


@attrs.frozen(slots=True)
class Lead:
    epoch: int
    lease: int


@attrs.frozen(slots=True)
class Shared:
    stored: StoredValue


@attrs.frozen(slots=True)
class SharedFailure:
    result: ToolResult


@attrs.frozen(slots=True)
class RunYourself:
    """The leader's result could not be shared: run the tool without the cache."""


@attrs.frozen(slots=True)
class CacheSnapshot:
    """The store's statistics plus the single-flight table's occupancy."""

    store: CacheStats
    in_flight: int
    waiting_followers: int


class _Flight:
    __slots__ = ("epoch", "followers", "late", "lease")

    def __init__(self, epoch: int) -> None:
        self.lease = 0  # set when a lead is granted (leases count from 1)
        self.epoch = epoch  # the epoch its current leader was given
        self.followers: deque[ReplySlot] = deque()
        # Joined after an invalidation overtook the leader: must not get its value.
        self.late: deque[ReplySlot] = deque()


class CacheActor(Actor[Any]):
    """Owns a :class:`CacheStore` and the single-flight table; see the module docstring."""

    def __init__(self, max_entries: int, max_bytes: int | None, policy: Policy = "tinylfu") -> None:
        super().__init__("cache", mailbox_size=math.inf)
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._policy: Policy = policy
        self._store: CacheStore[StoredValue] = CacheStore(max_entries, max_bytes, policy=policy)
        self._flights: dict[bytes, _Flight] = {}
        self._epoch = 0
        self._leases = 0  # never reset: a lease from before a restart matches no flight
        self._now: Clock = anyio.current_time

    def on_start(self) -> None:
        self._now = loop_clock()  # bound once in the loop the actor runs in
        # A restart begins empty: after a crash nothing in the old state is trusted.
        self._store = CacheStore(self._max_entries, self._max_bytes, policy=self._policy)
        self._flights = {}
        self._epoch += 1

    def try_hit(self, digest: bytes) -> StoredValue | None:
        """Serve a hit for a key's ``digest`` synchronously in the caller's task; None
        means "ask the mailbox".

        A hit needs no coordination, and the mailbox hop is a full request/reply: as
        much again as everything else a hit costs.  This is safe without a lock because
        it never awaits -- the event loop is single-threaded, so it runs atomically
        between the actor's own steps, exactly as a message handler would.  It only
        reads and refreshes a live entry; every miss, fill and invalidation still goes
        through the mailbox in order.  A stopped actor's state is not trusted.
        """
        if not self.running:
            return None
        value = self._store.get_live(digest, self._now())
        return None if value is MISS else value

    def has_live(self, key: CacheKey) -> bool:
        """Whether a live entry exists for ``key``, read synchronously like :meth:`try_hit`
        (touching neither recency nor statistics); False when the actor is not running."""
        return self.running and self._store.peek(key, self._now())

    def handle_call(self, message: Any, slot: ReplySlot) -> Any:
        if type(message) is Lookup:
            return self._lookup(message.key, slot)
        if type(message) is Peek:
            return self._store.peek(message.key, self._now())
        if type(message) is Invalidate:
            return self._invalidate(message)
        if type(message) is GetStats:
            return CacheSnapshot(
                self._store.stats(),
                len(self._flights),
                sum(len(f.followers) + len(f.late) for f in self._flights.values()),
            )
        raise TypeError(f"cache actor got an unknown call {message!r}")

    def _lead(self, flight: _Flight) -> Lead:
        self._leases += 1
        flight.lease = self._leases
        return Lead(self._epoch, self._leases)

    def _holds_lease(self, message: Any) -> bool:
        flight = self._flights.get(message.key.digest)
        return flight is not None and flight.lease == message.lease

    def handle_cast(self, message: Any) -> None:
        kind = type(message)
        if kind in (Fill, Fail, Release, Unshare) and not self._holds_lease(message):
            return  # a stale leader (e.g. from before a restart): not this flight's
        if kind is Fill:
            self._fill(message)
        elif kind is Fail:
            self._resolve(message.key, SharedFailure(message.result))
        elif kind is Release:
            self._release(message.key)
        elif kind is Unshare:
            self._resolve(message.key, RunYourself())
        elif kind is RecordBypass:
            self._store.record_bypass(message.tool_type, message.operation)
        else:
            raise TypeError(f"cache actor got an unknown cast {message!r}")

    def _lookup(self, key: CacheKey, slot: ReplySlot) -> Any:
        value = self._store.get(key, self._now())
        if value is not MISS:
            return Hit(value)
        flight = self._flights.get(key.digest)
        if flight is None:
            flight = self._flights[key.digest] = _Flight(self._epoch)
            return self._lead(flight)
        if flight.epoch != self._epoch:
            flight.late.append(slot)  # counted when it follows or gives up (_next_run)
            return DEFER
        self._store.record_coalesced(key.tool_type, key.operation)
        flight.followers.append(slot)
        return DEFER

    def _fill(self, message: Fill) -> None:
        if message.epoch == self._epoch and message.ttl > 0:
            now = self._now()
            self._store.put(
                message.key, message.stored, size=len(message.stored), ttl=message.ttl, now=now
            )
        self._resolve(message.key, Shared(message.stored))

    def _resolve(self, key: CacheKey, reply: Any) -> None:
        flight = self._flights.get(key.digest)
        if flight is None:
            return
        for follower in flight.followers:
            self.reply(follower, reply)
        flight.followers.clear()
        self._next_run(key, flight)

    def _next_run(self, key: CacheKey, flight: _Flight) -> None:
        """After a flight's run: its late followers' own run, or the flight's end."""
        late = flight.late
        while late:
            follower = late.popleft()
            if not follower.abandoned:
                # A new leader (its lookup stays a plain miss); the others follow it.
                self.reply(follower, self._lead(flight))
                flight.epoch = self._epoch
                flight.followers, flight.late = late, deque()
                self._store.record_coalesced(key.tool_type, key.operation, len(late))
                return
            self._store.record_coalesced(key.tool_type, key.operation)  # waited, gave up
            self.reply(follower, None)  # nobody reads it; keeps the deferred set clean
        del self._flights[key.digest]

    def _release(self, key: CacheKey) -> None:
        flight = self._flights.get(key.digest)
        if flight is None:
            return
        if flight.late:
            # Whoever takes over runs after the invalidation: late followers may join it.
            self._store.record_coalesced(key.tool_type, key.operation, len(flight.late))
            flight.followers.extend(flight.late)
            flight.late.clear()
        flight.epoch = self._epoch
        while flight.followers:
            follower = flight.followers.popleft()
            if not follower.abandoned:
                self.reply(follower, self._lead(flight))
                return
            self.reply(follower, None)  # nobody reads it; keeps the deferred set clean
        del self._flights[key.digest]

    def _invalidate(self, message: Invalidate) -> int:
        self._epoch += 1
        now = self._now()
        if message.key is not None:
            return int(self._store.invalidate(message.key, now))
        if message.tool_type is not None:
            return self._store.invalidate_tool(message.tool_type, now, message.operation)
        if message.tenant is not None:
            return self._store.invalidate_tenant(message.tenant, now)
        return self._store.clear(now)
