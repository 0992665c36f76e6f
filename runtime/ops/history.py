"""HISTORY tool: the event log of some CIs over a time range, newest first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.ops.db import Session
from runtime.ops.sql import SqlPart, placeholders, where
from runtime.ops.timerange import iso, resolve_time_range

__all__ = ["event_log"]


def event_log(session: Session, params: Mapping[str, Any]) -> dict[str, Any]:
    time_from, time_to = resolve_time_range(params["time_range"], session.now)
    parts: list[SqlPart] = [("ts >= ? AND ts < ?", [time_from, time_to])]
    if "ci_ids" in params:
        ci_ids = sorted(set(params["ci_ids"]))
        parts.append((f"ci_id IN ({placeholders(len(ci_ids))})", ci_ids))
    if "severity" in params:
        severity = params["severity"]
        levels = sorted({severity} if isinstance(severity, str) else set(severity))
        parts.append((f"severity IN ({placeholders(len(levels))})", levels))
    if "kinds" in params:
        kinds = sorted(set(params["kinds"]))
        parts.append((f"kind IN ({placeholders(len(kinds))})", kinds))
    clause, args = where(parts)
    total_row = session.one(f"SELECT COUNT(*) FROM events{clause}", args)
    rows = session.all(
        f"SELECT id, ci_id, ts, severity, kind, message FROM events{clause}"
        " ORDER BY ts DESC, id DESC LIMIT ?",
        [*args, params["limit"]],
    )
    return {
        "events": [
            {
                "event_id": event_id,
                "ci_id": ci_id,
                "ts": iso(ts),
                "severity": severity,
                "kind": kind,
                "message": message,
            }
            for event_id, ci_id, ts, severity, kind, message in rows
        ],
        "total": total_row[0] if total_row else 0,
    }
