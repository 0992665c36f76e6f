"""The cache through the runtime: single-flight, failures, cancellation, tenants, TTLs."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from runtime import ToolContext, ToolExecutionError, ToolRegistry, apply_preset, open_runtime
from runtime.config import CacheConfig, RuntimeConfig
from runtime.ops.preset import OPS_PRESET
from runtime.tools import ToolResult

pytestmark = pytest.mark.anyio

ACME = ToolContext(tenant_id="acme")
GLOBEX = ToolContext(tenant_id="globex")


class Tools:
    """Counting tools; ``gate`` holds the slow tool until the test opens it."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.gate = anyio.Event()
        self.fail_next = 0
        self.registry = ToolRegistry()
        reg = self.registry

        @reg.tool("CI", "search")
        async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.calls["search"] += 1
            return {"records": [{"ci_id": 1, "tenant": ctx.tenant_id}], "q": params.get("q")}

        @reg.tool("CI", "get")
        async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.calls["get"] += 1
            await self.gate.wait()
            if self.fail_next:
                self.fail_next -= 1
                raise RuntimeError("database went away")
            return {"record": {"ci_id": params["ci_id"]}}

        @reg.tool("METRIC", "series")
        async def series(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.calls["series"] += 1
            return []

        @reg.tool("CEP", "simulate", side_effects=True)
        async def simulate(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.calls["simulate"] += 1
            return {"triggered": False}

        @reg.tool("GRAPH", "expand")
        async def expand(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.calls["expand"] += 1
            return ToolResult.failure("graph store offline", "GraphOffline")


async def wait_for(predicate: Any) -> None:
    while not predicate():
        await anyio.lowlevel.checkpoint()


async def test_thousand_concurrent_identical_misses_run_the_tool_once() -> None:
    tools = Tools()
    results: list[Any] = []
    with anyio.fail_after(20):
        async with open_runtime(tools.registry) as rt, anyio.create_task_group() as tg:

            async def ask() -> None:
                results.append(await rt.execute("CI", "get", {"ci_id": 7}, ACME))

            for _ in range(1000):
                tg.start_soon(ask)
            await wait_for(lambda: tools.calls["get"] == 1)
            await anyio.wait_all_tasks_blocked()
            tools.gate.set()
    assert tools.calls["get"] == 1
    assert len(results) == 1000
    assert all(r == {"record": {"ci_id": 7}} for r in results)


async def test_stampede_statistics_add_up() -> None:
    tools = Tools()
    with anyio.fail_after(20):
        async with open_runtime(tools.registry) as rt:
            async with anyio.create_task_group() as tg:
                for _ in range(50):
                    tg.start_soon(rt.execute, "CI", "get", {"ci_id": 1}, ACME)
                await wait_for(lambda: tools.calls["get"] == 1)
                await anyio.wait_all_tasks_blocked()
                tools.gate.set()
            await rt.execute("CI", "get", {"ci_id": 1}, ACME)
            assert rt.cache is not None
            stats = await rt.cache.stats()
    counters = stats.snapshot.store.by_operation[("CI", "get")]
    assert counters.misses - counters.coalesced == tools.calls["get"] == 1
    assert counters.coalesced == 49
    assert counters.hits == 1
    assert stats.snapshot.in_flight == 0
    assert stats.snapshot.waiting_followers == 0


async def test_leader_failure_reaches_every_follower_and_is_not_cached() -> None:
    tools = Tools()
    tools.fail_next = 1
    errors: list[BaseException] = []
    with anyio.fail_after(20):
        async with open_runtime(tools.registry) as rt:

            async def ask() -> None:
                try:
                    await rt.execute("CI", "get", {"ci_id": 3}, ACME)
                except ToolExecutionError as exc:
                    errors.append(exc)

            async with anyio.create_task_group() as tg:
                for _ in range(20):
                    tg.start_soon(ask)
                await wait_for(lambda: tools.calls["get"] == 1)
                await anyio.wait_all_tasks_blocked()
                tools.gate.set()
            assert len(errors) == 20
            assert {e.error_type for e in errors} == {"RuntimeError"}  # type: ignore[attr-defined]
            # Nothing was cached: the next call executes again, and succeeds.
            assert await rt.execute("CI", "get", {"ci_id": 3}, ACME) == {"record": {"ci_id": 3}}
    assert tools.calls["get"] == 2


async def test_failed_results_are_never_cached() -> None:
    tools = Tools()
    async with open_runtime(tools.registry) as rt:
        for _ in range(3):
            result = await rt.execute_result("GRAPH", "expand", {"ci_id": 1}, ACME)
            assert result.error_type == "GraphOffline"
    assert tools.calls["expand"] == 3


async def test_cancelled_leader_hands_over_to_a_follower_and_nobody_hangs() -> None:
    tools = Tools()
    answers: list[Any] = []
    with anyio.fail_after(20):
        async with open_runtime(tools.registry) as rt, anyio.create_task_group() as tg:
            leader_scope = anyio.CancelScope()

            async def leader() -> None:
                with leader_scope:
                    await rt.execute("CI", "get", {"ci_id": 9}, ACME)

            async def follower() -> None:
                answers.append(await rt.execute("CI", "get", {"ci_id": 9}, ACME))

            tg.start_soon(leader)
            await wait_for(lambda: tools.calls["get"] == 1)
            for _ in range(5):
                tg.start_soon(follower)
            await anyio.wait_all_tasks_blocked()
            leader_scope.cancel()
            await wait_for(lambda: tools.calls["get"] == 2)  # a follower took over
            tools.gate.set()
    assert answers == [{"record": {"ci_id": 9}}] * 5
    assert tools.calls["get"] == 2


async def test_cancelled_followers_do_not_disturb_the_others() -> None:
    tools = Tools()
    answers: list[Any] = []
    with anyio.fail_after(20):
        async with open_runtime(tools.registry) as rt, anyio.create_task_group() as tg:
            scopes = [anyio.CancelScope() for _ in range(5)]

            async def ask(scope: anyio.CancelScope) -> None:
                with scope:
                    answers.append(await rt.execute("CI", "get", {"ci_id": 4}, ACME))

            for scope in scopes:
                tg.start_soon(ask, scope)
            await wait_for(lambda: tools.calls["get"] == 1)
            await anyio.wait_all_tasks_blocked()
            for scope in scopes[1:4]:  # followers only (the leader is one of the five)
                scope.cancel()
            await anyio.wait_all_tasks_blocked()
            tools.gate.set()
    assert tools.calls["get"] <= 2
    assert len(answers) >= 1
    assert all(a == {"record": {"ci_id": 4}} for a in answers)


async def test_a_cancelled_caller_gets_no_hit_and_is_not_counted() -> None:
    tools = Tools()
    async with open_runtime(tools.registry) as rt:
        assert rt.cache is not None
        await rt.execute("CI", "search", {"q": "x"}, ACME)
        served = False
        with anyio.CancelScope() as scope:
            scope.cancel()
            await rt.execute("CI", "search", {"q": "x"}, ACME)  # a hit, which never yields
            served = True
        assert scope.cancelled_caught
        assert not served
        counters = (await rt.cache.stats()).snapshot.store.by_operation[("CI", "search")]
        assert (counters.hits, counters.misses) == (0, 1)
        assert await rt.execute("CI", "search", {"q": "x"}, ACME) == {
            "records": [{"ci_id": 1, "tenant": "acme"}],
            "q": "x",
        }
    assert tools.calls["search"] == 1


async def test_tenants_never_share_entries() -> None:
    tools = Tools()
    async with open_runtime(tools.registry) as rt:
        a = await rt.execute("CI", "search", {"q": "db"}, ACME)
        b = await rt.execute("CI", "search", {"q": "db"}, GLOBEX)
        a2 = await rt.execute("CI", "search", {"q": "db"}, ACME)
    assert tools.calls["search"] == 2
    assert a["records"][0]["tenant"] == "acme"
    assert b["records"][0]["tenant"] == "globex"
    assert a2 == a


async def test_a_callers_mutation_never_reaches_the_next_caller() -> None:
    tools = Tools()
    async with open_runtime(tools.registry) as rt:
        first = await rt.execute("CI", "search", {"q": "x"}, ACME)
        first["records"].append("poison")
        first["q"] = "changed"
        second = await rt.execute("CI", "search", {"q": "x"}, ACME)
        second["records"][0]["ci_id"] = 999
        third = await rt.execute("CI", "search", {"q": "x"}, ACME)
    assert tools.calls["search"] == 1
    assert third == {"records": [{"ci_id": 1, "tenant": "acme"}], "q": "x"}


async def test_empty_results_are_cached_answers() -> None:
    tools = Tools()
    async with open_runtime(tools.registry) as rt:
        assert await rt.execute("METRIC", "series", {"ci_id": 1}, ACME) == []
        assert await rt.execute("METRIC", "series", {"ci_id": 1}, ACME) == []
    assert tools.calls["series"] == 1


async def test_volatile_params_do_not_split_entries() -> None:
    tools = Tools()
    async with open_runtime(tools.registry) as rt:
        await rt.execute("CI", "search", {"q": "x", "request_id": "r1"}, ACME)
        await rt.execute("CI", "search", {"q": "x", "request_id": "r2", "trace_id": "t"}, ACME)
    assert tools.calls["search"] == 1


async def test_uncacheable_params_bypass_and_are_counted() -> None:
    tools = Tools()
    async with open_runtime(tools.registry) as rt:
        await rt.execute("CI", "search", {"q": float("nan")}, ACME)
        await rt.execute("CI", "search", {"q": {1, 2}}, ACME)
        assert rt.cache is not None
        stats = await rt.cache.stats()
    assert tools.calls["search"] == 2
    assert stats.snapshot.store.by_operation[("CI", "search")].bypasses == 2


async def test_side_effects_are_never_cached() -> None:
    tools = Tools()
    async with open_runtime(tools.registry) as rt:
        for _ in range(3):
            await rt.execute("CEP", "simulate", {"rule_id": 1}, ACME)
    assert tools.calls["simulate"] == 3


async def test_cep_simulate_stays_uncached_even_with_a_configured_ttl() -> None:
    tools = Tools()
    config = RuntimeConfig(cache=CacheConfig(ttl={"CEP": {"simulate": 600.0}}))
    async with open_runtime(tools.registry, config) as rt:
        for _ in range(2):
            await rt.execute("CEP", "simulate", {"rule_id": 1}, ACME)
    assert tools.calls["simulate"] == 2


@pytest.mark.virtual_time
async def test_entries_are_served_until_their_ttl_and_re_executed_after() -> None:
    tools = Tools()
    given = RuntimeConfig(cache=CacheConfig(ttl={"CI": {"search": 60.0}, "METRIC": {}}))
    config = apply_preset(given, OPS_PRESET)
    async with open_runtime(tools.registry, config) as rt:
        await rt.execute("CI", "search", {"q": "a"}, ACME)
        await anyio.sleep(59.9)
        await rt.execute("CI", "search", {"q": "a"}, ACME)
        assert tools.calls["search"] == 1
        await anyio.sleep(0.2)
        await rt.execute("CI", "search", {"q": "a"}, ACME)
        assert tools.calls["search"] == 2
        # METRIC.series keeps the ops preset's 2 minutes (the original table's).
        await rt.execute("METRIC", "series", {"ci_id": 1}, ACME)
        await anyio.sleep(119)
        await rt.execute("METRIC", "series", {"ci_id": 1}, ACME)
        assert tools.calls["series"] == 1
        await anyio.sleep(2)
        await rt.execute("METRIC", "series", {"ci_id": 1}, ACME)
        assert tools.calls["series"] == 2


async def test_ttl_zero_means_never_cached() -> None:
    tools = Tools()
    config = RuntimeConfig(cache=CacheConfig(ttl={"CI": {"search": 0.0}}))
    async with open_runtime(tools.registry, config) as rt:
        for _ in range(3):
            await rt.execute("CI", "search", {"q": "a"}, ACME)
    assert tools.calls["search"] == 3


async def test_invalidation_by_key_tool_and_tenant_and_clear() -> None:
    tools = Tools()
    async with open_runtime(tools.registry) as rt:
        cache = rt.cache
        assert cache is not None
        for ctx in (ACME, GLOBEX):
            await rt.execute("CI", "search", {"q": "a"}, ctx)
            await rt.execute("CI", "search", {"q": "b"}, ctx)
        assert tools.calls["search"] == 4
        assert await cache.invalidate("CI", "search", {"q": "a"}, ACME) == 1
        await rt.execute("CI", "search", {"q": "a"}, ACME)
        await rt.execute("CI", "search", {"q": "a"}, GLOBEX)
        assert tools.calls["search"] == 5
        assert await cache.invalidate_tenant("globex") == 2
        assert await cache.invalidate_tool("CI", "search") == 2
        assert await cache.clear() == 0
        assert not await cache.contains(rt.registry.get("CI", "search"), {"q": "a"}, ACME)
        await rt.execute("CI", "search", {"q": "a"}, ACME)
        assert await cache.contains(rt.registry.get("CI", "search"), {"q": "a"}, ACME)
    assert tools.calls["search"] == 6


async def test_with_the_cache_disabled_every_call_runs_the_tool() -> None:
    tools = Tools()
    config = RuntimeConfig(cache=CacheConfig(enabled=False))
    async with open_runtime(tools.registry, config) as rt:
        assert rt.cache is None
        for _ in range(3):
            await rt.execute("CI", "search", {"q": "a"}, ACME)
    assert tools.calls["search"] == 3


async def test_load_observers_hear_only_of_calls_that_run_the_tool() -> None:
    from runtime.calls import CallReport, CallStart

    class Recorder:
        def __init__(self) -> None:
            self.starts: list[CallStart] = []
            self.reports: list[CallReport] = []

        def call_started(self, start: CallStart) -> None:
            self.starts.append(start)

        def call_finished(self, report: CallReport) -> None:
            self.reports.append(report)

    tools = Tools()
    recorder = Recorder()
    async with open_runtime(tools.registry, observers=(recorder,)) as rt:
        await rt.execute("CI", "search", {"q": "a"}, ACME)
        await rt.execute("CI", "search", {"q": "a"}, ACME)
        await rt.execute("CEP", "simulate", {"rule_id": 1}, ACME)
    assert [(s.tool_type, s.operation) for s in recorder.starts] == [
        ("CI", "search"),
        ("CEP", "simulate"),
    ]
    assert [(r.operation, r.cache_hit, r.executed) for r in recorder.reports] == [
        ("search", False, True),
        ("search", True, False),
        ("simulate", False, True),
    ]
