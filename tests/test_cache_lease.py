"""Cross-replica single-flight (runtime/cache/lease.py) against a real redis-server.

"Replicas" here are several runtimes in one process, each with its own L1 and its own
Redis tier, sharing one redis-server on a unix socket; tests/test_cache_lease_replicas.py
does the same with real worker processes.  Every test runs on asyncio and trio, in real
time, bounded by ``fail_after``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import coredis
import pytest
from redis_server import RedisServer, redis_server

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.cache.keys import CacheKey
from runtime.cache.lease import Lease, SharedFlights, lease_key
from runtime.config import CacheConfig, RedisConfig, RuntimeConfig, config_from_dict
from runtime.errors import ConfigError
from runtime.runtime import Runtime
from runtime.tools import ToolResult

__all__ = ["redis_server"]

pytestmark = pytest.mark.anyio

ACME = ToolContext(tenant_id="acme")
GLOBEX = ToolContext(tenant_id="globex")
SECRET = "lease-secret-lease-secret"
LIMIT = 20.0
PREFIX = "runtime"


class Source:
    """The "database" every replica's tool reads; counts executions across replicas."""

    def __init__(self) -> None:
        self.version = 1
        self.runs: Counter[str] = Counter()
        self.started = anyio.Event()
        self.gate = anyio.Event()
        self.gate.set()
        self.fail_next = 0

    def registry(self, name: str) -> ToolRegistry:
        registry = ToolRegistry()

        @registry.tool("CI", "get")
        async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.runs[name] += 1
            version = self.version  # read before the wait: the flight's data is this
            self.started.set()
            await self.gate.wait()
            if self.fail_next:
                self.fail_next -= 1
                return ToolResult.failure("backend hiccup", "Hiccup")
            return {"tenant": ctx.tenant_id, "ci": params["ci_id"], "version": version}

        return registry

    @property
    def executions(self) -> int:
        return sum(self.runs.values())


def config(server: RedisServer, **redis: Any) -> RuntimeConfig:
    settings: dict[str, Any] = {
        "url": server.url,
        "op_timeout": 1.0,
        "failure_threshold": 1,
        "backoff_initial": 0.05,
        "backoff_max": 0.1,
        "generation_cache": 0.0,
        "lease_ttl": 5.0,
        "lease_poll": 0.02,
    }
    settings.update(redis)
    return RuntimeConfig(cache=CacheConfig(redis=RedisConfig(**settings)))


@asynccontextmanager
async def replicas(
    server: RedisServer, source: Source, count: int, **redis: Any
) -> AsyncIterator[list[Runtime]]:
    async with AsyncExitStack() as stack:
        runtimes = [
            await stack.enter_async_context(
                open_runtime(source.registry(f"r{index}"), config(server, **redis))
            )
            for index in range(count)
        ]
        yield runtimes


@asynccontextmanager
async def raw_client(server: RedisServer) -> AsyncIterator[coredis.Redis[bytes]]:
    client: coredis.Redis[bytes] = coredis.Redis.from_url(server.url)
    async with client:
        yield client


async def lease_of(rt: Runtime, ci_id: int, ctx: ToolContext = ACME) -> bytes:
    assert rt.cache is not None
    assert rt._cache.l2 is not None
    key = rt.cache.key_for(rt.registry.get("CI", "get"), {"ci_id": ci_id}, ctx)
    assert isinstance(key, CacheKey)
    location = await rt._cache.l2.redis_key_for(key)
    assert location is not None
    return lease_key(PREFIX, location)


async def ask_all(
    runtimes: list[Runtime], callers: int, ci_id: int, ctx: ToolContext = ACME
) -> list[Any]:
    answers: list[Any] = []

    async def ask(rt: Runtime) -> None:
        answers.append(await rt.execute_result("CI", "get", {"ci_id": ci_id}, ctx))

    async with anyio.create_task_group() as tg:
        for rt in runtimes:
            for _ in range(callers):
                tg.start_soon(ask, rt)
    return answers


async def flights(rt: Runtime) -> dict[str, int]:
    assert rt.cache is not None
    report = await rt.cache.stats()
    assert report.l2_flights is not None
    return dict(report.to_dict()["l2"]["flights"])


