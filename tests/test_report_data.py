"""The report's data: the tracer's own aggregates, waterfalls equal to the span tree,
bounded histograms and time buckets, selector choices, slowest and failing calls."""

from __future__ import annotations

from typing import Any

import anyio
import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_fixtures import real_records, reports
from test_tracer_chrome import record_sets

from runtime.ops.config import ops_defaults
from runtime.report.data import HISTOGRAM_BINS, TIME_BUCKETS, build_report
from runtime.tracer.records import TraceRecord
from runtime.tracer.state import TracerState


@given(st.lists(reports(), max_size=60))
def test_aggregates_equal_the_tracers_own_for_the_same_records(batch: list[Any]) -> None:
    state = TracerState(capacity=len(batch) + 1)
    state.observe_many(batch)  # the tracer actor's own path, from raw reports
    expected = state.stats()
    data = build_report(state.records())
    assert data.stats.tools == expected.tools
    assert data.stats.steps == expected.steps
    assert data.stats.pipelines == expected.pipelines
    assert data.records == len(batch)
    for op in data.operations:
        assert sum(count for _, _, count in op.histogram) == op.stats.count
        assert len(op.histogram) <= HISTOGRAM_BINS
        assert sum(op.cache.values()) == op.stats.count
        assert op.cache.get("hit", 0) == op.stats.cache_hits
        assert op.cache.get("coalesced", 0) == op.stats.coalesced
        assert len(op.cache_over_time) == TIME_BUCKETS
        assert sum(sum(b.values()) for b in op.cache_over_time) == op.stats.count


@pytest.mark.anyio
async def test_a_real_session_matches_the_tracer_stats() -> None:
    with anyio.fail_after(20):
        records, stats = await real_records()
    data = build_report(records)
    assert data.stats.tools == stats.tools
    assert data.stats.steps == stats.steps
    assert data.stats.pipelines == stats.pipelines
    (get,) = [op for op in data.operations if op.kind == "tool_call"]
    assert get.cache["hit"] == stats.tool("CI", "get").cache_hits > 0
    assert get.cache["miss"] > 0


def descendants(records: list[TraceRecord], root: TraceRecord) -> set[str]:
    found, frontier = set(), {root.span_id}
    while frontier:
        found |= frontier
        frontier = {r.span_id for r in records if r.parent_span_id in frontier} - found
    return found


@pytest.mark.anyio
async def test_waterfall_nesting_equals_the_span_hierarchy() -> None:
    with anyio.fail_after(20):
        records, _ = await real_records()
    by_span = {r.span_id: r for r in records}
    data = build_report(records)
    runs = [r for r in records if r.kind == "pipeline"]
    assert len(data.waterfalls) == len(runs) == data.runs == 2
    assert [w.duration_ms for w in data.waterfalls] == sorted(
        (r.duration_ms for r in runs), reverse=True
    )
    for waterfall in data.waterfalls:
        run = by_span[waterfall.rows[0].span_id or ""]
        assert run.kind == "pipeline"
        assert waterfall.rows[0].parent is None
        spans = [row.span_id for row in waterfall.rows if row.span_id is not None]
        assert set(spans) == descendants(records, run)
        assert len(spans) == len(set(spans))
        for i, row in enumerate(waterfall.rows[1:], start=1):
            assert row.parent is not None
            assert row.parent < i  # a parent comes before its children
            parent = waterfall.rows[row.parent]
            if row.span_id is None:  # listed by the run, never started
                assert parent.span_id == run.span_id
                assert row.status in ("not_run", "skipped", "cancelled")
                continue
            record = by_span[row.span_id]
            assert record.parent_span_id == parent.span_id
            assert row.depth == parent.depth + 1
            assert row.offset_ms == pytest.approx((record.started_at - run.started_at) * 1000)
        statuses = {row.label: row.status for row in waterfall.rows}
        assert statuses["step right"] == "error"
        assert statuses["step left"] in ("ok", "cancelled")
        assert statuses["step after"] == "not_run"
        assert "CI.get" in statuses


def record(n: int, **extra: Any) -> TraceRecord:
    values: dict[str, Any] = {
        "trace_id": "t",
        "span_id": f"p-{n}",
        "parent_span_id": None,
        "kind": "tool_call",
        "tool_type": "CI",
        "operation": "search",
        "tenant": "acme",
        "started_at": float(n),
        "started_wall": 1_700_000_000.0 + n,
        "duration_ms": float(n),
        "status": "ok",
    }
    values.update(extra)
    return TraceRecord(**values)


