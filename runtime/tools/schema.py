"""The params schema language of tools, and the checker that enforces it.

A schema is plain JSON-able data (documented in docs/schemas.md; mapped to JSON Schema by
``runtime.tools.jsonschema.to_json_schema``)::

    {"type": "object", "fields": {name: spec}, "exactly_one_of": [[a, b], ...]}
    {"type": "int" | "number", "min": a, "max": b}
    {"type": "str", "min_length": m, "max_length": n, "enum": [...], "pattern": re,
     "format": "iso_datetime"}
    {"type": "bool"}
    {"type": "list", "items": spec, "min_items": m, "max_items": n}
    {"type": "one_of", "choices": [spec, ...], "discriminator": key}

A field spec may add ``"required": True`` or a ``"default"``; any spec a ``"description"``.

Contract: :func:`compile_schema` checks a schema once (a malformed one is a
:class:`SchemaError` naming the place in the schema) and returns a :class:`ParamsChecker`
whose :meth:`~ParamsChecker.validate` returns a *fresh* normalised copy of the params --
defaults filled in, tuples made lists -- or raises :class:`~runtime.errors.InvalidParams`
naming the first offending param by dotted path (``filters[0].op``).  Equal inputs give
equal outputs, and an output validates to itself: validation is idempotent.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from runtime.errors import InvalidParams

__all__ = ["SCHEMA_TYPES", "ParamsChecker", "SchemaError", "compile_schema", "validate_schema"]

SCHEMA_TYPES: Final = ("object", "int", "number", "str", "bool", "list", "one_of")
_KEYS: Final[Mapping[str, frozenset[str]]] = {
    "int": frozenset({"min", "max"}),
    "number": frozenset({"min", "max"}),
    "str": frozenset({"min_length", "max_length", "enum", "pattern", "format"}),
    "bool": frozenset(),
    "list": frozenset({"items", "min_items", "max_items"}),
    "object": frozenset({"fields", "exactly_one_of"}),
    "one_of": frozenset({"choices", "discriminator"}),
}
_COMMON_KEYS: Final = frozenset({"type", "required", "default", "description"})
_FORMATS: Final = ("iso_datetime",)
_TYPE_NAMES: Final[Mapping[str, str]] = {
    "int": "an integer",
    "number": "a number",
    "str": "a string",
    "bool": "a boolean",
    "list": "a list",
    "object": "an object",
}


class SchemaError(ValueError):
    """A ``params_schema`` that is not in the schema language; ``where`` names the spot."""

    def __init__(self, where: str, problem: str) -> None:
        self.where = where
        self.problem = problem
        super().__init__(f"params schema at {where}: {problem}")


class _Mismatch(Exception):
    """Raised inside a check; ``path`` collects segments innermost first on the way out,
    so the dotted path is only built when something is wrong."""

    def __init__(self, problem: str, *path: str | int) -> None:
        super().__init__(problem)
        self.problem = problem
        self.path = list(path)


def _render(path: Sequence[str | int]) -> str:
    text = ""
    for segment in reversed(path):
        if isinstance(segment, int):
            text += f"[{segment}]"
        else:
            text += f".{segment}" if text else segment
    return text or "params"


Check = Callable[[Any], Any]


class ParamsChecker:
    """A compiled schema: ``validate(params, tool_type, operation) -> dict``."""

    __slots__ = ("_check", "schema")

    def __init__(self, schema: Mapping[str, Any], check: Check) -> None:
        self.schema = schema
        self._check = check

    def validate(self, params: Any, tool_type: str = "", operation: str = "") -> dict[str, Any]:
        """A fresh, normalised copy of ``params``, or :class:`InvalidParams`."""
        try:
            result: dict[str, Any] = self._check(params)
        except _Mismatch as mismatch:
            where = _render(mismatch.path)
            raise InvalidParams(tool_type, operation, where, mismatch.problem) from None
        return result


def compile_schema(schema: Mapping[str, Any]) -> ParamsChecker:
    """Check ``schema`` (an ``object`` spec) and compile it; :class:`SchemaError` if bad."""
    if not isinstance(schema, Mapping) or schema.get("type") != "object":
        got = schema.get("type") if isinstance(schema, Mapping) else type(schema).__name__
        raise SchemaError(
            "params_schema", f'must be an {{"type": "object", ...}} spec, got {got!r}'
        )
    return ParamsChecker(schema, _compile(schema, "params_schema"))


def validate_schema(
    schema: Mapping[str, Any], params: Any, *, tool_type: str = "", operation: str = ""
) -> dict[str, Any]:
    """``params`` checked against ``schema`` and normalised (compiles it each time; keep a
    :class:`ParamsChecker` from :func:`compile_schema` to validate often)."""
    return compile_schema(schema).validate(params, tool_type, operation)


# -- compiling: one closure per spec, checked as it is built -----------------------------


def _compile(spec: Any, where: str) -> Check:
    if not isinstance(spec, Mapping):
        raise SchemaError(where, f"a spec must be a mapping, got {type(spec).__name__}")
    kind = spec.get("type")
    if not isinstance(kind, str) or kind not in _KEYS:
        raise SchemaError(where, f"unknown type {kind!r}; known: {', '.join(SCHEMA_TYPES)}")
    unknown = set(spec) - _KEYS[kind] - _COMMON_KEYS
    if unknown:
        allowed = ", ".join(sorted(_KEYS[kind] | _COMMON_KEYS))
        named = ", ".join(sorted(map(str, unknown)))
        raise SchemaError(where, f"unknown key(s) {named} for a {kind!r} spec; allowed: {allowed}")
    build = _BUILDERS[kind]
    check = build(spec, where)
    if "default" in spec:
        try:
            check(spec["default"])
        except _Mismatch as mismatch:
            raise SchemaError(where, f"the default does not pass: {mismatch.problem}") from None
    return check


def _number(value: Any, name: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise SchemaError(where, f"{name} must be a number, got {value!r}")
    return value


def _count(spec: Mapping[str, Any], name: str, where: str) -> int | None:
    value = spec.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
        raise SchemaError(where, f"{name} must be a whole number >= 0, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


def _is_number(value: Any) -> bool:
    cls = type(value)
    if cls is int:
        return True
    if cls is float:
        return math.isfinite(value)
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


_FITS: Final[Mapping[str, Callable[[Any], bool]]] = {
    "int": _is_int,
    "number": _is_number,
    "str": lambda value: isinstance(value, str),
    "bool": lambda value: isinstance(value, bool),
    "list": lambda value: isinstance(value, list | tuple),
    "object": lambda value: isinstance(value, Mapping),
    "one_of": lambda value: True,  # whether a nested one_of fits is for it to say
}


def _type_error(kind: str, value: Any) -> _Mismatch:
    got = type(value).__name__
    if kind == "number" and isinstance(value, float):
        got = "a non-finite float"
    return _Mismatch(f"must be {_TYPE_NAMES[kind]}, got {got}")


def _bounded(kind: str, spec: Mapping[str, Any], where: str) -> Check:
    low, high = _number(spec.get("min"), "min", where), _number(spec.get("max"), "max", where)
    fits = _FITS[kind]

    def check(value: Any) -> Any:
        if not fits(value):
            raise _type_error(kind, value)
        if (low is not None and value < low) or (high is not None and value > high):
            raise _Mismatch(f"must be between {low} and {high}, got {value!r}")
        return value

    return check


def _boolean(spec: Mapping[str, Any], where: str) -> Check:
    def check(value: Any) -> Any:
        if not isinstance(value, bool):
            raise _type_error("bool", value)
        return value

    return check


def _iso_datetime(text: str) -> bool:
    """``datetime.fromisoformat`` accepts it and, taken as UTC when naive, the moment lies
    within the years 1-9999 in UTC (as ``runtime.ops.timerange.parse_iso`` needs)."""
    try:
        moment = dt.datetime.fromisoformat(text)
        if moment.tzinfo is not None:
            moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return False
    return True


def _string(spec: Mapping[str, Any], where: str) -> Check:
    low, high = _count(spec, "min_length", where) or 0, _count(spec, "max_length", where)
    enum = spec.get("enum")
    if enum is not None and (
        isinstance(enum, str | bytes)
        or not isinstance(enum, Sequence)
        or not all(isinstance(member, str) for member in enum)
    ):
        raise SchemaError(where, f"enum must be a list of strings, got {enum!r}")
    allowed = frozenset(enum) if enum is not None else None
    allowed_text = ", ".join(enum or ())
    pattern = spec.get("pattern")
    try:
        compiled = re.compile(pattern) if pattern is not None else None
    except (re.error, TypeError) as exc:
        raise SchemaError(where, f"pattern {pattern!r} does not compile: {exc}") from None
    hint = spec.get("description", "the required format")
    form = spec.get("format")
    if form is not None and form not in _FORMATS:
        raise SchemaError(where, f"unknown format {form!r}; known: {', '.join(_FORMATS)}")

    def check(value: Any) -> Any:
        if type(value) is not str and not isinstance(value, str):
            raise _type_error("str", value)
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise _Mismatch("must be valid Unicode text (no lone surrogates)") from None
        if allowed is not None and value not in allowed:
            raise _Mismatch(f"must be one of {allowed_text}; got {_shown(value)!r}")
        if len(value) < low:
            raise _Mismatch(f"must have at least {low} characters")
        if high is not None and len(value) > high:
            raise _Mismatch(f"must have at most {high} characters")
        if compiled is not None and compiled.fullmatch(value) is None:
            raise _Mismatch(f"must match {hint}; got {_shown(value)!r}")
        if form is not None and not _iso_datetime(value):
            raise _Mismatch(f"must be an ISO-8601 datetime, got {_shown(value)!r}")
        return value

    return check


def _shown(value: str) -> str:
    return value if len(value) <= 40 else value[:37] + "..."


def _list(spec: Mapping[str, Any], where: str) -> Check:
    if "items" not in spec:
        raise SchemaError(where, 'a "list" spec needs "items"')
    item = _compile(spec["items"], f"{where}.items")
    low, high = _count(spec, "min_items", where) or 0, _count(spec, "max_items", where)

    def check(value: Any) -> Any:
        if type(value) is not list and not isinstance(value, list | tuple):
            raise _type_error("list", value)
        if len(value) < low:
            raise _Mismatch(f"must have at least {low} items")
        if high is not None and len(value) > high:
            raise _Mismatch(f"must have at most {high} items, got {len(value)}")
        result = []
        for index, element in enumerate(value):
            try:
                result.append(item(element))
            except _Mismatch as mismatch:
                mismatch.path.append(index)
                raise
        return result

    return check


def _fresh(value: Any) -> Any:
    """A copy of a normalised default that no call can alter for the next one."""
    if isinstance(value, list):
        return [_fresh(item) for item in value]
    if isinstance(value, dict):
        return {key: _fresh(item) for key, item in value.items()}
    return value


_Field = tuple[str, Check, bool, bool, Any]  # name, check, required, has default, default


def _fields(spec: Mapping[str, Any], where: str) -> list[_Field]:
    fields = spec.get("fields")
    if not isinstance(fields, Mapping):
        raise SchemaError(where, f'an "object" spec needs "fields", a mapping; got {fields!r}')
    compiled: list[_Field] = []
    for name, field in fields.items():
        if not isinstance(name, str) or not name:
            raise SchemaError(where, f"field names must be non-empty strings, got {name!r}")
        check = _compile(field, f"{where}.fields.{name}")
        has_default = "default" in field
        default = check(field["default"]) if has_default else None
        compiled.append((name, check, bool(field.get("required", False)), has_default, default))
    return compiled


def _groups(spec: Mapping[str, Any], where: str) -> list[tuple[str, ...]]:
    groups = []
    for group in spec.get("exactly_one_of", ()):
        if (
            isinstance(group, str)
            or not isinstance(group, Sequence)
            or not group
            or not all(isinstance(name, str) and name in spec["fields"] for name in group)
        ):
            raise SchemaError(where, f"exactly_one_of groups must list known fields, got {group!r}")
        groups.append(tuple(group))
    return groups


def _object(spec: Mapping[str, Any], where: str) -> Check:
    fields = _fields(spec, where)
    names = frozenset(name for name, *_ in fields)
    known = ", ".join(name for name, *_ in fields)
    groups = _groups(spec, where)

    def check(value: Any) -> Any:
        if type(value) is not dict and not isinstance(value, Mapping):
            raise _type_error("object", value)
        if not names.issuperset(value.keys()):  # one C-level test on the happy path
            for key in value:
                if key not in names:
                    raise _Mismatch(f"unknown param; accepted: {known}", str(key))
        for group in groups:
            present = [key for key in group if key in value]
            if len(present) != 1:
                problem = "is required" if not present else "conflicts with " + present[1]
                named = " or ".join(group)
                raise _Mismatch(f"{problem}: give exactly one of {named}", (present or group)[0])
        result: dict[str, Any] = {}
        for name, field_check, required, has_default, default in fields:
            if name in value:
                try:
                    result[name] = field_check(value[name])
                except _Mismatch as mismatch:
                    mismatch.path.append(name)
                    raise
            elif required:
                raise _Mismatch("is required", name)
            elif has_default:
                result[name] = _fresh(default)
        return result

    return check


def _tags(choices: Sequence[Any], key: str, where: str) -> dict[Any, int]:
    by_tag: dict[Any, int] = {}
    for index, choice in enumerate(choices):
        field = choice.get("fields", {}).get(key) if choice.get("type") == "object" else None
        if not isinstance(field, Mapping) or "enum" not in field:
            raise SchemaError(
                f"{where}.choices[{index}]",
                f"with discriminator {key!r} every choice must be an object whose field "
                f"{key!r} has an enum",
            )
        for tag in field["enum"]:
            if tag in by_tag:
                raise SchemaError(where, f"tag {tag!r} picks more than one choice")
            by_tag[tag] = index
    return by_tag


def _one_of(spec: Mapping[str, Any], where: str) -> Check:
    choices = spec.get("choices")
    if isinstance(choices, str | bytes) or not isinstance(choices, Sequence) or not choices:
        raise SchemaError(
            where, f'a "one_of" spec needs "choices", a non-empty list; got {choices!r}'
        )
    checks = [_compile(c, f"{where}.choices[{i}]") for i, c in enumerate(choices)]
    kinds = [choice["type"] for choice in choices]
    key = spec.get("discriminator")
    by_tag = _tags(choices, key, where) if key is not None else {}
    allowed = ", ".join(map(str, by_tag))
    expected = " or ".join(dict.fromkeys(_TYPE_NAMES.get(kind, "another value") for kind in kinds))

    def check(value: Any) -> Any:
        if key is not None and isinstance(value, Mapping):
            tag = value.get(key)
            try:
                index = by_tag.get(tag)
            except TypeError:  # an unhashable tag is no tag
                index = None
            if index is not None:
                return checks[index](value)
            if key not in value:
                raise _Mismatch("is required", key)
            raise _Mismatch(f"must be one of {allowed}; got {tag!r}", key)
        first: _Mismatch | None = None
        for kind, choice_check in zip(kinds, checks, strict=True):
            if _FITS[kind](value):
                try:
                    return choice_check(value)
                except _Mismatch as mismatch:
                    first = first or mismatch
        if first is None:
            raise _Mismatch(f"must be {expected}, got {type(value).__name__}")
        raise first

    return check


_BUILDERS: Final[Mapping[str, Callable[[Mapping[str, Any], str], Check]]] = {
    "int": lambda spec, where: _bounded("int", spec, where),
    "number": lambda spec, where: _bounded("number", spec, where),
    "bool": _boolean,
    "str": _string,
    "list": _list,
    "object": _object,
    "one_of": _one_of,
}
