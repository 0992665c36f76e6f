"""The runtime as an MCP server, driven by the real ``mcp`` client in memory.

Both of the SDK's in-process paths: ``legacy`` (JSON-RPC over memory streams, the
initialize handshake, notifications/cancelled on the wire) and ``auto`` (the 2026
direct dispatcher).  Every test is bounded by ``anyio.fail_after``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp_helpers import Gate, add_probe_tools
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from ops_fixtures import fixture_ops_db, fixture_ops_db_path, fixture_registry  # noqa: F401

from runtime import Runtime, ToolRegistry, config_from_dict, open_runtime
from runtime.mcp import ServerSettings, create_server
from runtime.ops import TOOL_DEFS
from runtime.ops.config import ops_defaults
from runtime.tracer.otel import OtelBridge

pytestmark = pytest.mark.anyio
LIMIT = 20


@pytest.fixture(params=["legacy", "auto"])
def mode(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture(name="gate")
def fixture_gate() -> Gate:
    return Gate()


@asynccontextmanager
async def serving(
    registry: ToolRegistry, gate: Gate, mode: str, **settings: Any
) -> AsyncIterator[tuple[Runtime, Client]]:
    add_probe_tools(registry, gate)
    async with open_runtime(registry, ops_defaults()) as rt:
        server = create_server(rt, ServerSettings(**settings))
        async with Client(server, mode=mode) as client:
            yield rt, client


async def test_lists_every_tool_composition_and_intent(
    registry: ToolRegistry, gate: Gate, mode: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with serving(registry, gate, mode) as (rt, client):
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    expected_ops = {f"{d.tool_type.lower()}_{d.operation}" for d in TOOL_DEFS}
    assert expected_ops <= set(tools)
    assert {"compose_impact_analysis", "compose_search_with_context"} <= set(tools)
    assert "intent_search" in tools
    assert {"probe_wait", "probe_fail", "probe_free"} <= set(tools)
    assert len(tools) == len(expected_ops) + 3 + 2 + len(rt.selector.settings.candidates)  # type: ignore[union-attr]
    search = tools["ci_search"].input_schema
    assert search["type"] == "object"
    assert search["additionalProperties"] is False
    assert search["properties"]["limit"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 100,
        "default": 20,
    }
    assert "description" in search["properties"]["keywords"]
    assert tools["metric_series"].input_schema["required"] == ["ci_id", "metric"]
    assert "enum" in tools["metric_series"].input_schema["properties"]["bucket"]
    assert tools["probe_free"].input_schema == {"type": "object"}
    composed = tools["compose_impact_analysis"].input_schema["properties"]
    assert composed["ci_id"]["type"] == "integer"  # typed as CI.get's ci_id, its step
    assert composed["depth"]["maximum"] == 3
    assert composed["depth"]["default"] == 1  # the composition's default, not the tool's
    reader = tools["ci_get"].annotations
    assert reader is not None
    assert reader.read_only_hint
    assert reader.idempotent_hint
    writer = tools["cep_simulate"].annotations
    assert writer is not None
    assert writer.destructive_hint
    assert not writer.read_only_hint
    assert tools["ci_search"].description


async def test_call_returns_structured_content_and_text_through_the_cache(
    registry: ToolRegistry, gate: Gate, mode: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with serving(registry, gate, mode, tenant="acme") as (rt, client):
            args = {"keywords": ["db"], "limit": 3}
            first = await client.call_tool("ci_search", args)
            second = await client.call_tool("ci_search", args)
            direct = await rt.execute("CI", "search", args, _ctx("acme"))
            assert rt.tracer is not None
            records = [r for r in await rt.tracer.records() if r.operation == "search"]
    assert not first.is_error
    assert first.structured_content == direct
    assert first.content[0].type == "text"
    assert '"records"' in first.content[0].text
    compact = json.dumps(first.structured_content, ensure_ascii=False, separators=(",", ":"))
    assert first.content[0].text == compact  # the same data, without padding (as FastMCP's)
    assert second.structured_content == first.structured_content
    assert [r.cache_hit for r in records] == [False, True, True]
    assert {r.tenant for r in records} == {"acme"}


async def test_failures_are_error_results_with_one_sentence_and_no_log(
    registry: ToolRegistry,
    gate: Gate,
    mode: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    with anyio.fail_after(LIMIT):
        async with serving(registry, gate, mode) as (_, client):
            failed = await client.call_tool("probe_fail", {})
            bad = await client.call_tool(
                "ci_search", {"filters": [{"field": "env", "op": "~", "value": "x"}]}
            )
            unknown_param = await client.call_tool("ci_get", {"ci_id": 1, "nope": 2})
            with pytest.raises(MCPError, match="unknown tool 'no_such_tool'") as raised:
                await client.call_tool("no_such_tool", {})
    assert failed.is_error
    assert failed.content[0].text.count("\n") == 0
    assert "disk on fire" in failed.content[0].text
    assert bad.is_error
    assert "'filters[0].op'" in bad.content[0].text
    assert unknown_param.is_error
    assert "'nope'" in unknown_param.content[0].text
    assert raised.value.code == -32602
    logged = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert logged == []
    assert "Traceback" not in capsys.readouterr().err


async def test_tenant_comes_from_the_server_and_tenants_never_share_an_entry(
    registry: ToolRegistry, gate: Gate, mode: str
) -> None:
    gate.release.set()
    add_probe_tools(registry, gate)
    with anyio.fail_after(LIMIT):
        async with open_runtime(registry, ops_defaults()) as rt:
            a = create_server(rt, ServerSettings(tenant="a"))
            b = create_server(rt, ServerSettings(tenant="b"))
            async with Client(a, mode=mode) as one, Client(b, mode=mode) as two:
                # A "tenant" argument is a param like any other, never the tenant.
                first = await one.call_tool("probe_wait", {"key": "k"})
                second = await two.call_tool("probe_wait", {"key": "k"})
                again = await one.call_tool("probe_wait", {"key": "k"})
    assert first.structured_content == {"key": "k", "tenant": "a"}
    assert second.structured_content == {"key": "k", "tenant": "b"}
    assert again.structured_content == first.structured_content
    assert gate.executions == 2
    assert gate.tenants == ["a", "b"]


async def test_a_tenant_argument_cannot_choose_the_tenant(
    registry: ToolRegistry, gate: Gate, mode: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with serving(registry, gate, mode, tenant="mine") as (_, client):
            echoed = await client.call_tool("probe_free", {"tenant_id": "theirs"})
    assert echoed.structured_content == {"echo": {"tenant_id": "theirs"}}


async def test_client_cancel_cancels_the_call_and_spares_coalesced_callers(
    registry: ToolRegistry, gate: Gate, mode: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with serving(registry, gate, mode) as (rt, client):
            results: list[Any] = []
            leader_scope = anyio.CancelScope()

            async def leader() -> None:
                with leader_scope:
                    await client.call_tool("probe_wait", {"key": "k"})

            async def follower() -> None:
                results.append(await client.call_tool("probe_wait", {"key": "k"}))

            async with anyio.create_task_group() as group:
                group.start_soon(leader)
                await gate.started.wait()
                group.start_soon(follower)
                await _until_coalesced(rt)
                leader_scope.cancel()
                await _until_status(rt, "cancelled")
                gate.release.set()
            assert rt.tracer is not None
            records = [r for r in await rt.tracer.records() if r.operation == "wait"]
    assert results[0].structured_content == {"key": "k", "tenant": "default"}
    assert sorted(r.status for r in records) == ["cancelled", "ok"]
    assert gate.executions in (1, 2)  # a follower may take over the flight, never fails


async def _until_coalesced(rt: Runtime) -> None:
    # The follower is waiting on the leader's flight once the cache counts it.
    assert rt.cache is not None
    while True:
        stats = await rt.cache.stats()
        if stats.snapshot.waiting_followers >= 1:
            return
        await anyio.sleep(0.005)


async def _until_status(rt: Runtime, status: str) -> None:
    assert rt.tracer is not None
    while not any(r.status == status for r in await rt.tracer.records()):
        await anyio.sleep(0.005)


async def test_composition_reports_progress_per_finished_step(
    registry: ToolRegistry, gate: Gate, mode: str
) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    with anyio.fail_after(LIMIT):
        async with serving(registry, gate, mode) as (rt, client):
            result = await client.call_tool(
                "compose_impact_analysis", {"ci_id": 1}, progress_callback=on_progress
            )
            quiet = await client.call_tool("compose_impact_analysis", {"ci_id": 2})
    steps = rt.compositions["impact_analysis"].step_names
    assert not result.is_error
    assert result.structured_content is not None
    assert set(result.structured_content) >= {"primary", "enriched", "execution_trace"}
    assert [p[0] for p in progress] == list(range(1, len(steps) + 1))
    assert {p[1] for p in progress} == {len(steps)}
    assert {str(p[2]).split(":")[0].removeprefix("step ") for p in progress} == set(steps)
    assert not quiet.is_error


async def test_intent_runs_execute_best_with_an_optional_strategy(
    registry: ToolRegistry, gate: Gate, mode: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with serving(registry, gate, mode) as (_, client):
            best = await client.call_tool("intent_search", {"keywords": ["db"], "limit": 2})
            ranked = await client.call_tool(
                "intent_search", {"keywords": ["db"], "limit": 2, "strategy": "MOST_ACCURATE"}
            )
            wrong = await client.call_tool("intent_search", {"strategy": "FASTEST_EVER"})
    assert not best.is_error
    assert best.meta is not None
    assert best.meta["runtime/chosen"] == "CI.search"
    assert not ranked.is_error
    assert ranked.structured_content == best.structured_content
    assert wrong.is_error
    assert "'strategy'" in wrong.content[0].text


async def test_traceparent_in_meta_parents_the_call_in_records_and_otel(
    registry: ToolRegistry, gate: Gate, mode: str
) -> None:
    trace_id, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    meta: Any = {"traceparent": f"00-{trace_id}-{parent}-01"}
    with anyio.fail_after(LIMIT):
        async with serving(registry, gate, mode) as (rt, client):
            await client.call_tool("ci_get", {"ci_id": 3}, meta=meta)
            await client.call_tool("compose_impact_analysis", {"ci_id": 3}, meta=meta)
            await client.call_tool("ci_get", {"ci_id": 4}, meta={"traceparent": "garbage"})
            assert rt.tracer is not None
            records = await rt.tracer.records()
    joined = [r for r in records if r.trace_id == trace_id]
    direct = [r for r in joined if r.kind == "tool_call" and r.parent_span_id == parent]
    assert [r.operation for r in direct] == ["get"]
    run = [r for r in joined if r.kind == "pipeline"]
    assert len(run) == 1
    assert run[0].parent_span_id == parent
    assert len(joined) > 3  # the composition's steps and calls are in the same trace
    other = [r for r in records if r.operation == "get" and r.params.get("ci_id") == 4]
    assert other[0].trace_id != trace_id
    assert other[0].parent_span_id is None
    exporter = InMemorySpanExporter()
    bridge = OtelBridge([SimpleSpanProcessor(exporter)])
    bridge.emit_all(direct)
    span = exporter.get_finished_spans()[0]
    assert span.context is not None
    assert span.context.trace_id == int(trace_id, 16)
    assert span.parent is not None
    assert span.parent.span_id == int(parent, 16)
    bridge.shutdown()


def _ctx(tenant: str) -> Any:
    from runtime import ToolContext

    return ToolContext(tenant_id=tenant)


async def test_many_identical_calls_over_mcp_run_the_tool_once(
    registry: ToolRegistry, gate: Gate, mode: str
) -> None:
    results: list[Any] = []

    async def call(client: Client) -> None:
        results.append(await client.call_tool("probe_wait", {"key": "same"}))

    with anyio.fail_after(LIMIT):
        async with (
            serving(registry, gate, mode) as (rt, client),
            anyio.create_task_group() as group,
        ):
            for _ in range(50):
                group.start_soon(call, client)
            await gate.started.wait()
            assert rt.cache is not None
            while (await rt.cache.stats()).snapshot.waiting_followers < 49:
                await anyio.sleep(0.005)
            gate.release.set()
    assert gate.executions == 1
    assert len(results) == 50
    assert all(r.structured_content == {"key": "same", "tenant": "default"} for r in results)


async def test_a_failing_composition_is_an_error_result_naming_its_step(
    registry: ToolRegistry, gate: Gate, mode: str
) -> None:
    with anyio.fail_after(LIMIT):
        async with serving(registry, gate, mode) as (_, client):
            # ci_id 0 is out of bounds: the first step (fail_fast) rejects it.
            failed = await client.call_tool("compose_impact_analysis", {"ci_id": 0})
    assert failed.is_error
    assert "impact_analysis" in failed.content[0].text
    assert "'get'" in failed.content[0].text


async def test_a_call_after_the_runtime_closed_is_an_error_result(
    registry: ToolRegistry, gate: Gate
) -> None:
    add_probe_tools(registry, gate)
    with anyio.fail_after(LIMIT):
        async with open_runtime(registry, ops_defaults()) as rt:
            server = create_server(rt)
        async with Client(server, mode="legacy") as client:
            closed = await client.call_tool("ci_get", {"ci_id": 1})
            composed = await client.call_tool("compose_impact_analysis", {"ci_id": 1})
    assert closed.is_error
    assert "closed" in closed.content[0].text
    assert composed.is_error


async def test_a_composition_over_mcp_counts_in_running_pipelines(
    registry: ToolRegistry, gate: Gate, mode: str
) -> None:
    add_probe_tools(registry, gate)
    held = {"steps": [{"name": "hold", "tool": "PROBE", "operation": "wait", "params": {}}]}
    config = config_from_dict({"compositions": {"held": held}})
    results: list[Any] = []
    with anyio.fail_after(LIMIT):
        async with open_runtime(registry, config) as rt:
            async with Client(create_server(rt), mode=mode) as client:

                async def call() -> None:
                    results.append(await client.call_tool("compose_held", {}))

                async with anyio.create_task_group() as group:
                    group.start_soon(call)
                    await gate.started.wait()
                    running = rt.running_pipelines
                    gate.release.set()
            after = rt.running_pipelines
    assert running == 1
    assert after == 0
    assert not results[0].is_error
    assert results[0].structured_content["primary"] == {"key": None, "tenant": "default"}