# -- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("redis", "path", "words"),
    [
        ({"lease_ttl": 0}, "cache.redis.lease_ttl", "positive"),
        ({"lease_poll": "soon"}, "cache.redis.lease_poll", "soon"),
        ({"lease_ttl": "1s", "lease_poll": "2s"}, "cache.redis.lease_poll", "lease TTL"),
        ({"shared_flight": "yes"}, "cache.redis.shared_flight", "yes"),
    ],
)
def test_bad_flight_settings_name_their_key_path(
    redis: dict[str, Any], path: str, words: str
) -> None:
    with pytest.raises(ConfigError, match=words) as caught:
        config_from_dict({"cache": {"redis": {"url": "redis://127.0.0.1:6379/0", **redis}}})
    assert caught.value.path == path


# -- one execution across replicas ------------------------------------------------------


async def test_replicas_on_one_cold_key_run_the_tool_once(redis_server: RedisServer) -> None:
    source = Source()
    source.gate = anyio.Event()
    with anyio.fail_after(LIMIT):
        async with replicas(redis_server, source, 3) as rts:
            async with anyio.create_task_group() as tg:
                answers: list[Any] = []

                async def run() -> None:
                    answers.extend(await ask_all(rts, 20, ci_id=1))

                tg.start_soon(run)
                await source.started.wait()
                await anyio.sleep(0.2)  # every replica's leader is waiting on the lease
                source.gate.set()
            counts = [await flights(rt) for rt in rts]
    assert source.executions == 1
    assert len(answers) == 60
    assert all(a.success and a.data["version"] == 1 for a in answers)
    assert sum(c["leases"] for c in counts) == 1
    assert sum(c["waits"] for c in counts) == 2
    assert sum(c["shared"] for c in counts) == 2
    assert sum(c["written"] for c in counts) == 1


async def test_without_shared_flight_each_replica_runs_it(redis_server: RedisServer) -> None:
    source = Source()
    source.gate = anyio.Event()
    with anyio.fail_after(LIMIT):
        async with replicas(redis_server, source, 3, shared_flight=False) as rts:
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask_all, rts, 5, 1)
                await source.started.wait()
                await anyio.sleep(0.2)
                source.gate.set()
            assert rts[0].cache is not None
            assert (await rts[0].cache.stats()).l2_flights is None
    assert source.executions == 3


async def test_a_failed_result_is_not_shared_a_waiter_runs_the_tool(
    redis_server: RedisServer,
) -> None:
    source = Source()
    source.gate = anyio.Event()
    source.fail_next = 1
    with anyio.fail_after(LIMIT):
        async with replicas(redis_server, source, 2) as (first, second):
            results: dict[str, ToolResult] = {}

            async def ask(name: str, rt: Runtime) -> None:
                results[name] = await rt.execute_result("CI", "get", {"ci_id": 2}, ACME)

            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, "first", first)
                await source.started.wait()
                tg.start_soon(ask, "second", second)
                await anyio.sleep(0.1)  # the second replica waits on the lease
                assert source.executions == 1
                source.gate.set()
            taken = await flights(second)
    assert not results["first"].success
    assert results["second"].success
    assert source.executions == 2
    assert taken["takeovers"] == 1


async def test_a_cancelled_holder_hands_the_flight_on_at_once(redis_server: RedisServer) -> None:
    source = Source()
    source.gate = anyio.Event()
    # A 60 s lease: only the holder's release lets the waiter in within the limit.
    with anyio.fail_after(LIMIT):
        async with (
            replicas(redis_server, source, 2, lease_ttl=60.0) as (first, second),
            anyio.create_task_group() as tg,
        ):
            holder = anyio.CancelScope()

            async def hold() -> None:
                with holder:
                    await first.execute_result("CI", "get", {"ci_id": 3}, ACME)

            tg.start_soon(hold)
            await source.started.wait()
            answers: list[Any] = []

            async def wait() -> None:
                answers.append(await second.execute_result("CI", "get", {"ci_id": 3}, ACME))

            tg.start_soon(wait)
            await anyio.sleep(0.1)
            holder.cancel()
            await anyio.sleep(0.05)
            source.gate.set()  # the takeover's run may go through
    assert answers[0].success
    assert source.runs == Counter({"r0": 1, "r1": 1})


