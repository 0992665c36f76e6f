"""Selection through the runtime: select, execute_best with fallback, learning, cache."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from runtime import (
    AllCandidatesFailed,
    ToolContext,
    ToolRegistry,
    UnknownIntent,
    apply_preset,
    open_runtime,
)
from runtime.config import RuntimeConfig, TracerConfig
from runtime.ops.preset import OPS_PRESET
from runtime.selector import Ranked

pytestmark = pytest.mark.anyio

CTX = ToolContext(tenant_id="acme")


class Tools:
    """CI.search and CI.get stand-ins whose health the test controls."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.failing: set[str] = set()
        self.registry = ToolRegistry()

        @self.registry.tool("CI", "search")
        async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            return self.answer("search", params)

        @self.registry.tool("CI", "get")
        async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            return self.answer("get", params)

    def answer(self, name: str, params: Mapping[str, Any]) -> Any:
        self.calls[name] += 1
        if name in self.failing:
            raise ConnectionError(f"{name} backend down")
        return {"by": name, "q": params.get("q")}


OPS = apply_preset(RuntimeConfig(), OPS_PRESET)


def no_cache() -> RuntimeConfig:
    from runtime.config import CacheConfig

    config = RuntimeConfig(cache=CacheConfig(enabled=False), tracer=TracerConfig(batch_window=0))
    return apply_preset(config, OPS_PRESET)


async def test_select_ranks_the_candidates_with_a_breakdown() -> None:
    tools = Tools()
    async with open_runtime(tools.registry, OPS) as rt:
        ranked = await rt.select("SEARCH")
        assert {r.candidate for r in ranked} == {("CI", "search"), ("CI", "get")}
        assert ranked[0].confidence >= ranked[1].confidence
        assert all(0.0 <= r.confidence <= 1.0 for r in ranked)
        explanation = ranked[0].explain()
        assert explanation["tool_type"] == "CI"
        total = sum(part.contribution for part in ranked[0].breakdown)
        assert total * ranked[0].reliability == pytest.approx(ranked[0].confidence)


async def test_unknown_intent_lists_the_known_ones() -> None:
    tools = Tools()
    async with open_runtime(tools.registry, OPS) as rt:
        with pytest.raises(UnknownIntent, match="known intents: AGGREGATE, ANALYSIS"):
            await rt.select("TELEPATHY")
        with pytest.raises(UnknownIntent):
            await rt.execute_best("TELEPATHY", {}, CTX)


async def test_execute_best_falls_back_and_the_trace_marks_it() -> None:
    tools = Tools()
    async with open_runtime(tools.registry, no_cache()) as rt:
        first, second = (r.operation for r in await rt.select("SEARCH"))
        tools.failing.add(first)
        best = await rt.execute_best("SEARCH", {"q": "db"}, CTX)
        assert best.data == {"by": second, "q": "db"}
        assert best.operation == second
        assert best.fallback_used
        assert [(t, o) for t, o, _ in best.attempts] == [("CI", first)]
        assert isinstance(best.attempts[0][2].__cause__, ConnectionError)
        assert rt.tracer is not None
        await anyio.wait_all_tasks_blocked()
        records = await rt.tracer.records()
        assert [(r.operation, r.status, r.fallback_used) for r in records] == [
            (first, "error", False),
            (second, "ok", True),
        ]
        stats = await rt.tracer.tracer_stats()
        assert stats.tool("CI", second).fallbacks == 1
        # Each attempt's record carries the intent and, as runner-up, the best other
        # candidate that could run.
        assert [(r.selection["intent"], r.selection["runner_up"]) for r in records] == [
            ("SEARCH", f"CI.{second}"),
            ("SEARCH", f"CI.{first}"),
        ]


async def test_execute_best_raises_listing_every_attempt_when_all_fail() -> None:
    tools = Tools()
    tools.failing.update({"search", "get"})
    async with open_runtime(tools.registry, no_cache()) as rt:
        with pytest.raises(AllCandidatesFailed) as caught:
            await rt.execute_best("SEARCH", {"q": "db"}, CTX)
    assert {(t, o) for t, o, _ in caught.value.attempts} == {("CI", "search"), ("CI", "get")}
    assert "CI.search: ConnectionError: search backend down" in str(caught.value)
    assert "CI.get: ConnectionError: get backend down" in str(caught.value)


