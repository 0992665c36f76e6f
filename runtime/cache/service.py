"""The cache as the executor and the application see it: one in-process tier, one shared.

:class:`ResultCacheService` implements the executor's ``ResultCache`` seam: it builds the
key in the caller's task, asks the :class:`CacheActor` (L1) and plays the part the actor
assigns -- read a hit, wait as a follower, or lead: run the tool, then report the outcome.
It also serves ``rt.cache`` (:class:`~runtime.handles.CacheHandle`).

- A call bypasses the cache (counted) when its tool has side effects, its TTL is 0, its
  params cannot be canonicalised, its result cannot be stored, or the actor is down.
- Only the L1 leader asks L2 (a :class:`RedisTier`), before it runs the tool; an L2 hit
  is the L1 fill (kept no longer than L2 has left), counted as ``l2_hits``.
- A success goes to L1, then inline to L2 within ``op_timeout``; failures and fills an
  invalidation overtook are never written.  Invalidation goes to L2 first, then L1.
- L2 holds JSON (:mod:`runtime.cache.codec`), never pickle; a stored value of the wrong
  shape is a counted ``l2_rejected`` miss.  L2 failure never fails a call.
- Keys are canonical: params normalised by the tool's schema, in every method.
- With :class:`~runtime.cache.lease.SharedFlights` the leader's L2 GET is a *claim*
  (:mod:`runtime.cache.lease`).  The reasoning: docs/architecture.md.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final, NamedTuple

import anyio.lowlevel
import attrs

from runtime.cache.actor import (
    CacheActor,
    CacheSnapshot,
    Fail,
    Fill,
    Found,
    GetStats,
    Invalidate,
    Lookup,
    Peek,
    RecordBypass,
    Release,
    RunYourself,
    Shared,
    SharedFailure,
    Unshare,
)
from runtime.cache.keys import CacheKey, DigestMemo, Uncacheable, make_key, volatile_keys
from runtime.cache.lease import FlightStats, Lease, SharedFlights
from runtime.cache.redis import Hit, RedisTier, RedisTierStats
from runtime.cache.singleflight import Lead
from runtime.cache.values import StoredValue, freeze, thaw
from runtime.calls import CacheOutcome
from runtime.config import CacheConfig
from runtime.errors import ActorUnavailable, InvalidParams
from runtime.tools import ToolContext, ToolRegistry, ToolResult, ToolSpec
from runtime.tools.model import rebuilt_ok_result

__all__ = ["CacheReport", "Missed", "ResultCacheService", "from_shared", "to_shared"]

Compute = Callable[[], Awaitable[ToolResult]]


@attrs.frozen(slots=True)
class Missed:
    """A :meth:`ResultCacheService.cached` that found no live entry: what
    :meth:`~ResultCacheService.fetch_missed` goes on with (``digest`` None: a bypass)."""

    spec: ToolSpec
    context: ToolContext
    digest: bytes | None


_SHARED_FIELDS: Final = frozenset({"data", "warnings", "metadata"})


def to_shared(result: ToolResult) -> dict[str, Any]:
    """The L2 form of a successful result (the tier refuses it if JSON would alter it)."""
    return {
        "data": result.data,
        "warnings": list(result.warnings),
        "metadata": dict(result.metadata),
    }


def from_shared(value: Any) -> ToolResult | None:
    """The successful result an L2 value holds, or None when it is not :func:`to_shared`'s shape.

    Whatever sits in Redis may have been written by another program or another version:
    the shape is checked exactly rather than trusted.
    """
    if type(value) is not dict or value.keys() != _SHARED_FIELDS:
        return None
    warnings, metadata = value["warnings"], value["metadata"]
    if type(warnings) is not list or any(type(item) is not str for item in warnings):
        return None
    if type(metadata) is not dict:
        return None
    return ToolResult(True, value["data"], warnings=tuple(warnings), metadata=metadata)


@attrs.frozen(slots=True)
class CacheReport:
    """``runtime.cache.stats()``: the actor's snapshot plus what only callers can count.

    ``actor_unavailable`` counts calls that bypassed the cache because the cache actor
    was down.  With a shared tier: ``l2_hits`` counts leader lookups L2 answered (the
    tool did not run), ``l2_rejected`` L2 values that decoded but were not a result's
    shape (treated as misses), ``l2_writes_skipped`` fills not written to L2 because an
    invalidation overtook them; ``l2`` is the tier's own counters (misses, errors,
    timeouts, decode/signature failures, circuit state...).  All L2 fields are zero/None
    without a shared tier.
    """

    snapshot: CacheSnapshot
    actor_unavailable: int
    l2: RedisTierStats | None = None
    l2_hits: int = 0
    l2_rejected: int = 0
    l2_writes_skipped: int = 0
    l2_flights: FlightStats | None = None

    @property
    def hit_rate(self) -> float:
        return self.snapshot.store.hit_rate

    @property
    def l2_errors(self) -> int:
        """L2 lookups and writes that failed (error, timeout, refused by the open circuit)."""
        if self.l2 is None:
            return 0
        return self.l2.errors + self.l2.timeouts + self.l2.short_circuits

    def to_dict(self) -> dict[str, Any]:
        total = self.snapshot.store.total
        return {
            "hit_rate": round(self.hit_rate, 4),
            "policy": self.snapshot.store.policy,
            "entries": self.snapshot.store.entries,
            "bytes_used": self.snapshot.store.bytes_used,
            "in_flight": self.snapshot.in_flight,
            "waiting_followers": self.snapshot.waiting_followers,
            "actor_unavailable": self.actor_unavailable,
            "total": attrs.asdict(total),
            "by_operation": {
                f"{tool}.{op}": attrs.asdict(counters)
                for (tool, op), counters in sorted(self.snapshot.store.by_operation.items())
            },
            "l2": None if self.l2 is None else self._l2_dict(self.l2),
        }

    def _l2_dict(self, tier: RedisTierStats) -> dict[str, Any]:
        return {
            "hits": self.l2_hits,
            "misses": tier.misses,
            "errors": self.l2_errors,
            "circuit": tier.circuit,
            "rejected": self.l2_rejected,
            "writes_skipped": self.l2_writes_skipped,
            "tier": attrs.asdict(tier),
            "flights": None if self.l2_flights is None else attrs.asdict(self.l2_flights),
        }


class ResultCacheService:
    """Caller-side half of the cache; see the module docstring."""

    def __init__(
        self,
        actor: CacheActor,
        config: CacheConfig,
        *,
        l2: RedisTier | None = None,
        registry: ToolRegistry | None = None,
        flights: SharedFlights | None = None,
    ) -> None:
        self.actor = actor
        self._hits = actor.read_view
        self.config = config
        self.l2 = l2
        self.registry = registry
        # Cross-replica single-flight over ``l2`` (None: L2 shares values, not flights).
        self.flights = flights if l2 is not None else None
        self._volatile = volatile_keys(config.volatile_params)
        self._digests = DigestMemo(self._volatile)
        self._unavailable = 0
        # Bumped by every invalidation made through this service: a leader that sees it
        # change while its tool ran does not write its (possibly stale) value to L2.
        self._invalidations = 0
        self._l2_hits = 0
        self._l2_rejected = 0
        self._l2_writes_skipped = 0

    # -- the executor's seam ----------------------------------------------------------

    def key_for(
        self, spec: ToolSpec, params: Mapping[str, Any], context: ToolContext
    ) -> CacheKey | None:
        """The cache key of a call, or None when the call must bypass the cache (or its
        params fail the tool's schema: such a call never reaches the cache)."""
        if spec.checker is not None:
            try:
                params = spec.checker.validate(params, spec.tool_type, spec.operation)
            except InvalidParams:
                return None
        digest = self._digest_for(spec, params, context)
        if digest is None:
            return None
        return _key(spec, context, digest)

    def _digest_for(
        self, spec: ToolSpec, params: Mapping[str, Any], context: ToolContext
    ) -> bytes | None:
        if spec.side_effects or self.config.ttl_for(spec.tool_type, spec.operation) <= 0:
            return None
        try:
            return self._digests.digest(context.tenant_id, spec.tool_type, spec.operation, params)
        except Uncacheable:
            return None

    def cached(
        self, spec: ToolSpec, params: Mapping[str, Any], context: ToolContext
    ) -> ToolResult | Missed:
        """The call's result from a live L1 entry, at once: a hit waits for nothing (the
        actor's :class:`~runtime.cache.actor.ReadView`).  Otherwise a :class:`Missed`
        to hand to :meth:`fetch_missed`, which goes on from there."""
        digest = self._digest_for(spec, params, context)
        if digest is not None:
            stored = self._hits.hit(digest)
            if stored is not None:
                return _unstore(stored)
        return Missed(spec, context, digest)

    async def fetch(
        self,
        spec: ToolSpec,
        params: Mapping[str, Any],
        context: ToolContext,
        compute: Compute,
    ) -> tuple[ToolResult, CacheOutcome]:
        """:meth:`cached`, then :meth:`fetch_missed` if it missed: the whole lookup."""
        found = self.cached(spec, params, context)
        if isinstance(found, Missed):
            return await self.fetch_missed(found, compute)
        return found, "hit"

    async def fetch_missed(
        self, missed: Missed, compute: Compute
    ) -> tuple[ToolResult, CacheOutcome]:
        """Go on from a :meth:`cached` that missed: bypass, wait as a follower, or lead."""
        spec = missed.spec
        if missed.digest is None:
            self.actor.cast(RecordBypass(spec.tool_type, spec.operation))
            return await compute(), "bypass"
        key = _key(spec, missed.context, missed.digest)
        release = self._releaser(key)
        try:
            reply = await self.actor.call(Lookup(key), on_late_reply=release)
        except ActorUnavailable:
            self._unavailable += 1
            return await compute(), "bypass"
        kind = type(reply)
        if kind is Found:
            return _unstore(reply.stored), "hit"
        if kind is Shared:
            return _unstore(reply.stored), "coalesced"
        if kind is SharedFailure:
            return reply.result, "coalesced"
        if kind is RunYourself:
            # Counted as coalesced when it joined; its own run is counted as a bypass, so
            # executions = misses - coalesced + bypasses holds exactly.
            self.actor.cast(RecordBypass(spec.tool_type, spec.operation))
            return await compute(), "bypass"
        if kind is Lead:
            return await self._lead(spec, key, reply.epoch, compute, reply.lease)
        raise AssertionError(f"unexpected cache reply {reply!r}")  # pragma: no cover

    async def _lead(
        self, spec: ToolSpec, key: CacheKey, epoch: int, compute: Compute, lease: int
    ) -> tuple[ToolResult, CacheOutcome]:
        ttl = self.config.ttl_for(spec.tool_type, spec.operation)
        invalidations = self._invalidations
        flight: Lease | None = None
        try:
            if self.l2 is not None:
                found = await self._claim(key)
                if isinstance(found, Lease):
                    flight = found
                elif found is not None:
                    shared = self._accept_shared(key, found, ttl, epoch, lease)
                    if shared is not None:
                        return shared, "hit"
            result = await compute()
        except BaseException:
            self.actor.cast(Release(key, lease))  # a follower takes over; never blocks
            if flight is not None:
                await self._end_flight(flight)  # another replica takes over at once
            raise
        if not result.success:
            self.actor.cast(Fail(key, result, lease))
            await self._end_flight(flight)  # failures are never shared
            return result, "miss"
        try:
            stored = _store(result)
        except Uncacheable:
            self.actor.cast(Unshare(key, lease))  # this run already counts as the lookup's miss
            await self._end_flight(flight)
            return result, "miss"
        self.actor.cast(Fill(key, stored, ttl, epoch, lease))
        if self.l2 is not None:
            if invalidations != self._invalidations:
                self._l2_writes_skipped += 1
                await self._end_flight(flight)
            elif flight is None:
                await self.l2.set(key, to_shared(result), ttl)
            else:
                await self._publish(key, flight, result, ttl)
        return result, "miss"

    async def _claim(self, key: CacheKey) -> Hit | Lease | None:
        """The leader's L2 step: the value, a cross-replica lease, or None (run it here)."""
        assert self.l2 is not None
        if self.flights is not None:
            return await self.flights.claim(key)
        found = await self.l2.get(key)
        return found if type(found) is Hit else None

    async def _publish(self, key: CacheKey, flight: Lease, result: ToolResult, ttl: float) -> None:
        assert self.flights is not None
        outcome = await self.flights.publish(key, flight, to_shared(result), ttl)
        if outcome == "invalidated":
            # Another replica invalidated the key while the tool ran: what L1 just took
            # may be stale, and must not outlive the call.
            self._l2_writes_skipped += 1
            try:
                await self.actor.call(Invalidate(key=key))
            except ActorUnavailable:
                self._unavailable += 1

    async def _end_flight(self, flight: Lease | None) -> None:
        if flight is not None and self.flights is not None:
            await self.flights.release(flight)

    def _accept_shared(
        self, key: CacheKey, found: Hit, ttl: float, epoch: int, lease: int
    ) -> ToolResult | None:
        """An L2 value for the leader: fill L1 (waking followers) and return it."""
        result = from_shared(found.value)
        if result is None:
            self._l2_rejected += 1
            return None
        try:
            stored = _store(result)
        except Uncacheable:  # pragma: no cover - decoded JSON always pickles
            return None
        if found.ttl_s is not None:
            ttl = _l1_ttl(ttl, found.ttl_s)  # L1 must not outlive the shared copy
        # A ttl of 0 (the value expired as it was read) still wakes the followers.
        self.actor.cast(Fill(key, stored, ttl, epoch, lease))
        self._l2_hits += 1
        return result

    def _releaser(self, key: CacheKey) -> Callable[[Any], None]:
        def give_back(reply: Any) -> None:
            # Cancelled just after being made leader: hand the lead on at once.
            if type(reply) is Lead:
                self.actor.cast(Release(key, reply.lease))

        return give_back

    # -- what applications use -----------------------------------------------------------

    async def contains(
        self, spec: ToolSpec, params: Mapping[str, Any], context: ToolContext
    ) -> bool:
        """Whether a live L1 entry answers this call (no recency or statistics touched).

        L2 is not asked: this is a cheap hint and must not cost a network round trip.
        """
        key = self.key_for(spec, params, context)
        if key is None:
            return False
        await anyio.lowlevel.checkpoint()
        if self._hits.contains(key):
            return True
        # Not seen yet -- but a fill this caller's own earlier call sent may still be
        # queued; a call is served after every cast sent before it, so ask the mailbox.
        try:
            found: bool = await self.actor.call(Peek(key))
        except ActorUnavailable:
            return False
        return found

    async def invalidate(
        self, tool_type: str, operation: str, params: Mapping[str, Any], context: ToolContext
    ) -> int:
        """Drop the entry one call would hit, in both tiers; returns how many L1 removed.

        ``params`` are normalised by the tool's schema as the call's were (so ``{}`` and
        its default-filled twin name one entry); params the schema rejects raise
        :class:`InvalidParams`: no call with them was ever cached.
        """
        params = self._canonical(str(tool_type), operation, params)
        key = make_key(context.tenant_id, str(tool_type), operation, params, self._volatile)
        self._invalidations += 1
        if self.l2 is not None:
            await self.l2.invalidate_key(key)
        removed: int = await self.actor.call(Invalidate(key=key))
        return removed

    def _canonical(
        self, tool_type: str, operation: str, params: Mapping[str, Any]
    ) -> Mapping[str, Any]:
        registry = self.registry
        if registry is None or (tool_type, operation) not in registry:
            return params
        checker = registry.get(tool_type, operation).checker
        return params if checker is None else checker.validate(params, tool_type, operation)

    async def invalidate_tool(self, tool_type: str, operation: str | None = None) -> int:
        """Drop every entry of a tool (or of one of its operations), for every tenant."""
        self._invalidations += 1
        if self.l2 is not None:
            await self.l2.invalidate_tool(str(tool_type), operation)
        removed: int = await self.actor.call(
            Invalidate(tool_type=str(tool_type), operation=operation)
        )
        return removed

    async def invalidate_tenant(self, tenant: str) -> int:
        """Drop every entry of one tenant, in both tiers."""
        self._invalidations += 1
        if self.l2 is not None:
            await self.l2.invalidate_tenant(tenant)
        removed: int = await self.actor.call(Invalidate(tenant=tenant))
        return removed

    async def clear(self) -> int:
        """Drop every entry; in L2, every entry under the key prefix, for every process."""
        self._invalidations += 1
        if self.l2 is not None:
            await self.l2.clear()
        removed: int = await self.actor.call(Invalidate())
        return removed

    async def stats(self) -> CacheReport:
        snapshot: CacheSnapshot = await self.actor.call(GetStats())
        return CacheReport(
            snapshot,
            self._unavailable,
            l2=self.l2.stats() if self.l2 is not None else None,
            l2_hits=self._l2_hits,
            l2_rejected=self._l2_rejected,
            l2_writes_skipped=self._l2_writes_skipped,
            l2_flights=self.flights.stats() if self.flights is not None else None,
        )


def _key(spec: ToolSpec, context: ToolContext, digest: bytes) -> CacheKey:
    """The key :func:`make_key` builds, from a digest already computed."""
    # str() as make_key does: a StrEnum member and its value are one key.
    return CacheKey(str(context.tenant_id), str(spec.tool_type), str(spec.operation), digest)


def _l1_ttl(ttl: float, remaining: float) -> float:
    """The L1 TTL of an L2 hit with ``remaining`` seconds left in Redis: never longer.

    Rounded *down* to one of four values per doubling (at most 16% shorter), because the
    store keeps one expiry queue per distinct TTL and every fill scans the queues' heads:
    a TTL per value, as Redis reports them, made fills hundreds of times slower after a
    replica warmed up from L2.
    """
    if remaining >= ttl:
        return ttl
    if remaining <= 0:
        return 0.0
    return min(remaining, math.pow(2.0, math.floor(math.log2(remaining) * 4) / 4))


class _Extras(NamedTuple):
    """A result's parts beyond its data, stored only when it has any."""

    data: Any
    warnings: tuple[str, ...]
    metadata: dict[str, Any]


def _store(result: ToolResult) -> StoredValue:
    """The stored form of a successful result: its data alone when it carries no
    warnings or metadata (most do not), so a flat result thaws as one copy
    (:mod:`runtime.cache.values`); otherwise its parts.  Never the attrs instance,
    whose slotted ``__setstate__`` runs in Python."""
    if not result.warnings and not result.metadata:
        return freeze(result.data)
    return freeze(_Extras(result.data, result.warnings, dict(result.metadata)))


def _unstore(stored: StoredValue) -> ToolResult:
    value = thaw(stored)
    if type(value) is _Extras:
        return rebuilt_ok_result(*value)
    return rebuilt_ok_result(value, (), {})
