"""The cache's functional core: a W-TinyLFU (or LRU) + per-entry-TTL store with statistics.

Pure and synchronous: no I/O, no clock.  Every method that needs the time takes ``now``,
which must not go backwards.  Values are opaque (see :mod:`runtime.cache.values`); the
store is told each entry's size and never looks inside a value.

- ``policy="tinylfu"`` (the default) admits and evicts as W-TinyLFU
  (:mod:`runtime.cache.tinylfu`); ``policy="lru"`` is plain LRU.  All below holds for both.
- An entry is live while ``now < expires``.  A live entry is evicted (the policy's victim)
  only once no expired entry is left: dead entries never hold capacity.  Every put also
  sweeps a bounded number of expired entries (``sweep_batch``), before it makes room.
- ``max_entries`` and ``max_bytes`` are hard limits; a value larger than ``max_bytes`` is
  never stored (counted ``rejected_oversize``) and drops an older entry for its key.
- Re-putting a key replaces its entry and never evicts another to make room in count.
- Counting is deterministic: an entry removed after its expiry counts as an expiration
  whatever removed it; a live one removed by invalidation or ``clear`` as an
  invalidation; one removed for room as an eviction.
- ``misses`` counts lookups without a live entry; coalesced followers and bypasses are
  reported by the actor, so tool executions for a key are ``misses - coalesced``.
- Statistics are per (tool type, operation); ``stats()`` is an immutable snapshot.

"""

from __future__ import annotations

import enum
import math
import types
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Generic, Literal, TypeVar

import attrs

from runtime.cache.keys import CacheKey
from runtime.cache.tinylfu import TinyLfuRegions

__all__ = [
    "MISS",
    "POLICIES",
    "Absent",
    "CacheCounters",
    "CacheEntry",
    "CacheStats",
    "CacheStore",
    "Policy",
]

Policy = Literal["tinylfu", "lru"]
POLICIES: Final[tuple[Policy, ...]] = ("tinylfu", "lru")

V = TypeVar("V")


class Absent(enum.Enum):
    """The type of :data:`MISS`; a sentinel, so a cached ``None``, ``[]`` or ``{}`` is a hit."""

    MISS = enum.auto()


MISS: Final = Absent.MISS


class _Dead(enum.Enum):
    DEAD = enum.auto()


_DEAD: Final = _Dead.DEAD  # the value of an entry that has left the store


class _Counters:
    """Mutable per-(tool type, operation) counters, owned by the store."""

    __slots__ = (
        "admitted",
        "bypasses",
        "coalesced",
        "evictions",
        "expirations",
        "fills",
        "hits",
        "invalidations",
        "misses",
        "operation",
        "rejected_by_frequency",
        "rejected_oversize",
        "tool_type",
    )

    def __init__(self, tool_type: str, operation: str) -> None:
        self.tool_type = tool_type
        self.operation = operation
        self.hits = self.misses = self.coalesced = self.bypasses = 0  # lookups
        self.fills = self.rejected_oversize = 0  # writes
        self.admitted = self.rejected_by_frequency = 0  # W-TinyLFU admission
        self.evictions = self.expirations = self.invalidations = 0  # removals

    def freeze(self) -> CacheCounters:
        return CacheCounters(
            hits=self.hits,
            misses=self.misses,
            fills=self.fills,
            evictions=self.evictions,
            expirations=self.expirations,
            invalidations=self.invalidations,
            bypasses=self.bypasses,
            coalesced=self.coalesced,
            rejected_oversize=self.rejected_oversize,
            admitted=self.admitted,
            rejected_by_frequency=self.rejected_by_frequency,
        )


class _Entry(Generic[V]):
    """One stored value.  Mutable only so that a removed entry can drop its value."""

    # No `ttl` slot: the TTL queue holding the entry says it (see live_entries), and a
    # put is cheaper, and an entry 8 bytes smaller, without it.
    __slots__ = ("digest", "expires", "group", "size", "tenant", "value")

    def __init__(
        self,
        value: V | _Dead,
        size: int,
        expires: float,
        digest: bytes,
        tenant: str,
        group: _Counters,
    ) -> None:
        self.value = value
        self.size = size
        self.expires = expires
        self.digest = digest
        self.tenant = tenant
        self.group = group