async def test_a_failing_tool_loses_its_rank_and_regains_it_after_recovery() -> None:
    tools = Tools()
    async with open_runtime(tools.registry, no_cache()) as rt:
        best = (await rt.select("SEARCH"))[0].operation
        tools.failing.add(best)
        for _ in range(6):
            await rt.execute_best("SEARCH", {"q": "x"}, CTX)
            await anyio.wait_all_tasks_blocked()
        assert (await rt.select("SEARCH"))[0].operation != best
        tools.failing.clear()
        for _ in range(30):
            await rt.execute("CI", best, {"q": "probe"}, CTX)
        await anyio.wait_all_tasks_blocked()
        assert rt.selector is not None
        snapshot = {(s.tool_type, s.operation): s for s in await rt.selector.snapshot()}
        assert snapshot[("CI", best)].error_rate < 0.5


async def test_cache_availability_is_a_factor_asked_of_the_cache_by_the_caller() -> None:
    tools = Tools()
    async with open_runtime(tools.registry, OPS) as rt:
        before = {
            r.operation: r.factors.cache for r in await rt.select("SEARCH", {"q": "a"}, context=CTX)
        }
        await rt.execute("CI", "get", {"q": "a"}, CTX)
        after = {
            r.operation: r.factors.cache for r in await rt.select("SEARCH", {"q": "a"}, context=CTX)
        }
    assert before == {"search": 0.0, "get": 0.0}
    assert after == {"search": 0.0, "get": 1.0}


async def test_execute_best_spreads_near_equal_candidates_by_load() -> None:
    """Concurrent callers should not all pile onto one of two equally good tools."""
    registry = ToolRegistry()
    gate = anyio.Event()
    used: Counter[str] = Counter()

    for op in ("series", "aggregate"):

        async def tool(ctx: ToolContext, params: Mapping[str, Any], op: str = op) -> Any:
            used[op] += 1
            await gate.wait()
            return op

        registry.register("METRIC", op, tool)

    async with open_runtime(registry, no_cache()) as rt, anyio.create_task_group() as tg:

        async def ask(i: int) -> None:
            await rt.execute_best("METRIC", {"i": i}, CTX, strategy="LEAST_LOAD")

        for i in range(20):
            tg.start_soon(ask, i)
        await anyio.wait_all_tasks_blocked()
        gate.set()
    assert used["series"] >= 5
    assert used["aggregate"] >= 5


async def test_candidates_that_would_reject_the_params_are_skipped_not_run() -> None:
    from runtime import InvalidParams

    registry = ToolRegistry()
    ran: Counter[str] = Counter()

    def needs_ci_id(params: Mapping[str, Any]) -> None:
        if "ci_id" not in params:
            raise InvalidParams("CI", "get", "ci_id", "is required")

    @registry.tool("CI", "get", validator=needs_ci_id)
    async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        ran["get"] += 1
        return "get"

    @registry.tool("CI", "search")
    async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        ran["search"] += 1
        return "search"

    async with open_runtime(registry, no_cache()) as rt:
        for _ in range(5):
            best = await rt.execute_best("LOOKUP", {"keywords": ["db"]}, CTX)
            assert best.data == "search"
            assert not best.fallback_used
            assert best.attempts == ()
            assert [(t, o, type(e)) for t, o, e in best.skipped] == [("CI", "get", InvalidParams)]
        assert (await rt.execute_best("LOOKUP", {"ci_id": 1}, CTX)).skipped == ()
    assert ran["search"] >= 5
    assert ran["search"] + ran["get"] == 6


async def test_a_hit_settles_the_choice_it_answers_and_other_hits_skip_the_selector() -> None:
    tools = Tools()
    async with open_runtime(tools.registry, OPS) as rt:
        selector = rt._selector
        assert selector is not None
        for op in ("search", "get"):  # fill the cache: from here on, both are hits
            await rt.execute("CI", op, {"q": "a"}, CTX)
        await selector.snapshot()  # the casts before it are handled before it
        before = selector.stats().processed
        for _ in range(20):
            await rt.execute("CI", "get", {"q": "a"}, CTX)
        await selector.snapshot()
        # Hits answering no choice teach nothing and are not even sent: only the snapshot.
        assert selector.stats().processed - before == 1

        def reserved(ranking: list[Ranked], op: str) -> int:
            return next(r.evidence["reserved"] for r in ranking if r.operation == op)

        chosen = await selector.choose("SEARCH")
        assert reserved(await selector.rank("SEARCH"), chosen.operation) == 1
        await rt.execute(chosen.tool_type, chosen.operation, {"q": "a"}, CTX)  # a hit
        assert reserved(await selector.rank("SEARCH"), chosen.operation) == 0
    assert tools.calls == {"search": 1, "get": 1}
