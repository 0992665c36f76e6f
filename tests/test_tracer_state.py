"""The tracer's pure core: ring buffer, aggregates over all calls, snapshots, reset."""

from __future__ import annotations

import math
import random
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.calls import CallReport
from runtime.tracer.records import record_from_report
from runtime.tracer.redact import REDACTED
from runtime.tracer.state import TracerState


def make_report(n: int = 0, **overrides: Any) -> CallReport:
    values: dict[str, Any] = {
        "kind": "tool_call",
        "trace_id": "t-1",
        "span_id": f"s-{n}",
        "parent_span_id": None,
        "tool_type": "CI",
        "operation": "search",
        "tenant_id": "acme",
        "started_at": float(n),
        "started_wall": 1_700_000_000.0 + n,
        "duration_s": 0.010,
        "status": "ok",
    }
    values.update(overrides)
    return CallReport(**values)


@pytest.mark.parametrize("lazy", [True, False])
def test_aggregates_count_every_status_and_flag(lazy: bool) -> None:
    state = TracerState(capacity=10, lazy_records=lazy)
    state.observe(make_report(1, duration_s=0.010, cache_hit=True))
    state.observe(make_report(2, duration_s=0.030, status="error", retries=2))
    state.observe(make_report(3, duration_s=0.020, status="timeout", fallback_used=True))
    state.observe(make_report(4, duration_s=0.040, status="cancelled", coalesced=True))
    state.observe(make_report(5, duration_s=0.5, tool_type="METRIC", operation="series"))
    stats = state.stats()
    ci = stats.tool("CI", "search")
    assert ci is not None
    assert (ci.count, ci.ok, ci.error, ci.timeout, ci.cancelled) == (4, 1, 1, 1, 1)
    assert ci.total_ms == pytest.approx(100.0)
    assert ci.mean_ms == pytest.approx(25.0)
    assert ci.min_ms == pytest.approx(10.0)
    assert ci.max_ms == pytest.approx(40.0)
    assert ci.p50_ms == pytest.approx(20.0, rel=0.01)
    assert ci.p99_ms == pytest.approx(30.0, rel=0.01)  # lower quantile: rank floor(0.99 * 3)
    assert (ci.cache_hits, ci.cache_hit_rate) == (1, 0.25)
    assert (ci.coalesced, ci.retries, ci.fallbacks) == (1, 2, 1)
    assert ci.failures == 3
    assert ci.error_rate == 0.75
    metric = stats.tool("METRIC", "series")
    assert metric is not None
    assert metric.count == 1
    assert metric.p99_ms == pytest.approx(500.0)
    assert stats.observed == 5
    assert stats.buffered == 5


def test_pipelines_and_steps_have_their_own_tables_but_share_the_ring() -> None:
    state = TracerState(capacity=10)
    state.observe(make_report(1, kind="tool_call"))
    state.observe(make_report(2, kind="step", parent_span_id="s-3"))
    state.observe(make_report(3, kind="pipeline", tool_type="pipeline", operation="triage"))
    stats = state.stats()
    assert [r.kind for r in state.records()] == ["tool_call", "step", "pipeline"]
    assert stats.tools[("CI", "search")].count == 1
    assert stats.steps[("CI", "search")].count == 1
    assert stats.pipelines[("pipeline", "triage")].count == 1
    as_dict = stats.to_dict()
    assert as_dict["pipelines"]["pipeline"]["triage"]["count"] == 1
    assert as_dict["tools"]["CI"]["search"]["ok"] == 1


def test_the_json_form_of_operation_stats_carries_the_rates() -> None:
    state = TracerState(capacity=10)
    state.observe(make_report(1))
    state.observe(make_report(2, status="error", error_type="Boom"))
    as_dict = state.stats().to_dict()["tools"]["CI"]["search"]
    assert (as_dict["count"], as_dict["error"]) == (2, 1)
    assert as_dict["error_rate"] == 0.5
    assert as_dict["cache_hit_rate"] == 0.0


def test_ring_keeps_only_the_newest_records() -> None:
    state = TracerState(capacity=3)
    for n in range(10):
        state.observe(make_report(n))
    assert [r.span_id for r in state.records()] == ["s-7", "s-8", "s-9"]
    assert [r.span_id for r in state.records(limit=2)] == ["s-8", "s-9"]
    assert state.records(limit=0) == ()
    assert state.stats().tools[("CI", "search")].count == 10
    assert (state.stats().observed, state.stats().buffered, state.stats().capacity) == (10, 3, 3)


@pytest.mark.parametrize("lazy", [True, False])
def test_records_are_redacted_in_the_state(lazy: bool) -> None:
    state = TracerState(redact_keys=["token"], lazy_records=lazy)
    state.observe(make_report(params={"q": "x", "auth": [{"bearer_token": "abc"}]}))
    assert state.records()[0].params == {"q": "x", "auth": [{"bearer_token": REDACTED}]}


def test_snapshots_are_detached_from_the_state() -> None:
    state = TracerState()
    state.observe(make_report(1))
    before = state.stats()
    state.observe(make_report(2))
    assert before.tools[("CI", "search")].count == 1
    assert state.stats().tools[("CI", "search")].count == 2
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        before.observed = 9  # type: ignore[misc]


