"""Compositions as data: compile-time checks, and runs through the real executor."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from runtime.calls import CallReport, CallStart
from runtime.errors import ConfigError, PipelineError
from runtime.executor import Executor
from runtime.ops.compositions import OPS_COMPOSITIONS, ops_compositions
from runtime.pipeline import (
    Parallel,
    Pipeline,
    Step,
    compile_composition,
    compile_compositions,
    run_pipeline,
)
from runtime.tools import ToolContext, ToolRegistry

pytestmark = pytest.mark.anyio

CTX = ToolContext(tenant_id="acme")


def valid() -> dict[str, Any]:
    return {
        "description": "search, then details of the first hit and metrics of all hits",
        "defaults": {"limit": 5},
        "steps": [
            {
                "name": "search",
                "tool": "CI",
                "operation": "search",
                "params": {"keywords": "$params.keywords", "limit": "$params.limit"},
            },
            {
                "parallel": [
                    {
                        "name": "first",
                        "tool": "CI",
                        "operation": "get",
                        "params": {"ci_id": "$search.records[0].ci_id"},
                        "on_error": "fallback",
                        "fallback": {
                            "name": "first_by_code",
                            "tool": "CI",
                            "operation": "get",
                            "params": {"ci_code": "$search.records[0].ci_code"},
                        },
                    },
                    {
                        "name": "metrics",
                        "tool": "METRIC",
                        "operation": "aggregate",
                        "params": {
                            "metric": "cpu_usage",
                            "ci_ids": "$search.records[*].ci_id",
                            "note": "$$not a reference",
                        },
                        "on_error": "skip",
                        "timeout": 2.0,
                        "retries": 2,
                        "backoff": {"base": 0.01, "factor": 2, "max": 0.1, "jitter": 0},
                        "retry_on": ["ToolTimeout"],
                    },
                ],
                "max_concurrency": 2,
            },
            {
                "name": "summary",
                "tool": "CI",
                "operation": "echo",
                "params": {"name": "$first.record.ci_name", "avg": "$metrics.value"},
                "when": "$params.summarise",
            },
        ],
    }


def test_a_valid_composition_compiles() -> None:
    pipeline = compile_composition("triage", valid())
    assert pipeline.name == "triage"
    assert pipeline.step_names == ("search", "first", "metrics", "summary")
    assert pipeline.defaults == {"limit": 5}
    group = pipeline.steps[1]
    assert isinstance(group, Parallel)
    assert group.max_concurrency == 2
    first, metrics = group.steps
    assert first.fallback is not None
    assert first.fallback.name == "first_by_code"
    assert (metrics.on_error, metrics.timeout, metrics.retries) == ("skip", 2.0, 2)
    summary = pipeline.steps[2]
    assert isinstance(summary, Step)
    assert summary.condition is not None


def bad(mutate: Any) -> dict[str, Any]:
    document = valid()
    mutate(document)
    return document


def _set(path: list[Any], value: Any) -> Any:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


def _delete(path: list[Any]) -> Any:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return mutate


S = "compositions.triage.steps"
CASES = [
    pytest.param(
        _set(["steps", 2, "params", "avg"], "$metricz.value"),
        f"{S}[2].params.avg",
        "summary",
        "unknown step 'metricz'",
        id="unknown-step",
    ),
    pytest.param(
        _set(["steps", 0, "params", "limit"], "$summary.count"),
        f"{S}[0].params.limit",
        "search",
        "forward reference",
        id="forward-reference",
    ),
    pytest.param(
        _set(["steps", 1, "parallel", 1, "params", "ci_ids"], "$first.record.ci_id"),
        f"{S}[1].parallel[1].params.ci_ids",
        "metrics",
        "same parallel group",
        id="same-group",
    ),
    pytest.param(
        _set(["steps", 0, "params", "limit"], "$search.total"),
        f"{S}[0].params.limit",
        "search",
        "itself",
        id="self-reference",
    ),
    pytest.param(
        _set(["steps", 1, "parallel", 1, "params", "ci_ids"], "$search.records[*.ci_id"),
        f"{S}[1].parallel[1].params.ci_ids",
        "metrics",
        "malformed reference",
        id="malformed-path",
    ),
    pytest.param(
        _set(["steps", 1, "parallel", 1, "params", "filters"], [{"value": "$search..x"}]),
        f"{S}[1].parallel[1].params.filters[0].value",
        "metrics",
        "malformed reference",
        id="malformed-nested-path",
    ),
    pytest.param(
        _set(["steps", 1, "parallel", 1, "on_error"], "ignore"),
        f"{S}[1].parallel[1].on_error",
        "metrics",
        "unknown on_error 'ignore'",
        id="unknown-on-error",
    ),
    pytest.param(
        _delete(["steps", 1, "parallel", 0, "fallback"]),
        f"{S}[1].parallel[0].fallback",
        "first",
        "no fallback step is given",
        id="missing-fallback",
    ),
    pytest.param(
        _set(["steps", 1, "parallel", 0, "on_error"], "skip"),
        f"{S}[1].parallel[0].fallback",
        "first",
        "on_error is 'skip'",
        id="fallback-without-policy",
    ),
    pytest.param(
        _set(["steps", 1, "parallel", 0, "fallback", "params", "ci_code"], "$first.record"),
        f"{S}[1].parallel[0].fallback.params.ci_code",
        "first_by_code",
        "itself",
        id="fallback-reads-its-step",
    ),
    pytest.param(
        _set(["steps", 2, "when"], "$later.flag"),
        f"{S}[2].when",
        "summary",
        "unknown step 'later'",
        id="unknown-step-in-when",
    ),
    pytest.param(
        _set(["steps", 2, "name"], "search"),
        f"{S}[2].name",
        "search",
        "duplicate step name",
        id="duplicate-name",
    ),
    pytest.param(
        _set(["steps", 2, "retries"], -1),
        f"{S}[2].retries",
        "summary",
        "non-negative integer",
        id="negative-retries",
    ),
    pytest.param(
        _set(["steps", 1, "parallel", 1, "retry_on"], ["Oops"]),
        f"{S}[1].parallel[1].retry_on[0]",
        "metrics",
        "unknown error 'Oops'",
        id="unknown-retry-error",
    ),
    pytest.param(
        # YAML such as ``retry_on: [{ToolTimeout: 1}]``: an unhashable item.
        _set(["steps", 1, "parallel", 1, "retry_on"], [{"ToolTimeout": 1}]),
        f"{S}[1].parallel[1].retry_on[0]",
        "metrics",
        "unknown error {'ToolTimeout': 1}",
        id="unhashable-retry-error",
    ),
    pytest.param(
        _set(["steps", 1, "parallel", 1, "backoff"], {"base": 1, "max": 0.5}),
        f"{S}[1].parallel[1].backoff",
        "metrics",
        "must be >= base",
        id="bad-backoff",
    ),
    pytest.param(
        _set(["steps", 2, "tmeout"], 3),
        f"{S}[2].tmeout",
        "summary",
        "unknown key 'tmeout'",
        id="unknown-key",
    ),
    pytest.param(
        _delete(["steps", 2, "operation"]),
        f"{S}[2].operation",
        "summary",
        "non-empty string",
        id="missing-operation",
    ),
    pytest.param(
        _set(["steps", 2, "name"], "params"),
        f"{S}[2].name",
        "params",
        "reserved",
        id="reserved-name",
    ),
]


@pytest.mark.parametrize(("mutate", "path", "step", "problem"), CASES)
def test_each_bad_reference_is_rejected_naming_composition_and_step(
    mutate: Any, path: str, step: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_composition("triage", bad(mutate))
    error = caught.value
    assert error.path == path
    assert f"composition 'triage', step '{step}'" in error.problem
    assert problem in error.problem


@pytest.mark.parametrize(
    ("document", "path", "problem"),
    [
        ({"steps": []}, "compositions.triage.steps", "non-empty list"),
        ({}, "compositions.triage.steps", "non-empty list"),
        ({"steps": [{"parallel": []}]}, "compositions.triage.steps[0].parallel", "non-empty"),
        (
            {"steps": [{"parallel": [{"parallel": []}]}]},
            "compositions.triage.steps[0].parallel[0]",
            "nested",
        ),
        ({"steps": ["search"]}, "compositions.triage.steps[0]", "a step is a mapping"),
        ({"steps": [{"tool": "CI"}]}, "compositions.triage.steps[0].name", "needs a name"),
        ({"defaults": [1], "steps": []}, "compositions.triage.defaults", "mapping"),
        ({"stepz": []}, "compositions.triage.stepz", "unknown key"),
    ],
)
def test_malformed_compositions(document: dict[str, Any], path: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compile_composition("triage", document)
    assert caught.value.path == path
    assert problem in caught.value.problem


def test_compile_compositions_names_each_composition() -> None:
    section = {"ok": valid(), "broken": bad(_set(["steps", 2, "when"], "$nope"))}
    with pytest.raises(ConfigError) as caught:
        compile_compositions(section)
    assert caught.value.path == "compositions.broken.steps[2].when"
    assert "composition 'broken'" in str(caught.value)


def test_builtins_are_declared_in_the_data_format() -> None:
    pipelines = ops_compositions()
    assert set(pipelines) == {"search_with_context", "impact_analysis"}
    assert pipelines["impact_analysis"].step_names == ("get", "expand", "metrics", "events")
    assert pipelines["search_with_context"].step_names == ("search", "metrics", "events")
    assert compile_compositions(OPS_COMPOSITIONS) == pipelines
    assert ops_compositions() is not pipelines  # a fresh dict each time


# -- runs through the real executor, with fake ops tools of the agreed shapes ----------


class Recorder:
    def __init__(self) -> None:
        self.reports: list[CallReport] = []

    def call_started(self, start: CallStart) -> None:
        pass

    def call_finished(self, report: CallReport) -> None:
        self.reports.append(report)


CIS = {
    1: {"ci_id": 1, "ci_code": "db-01", "ci_name": "orders db", "ci_type": "database"},
    2: {"ci_id": 2, "ci_code": "app-01", "ci_name": "orders app", "ci_type": "service"},
    3: {"ci_id": 3, "ci_code": "host-01", "ci_name": "host one", "ci_type": "host"},
}


def ops_registry(calls: list[tuple[str, str, dict[str, Any]]]) -> ToolRegistry:
    registry = ToolRegistry()

    def tool(tool_type: str, operation: str) -> Any:
        def decorate(function: Any) -> Any:
            async def recorded(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
                calls.append((tool_type, operation, copy.deepcopy(dict(params))))
                return await function(params)

            registry.register(tool_type, operation, recorded)
            return function

        return decorate

    @tool("CI", "search")
    async def search(params: Mapping[str, Any]) -> Any:
        words = params.get("keywords") or []
        found = [ci for ci in CIS.values() if all(w in ci["ci_name"] for w in words)]
        return {"records": found[: params.get("limit", 20)], "total": len(found)}

    @tool("CI", "get")
    async def get(params: Mapping[str, Any]) -> Any:
        if "ci_id" in params:
            return {"record": CIS.get(params["ci_id"])}
        by_code = [ci for ci in CIS.values() if ci["ci_code"] == params["ci_code"]]
        return {"record": by_code[0] if by_code else None}

    @tool("CI", "echo")
    async def echo(params: Mapping[str, Any]) -> Any:
        return dict(params)

    @tool("GRAPH", "expand")
    async def expand(params: Mapping[str, Any]) -> Any:
        root = params["ci_id"]
        nodes = [CIS[root], *(ci for ci_id, ci in CIS.items() if ci_id != root)]
        edges = [{"source": root, "target": n["ci_id"], "type": "depends_on"} for n in nodes[1:]]
        return {"nodes": nodes, "edges": edges, "truncated": False}

    @tool("METRIC", "aggregate")
    async def aggregate(params: Mapping[str, Any]) -> Any:
        ids = params["ci_ids"]
        return {
            "metric": params["metric"],
            "agg": params.get("agg", "avg"),
            "value": 10.0 * len(ids) if ids else None,
            "ci_count": len(ids),
        }

    @tool("HISTORY", "event_log")
    async def event_log(params: Mapping[str, Any]) -> Any:
        events = [{"event_id": i, "ci_id": i, "severity": "minor"} for i in params["ci_ids"]]
        return {"events": events[: params["limit"]], "total": len(events)}

    return registry


async def test_a_yaml_style_composition_runs_through_the_real_executor() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    recorder = Recorder()
    executor = Executor(ops_registry(calls), observers=[recorder])
    pipeline = compile_composition("triage", valid())
    with anyio.fail_after(5):
        result = await run_pipeline(
            pipeline, {"keywords": ["orders"], "summarise": True}, CTX, executor
        )
    assert result.primary["total"] == 2
    assert result.results["first"] == {"record": CIS[1]}
    assert result.results["metrics"]["ci_count"] == 2
    assert result.results["summary"] == {"name": "orders db", "avg": 20.0}
    metric_call = next(c for c in calls if c[0] == "METRIC")
    assert metric_call[2] == {
        "metric": "cpu_usage",
        "ci_ids": [1, 2],
        "note": "$not a reference",
    }
    # the trace hierarchy through the real executor
    by_kind: dict[str, list[CallReport]] = {}
    for report in recorder.reports:
        by_kind.setdefault(report.kind, []).append(report)
    (run,) = by_kind["pipeline"]
    steps = by_kind["step"]
    assert {s.operation for s in steps} == {"search", "first", "metrics", "summary"}
    assert all(s.parent_span_id == run.span_id for s in steps)
    step_ids = {s.span_id for s in steps}
    assert len(by_kind["tool_call"]) == 4
    assert all(c.parent_span_id in step_ids for c in by_kind["tool_call"])


async def test_a_yaml_style_fallback_and_condition() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    executor = Executor(ops_registry(calls))
    document = valid()
    # Make the primary lookup miss: it reads a CI id that does not exist, and the
    # summary then needs "record.ci_name" of None -> the fallback by code is used.
    document["steps"][1]["parallel"][0]["params"] = {"ci_id": "$search.total"}
    document["steps"][1]["parallel"][0]["operation"] = "nonexistent"
    pipeline = compile_composition("triage", document)
    with anyio.fail_after(5):
        result = await run_pipeline(pipeline, {"keywords": ["host"]}, CTX, executor)
    first = result.outcomes["first"]
    assert (first.status, first.fallback_used) == ("fallback", True)
    assert first.error_type == "ToolNotFound"
    assert result.results["first"] == {"record": CIS[3]}
    assert result.status("summary") == "skipped"  # no "summarise" param
    assert not any(c[1] == "echo" for c in calls)


async def test_impact_analysis_chains_get_expand_and_the_neighbourhood() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    executor = Executor(ops_registry(calls))
    pipeline = ops_compositions()["impact_analysis"]
    with anyio.fail_after(5):
        result = await run_pipeline(pipeline, {"ci_id": 2, "metric": "latency_ms"}, CTX, executor)
    assert result.primary == {"record": CIS[2]}
    assert list(result.enriched) == ["expand", "metrics", "events"]
    assert result.execution_trace[:2] == ("get", "expand")
    sent = {(t, o): p for t, o, p in calls}
    assert sent[("GRAPH", "expand")] == {
        "ci_id": 2,
        "depth": 1,
        "direction": "both",
        "max_nodes": 100,
    }
    assert sent[("METRIC", "aggregate")] == {
        "metric": "latency_ms",
        "agg": "avg",
        "ci_ids": [2, 1, 3],
        "time_range": "last_24h",
    }
    assert sent[("HISTORY", "event_log")] == {
        "ci_ids": [2, 1, 3],
        "time_range": "last_24h",
        "limit": 50,
    }
    assert result.to_dict()["steps"]["events"]["status"] == "ok"


async def test_impact_analysis_of_an_unknown_ci_fails_at_expand() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    executor = Executor(ops_registry(calls))
    pipeline = ops_compositions()["impact_analysis"]
    with anyio.fail_after(5), pytest.raises(PipelineError) as caught:
        await run_pipeline(pipeline, {"ci_id": 99}, CTX, executor)
    assert caught.value.step == "expand"
    assert "record" in str(caught.value.cause)
    assert [c[0] for c in calls] == ["CI"]


async def test_search_with_context_skips_the_enrichment_when_nothing_is_found() -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = []
    executor = Executor(ops_registry(calls))
    pipeline = ops_compositions()["search_with_context"]
    with anyio.fail_after(5):
        found = await run_pipeline(pipeline, {"keywords": ["orders"]}, CTX, executor)
        nothing = await run_pipeline(pipeline, {"keywords": ["zzz"]}, CTX, executor)
    assert found.results["metrics"]["ci_count"] == 2
    assert [e["ci_id"] for e in found.results["events"]["events"]] == [1, 2]
    assert nothing.status("metrics") == nothing.status("events") == "skipped"
    assert nothing.primary == {"records": [], "total": 0}


def test_a_compiled_pipeline_equals_a_hand_written_one_in_structure() -> None:
    pipeline = compile_composition(
        "plain", {"steps": [{"name": "a", "tool": "CI", "operation": "get", "params": {"x": 1}}]}
    )
    assert pipeline == Pipeline("plain", [Step("a", "CI", "get", {"x": 1})])


@pytest.mark.parametrize(("written", "seconds"), [("2s", 2.0), ("500ms", 0.5), (3, 3.0)])
def test_step_timeouts_are_durations_like_the_rest_of_the_config(
    written: object, seconds: float
) -> None:
    document = valid()
    document["steps"][1]["parallel"][1]["timeout"] = written
    metrics = compile_composition("triage", document).steps[1].steps[1]
    assert metrics.timeout == seconds


@pytest.mark.parametrize("written", ["soon", "-1s", 0, True])
def test_bad_step_timeouts_name_the_key(written: object) -> None:
    document = valid()
    document["steps"][1]["parallel"][1]["timeout"] = written
    with pytest.raises(ConfigError) as caught:
        compile_composition("triage", document)
    assert caught.value.path == "compositions.triage.steps[1].parallel[1].timeout"
