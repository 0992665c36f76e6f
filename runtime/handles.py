"""The user's handles on a runtime's cache, tracer and selector: ``rt.cache`` & co.

A handle exposes what an application does with a component -- statistics, records,
export, invalidation, snapshots, reset -- and nothing of the actor protocol: no
``call``, ``cast``, ``stop`` or ``reply``, so no user code can end an actor or bypass
its mailbox.  The runtime and the executor keep the actors themselves.

Each handle holds one reference and forwards; it keeps no state of its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any

from runtime.cache.keys import CacheKey
from runtime.cache.service import CacheReport, ResultCacheService
from runtime.selector.actor import SelectorActor
from runtime.selector.intents import Candidate, Intent
from runtime.selector.scoring import Ranked, Weights
from runtime.selector.settings import SelectorSettings
from runtime.selector.state import ToolSnapshot
from runtime.tools import ToolContext, ToolSpec
from runtime.tracer.actor import TracerActor
from runtime.tracer.records import TraceRecord
from runtime.tracer.stats import TracerStats

__all__ = ["CacheHandle", "SelectorHandle", "TracerHandle"]


class CacheHandle:
    """``rt.cache``: keys, invalidation, clearing and statistics of the result cache."""

    __slots__ = ("_service",)

    def __init__(self, service: ResultCacheService) -> None:
        self._service = service

    def key_for(
        self, spec: ToolSpec, params: Mapping[str, Any], context: ToolContext
    ) -> CacheKey | None:
        """The cache key of a call; None when it bypasses the cache or its params fail
        the tool's schema."""
        return self._service.key_for(spec, params, context)

    async def contains(
        self, spec: ToolSpec, params: Mapping[str, Any], context: ToolContext
    ) -> bool:
        """Whether a live L1 entry answers this call (recency and statistics untouched)."""
        return await self._service.contains(spec, params, context)

    async def invalidate(
        self, tool_type: str, operation: str, params: Mapping[str, Any], context: ToolContext
    ) -> int:
        """Drop the entry of one call (its tenant's only); the number of entries dropped."""
        return await self._service.invalidate(tool_type, operation, params, context)

    async def invalidate_tool(self, tool_type: str, operation: str | None = None) -> int:
        """Drop every entry of a tool (or one operation of it), for every tenant."""
        return await self._service.invalidate_tool(tool_type, operation)

    async def invalidate_tenant(self, tenant: str) -> int:
        """Drop every entry of one tenant."""
        return await self._service.invalidate_tenant(tenant)

    async def clear(self) -> int:
        """Drop every entry; the number dropped."""
        return await self._service.clear()

    async def stats(self) -> CacheReport:
        """The store's counters with the L2 tier's and the shared flights' figures."""
        return await self._service.stats()


class TracerHandle:
    """``rt.tracer``: trace records, statistics, export and reset."""

    __slots__ = ("_actor",)

    def __init__(self, actor: TracerActor) -> None:
        self._actor = actor

    async def records(self, limit: int | None = None) -> tuple[TraceRecord, ...]:
        """The buffered records, oldest first (the newest ``limit`` when given)."""
        return await self._actor.records(limit)

    async def stats(self) -> TracerStats:
        """Aggregates per (tool, operation), buffer fill and reports dropped."""
        return await self._actor.tracer_stats()

    async def tracer_stats(self) -> TracerStats:
        """The same as :meth:`stats` (the name the docs used first)."""
        return await self._actor.tracer_stats()

    async def export(
        self,
        format: str,
        path: str | os.PathLike[str] | None = None,
        *,
        limit: int | None = None,
    ) -> str:
        """The buffered records as ``json`` / ``jsonl`` / ``csv`` / ``chrome`` text,
        also written to ``path`` when given."""
        return await self._actor.export(format, path, limit=limit)

    async def reset(self) -> None:
        """Forget records, aggregates and drop counts."""
        await self._actor.reset()


class SelectorHandle:
    """``rt.selector``: rankings, choices and live snapshots of the tools' health."""

    __slots__ = ("_actor",)

    def __init__(self, actor: SelectorActor) -> None:
        self._actor = actor

    @property
    def settings(self) -> SelectorSettings:
        """The profiles, intents, strategies and tuning the selector runs with."""
        return self._actor.settings

    async def rank(
        self,
        intent: Intent | str,
        strategy: str | Weights | None = None,
        cached: Iterable[Candidate] = (),
    ) -> list[Ranked]:
        """The intent's candidates, best first; UnknownIntent for an unknown intent."""
        return await self._actor.rank(intent, strategy, cached)

    async def choose(
        self,
        intent: Intent | str,
        strategy: str | Weights | None = None,
        cached: Iterable[Candidate] = (),
        *,
        reserve: bool = True,
    ) -> Ranked:
        """One candidate to run (the least loaded of the near-best)."""
        return await self._actor.choose(intent, strategy, cached, reserve=reserve)

    async def snapshot(self) -> tuple[ToolSnapshot, ...]:
        """The live statistics of every operation observed so far."""
        return await self._actor.snapshot()
