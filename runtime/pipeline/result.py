"""What a pipeline run answers: the results by step, and what happened to every step.

The original returned ``{"primary", "enriched", "execution_trace"}`` and nothing about
failures: a skipped step simply vanished.  :class:`PipelineResult` keeps that shape
(:meth:`PipelineResult.to_dict`) and adds one :class:`StepOutcome` per declared step.

Statuses:

* ``ok`` -- the tool answered;
* ``fallback`` -- the step failed and its fallback answered (``error`` keeps the
  step's own failure, ``fallback_used`` is true);
* ``failed`` -- the step (and its fallback, if any) failed; with ``on_error="skip"`` the
  run went on, with ``fail_fast`` it stopped;
* ``skipped`` -- its ``condition`` was false, so it never called its tool;
* ``cancelled`` -- it was running when the run was cancelled (a fail-fast sibling, the
  run's deadline, or the caller); ``error`` says which;
* ``not_run`` -- the run ended before the step started.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import attrs

__all__ = ["PipelineResult", "StepOutcome", "StepStatus"]

StepStatus = Literal["ok", "skipped", "fallback", "failed", "cancelled", "not_run"]


@attrs.frozen(slots=True)
class StepOutcome:
    """What happened to one step.

    ``attempts`` counts the step's own tool calls (retries included; its fallback's calls
    are on the fallback's trace span), ``duration_s`` runs from its start to its end on the
    monotonic clock, ``error`` is ``"ErrorType: message"``.
    """

    name: str
    status: StepStatus
    tool: str
    operation: str
    attempts: int = 0
    duration_s: float = 0.0
    error: str | None = None
    error_type: str | None = None
    fallback_used: bool = False
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "tool": self.tool,
            "operation": self.operation,
            "attempts": self.attempts,
            "duration_s": self.duration_s,
            "error": self.error,
            "error_type": self.error_type,
            "fallback_used": self.fallback_used,
        }


@attrs.frozen(slots=True)
class PipelineResult:
    """The answer of one run.

    ``results`` holds every step that produced a value (``ok`` or ``fallback``) by name, in
    declaration order; ``primary`` is the first declared step's result (``None`` if it
    produced none) and ``enriched`` the others', as in the original shape.
    ``execution_trace`` lists the steps that started, in the order they started.
    """

    pipeline: str
    results: Mapping[str, Any]
    outcomes: Mapping[str, StepOutcome]
    execution_trace: tuple[str, ...]
    duration_s: float = 0.0

    @property
    def primary_step(self) -> str:
        return next(iter(self.outcomes))

    @property
    def primary(self) -> Any:
        return self.results.get(self.primary_step)

    @property
    def enriched(self) -> dict[str, Any]:
        first = self.primary_step
        return {name: value for name, value in self.results.items() if name != first}

    @property
    def ok(self) -> bool:
        """Whether every step that was meant to run answered (skipped by condition counts)."""
        return all(outcome.status in ("ok", "skipped") for outcome in self.outcomes.values())

    def status(self, step: str) -> StepStatus:
        return self.outcomes[step].status

    def to_dict(self) -> dict[str, Any]:
        """``{"primary", "enriched", "execution_trace"}`` plus ``"steps"``: name -> outcome."""
        return {
            "primary": self.primary,
            "enriched": self.enriched,
            "execution_trace": list(self.execution_trace),
            "steps": {name: outcome.to_dict() for name, outcome in self.outcomes.items()},
        }
