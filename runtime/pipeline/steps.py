"""Pipelines as values: :class:`Step`, :class:`Parallel` and :class:`Pipeline`.

A pipeline is a description, never a container of results: every class here is frozen,
validated when it is built, and holds no run state, so one :class:`Pipeline` object can be
run by any number of callers at once (the original kept results on a shared module-level
pipeline object, so concurrent runs mixed their answers).

Validation happens at construction so a mistake is reported where the pipeline is
declared, not half-way through a run: a ``fallback`` policy without a fallback step, a
fallback step without that policy, negative retries, duplicate step names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeAlias

import attrs

from runtime.errors import InvalidParams, ToolExecutionError
from runtime.pipeline.state import State

__all__ = [
    "ON_ERROR_POLICIES",
    "Backoff",
    "OnError",
    "Parallel",
    "ParamsSource",
    "Pipeline",
    "RetryOn",
    "Stage",
    "Step",
    "backoff_delay",
    "default_retry_on",
    "should_retry",
]

OnError = Literal["fail_fast", "skip", "fallback"]
ON_ERROR_POLICIES: tuple[str, ...] = ("fail_fast", "skip", "fallback")

ParamsSource: TypeAlias = Mapping[str, Any] | Callable[[State], Mapping[str, Any]]
RetryOn: TypeAlias = tuple[type[BaseException], ...] | Callable[[BaseException], bool]


def default_retry_on(error: BaseException) -> bool:
    """Retry tool failures (timeouts included) but not rejected params or unknown tools.

    Invalid params fail the same way every time; retrying them only adds latency.
    """
    return isinstance(error, ToolExecutionError) and not isinstance(error, InvalidParams)


def should_retry(retry_on: RetryOn, error: BaseException) -> bool:
    if isinstance(retry_on, tuple):
        return isinstance(error, retry_on)
    return bool(retry_on(error))


@attrs.frozen(slots=True)
class Backoff:
    """Exponential backoff with jitter: retry ``n`` (0-based) waits about ``base * factor**n``.

    The delay is capped at ``max`` and then spread by ``jitter`` (a fraction: 0.1 means
    uniformly within +-10 %), so callers retrying after one shared failure do not all
    come back at the same instant.
    """

    base: float = attrs.field(default=0.1)
    factor: float = attrs.field(default=2.0)
    max: float = attrs.field(default=10.0)
    jitter: float = attrs.field(default=0.1)

    def __attrs_post_init__(self) -> None:
        for name in ("base", "factor", "max", "jitter"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise TypeError(f"Backoff.{name} must be a number, got {value!r}")
            if not math.isfinite(value):
                raise ValueError(f"Backoff.{name} must be finite, got {value!r}")
        if self.base < 0:
            raise ValueError(f"Backoff.base must be >= 0, got {self.base}")
        if self.factor < 1:
            raise ValueError(f"Backoff.factor must be >= 1, got {self.factor}")
        if self.max < self.base:
            raise ValueError(f"Backoff.max ({self.max}) must be >= base ({self.base})")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"Backoff.jitter must be within [0, 1], got {self.jitter}")


def backoff_delay(backoff: Backoff, retry: int, unit_random: float) -> float:
    """The wait before retry number ``retry`` (0 = the first retry); pure.

    ``unit_random`` is a draw from [0, 1): the caller owns the random source, so a seeded
    ``random.Random`` makes the delays reproducible.
    """
    if retry < 0:
        raise ValueError(f"retry must be >= 0, got {retry}")
    # factor**retry overflows for huge retry counts; the cap makes the exact value moot.
    try:
        raw = backoff.base * backoff.factor**retry
    except OverflowError:
        raw = backoff.max
    capped = min(backoff.max, raw)
    spread = 1.0 + backoff.jitter * (2.0 * unit_random - 1.0)
    return max(0.0, capped * spread)


def _name(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"Step.{attribute.name} must be a non-empty string, got {value!r}")


def _params(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, Mapping) and not callable(value):
        raise TypeError(
            f"Step.params must be a mapping or a callable(state) -> mapping, "
            f"got {type(value).__name__}"
        )


def _freeze_params(value: Any) -> Any:
    # A mapping is copied so that mutating the dict the step was built from later does
    # not change the step.
    return dict(value) if isinstance(value, Mapping) else value


def _on_error(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value not in ON_ERROR_POLICIES:
        allowed = ", ".join(ON_ERROR_POLICIES)
        raise ValueError(f"Step.on_error must be one of {allowed}; got {value!r}")


def _timeout(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"Step.timeout must be a number or None, got {value!r}")
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"Step.timeout must be a positive finite number, got {value!r}")


def _retries(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"Step.retries must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"Step.retries must be >= 0, got {value}")


def _retry_on(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, tuple):
        for item in value:
            if not (isinstance(item, type) and issubclass(item, BaseException)):
                raise TypeError(f"Step.retry_on must hold exception types, got {item!r}")
    elif not callable(value):
        raise TypeError(
            f"Step.retry_on must be a tuple of exception types or a predicate, got {value!r}"
        )


def _optional_callable(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not callable(value):
        raise TypeError(f"Step.{attribute.name} must be callable or None, got {value!r}")


@attrs.frozen(slots=True)
class Step:
    """One tool call in a pipeline.

    ``params`` is a mapping, or a callable that derives it from the :class:`State`
    (initial params and earlier results).  ``on_error`` decides what a failure (after
    ``retries``) does to the run: ``fail_fast`` stops it and cancels running siblings,
    ``skip`` records the error and goes on, ``fallback`` runs ``fallback`` and uses its
    result under this step's name.  ``timeout`` bounds each attempt; ``retries`` extra
    attempts are made for errors matching ``retry_on`` (exception types or a predicate),
    waiting per ``backoff``.  ``condition`` (state -> bool) decides whether the step runs
    at all; a false condition makes it ``skipped``.
    """

    name: str = attrs.field(validator=_name)
    tool: str = attrs.field(converter=str, validator=_name)
    operation: str = attrs.field(validator=_name)
    params: ParamsSource = attrs.field(
        factory=dict, converter=_freeze_params, validator=_params, hash=False
    )
    on_error: OnError = attrs.field(default="fail_fast", validator=_on_error)
    fallback: Step | None = attrs.field(default=None)
    timeout: float | None = attrs.field(default=None, validator=_timeout)
    retries: int = attrs.field(default=0, validator=_retries)
    backoff: Backoff = attrs.field(factory=Backoff, validator=attrs.validators.instance_of(Backoff))
    retry_on: RetryOn = attrs.field(default=default_retry_on, validator=_retry_on)
    condition: Callable[[State], bool] | None = attrs.field(
        default=None, validator=_optional_callable
    )

    def __attrs_post_init__(self) -> None:
        # Typed as ``object``: untyped callers can pass anything.
        fallback: object = self.fallback
        if self.on_error == "fallback":
            if fallback is None:
                raise ValueError(f"step {self.name!r}: on_error='fallback' needs a fallback step")
            if not isinstance(fallback, Step):
                kind = type(fallback).__name__
                raise TypeError(f"step {self.name!r}: fallback must be a Step, got {kind}")
            if fallback.condition is not None:
                # A fallback that may decline to run would leave the step with no answer
                # and no error to report.
                raise ValueError(f"step {self.name!r}: a fallback step cannot have a condition")
        elif self.fallback is not None:
            raise ValueError(
                f"step {self.name!r}: a fallback step is given but on_error is "
                f"{self.on_error!r}; use on_error='fallback'"
            )


def _parallel_steps(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    assert isinstance(value, tuple)
    if not value:
        raise ValueError("Parallel needs at least one step")
    for step in value:
        if not isinstance(step, Step):
            raise TypeError(f"Parallel holds Steps only (no nesting), got {type(step).__name__}")


def _max_concurrency(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"Parallel.max_concurrency must be a positive integer, got {value!r}")


@attrs.frozen(slots=True, init=False)
class Parallel:
    """A fan-out group: its steps run side by side and fan in by name.

    Each step sees the state as it was before the group; ``max_concurrency`` bounds how
    many of them run at once (``None``: all).
    """

    steps: tuple[Step, ...] = attrs.field(validator=_parallel_steps)
    max_concurrency: int | None = attrs.field(default=None, validator=_max_concurrency)

    def __init__(self, *steps: Step, max_concurrency: int | None = None) -> None:
        self.__attrs_init__(tuple(steps), max_concurrency)


Stage: TypeAlias = Step | Parallel


def _stages(value: Sequence[Stage]) -> tuple[Stage, ...]:
    return tuple(value)


@attrs.frozen(slots=True)
class Pipeline:
    """A named sequence of stages (a :class:`Step` or a :class:`Parallel` group).

    ``defaults`` are initial params a run's own params override.  Step names are unique
    across the pipeline, since results are addressed by name.
    """

    name: str = attrs.field(validator=_name)
    steps: tuple[Stage, ...] = attrs.field(converter=_stages)
    defaults: Mapping[str, Any] = attrs.field(factory=dict, converter=dict, hash=False)
    description: str = ""

    def __attrs_post_init__(self) -> None:
        if not self.steps:
            raise ValueError(f"pipeline {self.name!r} has no steps")
        seen: set[str] = set()
        for stage in self.steps:
            if not isinstance(stage, Step | Parallel):
                raise TypeError(
                    f"pipeline {self.name!r}: a stage must be a Step or a Parallel group, "
                    f"got {type(stage).__name__}"
                )
            for step in _members(stage):
                if step.name in seen:
                    raise ValueError(f"pipeline {self.name!r}: duplicate step name {step.name!r}")
                seen.add(step.name)

    def iter_steps(self) -> Iterator[Step]:
        """Every top-level step in declaration order (fallbacks not included)."""
        for stage in self.steps:
            yield from _members(stage)

    @property
    def step_names(self) -> tuple[str, ...]:
        return tuple(step.name for step in self.iter_steps())


def _members(stage: Stage) -> tuple[Step, ...]:
    return stage.steps if isinstance(stage, Parallel) else (stage,)
