"""METRIC.aggregate and METRIC.series, checked against raw samples read directly."""

from __future__ import annotations

import math
import sqlite3
import statistics
from typing import Any

import pytest
from ops_fixtures import (  # noqa: F401
    call,
    fixture_ops_db,
    fixture_ops_db_path,
    fixture_registry,
    fixture_sql,
)

from runtime.errors import InvalidParams
from runtime.ops import OpsDatabase
from runtime.ops.timerange import iso
from runtime.tools import ToolRegistry

pytestmark = pytest.mark.anyio


def _samples(
    sql: sqlite3.Connection, metric: str, time_from: int, time_to: int, ci_ids: list[int] | None
) -> list[tuple[int, int, float]]:
    rows = sql.execute(
        "SELECT v.ci_id, v.ts, v.value FROM metric_values v"
        " JOIN metric_defs d ON d.id = v.metric_id"
        " WHERE d.name = ? AND v.ts >= ? AND v.ts < ? ORDER BY v.ci_id, v.ts",
        (metric, time_from, time_to),
    ).fetchall()
    return [r for r in rows if ci_ids is None or r[0] in ci_ids]


def _expected(values: list[float], agg: str) -> float | int | None:
    if agg == "count":
        return len(values)
    if not values:
        return None
    if agg == "p95":
        return sorted(values)[math.ceil(0.95 * len(values)) - 1]
    functions: dict[str, Any] = {"avg": statistics.fmean, "min": min, "max": max, "sum": math.fsum}
    result: float = functions[agg](values)
    return result


@pytest.mark.parametrize("agg", ["avg", "min", "max", "sum", "count", "p95"])
@pytest.mark.parametrize(
    ("metric", "time_range", "ci_ids"),
    [
        ("cpu_usage", "last_24h", None),
        ("latency_ms", "last_1h", [1, 2, 3, 6, 7, 40]),
        ("error_rate", "last_7d", [7]),
    ],
)
async def test_aggregate_matches_the_raw_samples(
    registry: ToolRegistry,
    ops_db: OpsDatabase,
    sql: sqlite3.Connection,
    agg: str,
    metric: str,
    time_range: str,
    ci_ids: list[int] | None,
) -> None:
    span = {"last_1h": 3600, "last_24h": 86_400, "last_7d": 7 * 86_400}[time_range]
    params: dict[str, Any] = {"metric": metric, "agg": agg, "time_range": time_range}
    if ci_ids is not None:
        params["ci_ids"] = ci_ids
    result = await call(registry, "METRIC", "aggregate", params)
    samples = _samples(sql, metric, ops_db.now - span, ops_db.now, ci_ids)
    expected = _expected([v for _, _, v in samples], agg)
    assert samples  # the case is not vacuous
    assert result["value"] == pytest.approx(expected, rel=1e-9)
    assert result["ci_count"] == len({ci for ci, _, _ in samples})
    assert result["metric"] == metric
    assert result["agg"] == agg
    assert (result["time_from"], result["time_to"]) == (iso(ops_db.now - span), iso(ops_db.now))


async def test_an_explicit_range_equal_to_last_24h_gives_the_same_answer(
    registry: ToolRegistry, ops_db: OpsDatabase
) -> None:
    explicit = {"from": iso(ops_db.now - 86_400), "to": iso(ops_db.now)}
    relative = await call(registry, "METRIC", "aggregate", {"metric": "mem_usage"})
    absolute = await call(
        registry, "METRIC", "aggregate", {"metric": "mem_usage", "time_range": explicit}
    )
    assert relative == absolute
    assert relative["value"] is not None


@pytest.mark.parametrize(
    "params",
    [
        {"metric": "cpu_usage", "ci_ids": []},
        {"metric": "cpu_usage", "ci_ids": [9999]},
        {"metric": "cpu_usage", "time_range": {"from": "2020-01-01", "to": "2020-01-02"}},
    ],
)
@pytest.mark.parametrize("agg", ["avg", "count", "p95"])
async def test_no_samples_is_a_valid_empty_answer(
    registry: ToolRegistry, params: dict[str, Any], agg: str
) -> None:
    result = await call(registry, "METRIC", "aggregate", {**params, "agg": agg})
    assert result["value"] == (0 if agg == "count" else None)
    assert result["ci_count"] == 0


