"""How long L1 keeps a value the shared tier answered (a fake tier: no Redis needed)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from runtime import ToolContext, ToolRegistry
from runtime.cache.actor import CacheActor, GetStats
from runtime.cache.keys import CacheKey
from runtime.cache.redis import Hit as SharedHit
from runtime.cache.service import ResultCacheService
from runtime.config import CacheConfig
from runtime.tools import ToolResult

pytestmark = pytest.mark.anyio

ACME = ToolContext(tenant_id="acme")


class FakeTier:
    """Answers every lookup with a hit that has ``remaining[key.digest]`` seconds left."""

    def __init__(self) -> None:
        self.remaining: dict[bytes, float] = {}

    async def get(self, key: CacheKey) -> SharedHit:
        return SharedHit(
            {"data": {"v": 1}, "warnings": [], "metadata": {}}, self.remaining[key.digest]
        )

    async def set(self, key: CacheKey, value: Any, ttl_s: float) -> bool:
        return True


async def test_l2_hits_fill_l1_with_few_distinct_ttls_never_outliving_l2() -> None:
    registry = ToolRegistry()

    @registry.tool("CI", "get")
    async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        raise AssertionError("every lookup is an L2 hit")

    async def compute() -> ToolResult:
        raise AssertionError("every lookup is an L2 hit")

    spec = registry.get("CI", "get")
    tier = FakeTier()
    actor = CacheActor(max_entries=10_000, max_bytes=None)
    service = ResultCacheService(actor, CacheConfig(ttl={"CI": {"get": 600.0}}), l2=tier)  # type: ignore[arg-type]
    # What Redis has left of each value: all different, as for a replica warming up on
    # values other replicas wrote at different moments.
    params = [{"ci_id": i} for i in range(600)]
    for i, p in enumerate(params):
        key = service.key_for(spec, p, ACME)
        assert key is not None
        tier.remaining[key.digest] = 5 + i * 0.437
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            for p in params:
                result = await service.fetch(spec, p, ACME, compute)
                assert result == (ToolResult(True, {"v": 1}), "hit")
            await actor.call(GetStats())  # served after every Fill cast before it
            entries = actor._store.live_entries(anyio.current_time())
            actor.stop()
    assert len(entries) == len(params)
    for entry in entries:
        left = tier.remaining[entry.key.digest]
        # Never longer than the shared copy lives, and not much shorter either.
        assert 0.8 * left <= entry.ttl <= left, (left, entry.ttl)
    # One expiry queue per distinct TTL: a TTL per value would make every fill scan
    # hundreds of queues (docs/architecture.md, notes on runtime/cache/store.py).
    assert len({entry.ttl for entry in entries}) <= 64
