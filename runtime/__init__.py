"""runtime: an actor-style concurrent runtime for tools (the reference
operations-assistant suite and its preset live in ``runtime.ops``).

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
    compile_composition,
    run_pipeline,
)
from runtime.preset import Preset, apply_preset
from runtime.runtime import BestResult, Runtime, RuntimeHealth, open_runtime
from runtime.tools import Tool, ToolContext, ToolRegistry, ToolResult, ToolSpec

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
    "Preset",
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
    "UnknownComposition",
    "UnknownIntent",
    "UnknownStrategy",
    "apply_preset",
    "compile_composition",
    "config_from_dict",
    "config_to_dict",
    "load_config",
    "open_runtime",
    "run_pipeline",
]
