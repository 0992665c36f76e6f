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
    RuntimeClosed,
    RuntimeFault,
    ToolExecutionError,
    ToolNotFound,
    ToolTimeout,
    UnknownComposition,
    UnknownIntent,
    UnknownStrategy,
)
from runtime.pipeline import (
    Backoff,
    Parallel,
    Pipeline,
    PipelineResult,
    State,
    Step,
    StepOutcome,
    builtin_compositions,
    compile_composition,
    run_pipeline,
)
from runtime.runtime import BestResult, Runtime, RuntimeHealth, open_runtime
from runtime.tools import Tool, ToolContext, ToolRegistry, ToolResult, ToolSpec, ToolType

__all__ = [
    "Actor",
    "ActorStats",
    "ActorUnavailable",
    "AllCandidatesFailed",
    "Backoff",
    "BestResult",
    "CallTimeout",
    "ConfigError",
    "InvalidParams",
    "Parallel",
    "Pipeline",
    "PipelineError",
    "PipelineResult",
    "Runtime",
    "RuntimeClosed",
    "RuntimeConfig",
    "RuntimeFault",
    "RuntimeHealth",
    "State",
    "Step",
    "StepOutcome",
    "Tool",
    "ToolContext",
    "ToolExecutionError",
    "ToolNotFound",
    "ToolRegistry",
    "ToolResult",
    "ToolSpec",
    "ToolTimeout",
    "ToolType",
    "UnknownComposition",
    "UnknownIntent",
    "UnknownStrategy",
    "builtin_compositions",
    "compile_composition",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "open_runtime",
    "run_pipeline",
]