def test_reset_forgets_everything_and_dropped_is_reported() -> None:
    state = TracerState()
    state.observe(make_report(1))
    state.note_dropped(3)
    assert state.stats().dropped == 3
    assert state.stats(dropped=7).dropped == 7
    state.reset()
    stats = state.stats()
    assert (stats.observed, stats.buffered, stats.dropped) == (0, 0, 0)
    assert stats.tools == {}
    assert state.records() == ()


@given(st.lists(st.floats(min_value=0.001, max_value=60.0), min_size=1, max_size=100))
def test_aggregate_figures_match_the_exact_ones(durations: list[float]) -> None:
    state = TracerState(capacity=5)
    for n, seconds in enumerate(durations):
        state.observe(make_report(n, duration_s=seconds))
    stats = state.stats().tools[("CI", "search")]
    millis = sorted(s * 1000.0 for s in durations)
    assert stats.count == len(durations)
    assert stats.min_ms == millis[0]
    assert stats.max_ms == millis[-1]
    assert stats.total_ms == pytest.approx(sum(millis))
    for q, estimate in ((0.5, stats.p50_ms), (0.95, stats.p95_ms), (0.99, stats.p99_ms)):
        exact = millis[math.floor(q * (len(millis) - 1))]
        assert abs(estimate - exact) <= 0.01 * exact * (1 + 1e-9)


def test_a_million_calls_keep_at_most_n_records_and_constant_size_aggregates() -> None:
    capacity = 100
    state = TracerState(capacity=capacity)
    rng = random.Random(3)
    # A pool of prebuilt reports with varied durations keeps the loop light.
    pool = [make_report(i, duration_s=rng.lognormvariate(-4.0, 2.5)) for i in range(1024)]
    observe = state.observe
    for i in range(1_000_000):
        observe(pool[i & 1023])
    aggregate = state.aggregate("CI", "search")
    assert state.observed == 1_000_000
    assert len(state.records()) == capacity
    assert aggregate.count == 1_000_000
    assert aggregate.sketch.bucket_count <= aggregate.sketch.max_buckets
    # The pool's durations fix the set of buckets: observing it 1000x more adds none.
    buckets_now = aggregate.sketch.bucket_count
    for report in pool:
        observe(report)
    assert aggregate.sketch.bucket_count == buckets_now
    assert len(state.records()) == capacity


reports = st.builds(
    make_report,
    st.integers(0, 50),
    status=st.sampled_from(["ok", "error", "timeout", "cancelled"]),
    kind=st.sampled_from(["tool_call", "step", "pipeline"]),
    operation=st.sampled_from(["search", "get"]),
    # Not finite or negative: counted as 0 by every path (one by one, batched, replayed).
    duration_s=st.floats(-1.0, 100.0) | st.sampled_from([math.nan, math.inf, -math.inf]),
    cache_hit=st.booleans(),
    retries=st.integers(0, 3),
    fallback_used=st.booleans(),
    coalesced=st.booleans(),
    params=st.dictionaries(st.sampled_from(["q", "token", "limit"]), st.integers(), max_size=3),
    data=st.none() | st.lists(st.integers(), max_size=5),
)


@given(st.lists(reports, max_size=30), st.integers(0, 10))
def test_lazy_and_eager_records_agree(observed: list[CallReport], capacity: int) -> None:
    lazy = TracerState(capacity=capacity, lazy_records=True)
    eager = TracerState(capacity=capacity, lazy_records=False)
    replayed = TracerState(capacity=capacity)
    for report in observed:
        lazy.observe(report)
        eager.observe(report)
        replayed.observe_record(record_from_report(report))
    assert lazy.records() == eager.records() == replayed.records()
    assert lazy.stats() == eager.stats() == replayed.stats()
    # Lazy entries are the reports themselves -- but a report carrying its result data
    # has its record built at once, so that no ring entry keeps a result alive.
    entries = lazy.entries()
    kept = observed[len(observed) - len(entries) :]
    assert [isinstance(entry, CallReport) for entry in entries] == [
        report.data is None for report in kept
    ]
    assert all(not isinstance(entry, CallReport) or entry.data is None for entry in entries)
    assert len(lazy.entries(limit=2)) == min(2, len(lazy.records()))


@given(st.lists(reports, max_size=30), st.integers(0, 10), st.integers(1, 8))
def test_batches_observe_exactly_like_single_reports(
    observed: list[CallReport], capacity: int, batch: int
) -> None:
    single = TracerState(capacity=capacity)
    batched = TracerState(capacity=capacity)
    for report in observed:
        single.observe(report)
    for start in range(0, len(observed), batch):
        batched.observe_many(observed[start : start + batch])
    assert batched.records() == single.records()
    assert batched.stats() == single.stats()
    assert batched.observed == len(observed)


def test_a_tool_type_enum_and_its_name_count_in_one_aggregate() -> None:
    from runtime.ops.preset import ToolType

    state = TracerState()
    state.observe(make_report(1, tool_type=ToolType.CI))
    state.observe(make_report(2, tool_type="CI"))
    stats = state.stats()
    assert list(stats.tools) == [("CI", "search")]
    assert stats.tools[("CI", "search")].count == 2
    assert all(type(key[0]) is str for key in stats.tools)