async def test_invalidation_during_a_flight_is_not_undone_by_its_write(
    redis_server: RedisServer,
) -> None:
    source = Source()
    source.gate = anyio.Event()
    with anyio.fail_after(LIMIT):
        async with replicas(redis_server, source, 3) as (holder, waiter, other):
            during: list[Any] = []
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask_all, [holder], 3, 4)
                await source.started.wait()

                async def wait() -> None:
                    during.extend(await ask_all([waiter], 3, 4))

                tg.start_soon(wait)
                await anyio.sleep(0.1)
                source.version = 2  # the data changes, and a third replica says so
                assert other.cache is not None
                await other.cache.invalidate("CI", "get", {"ci_id": 4}, ACME)
                source.gate.set()
            after = await ask_all([holder, waiter, other], 2, 4)
            refused = await flights(holder)
    assert refused["refused"] == 1
    assert all(a.data["version"] == 2 for a in during)  # the waiter re-ran, fresh
    assert all(a.data["version"] == 2 for a in after)


async def test_a_tool_invalidation_during_a_flight_is_not_undone(
    redis_server: RedisServer,
) -> None:
    source = Source()
    source.gate = anyio.Event()
    with anyio.fail_after(LIMIT):
        async with replicas(redis_server, source, 2) as (holder, other):
            async with anyio.create_task_group() as tg:
                tg.start_soon(ask_all, [holder], 1, 5)
                await source.started.wait()
                source.version = 3
                assert other.cache is not None
                await other.cache.invalidate_tool("CI")
                source.gate.set()
            after = await ask_all([holder, other], 1, 5)
    assert [a.data["version"] for a in after] == [3, 3]


async def test_tenants_are_isolated_across_replicas(redis_server: RedisServer) -> None:
    source = Source()
    with anyio.fail_after(LIMIT):
        async with replicas(redis_server, source, 2, secret=SECRET) as (first, second):
            acme = await first.execute_result("CI", "get", {"ci_id": 6}, ACME)
            globex = await second.execute_result("CI", "get", {"ci_id": 6}, GLOBEX)
            again = await second.execute_result("CI", "get", {"ci_id": 6}, ACME)
    assert (acme.data["tenant"], globex.data["tenant"], again.data["tenant"]) == (
        "acme",
        "globex",
        "acme",
    )
    assert source.executions == 2  # globex ran its own; acme's second replica shared


async def test_a_tampered_value_is_refused_and_the_tool_runs(redis_server: RedisServer) -> None:
    source = Source()
    with anyio.fail_after(LIMIT):
        async with replicas(redis_server, source, 2, secret=SECRET) as (first, second):
            await first.execute_result("CI", "get", {"ci_id": 7}, ACME)
            assert first.cache is not None
            assert first._cache.l2 is not None
            key = first.cache.key_for(first.registry.get("CI", "get"), {"ci_id": 7}, ACME)
            assert isinstance(key, CacheKey)
            location = await first._cache.l2.redis_key_for(key)
            assert location is not None
            async with raw_client(redis_server) as raw:
                stored = await raw.get(location)
                assert stored is not None
                await raw.set(location, stored.replace(b'"version":1', b'"version":9'))
            answer = await second.execute_result("CI", "get", {"ci_id": 7}, ACME)
            assert second.cache is not None
            report = await second.cache.stats()
    assert answer.data["version"] == 1  # computed here, not the forged 9
    assert report.l2 is not None
    assert report.l2.signature_failures == 1
    assert source.executions == 2


# -- leases -----------------------------------------------------------------------------------


