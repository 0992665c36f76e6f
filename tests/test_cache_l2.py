"""The two-tier cache through the runtime: L1 in process, L2 in a real (shared) redis-server.

Every async test runs on asyncio and on trio against its own redis-server on a unix socket
(tests/redis_server.py), in real time, bounded by ``fail_after``.  "Another replica" is a
second runtime (a fresh L1) sharing the Redis, or a second OS process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import coredis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis_server import RedisServer, redis_server

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.cache.keys import CacheKey
from runtime.cache.redis import Hit as SharedHit
from runtime.cache.service import ResultCacheService, from_shared, to_shared
from runtime.config import CacheConfig, RedisConfig, RuntimeConfig, config_from_dict
from runtime.errors import ConfigError
from runtime.runtime import Runtime
from runtime.tools import ToolResult

__all__ = ["redis_server"]  # the fixture, re-exported so pytest finds it here

pytestmark = pytest.mark.anyio

ACME = ToolContext(tenant_id="acme")
GLOBEX = ToolContext(tenant_id="globex")
SECRET = "l2-secret-l2-secret"
LIMIT = 15.0  # generous bound; each test takes well under a second (the process test ~2 s)
ROOT = Path(__file__).resolve().parent.parent


class Tools:
    """Counting tools for one replica; ``gate`` holds CI.get until the test opens it."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.gate = anyio.Event()
        self.gate.set()
        self.registry = ToolRegistry()
        reg = self.registry

        @reg.tool("CI", "search")
        async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.calls["search"] += 1
            return {"records": [{"tenant": ctx.tenant_id, "q": params.get("q")}], "total": 1}

        @reg.tool("CI", "get")
        async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.calls["get"] += 1
            await self.gate.wait()
            return {"record": {"ci_id": params["ci_id"]}}

        @reg.tool("METRIC", "series")
        async def series(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.calls["series"] += 1
            return ToolResult(True, [1.5, 2.5], warnings=("sparse",), metadata={"unit": "%"})

        @reg.tool("METRIC", "aggregate")
        async def aggregate(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.calls["aggregate"] += 1
            return {"pair": (1, 2)}  # a tuple: JSON would give back a list

        @reg.tool("CEP", "simulate", side_effects=True)
        async def simulate(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.calls["simulate"] += 1
            return {"triggered": False}

        @reg.tool("GRAPH", "expand")
        async def expand(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.calls["expand"] += 1
            return ToolResult.failure("graph store offline", "GraphOffline")


def l2_config(server: RedisServer, **redis: Any) -> RuntimeConfig:
    settings: dict[str, Any] = {
        "url": server.url,
        "op_timeout": 1.0,  # generous: a loaded CI box must not trip the breaker
        "failure_threshold": 2,
        "backoff_initial": 0.05,
        "backoff_max": 0.2,
        "generation_cache": 0.0,  # see other replicas' invalidations at once
    }
    settings.update(redis)
    return RuntimeConfig(cache=CacheConfig(redis=RedisConfig(**settings)))


@asynccontextmanager
async def replica(
    server: RedisServer, **redis: Any
) -> AsyncIterator[tuple[Runtime, Tools, ResultCacheService]]:
    tools = Tools()
    async with open_runtime(tools.registry, l2_config(server, **redis)) as rt:
        assert rt.cache is not None
        assert rt._cache.l2 is not None
        yield rt, tools, rt._cache


def cache_key(rt: Runtime, tool: str, op: str, params: Mapping[str, Any], ctx: ToolContext) -> Any:
    assert rt.cache is not None
    key = rt.cache.key_for(rt.registry.get(tool, op), params, ctx)
    assert isinstance(key, CacheKey)
    return key


@asynccontextmanager
async def raw_client(server: RedisServer) -> AsyncIterator[coredis.Redis[bytes]]:
    client: coredis.Redis[bytes] = coredis.Redis.from_url(server.url)
    async with client:
        yield client


# -- the JSON form (pure) -----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(
    data=json_values,
    warnings=st.lists(st.text(), max_size=3),
    metadata=st.dictionaries(st.text(), json_values, max_size=3),
)
def test_shared_form_round_trips_a_successful_result(
    data: Any, warnings: list[str], metadata: dict[str, Any]
) -> None:
    result = ToolResult(True, data, warnings=tuple(warnings), metadata=metadata)
    shared = to_shared(result)
    assert json.loads(json.dumps(shared)) == shared  # plain JSON on the wire
    assert from_shared(json.loads(json.dumps(shared))) == result


@given(
    st.one_of(
        json_values,
        st.dictionaries(
            st.sampled_from(["data", "warnings", "metadata", "extra"]), json_values, max_size=4
        ),
    )
)
def test_shared_form_refuses_any_other_shape(value: Any) -> None:
    ok = (
        isinstance(value, dict)
        and set(value) == {"data", "warnings", "metadata"}
        and isinstance(value["warnings"], list)
        and all(isinstance(w, str) for w in value["warnings"])
        and isinstance(value["metadata"], dict)
    )
    decoded = from_shared(value)
    assert (decoded is not None) == ok
    if decoded is not None:
        assert decoded.success
        assert decoded.data == value["data"]


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "path", "problem"),
    [
        ({"url": "http://cache:6379"}, "cache.redis.url", "scheme"),
        ({"url": "unix://"}, "cache.redis.url", "socket path"),
        ({"secret": "too-short"}, "cache.redis.secret", "16 characters"),
        ({"op_timeout": 0}, "cache.redis.op_timeout", "positive"),
        ({"backoff_initial": "2s", "backoff_max": "1s"}, "cache.redis.backoff_max", "below"),
        ({"key_prefix": "has space"}, "cache.redis.key_prefix", "printable"),
        ({"max_connections": 0}, "cache.redis.max_connections", "positive"),
    ],
)
def test_bad_redis_section_fails_at_load_naming_the_key(
    section: dict[str, Any], path: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"cache": {"redis": section}})
    assert caught.value.path == path
    assert problem in caught.value.problem


