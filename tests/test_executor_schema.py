"""Schemas enforced by the executor: before any cache work, normalised for tool and key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from ops_fixtures import fixture_ops_db, fixture_ops_db_path, fixture_registry
from redis_server import RedisServer, redis_server

from runtime import (
    InvalidParams,
    Pipeline,
    PipelineError,
    Step,
    ToolContext,
    ToolRegistry,
    open_runtime,
)
from runtime.config import CacheConfig, RedisConfig, RuntimeConfig
from runtime.ops import PARAMS_SCHEMAS
from runtime.ops.config import ops_defaults
from runtime.runtime import Runtime

__all__ = ["fixture_ops_db", "fixture_ops_db_path", "fixture_registry", "redis_server"]

pytestmark = pytest.mark.anyio

CTX = ToolContext("acme")
SEARCH_SCHEMA = PARAMS_SCHEMAS[("CI", "search")]
SHORT = {"keywords": ["web"]}
LONG = {"keywords": ["web"], "filters": [], "limit": 20}
TICKET = {
    "type": "object",
    "fields": {
        "id": {"type": "int", "min": 1, "required": True},
        "fields": {"type": "list", "items": {"type": "str"}, "default": ["title"]},
    },
}


class Tools:
    """A ticket reader with a schema, a notifier with only a validator, one with neither."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Mapping[str, Any]]] = []
        self.registry = ToolRegistry()

        @self.registry.tool("TICKET", "read", params_schema=TICKET)
        async def read(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.seen.append(("read", params))
            return {"id": params["id"], "fields": list(params["fields"])}

        def needs_channel(params: Mapping[str, Any]) -> None:
            if "channel" not in params:
                raise InvalidParams("NOTIFY", "send", "channel", "is required")

        @self.registry.tool("NOTIFY", "send", validator=needs_channel)
        async def send(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.seen.append(("send", params))
            return "sent"

        @self.registry.tool("FREE", "echo")
        async def echo(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.seen.append(("echo", params))
            return "ok"

        @self.registry.tool("CI", "search", params_schema=SEARCH_SCHEMA)
        async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.seen.append(("search", params))
            return {"records": [], "total": 0}

    def ran(self, name: str) -> int:
        return sum(1 for tool, _ in self.seen if tool == name)


async def misses(rt: Runtime) -> int:
    assert rt.cache is not None
    return (await rt.cache.stats()).snapshot.store.total.misses


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"id": 99, "bogus": 1}, "bogus"),
        ({"id": "99"}, "id"),
        ({"id": 0}, "id"),
        ({}, "id"),
        ({"id": 1, "fields": ["title", 3]}, "fields[1]"),
    ],
)
async def test_invalid_params_are_rejected_before_any_cache_work(
    params: dict[str, Any], param: str
) -> None:
    tools = Tools()
    async with open_runtime(tools.registry, ops_defaults()) as rt:
        with pytest.raises(InvalidParams) as caught:
            await rt.execute("TICKET", "read", params, CTX)
        assert caught.value.param == param
        assert (caught.value.tool_type, caught.value.operation) == ("TICKET", "read")
        assert tools.seen == []
        assert await misses(rt) == 0  # the cache was never asked
        assert rt.cache is not None
        assert (await rt.cache.stats()).snapshot.in_flight == 0
        # the runtime stays usable, and the rejection is traced as one
        assert await rt.execute("TICKET", "read", {"id": 1}, CTX) == {"id": 1, "fields": ["title"]}
        assert rt.tracer is not None
        records = await rt.tracer.records()
        assert [(r.status, r.error_type) for r in records] == [
            ("rejected", "InvalidParams"),
            ("ok", None),
        ]


async def test_the_tool_gets_defaults_filled_in_and_a_fresh_dict() -> None:
    tools = Tools()
    params = {"id": 5}
    async with open_runtime(tools.registry, ops_defaults()) as rt:
        assert await rt.execute("TICKET", "read", params, CTX) == {"id": 5, "fields": ["title"]}
    [(_, seen)] = tools.seen
    assert seen == {"id": 5, "fields": ["title"]}
    assert params == {"id": 5}


async def test_a_tool_without_schema_gets_the_callers_params_untouched() -> None:
    tools = Tools()
    params = {"anything": object()}
    async with open_runtime(tools.registry, ops_defaults()) as rt:
        await rt.execute("FREE", "echo", params, CTX)
    [(_, seen)] = tools.seen
    assert seen is params


