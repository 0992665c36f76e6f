"""``cache.policy`` through the runtime: W-TinyLFU keeps a popular answer through a scan
that flushes LRU, and the admission counts reach ``runtime.cache.stats()``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.config import CacheConfig, RuntimeConfig

pytestmark = pytest.mark.anyio

ACME = ToolContext(tenant_id="acme")


def counting_registry(calls: Counter[Any]) -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool("CI", "get")
    async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        calls[params["ci_id"]] += 1
        return {"ci_id": params["ci_id"]}

    @registry.tool("METRIC", "series")
    async def series(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        calls[("scan", params["i"])] += 1
        return []

    return registry


async def popular_then_scan(policy: str) -> tuple[int, dict[str, Any]]:
    """Ask for 4 CIs often, sweep 100 one-off series, ask for the 4 again: tool runs."""
    calls: Counter[Any] = Counter()
    config = RuntimeConfig(cache=CacheConfig(max_entries=10, policy=policy))  # type: ignore[arg-type]
    async with open_runtime(counting_registry(calls), config) as rt:
        for _ in range(5):
            for ci_id in range(4):
                await rt.execute("CI", "get", {"ci_id": ci_id}, ACME)
        for i in range(100):
            await rt.execute("METRIC", "series", {"i": i}, ACME)
        for ci_id in range(4):
            await rt.execute("CI", "get", {"ci_id": ci_id}, ACME)
        assert rt.cache is not None
        report = (await rt.cache.stats()).to_dict()
    return sum(calls[ci_id] for ci_id in range(4)), report


async def test_tinylfu_keeps_popular_answers_through_a_scan_that_flushes_lru() -> None:
    tinylfu_runs, tinylfu = await popular_then_scan("tinylfu")
    lru_runs, lru = await popular_then_scan("lru")
    assert tinylfu_runs == 4  # once each, before the scan; the scan did not displace them
    assert lru_runs == 8  # the scan flushed them: once more each
    assert (tinylfu["policy"], lru["policy"]) == ("tinylfu", "lru")
    series = tinylfu["by_operation"]["METRIC.series"]
    assert series["rejected_by_frequency"] > 90  # one-off answers lost to popular ones
    assert series["evictions"] >= series["rejected_by_frequency"]
    assert tinylfu["by_operation"]["CI.get"]["admitted"] >= 1
    assert lru["total"]["admitted"] == lru["total"]["rejected_by_frequency"] == 0
