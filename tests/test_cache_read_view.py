"""The cache actor's ReadView: the one caller-side read of its state, and its invariants."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.cache.actor import CacheActor, ReadView

CTX = ToolContext(tenant_id="acme")
PARAMS = {"ci_id": 7}


def registry() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool("CI", "get")
    async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        return dict(params)

    return tools


def test_the_view_is_synchronous_and_offers_only_reads() -> None:
    public = {name for name in dir(ReadView) if not name.startswith("_")}
    assert public == {"hit", "contains"}
    for name in public:
        assert not inspect.iscoroutinefunction(getattr(ReadView, name))


@pytest.mark.anyio
async def test_a_view_hit_is_a_lookup_hit_and_contains_touches_nothing() -> None:
    async with open_runtime(registry()) as rt:
        assert rt.cache is not None
        service = rt._cache
        assert service is not None
        view = service.actor.read_view
        key = rt.cache.key_for(rt.registry.get("CI", "get"), PARAMS, CTX)
        assert key is not None
        assert view.hit(key.digest) is None  # nothing yet: ask the mailbox
        assert not view.contains(key)
        await rt.execute("CI", "get", PARAMS, CTX)  # a miss that fills, through the mailbox
        await anyio.wait_all_tasks_blocked()

        def hits() -> int:
            return service.actor._store.stats().total.hits

        before = hits()
        assert view.contains(key)
        assert view.contains(key)
        assert hits() == before  # contains counts nothing
        assert view.hit(key.digest) is not None
        assert hits() == before + 1  # a hit is counted once, as a Lookup hit would be
        # An invalidation goes through the mailbox; the view sees its effect at once.
        assert await rt.cache.invalidate("CI", "get", PARAMS, CTX) == 1
        assert view.hit(key.digest) is None
        assert not view.contains(key)


@pytest.mark.anyio
async def test_a_stopped_actors_state_is_not_trusted() -> None:
    actor = CacheActor(100, None)
    view = actor.read_view
    async with anyio.create_task_group() as group:
        await group.start(actor.serve)
        actor.stop()
    assert not actor.running
    assert view.hit(b"\x00" * 16) is None