@attrs.frozen(slots=True)
class CacheCounters:
    """Cache statistics for one (tool type, operation), or in total."""

    hits: int = 0
    misses: int = 0
    """Including coalesced followers: every lookup is a hit or a miss."""

    @property
    def lookups(self) -> int:
        return self.hits + self.misses

    @property
    def hit_rate(self) -> float:
        """Hits per lookup; 0.0 before the first lookup."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0

    fills: int = 0
    """Values stored."""
    evictions: int = 0
    expirations: int = 0
    invalidations: int = 0
    """Live entries removed by invalidation or ``clear``."""
    bypasses: int = 0
    coalesced: int = 0
    rejected_oversize: int = 0
    admitted: int = 0
    """W-TinyLFU only: entries that moved from the window to the main region."""
    rejected_by_frequency: int = 0
    """W-TinyLFU only: window entries evicted because main's victim was asked for at least
    as often (they are evictions too)."""

    def __add__(self, other: CacheCounters) -> CacheCounters:
        return CacheCounters(
            *(a + b for a, b in zip(attrs.astuple(self), attrs.astuple(other), strict=True))
        )


@attrs.frozen(slots=True)
class CacheStats:
    """An immutable snapshot of the store's statistics and occupancy."""

    total: CacheCounters
    by_operation: Mapping[tuple[str, str], CacheCounters]
    entries: int
    bytes_used: int
    max_entries: int
    max_bytes: int | None
    policy: Policy = "tinylfu"

    @property
    def hit_rate(self) -> float:
        return self.total.hit_rate


@attrs.frozen(slots=True)
class CacheEntry(Generic[V]):
    """A read-only view of one stored entry (for introspection and tests).

    ``created`` is derived as ``expires - ttl`` (the store keeps one float per entry, not
    two), so it is exact only to float precision.
    """

    key: CacheKey
    value: V
    size: int
    created: float
    expires: float
    ttl: float

    @property
    def tenant(self) -> str:
        return self.key.tenant

    @property
    def tool_type(self) -> str:
        return self.key.tool_type

    @property
    def operation(self) -> str:
        return self.key.operation


