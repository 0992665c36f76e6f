"""METRIC tools: one aggregate over many CIs, and one CI's time series.

Both walk ``ci_metrics`` (which CI reports which metric) and seek into ``metric_values``
by its primary key ``(ci_id, metric_id, ts)``, so a query touches only the rows of the
asked-for series and time range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from runtime.ops.db import Session
from runtime.ops.params import BUCKETS
from runtime.ops.sql import placeholders
from runtime.ops.timerange import iso, resolve_time_range

__all__ = ["metric_aggregate", "metric_series"]

_AGGREGATES: Mapping[str, str] = {
    "avg": "AVG(v.value)",
    "min": "MIN(v.value)",
    "max": "MAX(v.value)",
    "sum": "SUM(v.value)",
    "count": "COUNT(v.value)",
}


def _scope(params: Mapping[str, Any], time_from: int, time_to: int) -> tuple[str, list[Any]]:
    sql = (
        " FROM ci_metrics cm"
        " JOIN metric_defs d ON d.id = cm.metric_id"
        " JOIN metric_values v ON v.ci_id = cm.ci_id AND v.metric_id = cm.metric_id"
        " AND v.ts >= ? AND v.ts < ?"
        " WHERE d.name = ?"
    )
    args: list[Any] = [time_from, time_to, params["metric"]]
    if "ci_ids" in params:
        ci_ids = sorted(set(params["ci_ids"]))
        sql += f" AND cm.ci_id IN ({placeholders(len(ci_ids))})"
        args.extend(ci_ids)
    return sql, args


def metric_aggregate(session: Session, params: Mapping[str, Any]) -> dict[str, Any]:
    time_from, time_to = resolve_time_range(params["time_range"], session.now)
    scope, args = _scope(params, time_from, time_to)
    agg: str = params["agg"]
    value: float | int | None
    if agg == "p95":
        # Nearest-rank percentile: count, then fetch the one value at that rank, rather
        # than shipping every sample to Python.
        counted = session.one(f"SELECT COUNT(*), COUNT(DISTINCT v.ci_id){scope}", args)
        samples, ci_count = counted if counted else (0, 0)
        value = None
        if samples:
            rank = math.ceil(0.95 * samples) - 1
            row = session.one(
                f"SELECT v.value{scope} ORDER BY v.value LIMIT 1 OFFSET ?", [*args, rank]
            )
            value = row[0] if row else None
    else:
        row = session.one(f"SELECT {_AGGREGATES[agg]}, COUNT(DISTINCT v.ci_id){scope}", args)
        value, ci_count = row if row else (None, 0)
    return {
        "metric": params["metric"],
        "agg": agg,
        "value": value,
        "ci_count": ci_count,
        "time_from": iso(time_from),
        "time_to": iso(time_to),
    }


def metric_series(session: Session, params: Mapping[str, Any]) -> dict[str, Any]:
    time_from, time_to = resolve_time_range(params["time_range"], session.now)
    width = BUCKETS[params["bucket"]]
    scope = (
        " FROM metric_values v JOIN metric_defs d ON d.id = v.metric_id"
        " WHERE v.ci_id = ? AND d.name = ? AND v.ts >= ? AND v.ts < ?"
    )
    args: list[Any] = [params["ci_id"], params["metric"], time_from, time_to]
    # The newest ``limit`` points, returned oldest first.
    if width == 0:
        sql = f"SELECT v.ts, v.value{scope} ORDER BY v.ts DESC LIMIT ?"
    else:
        sql = (
            f"SELECT (v.ts / {width}) * {width} AS bucket, AVG(v.value){scope}"
            " GROUP BY bucket ORDER BY bucket DESC LIMIT ?"
        )
    rows = session.all(sql, [*args, params["limit"]])
    return {
        "metric": params["metric"],
        "ci_id": params["ci_id"],
        "points": [[iso(ts), value] for ts, value in reversed(rows)],
    }
