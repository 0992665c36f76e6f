"""CI.search / CI.get / CI.aggregate against the small generated CMDB.

The oracle is plain Python over every row of ``cis`` read directly: the tools' SQL is
checked against an independent evaluation of the same question.
"""

from __future__ import annotations

import fnmatch
import json
import sqlite3
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops_fixtures import (  # noqa: F401
    call,
    fixture_ops_db,
    fixture_ops_db_path,
    fixture_registry,
    fixture_session,
    fixture_sql,
)

from runtime.errors import InvalidParams
from runtime.ops import OpsDatabase, validate_params
from runtime.ops.ci import ci_search
from runtime.ops.db import Session
from runtime.tools import ToolRegistry

pytestmark = pytest.mark.anyio

INJECTIONS = [
    "'; DROP TABLE cis; --",
    '" OR 1=1 --',
    "x') OR ('1'='1",
    "1; DELETE FROM events",
    "%",
    "\\",
    "' UNION SELECT * FROM meta --",
]


def _all_cis(sql: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = sql.execute(
        "SELECT id, code, name, type, env, status, owner, tags, attributes FROM cis ORDER BY id"
    ).fetchall()
    return [
        {
            "ci_id": r[0],
            "ci_code": r[1],
            "ci_name": r[2],
            "ci_type": r[3],
            "env": r[4],
            "status": r[5],
            "owner": r[6],
            "tags": json.loads(r[7]),
            "attributes": json.loads(r[8]),
        }
        for r in rows
    ]


def _field(record: dict[str, Any], field: str) -> Any:
    if field.startswith("attributes."):
        return record["attributes"].get(field.split(".", 1)[1])
    return record[field]


def _like(value: Any, pattern: str) -> bool:
    # SQLite LIKE is case-insensitive for ASCII; the test patterns use % and _ only.
    glob = pattern.lower().replace("*", "[*]").replace("%", "*").replace("_", "?")
    return value is not None and fnmatch.fnmatchcase(str(value).lower(), glob)


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "=": lambda a, b: a is not None and a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a is not None and a < b,
    "<=": lambda a, b: a is not None and a <= b,
    ">": lambda a, b: a is not None and a > b,
    ">=": lambda a, b: a is not None and a >= b,
    "like": _like,
    "not like": lambda a, b: not _like(a, b),
    "in": lambda a, b: a is not None and a in b,
    "not in": lambda a, b: a not in b,
}
_NEGATIONS = {"!=": "=", "not like": "like", "not in": "in"}


def _matches(record: dict[str, Any], item: dict[str, Any]) -> bool:
    field, op, value = item["field"], item["op"], item["value"]
    if field == "tags":
        if op in _NEGATIONS:
            return not any(_COMPARE[_NEGATIONS[op]](tag, value) for tag in record["tags"])
        return any(_COMPARE[op](tag, value) for tag in record["tags"])
    return _COMPARE[op](_field(record, field), value)


def _keyword_hit(record: dict[str, Any], keyword: str) -> bool:
    k = keyword.lower()
    fields = [record["ci_name"], record["ci_code"], record["ci_type"], *record["tags"]]
    return any(k in f.lower() for f in fields)


FILTERS = [
    {"field": "env", "op": "=", "value": "prod"},
    {"field": "ci_type", "op": "in", "value": ["host", "database"]},
    {"field": "owner", "op": "like", "value": "team-c%"},
    {"field": "attributes.region", "op": "!=", "value": "eu-west-1"},
    {"field": "attributes.vendor", "op": "!=", "value": "cisco"},
    {"field": "tags", "op": "=", "value": "critical"},
    {"field": "tags", "op": "not in", "value": ["critical", "legacy"]},
    {"field": "tags", "op": "like", "value": "k8s%"},
    {"field": "ci_id", "op": ">", "value": 30},
    {"field": "ci_id", "op": "<=", "value": 12.5},
    {"field": "status", "op": "not in", "value": ["active"]},
    {"field": "ci_name", "op": "not like", "value": "%-01"},
    {"field": "attributes.os", "op": "=", "value": "linux"},
]


@pytest.mark.parametrize("item", FILTERS, ids=lambda f: f"{f['field']} {f['op']}")
async def test_search_filters_match_a_python_oracle(
    registry: ToolRegistry, sql: sqlite3.Connection, item: dict[str, Any]
) -> None:
    result = await call(registry, "CI", "search", {"filters": [item], "limit": 100})
    expected = [r for r in _all_cis(sql) if _matches(r, item)]
    assert result["total"] == len(expected)
    assert result["records"] == expected  # full records, default sort by id
    assert 0 < len(expected) < len(_all_cis(sql))  # each filter is a real test