async def test_a_lease_is_released_only_by_its_holder(redis_server: RedisServer) -> None:
    source = Source()
    with anyio.fail_after(LIMIT):
        async with (
            replicas(redis_server, source, 2) as (first, second),
            raw_client(redis_server) as raw,
        ):
            assert first.cache is not None
            assert second.cache is not None
            one, two = first._cache.flights, second._cache.flights
            assert isinstance(one, SharedFlights)
            assert isinstance(two, SharedFlights)
            key = first.cache.key_for(first.registry.get("CI", "get"), {"ci_id": 8}, ACME)
            assert isinstance(key, CacheKey)
            held = await one.claim(key)
            assert isinstance(held, Lease)
            name = await lease_of(first, 8)
            impostor = Lease(held.location, "not-the-token", held.generations, held.key_mark)
            await two.release(impostor)
            assert await raw.get(name) == held.token.encode()
            assert await two.publish(key, impostor, {"x": 1}, 60) == "lease_lost"
            assert await raw.get(held.location) is None
            await one.release(held)
            assert await raw.get(name) is None


async def test_a_lease_that_never_expires_is_given_up_after_the_ttl(
    redis_server: RedisServer,
) -> None:
    source = Source()
    with anyio.fail_after(LIMIT):
        async with (
            replicas(redis_server, source, 1, lease_ttl=0.3) as (rt,),
            raw_client(redis_server) as raw,
        ):
            await raw.set(await lease_of(rt, 9), b"foreign")  # no PX: it would never expire
            started = anyio.current_time()
            answer = await rt.execute_result("CI", "get", {"ci_id": 9}, ACME)
            waited = anyio.current_time() - started
            counts = await flights(rt)
    assert answer.success
    assert counts["fallbacks"] == 1
    assert waited >= 0.3  # it did wait for the lease's TTL first


async def test_a_hung_redis_mid_flight_sends_waiters_to_run_locally(
    redis_server: RedisServer,
) -> None:
    source = Source()
    source.gate = anyio.Event()
    with anyio.fail_after(LIMIT):
        async with replicas(redis_server, source, 2, op_timeout=0.1, lease_ttl=30.0) as rts:
            first, second = rts
            answers: list[Any] = []
            async with anyio.create_task_group() as tg:

                async def hold() -> None:
                    answers.append(await first.execute_result("CI", "get", {"ci_id": 10}, ACME))

                tg.start_soon(hold)
                await source.started.wait()

                async def wait() -> None:
                    answers.append(await second.execute_result("CI", "get", {"ci_id": 10}, ACME))

                tg.start_soon(wait)
                await anyio.sleep(0.1)  # second is polling the lease
                redis_server.pause()
                try:
                    with anyio.fail_after(5):  # falls back long before the 30 s lease
                        while source.runs["r1"] == 0:
                            await anyio.sleep(0.01)
                    source.gate.set()
                finally:
                    redis_server.resume()
            await anyio.sleep(0.15)  # past the breaker's backoff
            fresh = await ask_all(rts, 3, 11)
            counts = await flights(second)
    assert len(answers) == 2
    assert all(a.success for a in answers)
    assert counts["fallbacks"] >= 1
    assert all(a.success for a in fresh)
    assert source.runs["r0"] + source.runs["r1"] == 3  # 2 for ci 10, 1 shared for ci 11


async def test_a_waiter_cancelled_mid_wait_hands_the_wait_to_its_followers(
    redis_server: RedisServer,
) -> None:
    source = Source()
    source.gate = anyio.Event()
    with anyio.fail_after(LIMIT):
        async with (
            replicas(redis_server, source, 2) as (holder, waiter),
            anyio.create_task_group() as tg,
        ):
            tg.start_soon(ask_all, [holder], 1, 12)
            await source.started.wait()
            leader = anyio.CancelScope()
            answers: list[Any] = []

            async def lead() -> None:
                with leader:
                    await waiter.execute_result("CI", "get", {"ci_id": 12}, ACME)

            async def follow() -> None:
                answers.append(await waiter.execute_result("CI", "get", {"ci_id": 12}, ACME))

            tg.start_soon(lead)
            await anyio.sleep(0.05)  # the replica's L1 leader is polling the lease
            tg.start_soon(follow)
            await anyio.sleep(0.05)
            leader.cancel()
            await anyio.sleep(0.05)
            source.gate.set()
    assert leader.cancelled_caught
    assert answers[0].success
    assert source.executions == 1  # the follower took the wait over, not the tool
