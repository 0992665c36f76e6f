"""Invalidations that Redis could not take when they were made (found by a torture run).

docs/redis.md: they are kept pending and replayed before any other operation once Redis
answers again; they live in the invalidating process's memory, so closing the runtime
tries them once more (bounded by op_timeout) and logs what is lost if that fails.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from redis_server import RedisServer, redis_server

from runtime import Runtime, ToolContext, ToolRegistry, open_runtime
from runtime.config import CacheConfig, RedisConfig, RuntimeConfig

__all__ = ["redis_server"]

pytestmark = pytest.mark.anyio

ACME = ToolContext(tenant_id="acme")


def replica_tools(version: dict[str, int], runs: Counter[str]) -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool("CI", "get")
    async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        runs["get"] += 1
        return {"ci_id": params["ci_id"], "version": version["v"]}

    return registry


def hung_config(redis_server: RedisServer) -> RuntimeConfig:
    # A long backoff: once the circuit opens, no operation of this replica reaches Redis
    # again before it closes -- only the close itself can replay what is pending.
    return RuntimeConfig(
        cache=CacheConfig(
            redis=RedisConfig(
                url=redis_server.url,
                op_timeout=0.1,
                failure_threshold=1,
                backoff_initial=30.0,
                backoff_max=30.0,
                generation_cache=0,
            )
        )
    )


async def invalidate_while_hung(
    rt: Runtime, redis_server: RedisServer, version: dict[str, int]
) -> None:
    assert rt.cache is not None
    assert (await rt.execute("CI", "get", {"ci_id": 7}, ACME))["version"] == 1
    version["v"] = 2  # the CMDB changed
    redis_server.pause()  # Redis keeps its data, but does not answer for a moment
    # A lookup times out and opens the circuit; the invalidation that follows is refused
    # at once by the open circuit and kept pending.
    await rt.execute("CI", "get", {"ci_id": 8}, ACME)
    await rt.cache.invalidate_tool("CI")
    stats = await rt.cache.stats()
    assert stats.l2 is not None
    assert (stats.l2.pending_invalidations, stats.l2.circuit) == (1, "open")


async def test_closing_replays_what_is_pending_once_redis_answers_again(
    redis_server: RedisServer,
) -> None:
    config = hung_config(redis_server)
    version = {"v": 1}
    with anyio.fail_after(30):
        async with open_runtime(replica_tools(version, Counter()), config) as first:
            await invalidate_while_hung(first, redis_server, version)
            redis_server.resume()  # back, but this replica's circuit waits out its backoff
        async with open_runtime(replica_tools(version, Counter()), config) as second:
            answer = await second.execute("CI", "get", {"ci_id": 7}, ACME)
    assert answer["version"] == 2, "the Redis that came back served an invalidated value"


async def test_what_cannot_be_replayed_at_close_is_logged_and_close_stays_bounded(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    config = hung_config(redis_server)
    version = {"v": 1}
    try:
        with anyio.fail_after(30):
            async with open_runtime(replica_tools(version, Counter()), config) as first:
                await invalidate_while_hung(first, redis_server, version)
                closing = anyio.current_time()
            closed_in = anyio.current_time() - closing
    finally:
        redis_server.resume()
    assert closed_in < 5.0
    lost = [r for r in caplog.records if "never reached Redis" in r.getMessage()]
    assert len(lost) == 1
    assert "1 invalidation(s)" in lost[0].getMessage()
