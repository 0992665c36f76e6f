"""rt.cache, rt.tracer and rt.selector are handles: the user's operations, no actor protocol."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from runtime import ToolContext, ToolRegistry, apply_preset, open_runtime
from runtime.config import RuntimeConfig, TracerConfig
from runtime.ops.preset import OPS_PRESET

CTX = ToolContext(tenant_id="acme")
PROTOCOL = (
    "call",
    "cast",
    "stop",
    "reply",
    "reply_error",
    "serve",
    "handle_call",
    "handle_cast",
    "handle_casts",
)


def registry() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool("CI", "search")
    async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        return [params.get("q")]

    return tools


@pytest.mark.anyio
async def test_handles_have_no_actor_protocol() -> None:
    async with open_runtime(registry()) as rt:
        for handle in (rt.cache, rt.tracer, rt.selector):
            assert handle is not None
            for name in PROTOCOL:
                assert not hasattr(handle, name), (type(handle).__name__, name)
            with pytest.raises(AttributeError):
                handle.anything_else = 1  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_the_handles_offer_the_users_operations() -> None:
    # The ops preset brings the SEARCH intent the selector's operations are asked about.
    config = apply_preset(RuntimeConfig(tracer=TracerConfig(batch_window=0)), OPS_PRESET)
    async with open_runtime(registry(), config) as rt:
        assert rt.cache is not None
        assert rt.tracer is not None
        assert rt.selector is not None
        spec = rt.registry.get("CI", "search")
        assert await rt.execute("CI", "search", {"q": "db"}, CTX) == ["db"]
        assert await rt.execute("CI", "search", {"q": "db"}, CTX) == ["db"]
        await anyio.wait_all_tasks_blocked()
        assert rt.cache.key_for(spec, {"q": "db"}, CTX) is not None
        assert await rt.cache.contains(spec, {"q": "db"}, CTX)
        assert (await rt.cache.stats()).snapshot.store.total.hits == 1
        assert await rt.cache.invalidate("CI", "search", {"q": "db"}, CTX) == 1
        assert not await rt.cache.contains(spec, {"q": "db"}, CTX)
        assert await rt.cache.invalidate_tool("CI") == 0
        assert await rt.cache.invalidate_tenant("acme") == 0
        assert await rt.cache.clear() == 0
        assert [r.cache_hit for r in await rt.tracer.records()] == [False, True]
        stats = await rt.tracer.stats()
        assert stats == await rt.tracer.tracer_stats()
        tool = stats.tool("CI", "search")
        assert tool is not None
        assert tool.count == 2
        assert '"CI"' in await rt.tracer.export("json")
        await rt.tracer.reset()
        assert await rt.tracer.records() == ()
        assert "SEARCH" in rt.selector.settings.candidates
        assert [r.operation for r in await rt.selector.snapshot()] == ["search"]
        ranked = await rt.selector.rank("SEARCH")
        assert ranked
        chosen = await rt.selector.choose("SEARCH", reserve=False)
        assert chosen.candidate in {r.candidate for r in ranked}


@pytest.mark.anyio
async def test_stopping_tracing_is_not_possible_through_the_handle() -> None:
    """The bug the handle removes: rt.tracer.stop() silently ended tracing."""
    async with open_runtime(registry(), RuntimeConfig(tracer=TracerConfig(batch_window=0))) as rt:
        assert rt.tracer is not None
        with pytest.raises(AttributeError):
            rt.tracer.stop()  # type: ignore[attr-defined]
        await rt.execute("CI", "search", {"q": "x"}, CTX)
        await anyio.wait_all_tasks_blocked()
        assert len(await rt.tracer.records()) == 1
        assert rt.health().ok
