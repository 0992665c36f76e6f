"""Shared fixtures of the ops tests: one small generated CMDB per test session.

Test modules import the ``fixture_*`` functions (``from ops_fixtures import FIXTURES``
style, one name each); the fixtures themselves are named without the prefix, so a test's
``sql`` argument does not shadow an imported name.  pytest gives each importing module its own
copy of a session fixture, so the database itself is cached here, at module level, and
built once however many modules ask for it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.ops import OpsDatabase, build_database, register_ops_tools
from runtime.ops.db import QueryCounter, Session
from runtime.tools import ToolContext, ToolRegistry

SMALL = {"cis": 60, "days": 2, "seed": 7}
_BUILT: dict[str, Path] = {}


def small_db_path(factory: pytest.TempPathFactory) -> Path:
    if "small" not in _BUILT:
        path = factory.mktemp("ops") / "small.db"
        build_database(path, **SMALL)
        _BUILT["small"] = path
    return _BUILT["small"]


@pytest.fixture(name="ops_db_path")
def fixture_ops_db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_db_path(tmp_path_factory)


@pytest.fixture(name="ops_db")
def fixture_ops_db(ops_db_path: Path) -> Iterator[OpsDatabase]:
    db = OpsDatabase(ops_db_path)
    yield db
    db.close()


@pytest.fixture(name="registry")
def fixture_registry(ops_db: OpsDatabase) -> ToolRegistry:
    tools = ToolRegistry()
    register_ops_tools(tools, ops_db)
    return tools


@pytest.fixture(name="sql")
def fixture_sql(ops_db_path: Path) -> Iterator[sqlite3.Connection]:
    """A direct read-only connection, for cross-checking the tools' answers."""
    conn = sqlite3.connect(f"{ops_db_path.resolve().as_uri()}?mode=ro", uri=True)
    yield conn
    conn.close()


@pytest.fixture(name="session")
def fixture_session(sql: sqlite3.Connection, ops_db: OpsDatabase) -> Session:
    """A synchronous session for calling handlers directly (e.g. under hypothesis)."""
    return Session(sql, QueryCounter(), "test", ops_db.now, ops_db.step)


CTX = ToolContext("tenant-a", user_id="tester")


async def call(registry: ToolRegistry, tool_type: str, operation: str, params: Any) -> Any:
    return await registry.get(tool_type, operation).tool.execute(CTX, params)
