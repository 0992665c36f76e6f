"""The L2 tier recovers once a hung Redis answers again (found by a torture run).

While Redis hangs (here: SIGSTOP, as a stalled server or a black-holed network would),
every breaker probe dials a fresh connection and is cut off by ``op_timeout`` before the
dial finishes.  Each such cancelled dial must not cost the tier a pooled connection for
good: once Redis answers again, a probe must get through and close the circuit
(docs/redis.md, "When Redis is down or slow").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from redis_server import RedisServer, redis_server

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.config import CacheConfig, RedisConfig, RuntimeConfig

__all__ = ["redis_server"]

pytestmark = pytest.mark.anyio

ACME = ToolContext(tenant_id="acme")


async def test_l2_recovers_after_probes_timed_out_while_redis_hung(
    redis_server: RedisServer,
) -> None:
    registry = ToolRegistry()

    @registry.tool("CI", "search")
    async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        return {"q": params["q"]}

    config = RuntimeConfig(
        cache=CacheConfig(
            redis=RedisConfig(
                url=redis_server.url,
                op_timeout=0.1,
                failure_threshold=1,
                backoff_initial=0.05,
                backoff_max=0.05,
                generation_cache=0,
                max_connections=4,
            )
        )
    )
    with anyio.fail_after(30):
        async with open_runtime(registry, config) as rt:
            assert rt.cache is not None
            assert await rt.execute("CI", "search", {"q": 0}, ACME) == {"q": 0}
            redis_server.pause()
            try:
                # Each call's L2 lookup is a probe (the backoff has passed) that times out.
                for q in range(1, 9):
                    assert await rt.execute("CI", "search", {"q": q}, ACME) == {"q": q}
                    await anyio.sleep(0.06)
            finally:
                redis_server.resume()
            # Redis answers again: within a few seconds of probing the circuit must close.
            with anyio.move_on_after(3):
                q = 100
                while (await rt.cache.stats()).l2.circuit != "closed":  # type: ignore[union-attr]
                    q += 1
                    assert await rt.execute("CI", "search", {"q": q}, ACME) == {"q": q}
                    await anyio.sleep(0.06)
            stats = await rt.cache.stats()
    assert stats.l2 is not None
    assert stats.l2.circuit == "closed", (stats.l2.circuit, stats.l2.last_error)
    assert stats.l2.reconnects >= 1
