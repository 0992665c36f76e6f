"""Value types of the tool model: what a tool is asked with and what it answers.

A tool type is any non-empty string; a tool suite may name its own as a ``StrEnum``
(the ops suite's ``runtime.ops.preset.ToolType``), which compares equal to the string.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["ToolContext", "ToolResult", "rebuilt_ok_result"]


def _non_empty(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{attribute.name} must be a non-empty string, got {value!r}")


def _optional_str(instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise TypeError(f"{attribute.name} must be a string or None, got {type(value).__name__}")


@attrs.frozen(slots=True)
class ToolContext:
    """Who is asking, and under which request.

    ``tenant_id`` is required because it is part of every cache key: a result computed
    for one tenant is never served to another.
    """

    tenant_id: str = attrs.field(validator=_non_empty)
    user_id: str | None = attrs.field(default=None, validator=_optional_str)
    request_id: str | None = attrs.field(default=None, validator=_optional_str)
    trace_id: str | None = attrs.field(default=None, validator=_optional_str)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)


@attrs.frozen(slots=True)
class ToolResult:
    """The outcome of one tool call.

    ``error_type`` keeps the name of the exception a failing tool raised, ``exception``
    the exception itself (not compared, not shown) so callers can chain it.
    """

    success: bool
    data: Any = None
    error: str | None = None
    error_type: str | None = None
    warnings: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    metadata: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)
    exception: BaseException | None = attrs.field(default=None, eq=False, repr=False)

    @classmethod
    def ok(cls, data: Any, **metadata: Any) -> ToolResult:
        return cls(True, data, metadata=metadata)

    @classmethod
    def failure(
        cls, error: str, error_type: str = "ToolError", exception: BaseException | None = None
    ) -> ToolResult:
        return cls(False, None, error=error, error_type=error_type, exception=exception)

    @classmethod
    def from_exception(cls, exc: BaseException) -> ToolResult:
        return cls.failure(str(exc) or type(exc).__name__, type(exc).__name__, exc)


# Each slot's own setter, bound once: rebuilt_ok_result sets the fields directly.
(
    _SET_SUCCESS,
    _SET_DATA,
    _SET_ERROR,
    _SET_ERROR_TYPE,
    _SET_WARNINGS,
    _SET_METADATA,
    _SET_EXCEPTION,
) = (ToolResult.__dict__[field.name].__set__ for field in attrs.fields(ToolResult))
_new_result = object.__new__


def rebuilt_ok_result(data: Any, warnings: tuple[str, ...], metadata: dict[str, Any]) -> ToolResult:
    """``ToolResult(True, data, warnings=warnings, metadata=metadata)`` for parts that are
    already of the fields' types (a cache hit's, fresh from its stored form).

    Skips the converters and the per-field ``object.__setattr__`` of the generated
    ``__init__``: on a cache hit that ``__init__`` cost as much as thawing the value.
    ``tests/test_tool_model.py`` pins the result against the constructor's.
    """
    result = _new_result(ToolResult)
    _SET_SUCCESS(result, True)
    _SET_DATA(result, data)
    _SET_ERROR(result, None)
    _SET_ERROR_TYPE(result, None)
    _SET_WARNINGS(result, warnings)
    _SET_METADATA(result, metadata)
    _SET_EXCEPTION(result, None)
    return result
