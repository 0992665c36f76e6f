"""CEP tool: simulate a rule over past metrics, record that it was simulated.

The evaluation itself is the pure :func:`runtime.ops.cep.detect_alerts`; this module
fetches its input — only the breaching samples, filtered in SQL, which gives the same
alerts as the full series (see :mod:`runtime.ops.cep`) at a fraction of the rows — and
the events around each alert as evidence.

Every simulation appends a row to ``cep_exec_log``: that is the side effect that makes
CEP.simulate a write, registered with ``side_effects=True`` so the runtime never serves it
from the cache.  Calls rejected for bad params (an unknown ``rule_id`` included) write
nothing: nothing was simulated.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any

import attrs

from runtime.errors import InvalidParams
from runtime.ops.cep import SQL_OPS, Alert, Rule, detect_alerts, parse_rule
from runtime.ops.db import Session
from runtime.ops.sql import chunks, placeholders
from runtime.ops.timerange import iso, resolve_time_range

__all__ = ["MAX_EVIDENCE", "cep_simulate"]

MAX_EVIDENCE = 200


def _rule(session: Session, params: Mapping[str, Any]) -> Rule:
    if "rule" in params:
        return attrs.evolve(parse_rule(params["rule"]), name="inline")
    rule_id = params["rule_id"]
    row = session.one(
        "SELECT id, name, metric, op, threshold, duration_s, severity, ci_type"
        " FROM cep_rules WHERE id = ?",
        [rule_id],
    )
    if row is None:
        raise InvalidParams("CEP", "simulate", "rule_id", f"no CEP rule with id {rule_id}")
    found_id, name, metric, op, threshold, duration_s, severity, ci_type = row
    return Rule(metric, op, threshold, duration_s, found_id, name, severity, ci_type)


def _evidence(
    session: Session, alerts: list[Alert], rule: Rule, time_from: int, time_to: int
) -> list[dict[str, Any]]:
    evidence: list[dict[str, Any]] = [
        {
            "kind": "metric",
            "ci_id": a.ci_id,
            "metric": rule.metric,
            "ts": iso(a.peak_ts),
            "value": a.peak,
        }
        for a in alerts
    ]
    ci_ids = sorted({a.ci_id for a in alerts})
    events: list[tuple[Any, ...]] = []
    for chunk in chunks(ci_ids):
        events.extend(
            session.all(
                "SELECT id, ci_id, ts, severity, kind, message FROM events"
                f" WHERE ci_id IN ({placeholders(len(chunk))}) AND ts >= ? AND ts < ?"
                " ORDER BY ci_id, ts, id",
                [*chunk, time_from, time_to],
            )
        )
    # An event is evidence for an alert when it happened while the alert's run lasted
    # (with a sample's slack either side: events are stamped within their 5 minutes).
    for alert in alerts:
        low, high = alert.start_ts - session.step, alert.end_ts + 2 * session.step
        for event_id, ci_id, ts, severity, kind, message in events:
            if ci_id == alert.ci_id and low <= ts <= high:
                evidence.append(
                    {
                        "kind": "event",
                        "ci_id": ci_id,
                        "event_id": event_id,
                        "ts": iso(ts),
                        "severity": severity,
                        "event_kind": kind,
                        "message": message,
                    }
                )
    return evidence[:MAX_EVIDENCE]


def cep_simulate(
    session: Session, params: Mapping[str, Any], *, tenant_id: str | None = None
) -> dict[str, Any]:
    time_from, time_to = resolve_time_range(params["time_range"], session.now)
    rule = _rule(session, params)
    # Scope: the CIs reporting the metric, of the rule's CI type, among the asked-for ids.
    scope = " FROM ci_metrics cm JOIN metric_defs d ON d.id = cm.metric_id"
    scope_args: list[Any] = []
    if rule.ci_type is not None:
        scope += " JOIN cis c ON c.id = cm.ci_id AND c.type = ?"
        scope_args.append(rule.ci_type)
    where_sql = " WHERE d.name = ?"
    where_args: list[Any] = [rule.metric]
    if "ci_ids" in params:
        ci_ids = sorted(set(params["ci_ids"]))
        where_sql += f" AND cm.ci_id IN ({placeholders(len(ci_ids))})"
        where_args.extend(ci_ids)
    counted = session.one(f"SELECT COUNT(*){scope}{where_sql}", [*scope_args, *where_args])
    ci_count = counted[0] if counted else 0
    samples = session.all(
        f"SELECT v.ci_id, v.ts, v.value{scope}"
        " JOIN metric_values v ON v.ci_id = cm.ci_id AND v.metric_id = cm.metric_id"
        f" AND v.ts >= ? AND v.ts < ? AND v.value {SQL_OPS[rule.op]} ?"
        f"{where_sql} ORDER BY v.ci_id, v.ts",
        [*scope_args, time_from, time_to, rule.threshold, *where_args],
    )
    all_alerts = detect_alerts(samples, rule, session.step)
    alerts = all_alerts[: params["max_alerts"]]
    evidence = _evidence(session, alerts, rule, time_from, time_to) if alerts else []
    simulation_id = uuid.uuid4().hex
    exec_log_id = session.insert(
        "INSERT INTO cep_exec_log (simulation_id, rule_id, rule_text, time_from, time_to,"
        " ci_count, alert_count, triggered, tenant_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            simulation_id,
            rule.rule_id,
            rule.text,
            time_from,
            time_to,
            ci_count,
            len(all_alerts),
            int(bool(all_alerts)),
            tenant_id,
            dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        ],
    )
    return {
        "triggered": bool(all_alerts),
        "alerts": [
            {
                "ci_id": a.ci_id,
                "metric": rule.metric,
                "severity": rule.severity,
                "start": iso(a.start_ts),
                "fired_at": iso(a.fired_ts),
                "end": iso(a.end_ts),
                "peak": a.peak,
                "samples": a.samples,
            }
            for a in alerts
        ],
        "evidence": evidence,
        "simulation_id": simulation_id,
        "exec_log_id": exec_log_id,
        "rule": {
            "rule_id": rule.rule_id,
            "name": rule.name,
            "text": rule.text,
            "metric": rule.metric,
            "op": rule.op,
            "threshold": rule.threshold,
            "duration_s": rule.duration_s,
            "severity": rule.severity,
        },
        "ci_count": ci_count,
        "alert_count": len(all_alerts),
        "time_from": iso(time_from),
        "time_to": iso(time_to),
    }
