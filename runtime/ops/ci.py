"""CI tools: search, get and aggregate over the ``cis`` table.

Handlers take a :class:`~runtime.ops.db.Session` and params already validated against
:data:`~runtime.ops.params.PARAMS_SCHEMAS`; they run on a worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from runtime.ops.db import Session
from runtime.ops.schema import field_sql
from runtime.ops.sql import filters_sql, keywords_sql, where

__all__ = ["CI_COLUMNS", "ci_aggregate", "ci_get", "ci_search", "record"]

CI_COLUMNS = (
    "cis.id, cis.code, cis.name, cis.type, cis.env, cis.status, cis.owner, cis.tags, cis.attributes"
)


def record(row: tuple[Any, ...]) -> dict[str, Any]:
    """The agreed CI record shape for a row selected with :data:`CI_COLUMNS`."""
    ci_id, code, name, ci_type, env, status, owner, tags, attributes = row
    return {
        "ci_id": ci_id,
        "ci_code": code,
        "ci_name": name,
        "ci_type": ci_type,
        "env": env,
        "status": status,
        "owner": owner,
        "tags": json.loads(tags),
        "attributes": json.loads(attributes),
    }


def ci_search(session: Session, params: Mapping[str, Any]) -> dict[str, Any]:
    clause, args = where(
        [*keywords_sql(params.get("keywords", [])), *filters_sql(params.get("filters", []))]
    )
    total_row = session.one(f"SELECT COUNT(*) FROM cis{clause}", args)
    total = total_row[0] if total_row else 0
    sort: str = params["sort"]
    descending = sort.startswith("-")
    column = field_sql(sort.lstrip("-"))
    order = f"{column} {'DESC' if descending else 'ASC'}, cis.id ASC"
    rows = session.all(
        f"SELECT {CI_COLUMNS} FROM cis{clause} ORDER BY {order} LIMIT ?",
        [*args, params["limit"]],
    )
    return {"records": [record(row) for row in rows], "total": total}


def ci_get(session: Session, params: Mapping[str, Any]) -> dict[str, Any]:
    if "ci_id" in params:
        row = session.one(f"SELECT {CI_COLUMNS} FROM cis WHERE cis.id = ?", [params["ci_id"]])
    else:
        row = session.one(f"SELECT {CI_COLUMNS} FROM cis WHERE cis.code = ?", [params["ci_code"]])
    return {"record": record(row) if row is not None else None}


def ci_aggregate(session: Session, params: Mapping[str, Any]) -> dict[str, Any]:
    clause, args = where(filters_sql(params.get("filters", [])))
    metrics: list[str] = params["metrics"]
    distinct = field_sql(params["distinct_field"])
    expressions = ["COUNT(*)" if m == "count" else f"COUNT(DISTINCT {distinct})" for m in metrics]
    group_by: str | None = params.get("group_by")
    if group_by is None:
        row = session.one(f"SELECT {', '.join(expressions)} FROM cis{clause}", args)
        return {"columns": list(metrics), "rows": [list(row or ())], "total": 1}
    key = field_sql(group_by)
    total_row = session.one(
        f"SELECT COUNT(*) FROM (SELECT 1 FROM cis{clause} GROUP BY {key})", args
    )
    rows = session.all(
        f"SELECT {key} AS group_key, {', '.join(expressions)} FROM cis{clause} "
        f"GROUP BY group_key ORDER BY 2 DESC, group_key ASC LIMIT ?",
        [*args, params["top_n"]],
    )
    return {
        "columns": [group_by, *metrics],
        "rows": [list(row) for row in rows],
        "total": total_row[0] if total_row else 0,
    }
