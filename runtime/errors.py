"""The exception hierarchy.

Every error the runtime raises on purpose derives from :class:`RuntimeFault`, so an
application can catch "anything the runtime decided to tell me" in one clause while
programming errors (``TypeError`` from a bad call signature, say) still surface as such.

Each class carries the facts a caller needs as attributes *and* states them in its
message: the tool and operation, the parameter, the config key path.  Messages are
written for the person reading a log line, attributes for the code that handles it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "ActorUnavailable",
    "AllCandidatesFailed",
    "CallTimeout",
    "ConfigError",
    "InvalidParams",
    "PipelineError",
    "RuntimeClosed",
    "RuntimeFault",
    "ToolExecutionError",
    "ToolNotFound",
    "ToolTimeout",
    "UnknownComposition",
    "UnknownIntent",
    "UnknownStrategy",
]


class RuntimeFault(Exception):
    """Base class of every error the runtime raises deliberately."""


class ConfigError(RuntimeFault, ValueError):
    """A configuration document is unreadable or invalid.

    ``path`` is the dotted key path of the offending value (``cache.ttl.METRIC.series``),
    empty for problems with the document as a whole (the message is then the problem).
    """

    def __init__(self, path: str, problem: str) -> None:
        self.path = path
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path else problem)


class ActorUnavailable(RuntimeFault):
    """The actor cannot answer: it crashed, was stopped, or was never started.

    When the actor died of an exception, that exception is chained as ``__cause__``
    and kept in ``reason``.
    """

    def __init__(self, actor: str, reason: BaseException | str | None = None) -> None:
        self.actor = actor
        self.reason = reason
        if isinstance(reason, BaseException):
            why = f"crashed with {type(reason).__name__}: {reason}"
        elif reason:
            why = reason
        else:
            why = "is not running"
        super().__init__(f"actor {actor!r} {why}")


class CallTimeout(RuntimeFault, TimeoutError):
    """A call to an actor did not get its reply within the caller's timeout."""

    def __init__(self, actor: str, timeout: float) -> None:
        self.actor = actor
        self.timeout = timeout
        super().__init__(f"call to actor {actor!r} got no reply within {timeout:g}s")


class ToolNotFound(RuntimeFault, LookupError):
    """No tool is registered for ``(tool_type, operation)``."""

    def __init__(self, tool_type: str, operation: str, available: Iterable[str] = ()) -> None:
        self.tool_type = tool_type
        self.operation = operation
        self.available = tuple(sorted(available))
        if self.available:
            hint = f"operations registered for {tool_type}: {', '.join(self.available)}"
        else:
            hint = f"no operation is registered for tool {tool_type!r}"
        super().__init__(f"no tool registered for ({tool_type}, {operation}); {hint}")


class ToolExecutionError(RuntimeFault):
    """A tool call failed.

    ``error_type`` is the name of the exception the tool raised (or the error type its
    failed :class:`~runtime.ToolResult` declared); the original exception, when there is
    one, is chained as ``__cause__``.
    """

    def __init__(self, tool_type: str, operation: str, error_type: str, message: str) -> None:
        self.tool_type = tool_type
        self.operation = operation
        self.error_type = error_type
        self.message = message
        super().__init__(f"{tool_type}.{operation} failed with {error_type}: {message}")


class ToolTimeout(ToolExecutionError, TimeoutError):
    """A tool call exceeded its timeout and was cancelled."""

    def __init__(self, tool_type: str, operation: str, timeout: float) -> None:
        self.timeout = timeout
        super().__init__(
            tool_type, operation, "ToolTimeout", f"exceeded its timeout of {timeout:g}s"
        )


class InvalidParams(ToolExecutionError, ValueError):
    """A tool rejected its parameters before doing any work.

    Raised by tools themselves; ``param`` names the offending parameter (dotted for nested
    values, e.g. ``filters[0].field``).
    """

    def __init__(self, tool_type: str, operation: str, param: str, problem: str) -> None:
        self.param = param
        self.problem = problem
        super().__init__(tool_type, operation, "InvalidParams", f"param {param!r}: {problem}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.tool_type, self.operation, self.param, self.problem))


class UnknownIntent(RuntimeFault, LookupError):
    """The selector was asked about an intent it has no candidates for."""

    def __init__(self, intent: str, known: Iterable[str]) -> None:
        self.intent = intent
        self.known = tuple(sorted(known))
        super().__init__(f"unknown intent {intent!r}; known intents: {', '.join(self.known)}")


class UnknownStrategy(RuntimeFault, ValueError):
    """The selector was asked to rank by a strategy it does not know."""

    def __init__(self, strategy: str, known: Iterable[str]) -> None:
        self.strategy = strategy
        self.known = tuple(sorted(known))
        super().__init__(
            f"unknown strategy {strategy!r}; known strategies: {', '.join(self.known)}"
        )


class UnknownComposition(RuntimeFault, LookupError):
    """``Runtime.compose`` was given a composition name nobody registered."""

    def __init__(self, composition: str, known: Iterable[str]) -> None:
        self.composition = composition
        self.known = tuple(sorted(known))
        super().__init__(
            f"unknown composition {composition!r}; known: {', '.join(self.known) or 'none'}"
        )


class RuntimeClosed(RuntimeFault):
    """The runtime was used after its ``open_runtime`` block ended: its actors are gone,
    so a call would run without the cache, the tracer or the selector."""

    def __init__(self) -> None:
        super().__init__("the runtime is closed: it was used after its open_runtime block ended")


class AllCandidatesFailed(RuntimeFault):
    """Every candidate tool for an intent failed; ``attempts`` lists each failure."""

    def __init__(self, intent: str, attempts: Sequence[tuple[str, str, BaseException]]) -> None:
        self.intent = intent
        self.attempts = tuple(attempts)
        listed = "; ".join(_attempt_line(tool, op, exc) for tool, op, exc in self.attempts)
        super().__init__(f"all candidates for intent {intent!r} failed: {listed}")


def _attempt_line(tool: str, op: str, exc: BaseException) -> str:
    """``CI.get: InvalidParams: param 'ci_id': ...`` -- a tool error's own message already
    names the tool and its error type, so it is not repeated."""
    if isinstance(exc, ToolExecutionError) and (exc.tool_type, exc.operation) == (tool, op):
        return f"{tool}.{op}: {exc.error_type}: {exc.message}"
    return f"{tool}.{op}: {type(exc).__name__}: {exc}"


class PipelineError(RuntimeFault):
    """A fail-fast step failed; the run was stopped.

    ``step`` names the failing step, ``partial`` holds the result of the run so far (a
    :class:`~runtime.PipelineResult`), the failure is chained as ``__cause__``.
    """

    def __init__(self, pipeline: str, step: str, cause: BaseException, partial: Any) -> None:
        self.pipeline = pipeline
        self.step = step
        self.cause = cause
        self.partial = partial
        super().__init__(
            f"pipeline {pipeline!r} failed at step {step!r}: {type(cause).__name__}: {cause}"
        )