async def test_a_validator_alone_is_enforced_on_every_call() -> None:
    tools = Tools()
    async with open_runtime(tools.registry, ops_defaults()) as rt:
        with pytest.raises(InvalidParams, match="channel"):
            await rt.execute("NOTIFY", "send", {"text": "hi"}, CTX)
        assert await misses(rt) == 0
        assert await rt.execute("NOTIFY", "send", {"channel": "#ops"}, CTX) == "sent"
    assert tools.ran("send") == 1


async def test_a_call_and_its_default_filled_twin_share_one_entry() -> None:
    tools = Tools()
    async with open_runtime(tools.registry, ops_defaults()) as rt:
        assert rt.cache is not None
        first = await rt.execute("CI", "search", SHORT, CTX)
        second = await rt.execute("CI", "search", LONG, CTX)
        assert first == second
        assert tools.ran("search") == 1
        spec = rt.registry.get("CI", "search")
        assert rt.cache.key_for(spec, SHORT, CTX) == rt.cache.key_for(spec, LONG, CTX)
        assert await rt.cache.contains(spec, LONG, CTX)
        assert rt.cache.key_for(spec, {"bogus": 1}, CTX) is None
        assert not await rt.cache.contains(spec, {"bogus": 1}, CTX)
        # invalidating by either form drops the one entry
        assert await rt.cache.invalidate("CI", "search", LONG, CTX) == 1
        assert not await rt.cache.contains(spec, SHORT, CTX)
        with pytest.raises(InvalidParams, match="bogus"):
            await rt.cache.invalidate("CI", "search", {"bogus": 1}, CTX)


async def test_ops_search_and_its_default_filled_twin_run_once(registry: ToolRegistry) -> None:
    async with open_runtime(registry, ops_defaults()) as rt:
        assert rt.cache is not None
        first = await rt.execute("CI", "search", SHORT, CTX)
        second = await rt.execute("CI", "search", LONG, CTX)
        assert first == second
        stats = (await rt.cache.stats()).snapshot.store.by_operation[("CI", "search")]
        assert (stats.misses, stats.hits, stats.fills) == (1, 1, 1)


async def test_pipeline_steps_are_checked_before_the_tool_runs() -> None:
    tools = Tools()
    pipeline = Pipeline("p", [Step("a", "TICKET", "read", {"id": 1, "colour": "red"})])
    async with open_runtime(tools.registry, ops_defaults()) as rt:
        with pytest.raises(PipelineError) as caught:
            await rt.compose(pipeline, {}, CTX)
        assert isinstance(caught.value.__cause__, InvalidParams)
        assert caught.value.__cause__.param == "colour"
    assert tools.seen == []


async def test_execute_best_skips_candidates_whose_schema_rejects_the_params() -> None:
    registry = ToolRegistry()
    ran: Counter[str] = Counter()

    @registry.tool("CI", "get", params_schema=TICKET)
    async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        ran["get"] += 1
        return "get"

    @registry.tool("CI", "search")
    async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        ran["search"] += 1
        return "search"

    async with open_runtime(registry, ops_defaults()) as rt:
        for _ in range(3):
            best = await rt.execute_best("LOOKUP", {"keywords": ["db"]}, CTX)
            assert best.data == "search"
            assert [(t, o, type(e)) for t, o, e in best.skipped] == [("CI", "get", InvalidParams)]
    assert ran == {"search": 1}  # then cache hits; the rejecting tool never ran


async def test_the_shared_tier_keeps_one_entry_for_both_forms(redis_server: RedisServer) -> None:
    config = RuntimeConfig(
        cache=CacheConfig(redis=RedisConfig(url=redis_server.url, op_timeout=1.0))
    )
    first, second = Tools(), Tools()
    async with open_runtime(first.registry, config) as rt:
        await rt.execute("CI", "search", SHORT, CTX)
    async with open_runtime(second.registry, config) as rt:  # a fresh L1: only Redis knows
        await rt.execute("CI", "search", LONG, CTX)
        assert rt.cache is not None
        assert (await rt.cache.stats()).l2_hits == 1
    assert (first.ran("search"), second.ran("search")) == (1, 0)