class CacheStore(Generic[V]):
    """W-TinyLFU or LRU + per-entry TTL store of stored values ``V``, bounded by count and bytes.

    ``max_entries`` bounds the number of entries, ``max_bytes`` (``None``: unbounded) the sum
    of their sizes.  ``sweep_batch`` is how many expired entries each put reclaims at most
    in passing.  ``policy`` is ``"tinylfu"`` (default) or ``"lru"``.  See the module
    docstring for the semantics.
    """

    __slots__ = (
        "_bytes",
        "_count",
        "_dead_refs",
        "_earliest",
        "_groups",
        "_last_now",
        "_lfu",
        "_queues",
        "_recency",
        "_sweep_batch",
        "max_bytes",
        "max_entries",
        "policy",
    )

    def __init__(
        self,
        max_entries: int,
        max_bytes: int | None = None,
        *,
        sweep_batch: int = 4,
        policy: Policy = "tinylfu",
    ) -> None:
        if not isinstance(max_entries, int) or isinstance(max_entries, bool) or max_entries < 1:
            raise ValueError(f"max_entries must be a positive int, got {max_entries!r}")
        if max_bytes is not None and (
            not isinstance(max_bytes, int) or isinstance(max_bytes, bool) or max_bytes < 1
        ):
            raise ValueError(f"max_bytes must be a positive int or None, got {max_bytes!r}")
        if not isinstance(sweep_batch, int) or sweep_batch < 0:
            raise ValueError(f"sweep_batch must be a non-negative int, got {sweep_batch!r}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        self.policy: Final[Policy] = policy
        # The map of the entries, in policy order: W-TinyLFU's regions, or LRU's recency.
        self._lfu: TinyLfuRegions[_Entry[V]] | None = (
            TinyLfuRegions(max_entries) if policy == "tinylfu" else None
        )
        self.max_entries: Final = max_entries
        self.max_bytes: Final = max_bytes
        self._sweep_batch = sweep_batch
        self._recency: OrderedDict[bytes, _Entry[V]] = OrderedDict()  # LRU only
        self._count = 0  # stored entries (W-TinyLFU's are spread over three regions)
        self._queues: dict[float, deque[_Entry[V]]] = {}
        self._groups: dict[tuple[str, str], _Counters] = {}
        self._bytes = 0
        self._earliest = math.inf  # lower bound on every stored entry's `expires`
        self._dead_refs = 0  # removed entries still referenced by a queue
        self._last_now = -math.inf

    # -- reading -------------------------------------------------------------------------

    def get(self, key: CacheKey, now: float) -> V | Absent:
        """The stored value under ``key`` if live (refreshing its recency), else ``MISS``.

        Counts a hit or a miss; an expired entry found here is reclaimed.
        """
        digest = key.digest
        lfu = self._lfu
        if lfu is None:
            entry = self._recency.get(digest)
        else:
            entry = lfu.get(digest)
            lfu.sketch.increment(digest)
        if entry is None:
            self._group(key.tool_type, key.operation).misses += 1
            return MISS
        if now >= entry.expires:
            self._drop(entry)
            entry.group.expirations += 1
            entry.group.misses += 1
            return MISS
        if lfu is None:
            self._recency.move_to_end(digest)
        else:
            lfu.touch(digest)
        entry.group.hits += 1
        return entry.value  # type: ignore[return-value]  # a stored entry is never _DEAD

    def get_live(self, digest: bytes, now: float) -> V | Absent:
        """Like :meth:`get` for a live entry; on anything else returns ``MISS`` counting
        and changing nothing, so the caller can fall back to :meth:`get` (which counts the
        miss and reclaims an expired entry) without counting twice.

        Takes the key's ``digest`` alone (it identifies the entry): the hit path builds
        no :class:`CacheKey` until it misses."""
        lfu = self._lfu
        if lfu is None:
            entry = self._recency.get(digest)
            if entry is None or now >= entry.expires:
                return MISS
            self._recency.move_to_end(digest)
        else:
            # The hot path, so the lookups are inline, in the order of a big working set's
            # hits: protected holds most of it, probation the rest (a small working set
            # lives in the window, two lookups further: ~0.1 us of a runtime hit's ~10).
            region = lfu.protected
            entry = region.get(digest)
            if entry is None:
                region = lfu.probation
                entry = region.get(digest)
                if entry is None:
                    region = lfu.window
                    entry = region.get(digest)
            if entry is None or now >= entry.expires:
                return MISS
            if region is lfu.probation:
                lfu.promote(digest, entry)
            else:
                region.move_to_end(digest)
            lfu.sketch.increment(digest)
        entry.group.hits += 1
        return entry.value  # type: ignore[return-value]  # a stored entry is never _DEAD

    def peek(self, key: CacheKey, now: float) -> bool:
        """Whether a live entry exists for ``key``; touches neither recency nor statistics."""
        entry = self._find(key.digest)
        return entry is not None and now < entry.expires

    def __len__(self) -> int:
        """Stored entries, including expired ones not reclaimed yet (they hold no capacity
        a put needs: a put reclaims them before evicting anything)."""
        return self._count

    @property
    def bytes_used(self) -> int:
        """Sum of the sizes of the stored entries (same caveat as ``len``)."""
        return self._bytes

    def live_entries(self, now: float) -> list[CacheEntry[V]]:
        """The live entries in policy order.  O(n); for introspection and tests.

        LRU: least recently used first.  W-TinyLFU: the window, then probation, then
        protected, each least recently used first."""
        ttl_of = {id(entry): ttl for ttl, queue in self._queues.items() for entry in queue}
        return [
            CacheEntry(
                key=CacheKey(entry.tenant, entry.group.tool_type, entry.group.operation, digest),
                value=entry.value,  # type: ignore[arg-type]  # stored entries are never _DEAD
                size=entry.size,
                created=entry.expires - ttl,
                expires=entry.expires,
                ttl=ttl,
            )
            for entry in self._ordered()
            if now < entry.expires
            for digest, ttl in ((entry.digest, ttl_of[id(entry)]),)
        ]

    def stats(self) -> CacheStats:
        """An immutable snapshot of the statistics, per (tool type, operation) and in total."""
        by_operation = {group_key: group.freeze() for group_key, group in self._groups.items()}
        total = sum(by_operation.values(), CacheCounters())
        return CacheStats(
            total=total,
            by_operation=types.MappingProxyType(by_operation),
            entries=self._count,
            bytes_used=self._bytes,
            max_entries=self.max_entries,
            max_bytes=self.max_bytes,
            policy=self.policy,
        )

    # -- writing -------------------------------------------------------------------------

    def put(self, key: CacheKey, value: V, *, size: int, ttl: float, now: float) -> bool:
        """Store ``value`` (of ``size`` bytes) under ``key`` for ``ttl`` seconds from ``now``.

        Returns whether it was stored: a value larger than ``max_bytes`` is not (counted
        ``rejected_oversize``).  Either way an older entry under ``key`` is gone.  ``ttl``
        must be positive (``math.inf``: until evicted); "TTL 0 = never cache" is the
        caller's decision, not a store operation.
        """
        if not ttl > 0:  # also refuses NaN
            raise ValueError(f"ttl must be positive, got {ttl!r}")
        if size < 0:
            raise ValueError(f"size must be >= 0, got {size!r}")
        # Clamp: expiry queues rely on expiry times that never decrease within one TTL.
        if now < self._last_now:
            now = self._last_now
        else:
            self._last_now = now
        digest = key.digest
        lfu = self._lfu
        old = self._recency.get(digest) if lfu is None else lfu.get(digest)
        region = None
        if old is not None:
            if lfu is not None:
                region = lfu.region_of(digest)  # the successor takes its place
            self._drop(old)
            if now >= old.expires:
                old.group.expirations += 1
        group = self._groups.get((key.tool_type, key.operation)) or self._group(
            key.tool_type, key.operation
        )
        max_bytes = self.max_bytes
        if max_bytes is not None and size > max_bytes:
            group.rejected_oversize += 1
            return False
        # Sweep in passing before making room: what the sweep frees, no eviction takes.
        if now >= self._earliest and self._sweep_batch:
            self._reclaim_expired(now, self._sweep_batch)
        while self._count >= self.max_entries or (
            max_bytes is not None and self._bytes + size > max_bytes
        ):
            self._free_one(now)
        expires = now + ttl
        entry = _Entry(value, size, expires, digest, key.tenant, group)
        self._count += 1
        if lfu is None:
            self._recency[digest] = entry
        else:
            lfu.insert(entry, region)
            if self._count > lfu.sketch.capacity:
                lfu.grow_sketch(self._count)
        self._bytes += size
        queue = self._queues.get(ttl)
        if queue is None:
            queue = self._queues[ttl] = deque()
        queue.append(entry)
        if expires < self._earliest:
            self._earliest = expires
        group.fills += 1
        if self._dead_refs > 1024 and self._dead_refs > self._count:
            self._compact_queues()
        return True

    def record_bypass(self, tool_type: str, operation: str, count: int = 1) -> None:
        """Count calls that bypassed the cache (uncacheable params or result)."""
        self._group(tool_type, operation).bypasses += count

    def record_coalesced(self, tool_type: str, operation: str, count: int = 1) -> None:
        """Count callers served by another caller's execution (single-flight followers)."""
        self._group(tool_type, operation).coalesced += count

    def sweep(self, now: float, limit: int | None = None) -> int:
        """Reclaim up to ``limit`` (default: all) expired entries; returns how many."""
        if now < self._earliest:
            return 0
        return self._reclaim_expired(now, limit)

    # -- invalidation --------------------------------------------------------------------

    def invalidate(self, key: CacheKey, now: float) -> bool:
        """Remove the entry under ``key``; returns whether a live one was removed."""
        entry = self._find(key.digest)
        if entry is None:
            return False
        return self._remove_counted(entry, now)

    def invalidate_tool(self, tool_type: str, now: float, operation: str | None = None) -> int:
        """Remove every entry of ``tool_type`` (only ``operation``'s, if given).

        Returns how many live entries were removed.  O(entries).
        """
        groups = {
            group
            for (tool, op), group in self._groups.items()
            if tool == tool_type and (operation is None or op == operation)
        }
        if not groups:
            return 0
        return self._remove_where(lambda entry: entry.group in groups, now)

    def invalidate_tenant(self, tenant: str, now: float) -> int:
        """Remove every entry of ``tenant``; returns how many live ones.  O(entries)."""
        return self._remove_where(lambda entry: entry.tenant == tenant, now)

    def clear(self, now: float) -> int:
        """Remove every entry (statistics are kept); returns how many live ones."""
        removed = self._remove_where(lambda entry: True, now)
        self._queues.clear()
        self._dead_refs = 0
        self._earliest = math.inf
        return removed

    # -- internals -----------------------------------------------------------------------

    def _group(self, tool_type: str, operation: str) -> _Counters:
        group_key = (tool_type, operation)
        group = self._groups.get(group_key)
        if group is None:
            group = self._groups[group_key] = _Counters(tool_type, operation)
        return group

    def _find(self, digest: bytes) -> _Entry[V] | None:
        lfu = self._lfu
        return self._recency.get(digest) if lfu is None else lfu.get(digest)

    def _ordered(self) -> Iterable[_Entry[V]]:
        """Every stored entry in policy order (see live_entries)."""
        return self._recency.values() if self._lfu is None else self._lfu

    def _drop(self, entry: _Entry[V]) -> None:
        """Remove ``entry`` from the map; its queue reference becomes dead."""
        if self._lfu is None:
            del self._recency[entry.digest]
        else:
            self._lfu.remove(entry.digest)
        self._count -= 1
        self._bytes -= entry.size
        entry.value = _DEAD  # release the payload now, not when the queue reaches it
        self._dead_refs += 1

    def _remove_counted(self, entry: _Entry[V], now: float) -> bool:
        self._drop(entry)
        if now >= entry.expires:
            entry.group.expirations += 1
            return False
        entry.group.invalidations += 1
        return True

    def _remove_where(self, doomed: Callable[[_Entry[V]], bool], now: float) -> int:
        victims = [entry for entry in self._ordered() if doomed(entry)]
        return sum(self._remove_counted(entry, now) for entry in victims)

    def _free_one(self, now: float) -> None:
        """Remove one entry to make room: an expired one if any, else the policy's victim."""
        if now >= self._earliest and self._reclaim_expired(now, 1):
            return
        lfu = self._lfu
        victim = self._recency.popitem(False)[1] if lfu is None else lfu.evict()
        self._count -= 1
        self._bytes -= victim.size
        victim.value = _DEAD
        self._dead_refs += 1
        victim.group.evictions += 1

    def _reclaim_expired(self, now: float, limit: int | None) -> int:
        """Reclaim expired entries, oldest expiry first within each TTL queue.

        Stops after ``limit`` reclaimed entries.  When it runs to completion every queue
        head is live and unexpired, so ``_earliest`` becomes the earliest head expiry.
        """
        reclaimed = 0
        earliest = math.inf
        emptied: list[float] = []
        for ttl, queue in self._queues.items():
            while queue:
                head = queue[0]
                if head.value is _DEAD:
                    queue.popleft()
                    self._dead_refs -= 1
                    continue
                if now < head.expires:
                    break
                if limit is not None and reclaimed >= limit:
                    return reclaimed  # _earliest stays a valid lower bound
                queue.popleft()
                self._drop(head)
                self._dead_refs -= 1  # _drop counted a dead ref we just popped
                head.group.expirations += 1
                reclaimed += 1
            if queue:
                earliest = min(earliest, queue[0].expires)
            else:
                emptied.append(ttl)
        for ttl in emptied:
            del self._queues[ttl]
        self._earliest = earliest
        return reclaimed

    def _compact_queues(self) -> None:
        """Drop dead references from the expiry queues (amortised O(1) per removal)."""
        for ttl, queue in list(self._queues.items()):
            live = deque(entry for entry in queue if entry.value is not _DEAD)
            if live:
                self._queues[ttl] = live
            else:
                del self._queues[ttl]
        self._dead_refs = 0
