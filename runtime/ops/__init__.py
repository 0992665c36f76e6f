"""The reference ops tool suite over an embedded SQLite CMDB, and its data generator.

- :func:`build_database` / :func:`ensure_database` / :func:`seed_db_main` create the
  deterministic sample CMDB (``runtime.ops.generate``);
- :class:`OpsDatabase` opens it for the tools (its own worker threads, one connection
  each; a query counter);
- :func:`register_ops_tools` registers CI.search/get/aggregate, METRIC.aggregate/series,
  GRAPH.expand/path, HISTORY.event_log and CEP.simulate on a ``ToolRegistry``;
- :data:`PARAMS_SCHEMAS` describes every tool's params (see ``runtime.ops.params``);
- :data:`OPS_PRESET` (``runtime.ops.preset``) is the suite's TTL table, intents, profiles
  and compositions, laid under a configuration by ``runtime.apply_preset``;
  :func:`load_ops_config` / :func:`ops_defaults` (``runtime.ops.config``) read a config
  with the ``ops:`` section and the preset applied; ``ToolType`` and ``IntentType`` name
  the suite's tool families and intents.
"""

from runtime.ops.config import OpsConfig, OpsRuntimeConfig, load_ops_config, ops_defaults
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
from runtime.ops.preset import OPS_PRESET, IntentType, ToolType
from runtime.ops.tools import TOOL_DEFS, OpsTool, ToolDef, register_ops_tools

__all__ = [
    "DEFAULT_CIS",
    "DEFAULT_DAYS",
    "DEFAULT_NOW",
    "DEFAULT_SEED",
    "OPS_PRESET",
    "PARAMS_SCHEMAS",
    "TOOL_DEFS",
    "BuildSummary",
    "IntentType",
    "OpsConfig",
    "OpsDatabase",
    "OpsRuntimeConfig",
    "OpsTool",
    "QueryCounter",
    "Session",
    "ToolDef",
    "ToolType",
    "build_database",
    "content_digest",
    "ensure_database",
    "existing_database",
    "load_ops_config",
    "ops_defaults",
    "register_ops_tools",
    "seed_db_main",
    "validate_params",
]