def test_selector_choices_per_intent_with_runner_up() -> None:
    records = [
        record(1, tool_type="A", selection={"intent": "find", "runner_up": "B.search"}),
        record(2, tool_type="A", selection={"intent": "find", "runner_up": "B.search"}),
        record(3, tool_type="B", selection={"intent": "find", "runner_up": None}),
        # A fallback is no choice of the selector.
        record(4, tool_type="C", fallback_used=True, selection={"intent": "find"}),
        record(5, tool_type="B", selection={"intent": "health", "runner_up": {"tool_type": "A"}}),
        # Metadata is the cache's and the tool's, never read as the selector's.
        record(6, metadata={"intent": "find", "runner_up": "B.search"}),
    ]
    data = build_report(records)
    find, health = data.intents
    assert find.intent == "find"
    assert find.chosen == {"A.search": 2, "B.search": 1}
    assert find.runner_up == {"B.search": 2}
    assert sum(sum(b.values()) for b in find.over_time) == 3
    assert find.over_time[0] == {"A.search": 1}
    assert find.over_time[-1] == {}
    assert health.runner_up == {"A.": 1}


def test_slowest_and_failing_calls_are_bounded_sorted_and_redacted() -> None:
    records = [
        record(n, status="error" if n % 3 == 0 else "ok", params={"password": "hunter2", "n": n})
        for n in range(1, 61)
    ]
    records.append(record(99, kind="pipeline", operation="slow_run"))
    data = build_report(records, top=10)
    assert [row.duration_ms for row in data.slowest] == [float(n) for n in range(60, 50, -1)]
    assert all(row.kind == "tool_call" for row in data.slowest)
    assert data.failures == 20
    assert len(data.failing) == 10
    assert [row.started_wall for row in data.failing] == sorted(
        (row.started_wall for row in data.failing), reverse=True
    )
    assert all(row.status == "error" for row in data.failing)
    assert all(row.params["password"] == "***" for row in data.slowest + data.failing)
    assert data.failing[0].error.startswith(":")  # error_type and message absent: empty


def test_no_records_is_an_empty_report() -> None:
    data = build_report([])
    assert data.records == 0
    assert data.operations == data.waterfalls == data.slowest == data.failing == ()
    assert data.stats.tools == {}


def test_a_run_whose_steps_never_started_lists_them() -> None:
    run = record(
        1,
        kind="pipeline",
        operation="triage",
        metadata={"steps": {"a": "ok", "b": "skipped", "c": "not_run"}},
    )
    step = record(2, kind="step", operation="a", parent_span_id="p-1", tool_type="triage")
    data = build_report([run, step])
    (waterfall,) = data.waterfalls
    assert [(r.label, r.status, r.span_id is None) for r in waterfall.rows] == [
        ("pipeline triage", "ok", False),
        ("step a", "ok", False),
        ("step b", "skipped", True),
        ("step c", "not_run", True),
    ]
    assert attrs.asdict(waterfall)["rows"][2]["parent"] == 0


@pytest.mark.anyio
async def test_execute_best_choices_show_per_intent() -> None:
    from report_fixtures import registry

    from runtime import ToolContext, open_runtime

    tools = registry()

    @tools.tool("CI", "search")
    async def search(ctx: Any, params: dict[str, Any]) -> Any:
        return []

    with anyio.fail_after(10):
        async with open_runtime(tools, ops_defaults()) as rt:
            assert rt.tracer is not None
            ranked = await rt.select("SEARCH")
            for _ in range(3):
                await rt.execute_best("SEARCH", {"q": "x"}, ToolContext(tenant_id="a"))
            records = list(await rt.tracer.records())
    (choices,) = build_report(records).intents
    assert choices.intent == "SEARCH"
    assert sum(choices.chosen.values()) == 3
    assert set(choices.chosen) <= {"CI.get", "CI.search"}
    assert sum(choices.runner_up.values()) == 3
    for record in records:  # the runner-up is another candidate that could run
        name = f"{record.tool_type}.{record.operation}"
        assert record.selection["runner_up"] in {"CI.get", "CI.search"} - {name}
    assert {f"{r.tool_type}.{r.operation}" for r in ranked} >= {"CI.get", "CI.search"}


@given(record_sets())
def test_generated_waterfalls_follow_the_span_tree(records: list[TraceRecord]) -> None:
    by_span = {r.span_id: r for r in records}
    data = build_report(records, waterfalls=100)
    runs = [r for r in records if r.kind == "pipeline"]
    assert len(data.waterfalls) == min(len(runs), 100)
    for waterfall in data.waterfalls:
        root = by_span[waterfall.rows[0].span_id or ""]
        spans = [row.span_id for row in waterfall.rows if row.span_id is not None]
        assert set(spans) == descendants(records, root)
        for row in waterfall.rows[1:]:
            if row.span_id is None:
                continue
            assert row.parent is not None
            assert by_span[row.span_id].parent_span_id == waterfall.rows[row.parent].span_id
