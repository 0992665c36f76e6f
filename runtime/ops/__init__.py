"""The reference ops tool suite over an embedded SQLite CMDB, and its data generator.

- :func:`build_database` / :func:`ensure_database` / :func:`seed_db_main` create the
  deterministic sample CMDB (``runtime.ops.generate``);
- :class:`OpsDatabase` opens it for the tools (its own worker threads, one connection
  each; a query counter);
- :func:`register_ops_tools` registers CI.search/get/aggregate, METRIC.aggregate/series,
  GRAPH.expand/path, HISTORY.event_log and CEP.simulate on a ``ToolRegistry``;
- :data:`PARAMS_SCHEMAS` describes every tool's params (see ``runtime.ops.params``).
"""

from runtime.ops.db import OpsDatabase, QueryCounter, Session
from runtime.ops.generate import (
    DEFAULT_CIS,
    DEFAULT_DAYS,
    DEFAULT_NOW,
    DEFAULT_SEED,
    BuildSummary,
    build_database,
    content_digest,
    ensure_database,
    existing_database,
    seed_db_main,
)
from runtime.ops.params import PARAMS_SCHEMAS, validate_params
from runtime.ops.tools import TOOL_DEFS, OpsTool, ToolDef, register_ops_tools

__all__ = [
    "DEFAULT_CIS",
    "DEFAULT_DAYS",
    "DEFAULT_NOW",
    "DEFAULT_SEED",
    "PARAMS_SCHEMAS",
    "TOOL_DEFS",
    "BuildSummary",
    "OpsDatabase",
    "OpsTool",
    "QueryCounter",
    "Session",
    "ToolDef",
    "build_database",
    "content_digest",
    "ensure_database",
    "existing_database",
    "register_ops_tools",
    "seed_db_main",
    "validate_params",
]