def test_good_redis_section_loads() -> None:
    config = config_from_dict(
        {"cache": {"redis": {"url": "unix:///run/r.sock", "secret": SECRET, "op_timeout": "20ms"}}}
    )
    assert config.cache.redis is not None
    assert (config.cache.redis.op_timeout, config.cache.redis.secret) == (0.02, SECRET)


# -- sharing between replicas ---------------------------------------------------------------


async def test_second_replica_gets_an_l2_hit_without_running_the_tool(
    redis_server: RedisServer,
) -> None:
    params = {"q": "db"}
    with anyio.fail_after(LIMIT):
        async with replica(redis_server) as (rt, tools, cache):
            first = await rt.execute("CI", "search", params, ACME)
            assert tools.calls["search"] == 1
            assert (await cache.stats()).l2_hits == 0
        async with replica(redis_server) as (rt2, tools2, cache2):
            second = await rt2.execute_result("CI", "search", params, ACME)
            again = await rt2.execute("CI", "search", params, ACME)  # now from L1
            stats = await cache2.stats()
    assert tools2.calls["search"] == 0
    assert second.success
    assert second.data == first == again
    assert stats.l2_hits == 1
    assert stats.l2 is not None
    assert stats.l2.hits == 1
    counters = stats.snapshot.store.by_operation[("CI", "search")]
    assert (counters.misses, counters.hits) == (1, 1)  # the L2 hit was an L1 miss
    assert counters.misses - counters.coalesced - stats.l2_hits == tools2.calls["search"]
    figures = stats.to_dict()["l2"]
    assert (figures["hits"], figures["errors"], figures["circuit"]) == (1, 0, "closed")


