"""Composition: pipelines of tool steps, run on task groups.

* :mod:`~runtime.pipeline.steps` -- :class:`Step`, :class:`Parallel`, :class:`Pipeline`
  (immutable, validated values);
* :mod:`~runtime.pipeline.state` -- :class:`State`, what a step sees;
* :mod:`~runtime.pipeline.run` -- :func:`run_pipeline` and the :class:`StepExecutor` seam;
* :mod:`~runtime.pipeline.result` -- :class:`PipelineResult`, :class:`StepOutcome`;
* :mod:`~runtime.pipeline.refs` -- ``$step.path[*].key`` references in step params;
* :mod:`~runtime.pipeline.library` -- compositions declared as data.
"""

from runtime.pipeline.library import (
    compile_composition,
    compile_compositions,
)
from runtime.pipeline.refs import (
    ParamTemplate,
    Ref,
    RefSyntaxError,
    UnresolvedReference,
    compile_params,
    format_ref,
    parse_ref,
    resolve_path,
)
from runtime.pipeline.result import PipelineResult, StepOutcome, StepStatus
from runtime.pipeline.run import PIPELINE_TOOL_TYPE, StepExecutor, run_pipeline
from runtime.pipeline.state import State
from runtime.pipeline.steps import (
    Backoff,
    OnError,
    Parallel,
    Pipeline,
    Step,
    backoff_delay,
    default_retry_on,
)

__all__ = [
    "PIPELINE_TOOL_TYPE",
    "Backoff",
    "OnError",
    "Parallel",
    "ParamTemplate",
    "Pipeline",
    "PipelineResult",
    "Ref",
    "RefSyntaxError",
    "State",
    "Step",
    "StepExecutor",
    "StepOutcome",
    "StepStatus",
    "UnresolvedReference",
    "backoff_delay",
    "compile_composition",
    "compile_compositions",
    "compile_params",
    "default_retry_on",
    "format_ref",
    "parse_ref",
    "resolve_path",
    "run_pipeline",
]
