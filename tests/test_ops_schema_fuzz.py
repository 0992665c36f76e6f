"""Whatever a params schema admits, its tool answers: strategies derived from
PARAMS_SCHEMAS drive every handler against the small CMDB.

This keeps the schemas honest — a value the schema allows but the SQL chokes on (an
integer too large for SQLite, an ISO date out of range) fails here — and shows that the
schemas are complete enough to generate from.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops_fixtures import fixture_ops_db, fixture_ops_db_path  # noqa: F401

from runtime.errors import InvalidParams
from runtime.ops import PARAMS_SCHEMAS, TOOL_DEFS, OpsDatabase, validate_params
from runtime.ops.db import QueryCounter, Session
from runtime.tools import ToolContext

_moments = st.datetimes(
    min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=st.none()
)


def strategy(spec: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    kind = spec["type"]
    if kind == "int":
        return st.integers(spec.get("min"), spec.get("max"))
    if kind == "number":
        low, high = spec.get("min"), spec.get("max")
        return st.one_of(
            st.integers(low, high),
            st.floats(low, high, allow_nan=False, allow_infinity=False),
        )
    if kind == "str":
        if "enum" in spec:
            return st.sampled_from(spec["enum"])
        if "pattern" in spec:
            return st.from_regex(spec["pattern"], fullmatch=True).filter(
                lambda s: len(s) <= spec.get("max_length", 10**9)
            )
        if spec.get("format") == "iso_datetime":
            return _moments.map(lambda m: m.isoformat())
        return st.text(min_size=spec.get("min_length", 0), max_size=spec.get("max_length", 50))
    if kind == "bool":
        return st.booleans()
    if kind == "list":
        return st.lists(
            strategy(spec["items"]),
            min_size=spec.get("min_items", 0),
            max_size=min(spec.get("max_items", 5), 5),
        )
    if kind == "one_of":
        return st.one_of([strategy(choice) for choice in spec["choices"]])
    assert kind == "object"
    return _object(spec)


def _object(spec: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    fields: Mapping[str, Mapping[str, Any]] = spec["fields"]
    exclusive = [name for group in spec.get("exactly_one_of", ()) for name in group]
    required = {n: strategy(f) for n, f in fields.items() if f.get("required")}
    optional = {n: strategy(f) for n, f in fields.items() if not f.get("required")}
    optional = {n: s for n, s in optional.items() if n not in exclusive}
    base = st.fixed_dictionaries(required, optional=optional)
    if not exclusive:
        return base

    @st.composite
    def with_one_of(draw: st.DrawFn) -> dict[str, Any]:
        params = draw(base)
        for group in spec["exactly_one_of"]:
            name = draw(st.sampled_from(group))
            params[name] = draw(strategy(fields[name]))
        return params

    return with_one_of()


@pytest.fixture(name="rw_session")
def fixture_rw_session(ops_db_path: Path, ops_db: OpsDatabase) -> Iterator[Session]:
    conn = sqlite3.connect(ops_db_path)
    yield Session(conn, QueryCounter(), "fuzz", ops_db.now, ops_db.step)
    conn.close()


@pytest.mark.parametrize("definition", TOOL_DEFS, ids=lambda d: f"{d.tool_type}.{d.operation}")
@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_every_valid_params_gets_an_answer(
    rw_session: Session, definition: Any, data: st.DataObject
) -> None:
    params = data.draw(strategy(PARAMS_SCHEMAS[(definition.tool_type, definition.operation)]))
    checked = validate_params(definition.tool_type, definition.operation, params)
    context = ToolContext("fuzz")
    known_rules = {row[0] for row in rw_session.conn.execute("SELECT id FROM cep_rules")}
    if "rule_id" in checked and checked["rule_id"] not in known_rules:
        # The one check a schema cannot state: a stored rule id that does not exist.
        with pytest.raises(InvalidParams, match="rule_id"):
            definition.handler(rw_session, checked, context)
        return
    result = definition.handler(rw_session, checked, context)
    assert isinstance(result, dict)
    assert result