async def test_last_hour_has_twelve_samples_per_ci(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    result = await call(
        registry,
        "METRIC",
        "aggregate",
        {"metric": "cpu_usage", "agg": "count", "time_range": "last_1h"},
    )
    reporting = sql.execute(
        "SELECT COUNT(*) FROM ci_metrics cm JOIN metric_defs d ON d.id = cm.metric_id"
        " WHERE d.name = 'cpu_usage'"
    ).fetchone()[0]
    assert result["ci_count"] == reporting > 0
    assert result["value"] == 12 * reporting


async def test_raw_series_returns_the_newest_points_oldest_first(
    registry: ToolRegistry, ops_db: OpsDatabase, sql: sqlite3.Connection
) -> None:
    result = await call(
        registry,
        "METRIC",
        "series",
        {"ci_id": 7, "metric": "latency_ms", "bucket": "raw", "limit": 50},
    )
    samples = _samples(sql, "latency_ms", ops_db.now - 86_400, ops_db.now, [7])[-50:]
    assert result == {
        "metric": "latency_ms",
        "ci_id": 7,
        "points": [[iso(ts), value] for _, ts, value in samples],
    }


@pytest.mark.parametrize(("bucket", "width"), [("1h", 3600), ("15m", 900), ("1d", 86_400)])
async def test_bucketed_series_averages_each_bucket(
    registry: ToolRegistry,
    ops_db: OpsDatabase,
    sql: sqlite3.Connection,
    bucket: str,
    width: int,
) -> None:
    result = await call(
        registry,
        "METRIC",
        "series",
        {"ci_id": 30, "metric": "cpu_usage", "bucket": bucket, "time_range": "last_7d"},
    )
    groups: dict[int, list[float]] = {}
    for _, ts, value in _samples(sql, "cpu_usage", ops_db.now - 7 * 86_400, ops_db.now, [30]):
        groups.setdefault(ts // width * width, []).append(value)
    expected = [[iso(start), statistics.fmean(values)] for start, values in sorted(groups.items())]
    assert [p[0] for p in result["points"]] == [p[0] for p in expected]
    assert [p[1] for p in result["points"]] == pytest.approx([p[1] for p in expected])
    assert len(expected) > 1


async def test_series_of_a_missing_ci_or_metric_is_empty(registry: ToolRegistry) -> None:
    missing_ci = await call(registry, "METRIC", "series", {"ci_id": 9999, "metric": "cpu_usage"})
    other_metric = await call(registry, "METRIC", "series", {"ci_id": 1, "metric": "packet_loss"})
    assert missing_ci == {"metric": "cpu_usage", "ci_id": 9999, "points": []}
    assert other_metric["points"] == []


async def test_metric_tools_issue_one_query_except_p95(
    registry: ToolRegistry, ops_db: OpsDatabase
) -> None:
    await call(registry, "METRIC", "aggregate", {"metric": "cpu_usage"})
    await call(registry, "METRIC", "aggregate", {"metric": "cpu_usage", "agg": "p95"})
    await call(registry, "METRIC", "series", {"ci_id": 30, "metric": "cpu_usage"})
    assert ops_db.queries_by_tool() == {"METRIC.aggregate": 3, "METRIC.series": 1}


async def test_bad_metric_params_name_the_param(registry: ToolRegistry) -> None:
    with pytest.raises(InvalidParams) as caught:
        await call(registry, "METRIC", "aggregate", {"metric": "cpu_usage", "ci_ids": [0]})
    assert caught.value.param == "ci_ids[0]"
    with pytest.raises(InvalidParams) as caught:
        await call(registry, "METRIC", "series", {"ci_id": 1, "metric": "cpu_usage", "limit": -1})
    assert caught.value.param == "limit"
