"""The cache as the executor and the application see it.

:class:`ResultCacheService` implements the executor's ``ResultCache`` seam: it builds the
key in the caller's task, asks the :class:`CacheActor`, and plays the part the actor
assigns -- read a hit, wait as a follower, or lead: run the tool, then report the outcome.
It is also what ``runtime.cache`` exposes: invalidation, clearing and statistics.

Calls bypass the cache (and are counted) when the tool has side effects, its TTL is 0, its
params cannot be canonicalised, or its result cannot be stored.  When the cache actor is
down, calls bypass it too: a broken cache costs its hits, never an answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs

from runtime.cache.actor import (
    CacheActor,
    CacheSnapshot,
    Fail,
    Fill,
    GetStats,
    Hit,
    Invalidate,
    Lead,
    Lookup,
    Peek,
    RecordBypass,
    Release,
    RunYourself,
    Shared,
    SharedFailure,
    Unshare,
)
from runtime.cache.keys import CacheKey, Uncacheable, make_key, volatile_keys
from runtime.cache.redis import RedisTier
from runtime.cache.values import freeze, thaw
from runtime.calls import CacheOutcome
from runtime.config import CacheConfig
from runtime.errors import ActorUnavailable
from runtime.tools import ToolContext, ToolResult, ToolSpec

__all__ = ["CacheReport", "ResultCacheService"]

Compute = Callable[[], Awaitable[ToolResult]]


@attrs.frozen(slots=True)
class CacheReport:
    """``runtime.cache.stats()``: the actor's snapshot plus what only callers can count.

    ``actor_unavailable`` counts calls that bypassed the cache because the cache actor
    was down.
    """

    snapshot: CacheSnapshot
    actor_unavailable: int

    @property
    def hit_rate(self) -> float:
        return self.snapshot.store.hit_rate

    def to_dict(self) -> dict[str, Any]:
        total = self.snapshot.store.total
        return {
            "hit_rate": round(self.hit_rate, 4),
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
        }


class ResultCacheService:
    """Caller-side half of the cache; see the module docstring."""

    def __init__(
        self, actor: CacheActor, config: CacheConfig, *, l2: RedisTier | None = None
    ) -> None:
        self.actor = actor
        self.config = config
        self.l2 = l2
        self._volatile = volatile_keys(config.volatile_params)
        self._unavailable = 0

    # -- the executor's seam ----------------------------------------------------------

    def key_for(
        self, spec: ToolSpec, params: Mapping[str, Any], context: ToolContext
    ) -> CacheKey | None:
        """The cache key of a call, or None when the call must bypass the cache."""
        if spec.side_effects or self.config.ttl_for(spec.tool_type, spec.operation) <= 0:
            return None
        try:
            return make_key(
                context.tenant_id, spec.tool_type, spec.operation, params, self._volatile
            )
        except Uncacheable:
            return None

    async def fetch(
        self,
        spec: ToolSpec,
        params: Mapping[str, Any],
        context: ToolContext,
        compute: Compute,
    ) -> tuple[ToolResult, CacheOutcome]:
        key = self.key_for(spec, params, context)
        if key is None:
            self.actor.cast(RecordBypass(spec.tool_type, spec.operation))
            return await compute(), "bypass"
        release = self._releaser(key)
        try:
            reply = await self.actor.call(Lookup(key), on_late_reply=release)
        except ActorUnavailable:
            self._unavailable += 1
            return await compute(), "bypass"
        kind = type(reply)
        if kind is Hit:
            return thaw(reply.stored), "hit"
        if kind is Shared:
            return thaw(reply.stored), "coalesced"
        if kind is SharedFailure:
            return reply.result, "coalesced"
        if kind is RunYourself:
            return await compute(), "bypass"
        if kind is Lead:
            return await self._lead(spec, key, reply.epoch, compute), "miss"
        raise AssertionError(f"unexpected cache reply {reply!r}")  # pragma: no cover

    async def _lead(
        self, spec: ToolSpec, key: CacheKey, epoch: int, compute: Compute
    ) -> ToolResult:
        try:
            result = await compute()
        except BaseException:
            self.actor.cast(Release(key))  # a follower takes over; never blocks
            raise
        if not result.success:
            self.actor.cast(Fail(key, result))
            return result
        try:
            stored = freeze(attrs.evolve(result, exception=None))
        except Uncacheable:
            self.actor.cast(Unshare(key))
            self.actor.cast(RecordBypass(spec.tool_type, spec.operation))
            return result
        ttl = self.config.ttl_for(spec.tool_type, spec.operation)
        self.actor.cast(Fill(key, stored, ttl, epoch))
        return result

    def _releaser(self, key: CacheKey) -> Callable[[Any], None]:
        def give_back(reply: Any) -> None:
            # Cancelled just after being made leader: hand the lead on at once.
            if type(reply) is Lead:
                self.actor.cast(Release(key))

        return give_back

    # -- what applications use -----------------------------------------------------------

    async def contains(
        self, spec: ToolSpec, params: Mapping[str, Any], context: ToolContext
    ) -> bool:
        """Whether a live entry answers this call (no recency or statistics touched)."""
        key = self.key_for(spec, params, context)
        if key is None:
            return False
        try:
            found: bool = await self.actor.call(Peek(key))
        except ActorUnavailable:
            return False
        return found

    async def invalidate(
        self, tool_type: str, operation: str, params: Mapping[str, Any], context: ToolContext
    ) -> int:
        """Drop the entry one call would hit; returns how many entries were removed."""
        key = make_key(context.tenant_id, str(tool_type), operation, params, self._volatile)
        removed: int = await self.actor.call(Invalidate(key=key))
        return removed

    async def invalidate_tool(self, tool_type: str, operation: str | None = None) -> int:
        """Drop every entry of a tool (or of one of its operations), for every tenant."""
        removed: int = await self.actor.call(
            Invalidate(tool_type=str(tool_type), operation=operation)
        )
        return removed

    async def invalidate_tenant(self, tenant: str) -> int:
        """Drop every entry of one tenant."""
        removed: int = await self.actor.call(Invalidate(tenant=tenant))
        return removed

    async def clear(self) -> int:
        """Drop every entry."""
        removed: int = await self.actor.call(Invalidate())
        return removed

    async def stats(self) -> CacheReport:
        snapshot: CacheSnapshot = await self.actor.call(GetStats())
        return CacheReport(snapshot, self._unavailable)