async def test_warnings_and_metadata_survive_the_shared_tier(redis_server: RedisServer) -> None:
    with anyio.fail_after(LIMIT):
        async with replica(redis_server) as (rt, _, _):
            original = await rt.execute_result("METRIC", "series", {"ci_id": 1}, ACME)
        async with replica(redis_server) as (rt2, tools2, _):
            shared = await rt2.execute_result("METRIC", "series", {"ci_id": 1}, ACME)
    assert tools2.calls["series"] == 0
    assert (
        shared
        == original
        == ToolResult(True, [1.5, 2.5], warnings=("sparse",), metadata={"unit": "%"})
    )


async def test_a_stampede_on_the_second_replica_costs_one_l2_lookup(
    redis_server: RedisServer,
) -> None:
    with anyio.fail_after(LIMIT):
        async with replica(redis_server) as (rt, tools, _):
            await rt.execute("CI", "get", {"ci_id": 9}, ACME)
        async with replica(redis_server) as (rt2, tools2, cache2):
            results: list[Any] = []

            async def ask() -> None:
                results.append(await rt2.execute("CI", "get", {"ci_id": 9}, ACME))

            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(ask)
            stats = await cache2.stats()
    assert tools.calls["get"] == 1
    assert tools2.calls["get"] == 0
    assert results == [{"record": {"ci_id": 9}}] * 50
    assert stats.l2 is not None
    assert (stats.l2.hits, stats.l2.misses) == (1, 0)  # one GET, by the leader
    assert stats.l2_hits == 1
    counters = stats.snapshot.store.by_operation[("CI", "get")]
    assert counters.hits + counters.coalesced + stats.l2_hits == 50


