"""The sample CMDB generator: determinism, atomic writes, and the facts it plants."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import attrs
import pytest
from ops_fixtures import SMALL, fixture_ops_db_path, fixture_sql  # noqa: F401

from runtime.ops import DEFAULT_NOW, build_database, content_digest, ensure_database
from runtime.ops.generate import INCIDENT_KINDS, RESOLUTION_S

TINY = {"cis": 20, "days": 1}


def test_same_seed_builds_the_same_contents(tmp_path: Path) -> None:
    first = build_database(tmp_path / "a.db", seed=11, **TINY)
    second = build_database(tmp_path / "b.db", seed=11, **TINY)
    build_database(tmp_path / "c.db", seed=12, **TINY)
    # The elapsed time is excluded from equality; the paths differ by construction.
    assert attrs.evolve(first, path="") == attrs.evolve(second, path="")
    assert content_digest(tmp_path / "a.db") == content_digest(tmp_path / "b.db")
    assert content_digest(tmp_path / "a.db") != content_digest(tmp_path / "c.db")


def test_summary_and_meta_match_the_database(tmp_path: Path) -> None:
    summary = build_database(tmp_path / "s.db", seed=5, **TINY)
    conn = sqlite3.connect(tmp_path / "s.db")
    try:

        def count(table: str) -> int:
            return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

        assert summary.cis == count("cis") == TINY["cis"]
        assert summary.relations == count("relations")
        assert summary.metric_series == count("ci_metrics")
        assert summary.metric_points == count("metric_values")
        assert summary.events == count("events")
        assert summary.incidents == count("incidents")
        assert summary.rules == count("cep_rules")
        meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        assert int(meta["now"]) == summary.now == DEFAULT_NOW
        assert meta["now_iso"] == summary.now_iso == "2025-06-02T00:00:00Z"
        low, high = conn.execute("SELECT MIN(ts), MAX(ts) FROM metric_values").fetchone()
        assert low == DEFAULT_NOW - TINY["days"] * 86_400
        assert high == DEFAULT_NOW - RESOLUTION_S
        samples = TINY["days"] * 86_400 // RESOLUTION_S
        assert summary.metric_points == summary.metric_series * samples
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_incident_metrics_breach_only_inside_incidents(sql: sqlite3.Connection) -> None:
    thresholds = {kind.metric: kind.threshold for kind in INCIDENT_KINDS}
    for metric, threshold in thresholds.items():
        outside = sql.execute(
            "SELECT COUNT(*) FROM metric_values v JOIN metric_defs d ON d.id = v.metric_id"
            " WHERE d.name = ? AND v.value > ? AND NOT EXISTS (SELECT 1 FROM incidents i"
            " WHERE i.ci_id = v.ci_id AND i.metric = d.name"
            " AND v.ts BETWEEN i.start_ts AND i.end_ts)",
            (metric, threshold),
        ).fetchone()[0]
        inside_low = sql.execute(
            "SELECT COUNT(*) FROM incidents i JOIN metric_defs d ON d.name = i.metric"
            " JOIN metric_values v ON v.ci_id = i.ci_id AND v.metric_id = d.id"
            " AND v.ts BETWEEN i.start_ts AND i.end_ts WHERE i.metric = ? AND v.value <= ?",
            (metric, threshold),
        ).fetchone()[0]
        assert (metric, outside, inside_low) == (metric, 0, 0)
    peaks = sql.execute(
        "SELECT i.peak, MAX(v.value) FROM incidents i JOIN metric_defs d ON d.name = i.metric"
        " JOIN metric_values v ON v.ci_id = i.ci_id AND v.metric_id = d.id"
        " AND v.ts BETWEEN i.start_ts AND i.end_ts GROUP BY i.id"
    ).fetchall()
    assert peaks
    assert all(stored == observed for stored, observed in peaks)


def test_every_incident_raises_exactly_one_alert_event(sql: sqlite3.Connection) -> None:
    incidents = Counter(ci for (ci,) in sql.execute("SELECT ci_id FROM incidents"))
    alerts = Counter(ci for (ci,) in sql.execute("SELECT ci_id FROM events WHERE kind = 'alert'"))
    assert incidents == alerts
    severe = sql.execute(
        "SELECT DISTINCT kind FROM events WHERE severity IN ('critical', 'major')"
    ).fetchall()
    assert severe == [("alert",)]
    # Each alert is stamped within the first sample of its incident.
    late = sql.execute(
        "SELECT COUNT(*) FROM incidents i WHERE NOT EXISTS (SELECT 1 FROM events e"
        " WHERE e.ci_id = i.ci_id AND e.kind = 'alert' AND e.ts - i.start_ts BETWEEN 0 AND 59)"
    ).fetchone()[0]
    assert late == 0


def test_the_biggest_hub_is_in_an_incident_right_now(sql: sqlite3.Connection) -> None:
    now = DEFAULT_NOW
    active = sql.execute(
        "SELECT ci_id, metric FROM incidents WHERE end_ts = ?", (now - RESOLUTION_S,)
    ).fetchall()
    hub = sql.execute(
        "SELECT r.target FROM relations r JOIN cis c ON c.id = r.target"
        " WHERE c.type IN ('service', 'app', 'database')"
        " GROUP BY r.target ORDER BY COUNT(*) DESC, r.target ASC LIMIT 1"
    ).fetchone()[0]
    assert (hub, "latency_ms") in active


def test_graph_has_hubs_and_sound_relations(sql: sqlite3.Connection) -> None:
    degrees = [n for (n,) in sql.execute("SELECT COUNT(*) FROM relations GROUP BY target")]
    assert max(degrees) >= 3 * (sum(degrees) / len(degrees))
    dangling = sql.execute(
        "SELECT COUNT(*) FROM relations r WHERE r.source = r.target"
        " OR NOT EXISTS (SELECT 1 FROM cis WHERE id = r.source)"
        " OR NOT EXISTS (SELECT 1 FROM cis WHERE id = r.target)"
    ).fetchone()[0]
    assert dangling == 0
    types = {t for (t,) in sql.execute("SELECT DISTINCT type FROM cis")}
    assert {"service", "app", "database", "host", "switch", "router"} <= types


def test_a_failed_build_leaves_the_old_file_and_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "ops.db"
    target.write_bytes(b"the previous database")

    def explode(stage: str, done: int, total: int) -> None:
        if stage == "metrics" and done >= 10:
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        build_database(target, seed=1, progress=explode, **TINY)
    assert target.read_bytes() == b"the previous database"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ops.db"]


def test_a_rebuild_replaces_the_database_completely(tmp_path: Path) -> None:
    target = tmp_path / "ops.db"
    build_database(target, seed=1, **TINY)
    build_database(target, seed=2, **TINY)
    build_database(tmp_path / "fresh.db", seed=2, **TINY)
    assert content_digest(target) == content_digest(tmp_path / "fresh.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.db", "ops.db"]


def test_progress_reports_every_stage_in_order(tmp_path: Path) -> None:
    seen: list[tuple[str, int, int]] = []
    build_database(tmp_path / "p.db", seed=3, progress=lambda *a: seen.append(a), **TINY)
    stages = list(dict.fromkeys(stage for stage, _, _ in seen))
    assert stages == ["estate", "metrics", "indexes", "done"]
    metrics = [done for stage, done, _ in seen if stage == "metrics"]
    assert metrics == sorted(metrics)
    assert metrics[-1] == TINY["cis"]
    assert all(0 <= done <= total for _, done, total in seen)


def test_ensure_database_reuses_a_matching_build_and_rebuilds_otherwise(tmp_path: Path) -> None:
    target = tmp_path / "e.db"
    first = ensure_database(target, seed=4, **TINY)
    again = ensure_database(target, seed=4, **TINY)
    other = ensure_database(target, seed=9, **TINY)
    assert (first.built, again.built, other.built) == (True, False, True)
    assert (again.cis, again.metric_points, again.events) == (
        first.cis,
        first.metric_points,
        first.events,
    )
    assert other.seed == 9


@pytest.mark.parametrize(("cis", "days"), [(7, 1), (20, 0), (20, 31)])
def test_rejects_sizes_it_cannot_build(tmp_path: Path, cis: int, days: int) -> None:
    with pytest.raises(ValueError, match=r"cis|days"):
        build_database(tmp_path / "x.db", cis=cis, days=days, seed=1)
    assert not (tmp_path / "x.db").exists()


def test_the_shared_small_database_has_the_agreed_size(ops_db_path: Path) -> None:
    conn = sqlite3.connect(ops_db_path)
    try:
        assert conn.execute("SELECT COUNT(*) FROM cis").fetchone()[0] == SMALL["cis"]
    finally:
        conn.close()
