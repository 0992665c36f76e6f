"""Tools and the registry that finds them by ``(tool_type, operation)``.

A tool is anything with ``async execute(ctx, params)``; a plain async function
``(ctx, params) -> data`` is wrapped into one.  The registry is built before the runtime
starts and only read afterwards, which is why it needs no actor.

A ``params_schema`` (:mod:`runtime.tools.schema`) is compiled when the tool is
registered -- a malformed one is a :class:`~runtime.tools.schema.SchemaError` then, not at
the first call -- and :meth:`ToolSpec.check_params` is what the executor runs before any
cache work: the schema (normalising the params), then the ``validator`` if there is one.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs

from runtime.errors import InvalidParams, ToolNotFound
from runtime.tools.model import ToolContext, ToolResult
from runtime.tools.schema import ParamsChecker, compile_schema

__all__ = ["ParamsValidator", "Tool", "ToolRegistry", "ToolSpec", "safe_execute"]

ToolFunction = Callable[[ToolContext, Mapping[str, Any]], Awaitable[Any]]
ParamsValidator = Callable[[Mapping[str, Any]], object]
"""Checks params without running the tool; raises InvalidParams when it would reject them."""
F = TypeVar("F", bound=ToolFunction)


@runtime_checkable
class Tool(Protocol):
    """The tool protocol: answer ``params`` for ``ctx`` with a ToolResult or plain data."""

    async def execute(self, ctx: ToolContext, params: Mapping[str, Any]) -> Any: ...


@attrs.frozen(slots=True)
class _FunctionTool:
    function: ToolFunction

    async def execute(self, ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        return await self.function(ctx, params)


@attrs.frozen(slots=True)
class ToolSpec:
    """A registered tool with what the runtime needs to know about it.

    ``side_effects`` marks tools that change the world (CEP.simulate writes an execution
    log): their results are never cached, whatever the TTL table says.  ``params_schema``
    and ``validator`` are enforced by the executor on every call (:meth:`check_params`).
    """

    tool_type: str
    operation: str
    tool: Tool
    description: str = ""
    side_effects: bool = False
    params_schema: Mapping[str, Any] | None = None
    validator: ParamsValidator | None = None
    checker: ParamsChecker | None = attrs.field(init=False, eq=False, repr=False)
    """The compiled ``params_schema`` (None without one)."""
    checks_params: bool = attrs.field(init=False, eq=False, repr=False)
    """Whether :meth:`check_params` does anything: the executor's one test per call."""

    def __attrs_post_init__(self) -> None:
        schema = self.params_schema
        checker = compile_schema(schema) if schema is not None else None
        object.__setattr__(self, "checker", checker)
        object.__setattr__(self, "checks_params", checker is not None or self.validator is not None)

    @property
    def key(self) -> tuple[str, str]:
        return (self.tool_type, self.operation)

    def check_params(self, params: Mapping[str, Any]) -> Mapping[str, Any]:
        """``params`` as the tool gets them: checked against the schema with defaults
        filled in (a fresh dict), then passed to the validator; raises
        :class:`InvalidParams` naming the offending param.  Without either, ``params``."""
        checker = self.checker
        if checker is not None:
            params = checker.validate(params, self.tool_type, self.operation)
        if self.validator is not None:
            self.validator(params)
        return params

    def rejects(self, params: Mapping[str, Any]) -> InvalidParams | None:
        """The tool's validation error for ``params`` without running it, if it has one.

        Lets ``execute_best`` skip a candidate that cannot take the params instead of
        running it to watch it fail (and counting that as the tool's failure).
        """
        try:
            self.check_params(params)
        except InvalidParams as exc:
            return exc
        return None


def _name(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise TypeError(f"{what} must be a non-empty string, got {value!r}")
    return str(value)


class ToolRegistry:
    """Tools by ``(tool_type, operation)``; registering one key twice is an error."""

    def __init__(self) -> None:
        self._specs: dict[tuple[str, str], ToolSpec] = {}

    def register(
        self,
        tool_type: str,
        operation: str,
        tool: Tool | ToolFunction,
        *,
        description: str = "",
        side_effects: bool = False,
        params_schema: Mapping[str, Any] | None = None,
        validator: ParamsValidator | None = None,
    ) -> ToolSpec:
        """Register ``tool`` (an object with ``execute`` or an async function).

        ``params_schema`` (optional, :mod:`runtime.tools.schema`'s language) is compiled
        now -- :class:`~runtime.tools.schema.SchemaError` if malformed -- and enforced on
        every call: unknown keys, types, bounds, enums and required keys are rejected with
        :class:`InvalidParams` before any cache work, and the tool (and the cache key)
        get the params with defaults filled in.  ``validator`` (optional) checks params
        without running the tool, raising :class:`InvalidParams`; it runs after the
        schema, on every call, and ``execute_best`` uses both to skip candidates that
        cannot take the params.
        """
        key = (_name(tool_type, "tool_type"), _name(operation, "operation"))
        if key in self._specs:
            raise ValueError(f"a tool is already registered for ({key[0]}, {key[1]})")
        if isinstance(tool, Tool):
            impl: Tool = tool
        elif inspect.iscoroutinefunction(tool):
            impl = _FunctionTool(tool)
        else:
            raise TypeError(
                f"tool for ({key[0]}, {key[1]}) must define async execute(ctx, params) "
                f"or be an async function, got {tool!r}"
            )
        spec = ToolSpec(key[0], key[1], impl, description, side_effects, params_schema, validator)
        self._specs[key] = spec
        return spec

    def tool(
        self,
        tool_type: str,
        operation: str,
        *,
        description: str = "",
        side_effects: bool = False,
        params_schema: Mapping[str, Any] | None = None,
        validator: ParamsValidator | None = None,
    ) -> Callable[[F], F]:
        """Decorator form of :meth:`register` for async functions ``(ctx, params)``."""

        def decorate(function: F) -> F:
            self.register(
                tool_type,
                operation,
                function,
                description=description or (function.__doc__ or "").strip(),
                side_effects=side_effects,
                params_schema=params_schema,
                validator=validator,
            )
            return function

        return decorate

    def get(self, tool_type: str, operation: str) -> ToolSpec:
        """The spec for ``(tool_type, operation)``, or :class:`ToolNotFound` listing what is."""
        spec = self._specs.get((str(tool_type), operation))
        if spec is None:
            raise ToolNotFound(str(tool_type), operation, self.operations(str(tool_type)))
        return spec

    def operations(self, tool_type: str) -> tuple[str, ...]:
        return tuple(sorted(op for t, op in self._specs if t == tool_type))

    def tool_types(self) -> tuple[str, ...]:
        return tuple(sorted({t for t, _ in self._specs}))

    def specs(self) -> tuple[ToolSpec, ...]:
        return tuple(self._specs[k] for k in sorted(self._specs))

    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(sorted(self._specs))

    def __len__(self) -> int:
        return len(self._specs)


async def safe_execute(spec: ToolSpec, ctx: ToolContext, params: Mapping[str, Any]) -> ToolResult:
    """Run a tool, turning whatever it raises into a failed result keeping the type.

    Only ``Exception`` is caught: cancellation and ``KeyboardInterrupt`` must pass through
    untouched, or structured concurrency would stop working around tool calls.
    """
    try:
        outcome = await spec.tool.execute(ctx, params)
    except Exception as exc:
        return ToolResult.from_exception(exc)
    if isinstance(outcome, ToolResult):
        return outcome
    return ToolResult.ok(outcome)
