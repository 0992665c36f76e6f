"""Why execute_best chose what it chose: the result, the trace record and every export
carry the winning score's parts and the runner-up."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from typing import Any

import pytest

from runtime import ToolContext, ToolRegistry, apply_preset, open_runtime
from runtime.config import CacheConfig, RuntimeConfig, TracerConfig
from runtime.ops.preset import OPS_PRESET
from runtime.selector.explain import why_line
from runtime.selector.scoring import Factors, Ranked, Weights
from runtime.tracer.export import records_from_json, records_from_jsonl

pytestmark = pytest.mark.anyio

CTX = ToolContext(tenant_id="acme")


def registry(broken: frozenset[str] = frozenset()) -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool("CI", "search")
    async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        if "search" in broken:
            raise ConnectionError("down")
        return {"records": [], "by": "search"}

    @tools.tool("CI", "get")
    async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        if "get" in broken:
            raise ConnectionError("down")
        return {"by": "get"}

    return tools


def config() -> RuntimeConfig:
    plain = RuntimeConfig(cache=CacheConfig(enabled=False), tracer=TracerConfig(batch_window=0))
    return apply_preset(plain, OPS_PRESET)


async def test_execute_best_names_the_runner_up_and_the_parts_of_the_score() -> None:
    async with open_runtime(registry(), config()) as rt:
        ranking = await rt.select("SEARCH")
        best = await rt.execute_best("SEARCH", {"q": "db"}, CTX)
        assert best.runner_up is not None
        assert best.runner_up.candidate != best.chosen.candidate
        assert {best.chosen.candidate, best.runner_up.candidate} == {r.candidate for r in ranking}
        selection = best.selection
        assert selection["intent"] == "SEARCH"
        assert selection["chosen"] == best.chosen.name
        assert selection["runner_up"] == best.runner_up.name
        assert selection["explored"] is False
        assert sum(selection["parts"].values()) * selection["reliability"] == pytest.approx(
            selection["confidence"], abs=1e-5
        )
        assert best.why.startswith(f"{best.chosen.name} {best.chosen.confidence:.2f} (")
        assert best.why.endswith(f"over {best.runner_up.name} {best.runner_up.confidence:.2f}")

        plain = await rt.execute("CI", "get", {"ci_id": 1}, CTX)
        assert plain == {"by": "get"}
        assert rt.tracer is not None
        records = await rt.tracer.records()
        chosen = [r for r in records if r.selection]
        assert len(chosen) == 1
        assert dict(chosen[0].selection) == selection
        assert [r.selection for r in records if not r.selection] == [{}]

        for fmt, read in (("json", records_from_json), ("jsonl", records_from_jsonl)):
            again = read(await rt.tracer.export(fmt))
            assert [dict(r.selection) for r in again] == [dict(r.selection) for r in records]
        rows = list(csv.DictReader(io.StringIO(await rt.tracer.export("csv"))))
        assert [json.loads(row["selection"]) for row in rows] == [
            dict(r.selection) for r in records
        ]


async def test_a_fallback_carries_its_own_selection() -> None:
    async with open_runtime(registry(), config()) as rt:
        first = (await rt.select("SEARCH"))[0]
    async with open_runtime(registry(frozenset({first.operation})), config()) as rt:
        best = await rt.execute_best("SEARCH", {"q": "db"}, CTX)
        assert best.fallback_used
        assert best.runner_up is not None
        assert best.runner_up.candidate == first.candidate
        assert rt.tracer is not None
        records = await rt.tracer.records()
        assert [r.selection["chosen"] for r in records] == [first.name, best.chosen.name]


def ranked(name: str, confidence: float, explored: bool = False) -> Ranked:
    factors = Factors(0.9, 0.5, 0.5, 1.0, 0.0, 1.0)
    return Ranked(
        "CI", name, confidence, factors, Weights(accuracy=1, latency=1), 1.0, {}, explored
    )


def test_the_why_line_says_exploration_and_a_lone_candidate() -> None:
    assert "explored" in why_line(ranked("a", 0.4, explored=True), ranked("b", 0.6))
    assert why_line(ranked("a", 0.7), None).endswith("the only candidate")
    assert "accuracy 0.45, latency 0.25" in why_line(ranked("a", 0.7), ranked("b", 0.6))
