"""``CacheActor``: the cache store plus the single-flight table, owned by one task.

A :class:`Lookup` is answered with a :class:`Found` (the stored form of the value), a
:class:`Lead` (run the tool, then report with the lease it carries), or it is deferred
while the key's leader runs.  The leader reports with a cast: :class:`Fill` (success),
:class:`Fail` (followers share the failure, nothing is cached), :class:`Unshare` (the
result cannot be stored: followers get :class:`RunYourself`) or :class:`Release` (the
leader was cancelled: a waiting follower gets the lead).  Who leads, who waits and who
gets what is decided by :class:`~runtime.cache.singleflight.SingleFlight`; this actor
maps its decisions onto reply slots and keeps the store.

Invariants: a value computed by a run that started before an invalidation is neither
stored nor given to a caller that looked up after it; a report whose lease is not its
key's current lead changes nothing (leases survive restarts); a restart begins with an
empty store and table.  The mailbox is unbounded: Fill, Fail and Release must never be
dropped, and queued messages never outnumber concurrent callers.
"""

from __future__ import annotations

import math
from typing import Any, Final

import anyio
import attrs

from runtime._loop import Clock, loop_clock
from runtime.actor import DEFER, Actor, ReplySlot
from runtime.cache.keys import CacheKey
from runtime.cache.singleflight import FOLLOW, FOLLOW_LATE, Handoff, SingleFlight
from runtime.cache.store import MISS, CacheStats, CacheStore, Policy
from runtime.cache.values import StoredValue
from runtime.tools import ToolResult

__all__ = ["CacheActor", "CacheSnapshot", "ReadView"]


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
class Found:
    stored: StoredValue


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


_RUN_YOURSELF: Final = RunYourself()


def _gave_up(slot: ReplySlot) -> bool:
    return slot.abandoned


class CacheActor(Actor[Any]):
    """Owns a :class:`CacheStore` and the single-flight table; see the module docstring."""

    def __init__(self, max_entries: int, max_bytes: int | None, policy: Policy = "tinylfu") -> None:
        super().__init__("cache", mailbox_size=math.inf)
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._policy: Policy = policy
        self._store: CacheStore[StoredValue] = CacheStore(max_entries, max_bytes, policy=policy)
        self._flights: SingleFlight[bytes, ReplySlot] = SingleFlight(_gave_up)
        self._now: Clock = anyio.current_time
        self.read_view: Final = ReadView(self)
        """The one read of this actor's state made in callers' tasks (see ReadView)."""

    def on_start(self) -> None:
        self._now = loop_clock()  # bound once in the loop the actor runs in
        # A restart begins empty: after a crash nothing in the old state is trusted.
        self._store = CacheStore(self._max_entries, self._max_bytes, policy=self._policy)
        self._flights.restart()  # leases keep counting: a stale leader matches no flight

    def handle_call(self, message: Any, slot: ReplySlot) -> Any:
        if type(message) is Lookup:
            return self._lookup(message.key, slot)
        if type(message) is Peek:
            return self._store.peek(message.key, self._now())
        if type(message) is Invalidate:
            return self._invalidate(message)
        if type(message) is GetStats:
            return CacheSnapshot(self._store.stats(), len(self._flights), self._flights.waiting())
        raise TypeError(f"cache actor got an unknown call {message!r}")

    def handle_cast(self, message: Any) -> None:
        kind = type(message)
        if kind is Fill:
            self._fill(message)
        elif kind is Fail:
            self._finish(message, SharedFailure(message.result))
        elif kind is Release:
            handoff = self._flights.release(message.key.digest, message.lease)
            self._deliver(message.key, handoff, None)
        elif kind is Unshare:
            self._finish(message, _RUN_YOURSELF)
        elif kind is RecordBypass:
            self._store.record_bypass(message.tool_type, message.operation)
        else:
            raise TypeError(f"cache actor got an unknown cast {message!r}")

    def _lookup(self, key: CacheKey, slot: ReplySlot) -> Any:
        value = self._store.get(key, self._now())
        if value is not MISS:
            return Found(value)
        decision = self._flights.lookup(key.digest, slot)
        if decision is FOLLOW:
            self._store.record_coalesced(key.tool_type, key.operation)
            return DEFER
        if decision is FOLLOW_LATE:
            return DEFER  # counted when it follows or gives up
        return decision

    def _fill(self, message: Fill) -> None:
        handoff = self._flights.finish(message.key.digest, message.lease)
        if handoff is None:
            return  # a stale leader (e.g. from before a restart): not this flight's
        if handoff.current and message.ttl > 0:
            stored = message.stored
            self._store.put(message.key, stored, size=len(stored), ttl=message.ttl, now=self._now())
        self._deliver(message.key, handoff, Shared(message.stored))

    def _finish(self, message: Fail | Unshare, answer: Any) -> None:
        self._deliver(message.key, self._flights.finish(message.key.digest, message.lease), answer)

    def _deliver(self, key: CacheKey, handoff: Handoff[ReplySlot] | None, answer: Any) -> None:
        """Map the table's decision onto reply slots; None means a stale report."""
        if handoff is None:
            return
        for slot in handoff.answered:
            self.reply(slot, answer)
        for slot in handoff.dropped:
            self.reply(slot, None)  # nobody reads it; keeps the deferred set clean
        if handoff.lead is not None:
            self.reply(*handoff.lead)
        if handoff.coalesced:
            self._store.record_coalesced(key.tool_type, key.operation, handoff.coalesced)

    def _invalidate(self, message: Invalidate) -> int:
        self._flights.invalidate()
        now = self._now()
        if message.key is not None:
            return int(self._store.invalidate(message.key, now))
        if message.tool_type is not None:
            return self._store.invalidate_tool(message.tool_type, now, message.operation)
        if message.tenant is not None:
            return self._store.invalidate_tenant(message.tenant, now)
        return self._store.clear(now)


class ReadView:
    """The one way a caller reads the cache actor's state without a mailbox round trip.

    A hit needs no coordination, and the round trip would cost as much again as the rest
    of a hit.  Invariants (pinned by tests/test_cache_read_view.py):

    - Synchronous, never awaits: on the single-threaded event loop it runs atomically
      between the actor's own steps, exactly as a message handler would.
    - It answers only from live entries.  Every miss, fill, invalidation and anything to
      do with flights goes through the mailbox, in order.
    - :meth:`hit` does what a ``Lookup`` hit does -- refresh the entry's recency and
      count the hit -- and nothing else; :meth:`contains` touches nothing.
    - A stopped or crashed actor's state is not trusted: the view answers "ask the
      mailbox" (None / False).
    """

    __slots__ = ("_actor",)

    def __init__(self, actor: CacheActor) -> None:
        self._actor = actor

    def hit(self, digest: bytes) -> StoredValue | None:
        """The stored value of a live entry for ``digest``, or None: ask the mailbox."""
        actor = self._actor
        if not actor.running:
            return None
        value = actor._store.get_live(digest, actor._now())
        return None if value is MISS else value

    def contains(self, key: CacheKey) -> bool:
        """Whether a live entry exists for ``key`` (recency and statistics untouched)."""
        actor = self._actor
        return actor.running and actor._store.peek(key, actor._now())
