"""Whatever a params schema admits, its tool answers: runtime.testing's strategies,
derived from PARAMS_SCHEMAS, drive every handler against the small CMDB.

This keeps the schemas honest — a value the schema allows but the SQL chokes on (an
integer too large for SQLite, an ISO date out of range) fails here — and shows that the
schemas are complete enough to generate from.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ops_fixtures import fixture_ops_db, fixture_ops_db_path  # noqa: F401

from runtime.errors import InvalidParams
from runtime.ops import TOOL_DEFS, OpsDatabase, validate_params
from runtime.ops.db import QueryCounter, Session
from runtime.ops.strategies import ops_params
from runtime.tools import ToolContext


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
    params = data.draw(ops_params(definition.tool_type, definition.operation))
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