async def test_keywords_are_anded_over_name_code_type_and_tags(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    everything = _all_cis(sql)
    for keywords in (["host"], ["linux", "app"], ["APP-000"], ["critical", "gateway"]):
        result = await call(registry, "CI", "search", {"keywords": keywords, "limit": 100})
        expected = [r for r in everything if all(_keyword_hit(r, k) for k in keywords)]
        assert [r["ci_id"] for r in result["records"]] == [r["ci_id"] for r in expected]
        assert result["total"] == len(expected) > 0


async def test_wildcards_in_keywords_are_literal(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    # "_" appears literally only in the type load_balancer; as a wildcard it would match all.
    result = await call(registry, "CI", "search", {"keywords": ["_"], "limit": 100})
    balancers = [r for r in _all_cis(sql) if _keyword_hit(r, "_")]
    assert result["total"] == len(balancers) > 0
    assert {r["ci_type"] for r in result["records"]} == {"load_balancer"}
    assert (await call(registry, "CI", "search", {"keywords": ["%"]}))["total"] == 0


async def test_limit_caps_records_not_total_and_sort_orders(registry: ToolRegistry) -> None:
    result = await call(registry, "CI", "search", {"limit": 5, "sort": "-ci_name"})
    everything = await call(registry, "CI", "search", {"limit": 100, "sort": "ci_name"})
    assert len(result["records"]) == 5
    assert result["total"] == everything["total"] == 60
    names = [r["ci_name"] for r in everything["records"]]
    assert names == sorted(names)
    assert [r["ci_name"] for r in result["records"]] == sorted(names, reverse=True)[:5]


@pytest.mark.parametrize("text", INJECTIONS)
async def test_injection_strings_are_plain_data(
    registry: ToolRegistry, ops_db: OpsDatabase, sql: sqlite3.Connection, text: str
) -> None:
    before = sql.execute("SELECT COUNT(*) FROM cis").fetchone()[0]
    found = await call(registry, "CI", "search", {"keywords": [text]})
    filtered = await call(
        registry, "CI", "search", {"filters": [{"field": "ci_name", "op": "in", "value": [text]}]}
    )
    got = await call(registry, "CI", "get", {"ci_code": text})
    grouped = await call(
        registry,
        "CI",
        "aggregate",
        {"group_by": "owner", "filters": [{"field": "owner", "op": "=", "value": text}]},
    )
    assert found == {"records": [], "total": 0}
    assert filtered == {"records": [], "total": 0}
    assert got == {"record": None}
    assert grouped == {"columns": ["owner", "count"], "rows": [], "total": 0}
    assert sql.execute("SELECT COUNT(*) FROM cis").fetchone()[0] == before == 60


async def test_get_by_id_and_by_code_agree_with_the_table(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    expected = _all_cis(sql)[16]
    by_id = await call(registry, "CI", "get", {"ci_id": expected["ci_id"]})
    by_code = await call(registry, "CI", "get", {"ci_code": expected["ci_code"]})
    assert by_id == by_code == {"record": expected}


async def test_get_of_a_missing_ci_is_an_empty_answer(registry: ToolRegistry) -> None:
    assert await call(registry, "CI", "get", {"ci_id": 10_000}) == {"record": None}
    assert await call(registry, "CI", "get", {"ci_code": "NOPE-1"}) == {"record": None}


@pytest.mark.parametrize("group_by", ["ci_type", "env", "owner", "attributes.region"])
async def test_aggregate_counts_match_a_python_oracle(
    registry: ToolRegistry, sql: sqlite3.Connection, group_by: str
) -> None:
    everything = _all_cis(sql)
    result = await call(
        registry,
        "CI",
        "aggregate",
        {
            "group_by": group_by,
            "metrics": ["count", "count_distinct"],
            "distinct_field": "status",
            "top_n": 3,
        },
    )
    counts = Counter(_field(r, group_by) for r in everything)
    statuses: dict[Any, set[str]] = {}
    for r in everything:
        statuses.setdefault(_field(r, group_by), set()).add(r["status"])
    expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    assert result["columns"] == [group_by, "count", "count_distinct"]
    assert result["rows"] == [[key, n, len(statuses[key])] for key, n in expected]
    assert result["total"] == len(counts)


async def test_aggregate_without_group_by_counts_the_filtered_set(
    registry: ToolRegistry, sql: sqlite3.Connection
) -> None:
    item = {"field": "env", "op": "=", "value": "prod"}
    result = await call(registry, "CI", "aggregate", {"filters": [item]})
    expected = sum(1 for r in _all_cis(sql) if _matches(r, item))
    assert result == {"columns": ["count"], "rows": [[expected]], "total": 1}


async def test_each_tool_counts_its_queries(registry: ToolRegistry, ops_db: OpsDatabase) -> None:
    await call(registry, "CI", "get", {"ci_id": 1})
    await call(registry, "CI", "search", {"keywords": ["host"]})
    await call(registry, "CI", "aggregate", {"group_by": "env"})
    assert ops_db.queries_by_tool() == {"CI.get": 1, "CI.search": 2, "CI.aggregate": 2}
    assert ops_db.query_count == 5


async def test_invalid_params_fail_before_touching_the_database(
    registry: ToolRegistry, ops_db: OpsDatabase
) -> None:
    with pytest.raises(InvalidParams) as caught:
        await call(registry, "CI", "search", {"limit": 1000})
    assert caught.value.param == "limit"
    with pytest.raises(InvalidParams) as caught:
        await call(registry, "CI", "search", {"filters": [{"field": "pwd", "op": "=", "value": 1}]})
    assert caught.value.param == "filters[0].field"
    with pytest.raises(InvalidParams) as caught:
        await call(registry, "CI", "get", {"ci_id": "7"})
    assert caught.value.param == "ci_id"
    assert ops_db.query_count == 0


_filter_items = st.sampled_from(FILTERS)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    items=st.lists(_filter_items, max_size=3),
    keywords=st.lists(st.sampled_from(["host", "prod", "a", "-0", "k8s", "ZZ"]), max_size=2),
)
def test_any_combination_of_filters_and_keywords_is_anded(
    session: Session, sql: sqlite3.Connection, items: list[dict[str, Any]], keywords: list[str]
) -> None:
    params = validate_params("CI", "search", {"filters": items, "keywords": keywords, "limit": 100})
    result = ci_search(session, params)
    expected = [
        r["ci_id"]
        for r in _all_cis(sql)
        if all(_matches(r, i) for i in items) and all(_keyword_hit(r, k) for k in keywords)
    ]
    assert [r["ci_id"] for r in result["records"]] == expected
    assert result["total"] == len(expected)
