"""A stateful test of the cache and the executor against a model, on both backends.

Built on :class:`runtime.testing.RuntimeStateMachine`: one live runtime per example, on
virtual time, driven through a blocking portal.  The model knows every entry (value and
expiry), the virtual clock, and each (tool, operation)'s counters; every answer, every
invalidation count and the cache statistics must match it exactly.  The base class adds
its own invariants after every rule (no leaked waiters, empty single-flight table, stats
that add up, no cross-tenant answer).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any, ClassVar

import anyio
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant, rule

from runtime import RuntimeConfig, ToolContext, ToolRegistry, ToolResult, config_from_dict
from runtime.testing import FaultPlan, RuntimeStateMachine, ScriptedTool, params_key

TTL = 10.0
SLOW = 1.0
TENANTS = st.sampled_from(["t1", "t2"])
KEYS = st.integers(0, 3)


def versioned(context: ToolContext, params: Mapping[str, Any], index: int) -> dict[str, Any]:
    # The call index makes every execution's answer distinct: a stale or foreign hit shows.
    return {"tenant": context.tenant_id, "key": params["k"], "version": index}


class CacheModelMachine(RuntimeStateMachine):
    def make_registry(self) -> ToolRegistry:
        self.get_tool = ScriptedTool(
            "KV", "get", FaultPlan(fail_probability=0.2, seed=3), respond=versioned
        )
        self.slow_tool = ScriptedTool(
            "KV", "slow", FaultPlan(latency=SLOW, fail_probability=0.2, seed=5), respond=versioned
        )
        self.write_tool = ScriptedTool("KV", "write", respond=versioned, side_effects=True)
        registry = ToolRegistry()
        for tool in (self.get_tool, self.slow_tool, self.write_tool):
            tool.register(registry)
        return registry

    def make_config(self) -> RuntimeConfig:
        return config_from_dict({"cache": {"ttl": {"KV": {"get": TTL, "slow": TTL}}}})

    def __init__(self) -> None:
        super().__init__()
        self.start = self.now()
        self.clock = 0.0
        self.entries: dict[tuple[str, str, int], tuple[dict[str, Any], float]] = {}
        self.counts: dict[str, Counter[str]] = {op: Counter() for op in ("get", "slow", "write")}

    # -- the model -----------------------------------------------------------------------

    def live(self, key: tuple[str, str, int]) -> dict[str, Any] | None:
        found = self.entries.get(key)
        if found is None or not self.clock < found[1]:
            return None
        return found[0]

    def predict_execution(self, tool: ScriptedTool, tenant: str, k: int) -> dict[str, Any] | None:
        """The answer the tool's next execution gives (None: it fails)."""
        index = tool.call_count
        if tool.plan.action_for(index, params_key({"k": k})) == "fail":
            return None
        return {"tenant": tenant, "key": k, "version": index}

    # -- rules ----------------------------------------------------------------------------

    @rule(tenant=TENANTS, k=KEYS)
    def get(self, tenant: str, k: int) -> None:
        key = (tenant, "get", k)
        cached = self.live(key)
        expected = (
            cached if cached is not None else self.predict_execution(self.get_tool, tenant, k)
        )
        result = self.execute_result("KV", "get", {"k": k}, tenant)
        if cached is not None:
            self.counts["get"]["hits"] += 1
        else:
            self.counts["get"]["misses"] += 1
            if expected is not None:
                self.entries[key] = (expected, self.clock + TTL)
        check(result, expected)

    @rule(tenant=TENANTS, k=KEYS, callers=st.integers(1, 4))
    def concurrent_slow_calls(self, tenant: str, k: int, callers: int) -> None:
        key = (tenant, "slow", k)
        cached = self.live(key)
        expected = (
            cached if cached is not None else self.predict_execution(self.slow_tool, tenant, k)
        )
        results = self.run(self._burst, ToolContext(tenant), k, callers)
        for result in results:
            if result.success:
                self.check_answer(ToolContext(tenant), result.data)
            check(result, expected)
        if cached is not None:
            self.counts["slow"]["hits"] += callers
            return
        # One leader runs the tool; everyone else follows it.
        self.counts["slow"]["misses"] += callers
        self.counts["slow"]["coalesced"] += callers - 1
        self.clock += SLOW
        if expected is not None:
            self.entries[key] = (expected, self.clock + TTL)

    async def _burst(self, context: ToolContext, k: int, callers: int) -> list[ToolResult]:
        results: list[ToolResult] = []

        async def one() -> None:
            results.append(await self.runtime.execute_result("KV", "slow", {"k": k}, context))

        async with anyio.create_task_group() as group:
            for _ in range(callers):
                group.start_soon(one)
        return results

    @rule(tenant=TENANTS, k=KEYS)
    def write(self, tenant: str, k: int) -> None:
        before = self.write_tool.call_count
        data = self.execute("KV", "write", {"k": k}, tenant)
        assert data == {"tenant": tenant, "key": k, "version": before}  # never cached
        self.counts["write"]["bypasses"] += 1

    @rule(seconds=st.sampled_from([3.0, 7.0, 11.0]))
    def let_time_pass(self, seconds: float) -> None:
        self.advance(seconds)
        self.clock += seconds

    @rule(tenant=TENANTS, k=KEYS)
    def invalidate_key(self, tenant: str, k: int) -> None:
        assert self.runtime.cache is not None
        live = self.live((tenant, "get", k)) is not None
        removed = self.run(
            self.runtime.cache.invalidate, "KV", "get", {"k": k}, ToolContext(tenant)
        )
        assert removed == int(live)
        self.entries.pop((tenant, "get", k), None)

    @rule(tenant=TENANTS)
    def invalidate_tenant(self, tenant: str) -> None:
        assert self.runtime.cache is not None
        doomed = [key for key in self.entries if key[0] == tenant]
        live = sum(1 for key in doomed if self.live(key) is not None)
        assert self.run(self.runtime.cache.invalidate_tenant, tenant) == live
        for key in doomed:
            del self.entries[key]

    @rule()
    def clear(self) -> None:
        assert self.runtime.cache is not None
        live = sum(1 for key in self.entries if self.live(key) is not None)
        assert self.run(self.runtime.cache.clear) == live
        self.entries.clear()

    # -- invariants of the model ------------------------------------------------------------

    @invariant()
    def clock_matches_the_model(self) -> None:
        assert self.now() - self.start == pytest.approx(self.clock, abs=1e-9)

    @invariant()
    def counters_match_the_model(self) -> None:
        by_operation = self.cache_stats().snapshot.store.by_operation
        for op, expected in self.counts.items():
            counters = by_operation.get(("KV", op))
            actual = Counter(
                {
                    name: getattr(counters, name, 0)
                    for name in ("hits", "misses", "coalesced", "bypasses")
                }
                if counters is not None
                else {}
            )
            assert +actual == +expected, (op, actual, expected)


def check(result: ToolResult, expected: dict[str, Any] | None) -> None:
    if expected is None:
        assert not result.success
        assert result.error_type == "ScriptedFailure", result
    else:
        assert result.success, result
        assert result.data == expected


class CacheModelOnTrio(CacheModelMachine):
    backend: ClassVar[str | None] = "trio"


class CacheModelOnAsyncio(CacheModelMachine):
    backend: ClassVar[str | None] = "asyncio"


TestCacheModelOnTrio = CacheModelOnTrio.TestCase
TestCacheModelOnTrio.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
TestCacheModelOnAsyncio = CacheModelOnAsyncio.TestCase
TestCacheModelOnAsyncio.settings = settings(max_examples=25, stateful_step_count=25, deadline=None)