_REPLICA_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import anyio
    from runtime import ToolContext, ToolRegistry, open_runtime
    from runtime.config import CacheConfig, RedisConfig, RuntimeConfig

    executions = 0
    registry = ToolRegistry()

    @registry.tool("CI", "search")
    async def search(ctx, params):
        global executions
        executions += 1
        return {"records": [{"q": params["q"], "by": sys.argv[2]}]}

    async def main():
        redis = RedisConfig(url=sys.argv[1], secret=sys.argv[3], op_timeout=1.0)
        config = RuntimeConfig(cache=CacheConfig(redis=redis))
        async with open_runtime(registry, config) as rt:
            data = await rt.execute("CI", "search", {"q": "web"}, ToolContext("acme"))
            stats = await rt.cache.stats()
        print(json.dumps({"data": data, "executions": executions, "l2_hits": stats.l2_hits}))

    anyio.run(main, backend=sys.argv[4])
    """
)


async def test_two_processes_share_one_redis(redis_server: RedisServer, tmp_path: Path) -> None:
    script = tmp_path / "replica.py"
    script.write_text(_REPLICA_SCRIPT)

    async def run(name: str, backend: str) -> dict[str, Any]:
        done = await anyio.run_process(
            [sys.executable, str(script), redis_server.url, name, SECRET, backend],
            check=False,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        output = done.stdout.decode()
        assert done.returncode == 0, output
        answer: dict[str, Any] = json.loads(output.strip().splitlines()[-1])
        return answer

    with anyio.fail_after(60):
        first = await run("first", "trio")
        second = await run("second", "asyncio")
    assert (first["executions"], first["l2_hits"]) == (1, 0)
    assert (second["executions"], second["l2_hits"]) == (0, 1)
    assert second["data"] == first["data"] == {"records": [{"q": "web", "by": "first"}]}


# -- failure --------------------------------------------------------------------------------


async def test_killed_redis_costs_no_call_and_l2_resumes_after_restart(
    redis_server: RedisServer,
) -> None:
    with anyio.fail_after(LIMIT):
        async with replica(redis_server) as (rt, tools, cache):
            assert await rt.execute("CI", "search", {"q": 0}, ACME)
            redis_server.kill()
            for q in range(1, 21):
                data = await rt.execute("CI", "search", {"q": q}, ACME)
                assert data["records"][0]["q"] == q
            down = await cache.stats()
            assert tools.calls["search"] == 21  # every call answered, by the tool
            assert down.l2 is not None
            assert down.l2.circuit == "open"
            assert down.l2_errors >= 2
            assert down.to_dict()["l2"]["errors"] == down.l2_errors

            redis_server.start()  # empty, on the same socket
            q = 100
            while (await cache.stats()).to_dict()["l2"]["circuit"] != "closed":
                q += 1
                await rt.execute("CI", "search", {"q": q}, ACME)
                await anyio.sleep(0.02)
            await rt.execute("CI", "search", {"q": "after"}, ACME)
            resumed = await cache.stats()
        assert resumed.l2 is not None
        assert resumed.l2.reconnects >= 1
        async with replica(redis_server) as (rt2, tools2, _):
            await rt2.execute("CI", "search", {"q": "after"}, ACME)
    assert tools2.calls["search"] == 0  # written to the restarted Redis, read back


async def test_tampered_or_foreign_values_are_misses_never_errors(
    redis_server: RedisServer,
) -> None:
    params = {"q": "target"}
    forgeries = [
        b"not an envelope at all",
        b"rtc9:u:{}",  # an unknown envelope version
        b"rtc1:u:" + json.dumps(to_shared(ToolResult.ok({"forged": True}))).encode(),  # unsigned
        b"rtc1:s:" + b"0" * 64 + b":" + json.dumps({"data": 1}).encode(),  # bad signature
    ]
    with anyio.fail_after(LIMIT):
        async with replica(redis_server, secret=SECRET) as (rt, _tools, cache):
            location = await cache.l2.redis_key_for(  # type: ignore[union-attr]
                cache_key(rt, "CI", "search", params, ACME)
            )
            assert location is not None
        async with raw_client(redis_server) as raw:
            for forged in forgeries:
                await raw.set(location, forged)
                async with replica(redis_server, secret=SECRET) as (rt2, tools2, cache2):
                    data = await rt2.execute("CI", "search", params, ACME)
                    stats = await cache2.stats()
                assert data == {"records": [{"tenant": "acme", "q": "target"}], "total": 1}
                assert tools2.calls["search"] == 1
                assert stats.l2_hits == 0
                assert stats.l2 is not None
                assert stats.l2.decode_failures + stats.l2.signature_failures == 1
                # The tool's genuine result replaced the forgery.
                assert await raw.get(location) != forged


async def test_a_value_of_a_foreign_shape_is_a_counted_miss(redis_server: RedisServer) -> None:
    params = {"q": "odd"}
    with anyio.fail_after(LIMIT):
        async with replica(redis_server) as (rt, _, cache):
            location = await cache.l2.redis_key_for(  # type: ignore[union-attr]
                cache_key(rt, "CI", "search", params, ACME)
            )
            assert location is not None
        async with raw_client(redis_server) as raw:
            await raw.set(location, b'rtc1:u:["a","list","not","a","result"]', px=30_000)
        async with replica(redis_server) as (rt2, tools2, cache2):
            data = await rt2.execute("CI", "search", params, ACME)
            stats = await cache2.stats()
    assert data["records"][0]["q"] == "odd"
    assert tools2.calls["search"] == 1
    assert (stats.l2_rejected, stats.l2_hits) == (1, 0)
    assert stats.to_dict()["l2"]["rejected"] == 1


# -- what stays out of L2 ---------------------------------------------------------------------


async def test_tenant_isolation_holds_in_l2(redis_server: RedisServer) -> None:
    params = {"q": "shared-looking"}
    with anyio.fail_after(LIMIT):
        async with replica(redis_server, secret=SECRET) as (rt, _, cache):
            await rt.execute("CI", "search", params, ACME)
            acme_at = await cache.l2.redis_key_for(  # type: ignore[union-attr]
                cache_key(rt, "CI", "search", params, ACME)
            )
            globex_at = await cache.l2.redis_key_for(  # type: ignore[union-attr]
                cache_key(rt, "CI", "search", params, GLOBEX)
            )
        assert acme_at is not None
        assert globex_at is not None
        assert acme_at != globex_at
        async with replica(redis_server, secret=SECRET) as (rt2, tools2, _):
            theirs = await rt2.execute("CI", "search", params, GLOBEX)
            assert tools2.calls["search"] == 1  # acme's value did not answer globex
            assert theirs["records"][0]["tenant"] == "globex"
        # Even acme's signed value copied under globex's key is refused.
        async with raw_client(redis_server) as raw:
            stolen = await raw.get(acme_at)
            assert stolen is not None
            await raw.set(globex_at, stolen, px=30_000)
        async with replica(redis_server, secret=SECRET) as (rt3, tools3, cache3):
            mine = await rt3.execute("CI", "search", params, GLOBEX)
            stats = await cache3.stats()
    assert mine["records"][0]["tenant"] == "globex"
    assert tools3.calls["search"] == 1
    assert stats.l2 is not None
    assert stats.l2.signature_failures == 1


async def test_side_effects_failures_and_inexact_values_never_reach_l2(
    redis_server: RedisServer,
) -> None:
    with anyio.fail_after(LIMIT):
        async with replica(redis_server) as (rt, tools, cache):
            for _ in range(2):
                await rt.execute_result("CEP", "simulate", {"rule_id": 1}, ACME)
            failed = await rt.execute_result("GRAPH", "expand", {"ci_id": 1}, ACME)
            assert not failed.success
            assert await rt.execute("METRIC", "aggregate", {}, ACME) == {"pair": (1, 2)}
            assert await rt.execute("METRIC", "aggregate", {}, ACME) == {"pair": (1, 2)}
            stats = await cache.stats()
        assert tools.calls["simulate"] == 2
        assert tools.calls["aggregate"] == 1  # L1 keeps the tuple exactly
        assert stats.l2 is not None
        assert stats.l2.sets == 0
        assert stats.l2.unencodable == 1
        assert stats.l2.misses == 2  # expand and aggregate looked; simulate never did
        async with replica(redis_server) as (rt2, tools2, cache2):
            await rt2.execute_result("CEP", "simulate", {"rule_id": 1}, ACME)
            await rt2.execute_result("GRAPH", "expand", {"ci_id": 1}, ACME)
            assert await rt2.execute("METRIC", "aggregate", {}, ACME) == {"pair": (1, 2)}
            stats2 = await cache2.stats()
    assert (tools2.calls["simulate"], tools2.calls["expand"], tools2.calls["aggregate"]) == (
        1,
        1,
        1,
    )
    assert stats2.l2_hits == 0


# -- invalidation reaches L2 ------------------------------------------------------------------

CALLS: list[tuple[str, str, dict[str, Any], ToolContext]] = [
    ("CI", "search", {"q": 1}, ACME),
    ("CI", "search", {"q": 2}, ACME),
    ("CI", "search", {"q": 1}, GLOBEX),
    ("CI", "get", {"ci_id": 1}, ACME),
    ("METRIC", "series", {"ci_id": 1}, ACME),
]


async def invalidate(cache: ResultCacheService, how: str) -> None:
    if how == "key":
        await cache.invalidate("CI", "search", {"q": 1}, ACME)
    elif how == "tool":
        await cache.invalidate_tool("CI")
    elif how == "operation":
        await cache.invalidate_tool("CI", "search")
    elif how == "tenant":
        await cache.invalidate_tenant("acme")
    elif how == "clear":
        await cache.clear()
    else:  # pragma: no cover
        raise AssertionError(how)


# Which of CALLS each invalidation must remove (by index); the rest must survive in L2.
GONE = {
    "none": set(),
    "key": {0},
    "tool": {0, 1, 2, 3},
    "operation": {0, 1, 2},
    "tenant": {0, 1, 3, 4},
    "clear": {0, 1, 2, 3, 4},
}


@pytest.mark.parametrize("how", list(GONE))
async def test_invalidation_reaches_l2(redis_server: RedisServer, how: str) -> None:
    with anyio.fail_after(LIMIT):
        async with replica(redis_server) as (rt, _, cache):
            for tool, op, params, ctx in CALLS:
                await rt.execute(tool, op, params, ctx)
            if how != "none":
                await invalidate(cache, how)
            stats = await cache.stats()
            assert stats.l2 is not None
            assert stats.l2.pending_invalidations == 0
        async with replica(redis_server) as (rt2, tools2, _):
            ran = set()
            for index, (tool, op, params, ctx) in enumerate(CALLS):
                before = sum(tools2.calls.values())
                await rt2.execute(tool, op, params, ctx)
                if sum(tools2.calls.values()) > before:
                    ran.add(index)
    assert ran == GONE[how]


async def test_a_fill_overtaken_by_an_invalidation_is_not_written_to_l2(
    redis_server: RedisServer,
) -> None:
    with anyio.fail_after(LIMIT):
        async with replica(redis_server) as (rt, tools, cache):
            tools.gate = anyio.Event()
            async with anyio.create_task_group() as tg:
                tg.start_soon(rt.execute, "CI", "get", {"ci_id": 4}, ACME)
                while tools.calls["get"] == 0:
                    await anyio.lowlevel.checkpoint()
                await cache.invalidate_tool("CI")  # while the tool runs
                tools.gate.set()
            stats = await cache.stats()
        assert stats.l2_writes_skipped == 1
        assert stats.l2 is not None
        assert stats.l2.sets == 0
        async with replica(redis_server) as (rt2, tools2, _):
            await rt2.execute("CI", "get", {"ci_id": 4}, ACME)
    assert tools2.calls["get"] == 1


async def test_l1_copy_of_an_l2_hit_expires_with_the_shared_value(
    redis_server: RedisServer,
) -> None:
    short = RuntimeConfig(
        cache=CacheConfig(
            ttl={"CI": {"search": 0.3}},
            redis=RedisConfig(url=redis_server.url, op_timeout=1.0, generation_cache=0),
        )
    )
    with anyio.fail_after(LIMIT):
        first = Tools()
        async with open_runtime(first.registry, short) as rt:
            await rt.execute("CI", "search", {"q": "brief"}, ACME)
        # The second replica's own TTL is the default 300 s; L1 must still drop the copy
        # when the shared value (0.3 s) expires.
        tools2 = Tools()
        async with open_runtime(tools2.registry, l2_config(redis_server)) as rt2:
            await rt2.execute("CI", "search", {"q": "brief"}, ACME)
            assert tools2.calls["search"] == 0
            await anyio.sleep(0.45)
            await rt2.execute("CI", "search", {"q": "brief"}, ACME)
    assert tools2.calls["search"] == 1


async def test_a_tier_hit_carries_the_remaining_ttl(redis_server: RedisServer) -> None:
    with anyio.fail_after(LIMIT):
        async with replica(redis_server) as (rt, _, cache):
            tier = cache.l2
            assert tier is not None
            k = cache_key(rt, "CI", "search", {"q": "ttl"}, ACME)
            assert await tier.set(k, {"v": 1}, ttl_s=30)
            timed = await tier.get(k)
            location = await tier.redis_key_for(k)
            assert location is not None
            async with raw_client(redis_server) as raw:
                await raw.persist(location)  # a value without expiry (not one of ours)
            untimed = await tier.get(k)
    assert isinstance(timed, SharedHit)
    assert timed.ttl_s is not None
    assert 25 < timed.ttl_s <= 30
    assert isinstance(untimed, SharedHit)
    assert untimed.ttl_s is None
