"""HISTORY.event_log, CEP.simulate, registration, and the database shell under load."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from ops_fixtures import (  # noqa: F401
    CTX,
    call,
    fixture_ops_db,
    fixture_ops_db_path,
    fixture_registry,
    fixture_sql,
)

from runtime import open_runtime
from runtime.errors import InvalidParams
from runtime.ops import PARAMS_SCHEMAS, TOOL_DEFS, OpsDatabase, register_ops_tools
from runtime.ops.config import ops_defaults
from runtime.ops.generate import INCIDENT_KINDS
from runtime.ops.timerange import iso
from runtime.tools import ToolRegistry, safe_execute

pytestmark = pytest.mark.anyio

ALL_TIME = {"from": "2000-01-01T00:00:00Z", "to": "2100-01-01T00:00:00Z"}


def _events(sql: sqlite3.Connection, where: str = "1", args: tuple[Any, ...] = ()) -> list[Any]:
    return sql.execute(
        f"SELECT id, ci_id, ts, severity, kind, message FROM events WHERE {where}"
        " ORDER BY ts DESC, id DESC",
        args,
    ).fetchall()


def _log_rows(sql: sqlite3.Connection) -> list[tuple[Any, ...]]:
    return sql.execute(
        "SELECT id, simulation_id, rule_id, rule_text, alert_count, triggered, tenant_id"
        " FROM cep_exec_log ORDER BY id"
    ).fetchall()


async def test_event_log_matches_the_table_newest_first(
    registry: ToolRegistry, ops_db: OpsDatabase, sql: sqlite3.Connection
) -> None:
    result = await call(registry, "HISTORY", "event_log", {"limit": 200})
    expected = _events(sql, "ts >= ? AND ts < ?", (ops_db.now - 86_400, ops_db.now))
    assert result["total"] == len(expected) > 0
    assert result["events"] == [
        {
            "event_id": e[0],
            "ci_id": e[1],
            "ts": iso(e[2]),
            "severity": e[3],
            "kind": e[4],
            "message": e[5],
        }
        for e in expected[:200]
    ]


@pytest.mark.parametrize("severity", ["critical", ["critical", "major"], ["warning", "info"]])
async def test_event_log_filters_by_ci_severity_and_kind(
    registry: ToolRegistry, sql: sqlite3.Connection, severity: str | list[str]
) -> None:
    levels = [severity] if isinstance(severity, str) else severity
    everything = _events(sql)
    ci_ids = sorted({e[1] for e in everything})[:20]
    result = await call(
        registry,
        "HISTORY",
        "event_log",
        {"ci_ids": ci_ids, "severity": severity, "time_range": ALL_TIME, "limit": 5},
    )
    expected = [e for e in everything if e[1] in ci_ids and e[3] in levels]
    assert result["total"] == len(expected) > 0
    assert [e["event_id"] for e in result["events"]] == [e[0] for e in expected[:5]]


async def test_event_log_kinds_and_empty_answers(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    alerts = await call(
        registry, "HISTORY", "event_log", {"kinds": ["alert"], "time_range": ALL_TIME}
    )
    incidents = sql.execute("SELECT COUNT(*) FROM incidents").fetchone()[0]
    assert alerts["total"] == incidents > 0
    none = await call(registry, "HISTORY", "event_log", {"ci_ids": []})
    nowhere = await call(registry, "HISTORY", "event_log", {"ci_ids": [9999]})
    assert none == nowhere == {"events": [], "total": 0}


def _incident_runs(sql: sqlite3.Connection, metric: str, ci_type: str | None) -> list[Any]:
    return sql.execute(
        "SELECT i.ci_id, i.start_ts, i.end_ts, i.peak FROM incidents i JOIN cis c ON c.id = i.ci_id"
        " WHERE i.metric = ? AND (? IS NULL OR c.type = ?) ORDER BY i.ci_id, i.start_ts",
        (metric, ci_type, ci_type),
    ).fetchall()


async def test_stored_rules_fire_exactly_on_the_planted_incidents(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    rules = sql.execute(
        "SELECT id, metric, threshold, duration_s, ci_type FROM cep_rules WHERE enabled = 1"
    ).fetchall()
    fired = 0
    for rule_id, metric, threshold, duration_s, ci_type in rules:
        kind = next(k for k in INCIDENT_KINDS if k.metric == metric)
        assert threshold == kind.threshold
        result = await call(
            registry, "CEP", "simulate", {"rule_id": rule_id, "time_range": ALL_TIME}
        )
        # Incidents last at least 15 minutes; a run shorter than the rule's duration is
        # not an alert.
        expected = [
            (ci, iso(start), iso(end), peak)
            for ci, start, end, peak in _incident_runs(sql, metric, ci_type)
            if end - start + 300 >= duration_s
        ]
        got = [(a["ci_id"], a["start"], a["end"], a["peak"]) for a in result["alerts"]]
        assert got == expected, (rule_id, metric)
        assert result["triggered"] is bool(expected)
        fired += len(got)
    assert fired > 0


async def test_an_inline_rule_is_the_same_as_the_stored_one(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    stored = await call(registry, "CEP", "simulate", {"rule_id": 3, "time_range": ALL_TIME})
    inline = await call(
        registry, "CEP", "simulate", {"rule": "latency_ms > 500 for 5m", "time_range": ALL_TIME}
    )
    assert stored["rule"]["text"] == "latency_ms > 500 for 5m"
    assert [a["start"] for a in stored["alerts"]] == [a["start"] for a in inline["alerts"]]
    assert stored["alerts"]
    assert stored["simulation_id"] != inline["simulation_id"]


async def test_alerts_come_with_metric_and_event_evidence(registry: ToolRegistry) -> None:
    result = await call(registry, "CEP", "simulate", {"rule_id": 3, "time_range": ALL_TIME})
    peaks = [e for e in result["evidence"] if e["kind"] == "metric"]
    events = [e for e in result["evidence"] if e["kind"] == "event"]
    assert [(e["ci_id"], e["value"]) for e in peaks] == [
        (a["ci_id"], a["peak"]) for a in result["alerts"]
    ]
    alerted = {a["ci_id"] for a in result["alerts"]}
    assert {e["ci_id"] for e in events if e["event_kind"] == "alert"} == alerted


async def test_every_simulation_writes_a_log_row_even_when_repeated(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    before = _log_rows(sql)
    first = await call(registry, "CEP", "simulate", {"rule_id": 1})
    second = await call(registry, "CEP", "simulate", {"rule_id": 1})
    empty = await call(registry, "CEP", "simulate", {"rule": "cpu_usage > 90", "ci_ids": []})
    rows = _log_rows(sql)[len(before) :]
    assert [row[0] for row in rows] == [
        first["exec_log_id"],
        second["exec_log_id"],
        empty["exec_log_id"],
    ]
    assert [row[1] for row in rows] == [
        first["simulation_id"],
        second["simulation_id"],
        empty["simulation_id"],
    ]
    assert len({row[1] for row in rows}) == 3
    assert rows[0][2] == rows[1][2] == 1
    assert rows[2][2] is None
    assert rows[2][3] == "cpu_usage > 90"
    assert {row[6] for row in rows} == {CTX.tenant_id}
    assert empty["triggered"] is False
    assert empty["alerts"] == []
    assert empty["ci_count"] == 0


async def test_an_unknown_rule_id_is_a_param_error_and_logs_nothing(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    before = _log_rows(sql)
    with pytest.raises(InvalidParams) as caught:
        await call(registry, "CEP", "simulate", {"rule_id": 999})
    assert caught.value.param == "rule_id"
    with pytest.raises(InvalidParams) as caught:
        await call(registry, "CEP", "simulate", {"rule": "cpu_usage > 90; DROP TABLE cis"})
    assert caught.value.param == "rule"
    assert _log_rows(sql) == before


async def test_registration_covers_all_nine_tools(ops_db: OpsDatabase) -> None:
    registry = ToolRegistry()
    register_ops_tools(registry, ops_db)
    assert len(registry) == len(TOOL_DEFS) == 9
    for spec in registry.specs():
        assert spec.params_schema == PARAMS_SCHEMAS[spec.key]
        assert spec.side_effects is (spec.key == ("CEP", "simulate"))
        assert spec.description
    failed = await safe_execute(registry.get("CI", "search"), CTX, {"limit": "all"})
    assert failed.success is False
    assert failed.error_type == "InvalidParams"
    assert isinstance(failed.exception, InvalidParams)
    assert failed.exception.param == "limit"


async def test_concurrent_calls_on_worker_threads_agree_with_sequential_ones(
    registry: ToolRegistry, ops_db: OpsDatabase
) -> None:
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("CI", "search", {"keywords": ["host"]}),
        ("CI", "aggregate", {"group_by": "owner"}),
        ("METRIC", "aggregate", {"metric": "cpu_usage", "agg": "p95", "time_range": "last_7d"}),
        ("METRIC", "series", {"ci_id": 30, "metric": "cpu_usage", "bucket": "1h"}),
        ("GRAPH", "expand", {"ci_id": 7, "depth": 3}),
        ("GRAPH", "path", {"source": 1, "target": 50}),
        ("HISTORY", "event_log", {"limit": 20}),
    ] * 4
    sequential = [await call(registry, *c) for c in calls]
    queries = ops_db.query_count
    concurrent: list[Any] = [None] * len(calls)
    simulations: list[Any] = []

    async def one(index: int) -> None:
        concurrent[index] = await call(registry, *calls[index])

    async def simulate() -> None:
        simulations.append(await call(registry, "CEP", "simulate", {"rule_id": 4}))

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for index in range(len(calls)):
                tg.start_soon(one, index)
            for _ in range(5):
                tg.start_soon(simulate)
    assert concurrent == sequential
    assert len({s["exec_log_id"] for s in simulations}) == 5
    # The counter is exact under concurrency: twice the sequential cost, plus CEP's.
    cep = ops_db.queries_by_tool()["CEP.simulate"]
    assert ops_db.query_count == 2 * queries + cep


async def test_a_closed_database_refuses_calls(ops_db_path: Path) -> None:
    db = await OpsDatabase.open(ops_db_path)
    registry = ToolRegistry()
    register_ops_tools(registry, db)
    assert (await call(registry, "CI", "get", {"ci_id": 1}))["record"]["ci_id"] == 1
    db.close()
    with pytest.raises(RuntimeError, match="closed"):
        await call(registry, "CI", "get", {"ci_id": 1})


async def test_read_tools_cannot_write(ops_db: OpsDatabase) -> None:
    def attempt(session: Any) -> None:
        session.conn.execute("DELETE FROM cis")

    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await ops_db.read("test", attempt)


async def test_a_cancelled_read_returns_at_once_and_interrupts_its_query(
    ops_db: OpsDatabase,
) -> None:
    outcome: list[BaseException | int] = []
    done = threading.Event()

    def endless(session: Any) -> int:
        try:
            row = session.one(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
                " WHERE x < 10000000000) SELECT COUNT(*) FROM c"
            )
            outcome.append(row[0])
            return int(row[0])
        except BaseException as exc:
            outcome.append(exc)
            raise
        finally:
            done.set()

    with anyio.fail_after(20):
        with anyio.move_on_after(0.2) as scope:
            await ops_db.read("slow", endless)
        assert scope.cancelled_caught
        await anyio.to_thread.run_sync(done.wait)
        assert isinstance(outcome[0], sqlite3.OperationalError)
        assert "interrupt" in str(outcome[0])
        # Whichever worker thread ran it, the connections still answer afterwards.
        for _ in range(3):
            assert await ops_db.read("after", lambda s: s.one("SELECT COUNT(*) FROM cis")) == (60,)


async def test_through_the_runtime_simulations_always_run_and_reads_are_cached(
    registry: ToolRegistry, ops_db: OpsDatabase, sql: sqlite3.Connection
) -> None:
    before = len(_log_rows(sql))
    with anyio.fail_after(30):
        async with open_runtime(registry, ops_defaults()) as runtime:
            first = await runtime.execute("CEP", "simulate", {"rule_id": 2}, CTX)
            second = await runtime.execute("CEP", "simulate", {"rule_id": 2}, CTX)
            gets = [await runtime.execute("CI", "get", {"ci_id": 3}, CTX) for _ in range(3)]
    rows = _log_rows(sql)[before:]
    assert [row[0] for row in rows] == [first["exec_log_id"], second["exec_log_id"]]
    assert first["simulation_id"] != second["simulation_id"]
    assert gets[0] == gets[1] == gets[2]
    assert gets[0]["record"]["ci_id"] == 3
    # Side-effecting calls are never cached; the repeated read is.
    assert ops_db.queries_by_tool()["CI.get"] == 1
