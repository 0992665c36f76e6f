"""runtime: an actor-style concurrent runtime for an operations assistant's tools.

The public surface is what this module re-exports; everything else is private.
"""

from runtime.actor import Actor, ActorStats
from runtime.config import RuntimeConfig, config_from_dict, config_to_dict, load_config
from runtime.errors import (
    ActorUnavailable,
    AllCandidatesFailed,
    CallTimeout,
    ConfigError,
    InvalidParams,
    PipelineError,
    RuntimeFault,
    ToolExecutionError,
    ToolNotFound,
    ToolTimeout,
    UnknownIntent,
)
from runtime.runtime import Runtime, RuntimeHealth, open_runtime
from runtime.tools import Tool, ToolContext, ToolRegistry, ToolResult, ToolSpec, ToolType

__all__ = [
    "Actor",
    "ActorStats",
    "ActorUnavailable",
    "AllCandidatesFailed",
    "CallTimeout",
    "ConfigError",
    "InvalidParams",
    "PipelineError",
    "Runtime",
    "RuntimeConfig",
    "RuntimeFault",
    "RuntimeHealth",
    "Tool",
    "ToolContext",
    "ToolExecutionError",
    "ToolNotFound",
    "ToolRegistry",
    "ToolResult",
    "ToolSpec",
    "ToolTimeout",
    "ToolType",
    "UnknownIntent",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "open_runtime",
]
