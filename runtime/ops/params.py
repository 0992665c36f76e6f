"""Declarative params schemas of the ops tools, and the validator that enforces them.

Each tool's accepted params are data (:data:`PARAMS_SCHEMAS`), read by the validator
every tool runs before touching the database and by test-input strategies: whatever the
validator accepts, the schema says, and nothing else is checked.

The schema language (all specs are plain dicts, JSON-able):

``{"type": "object", "fields": {name: spec}, "exactly_one_of": [[a, b], ...]}``
    A mapping with only the listed keys.  A field spec may carry ``"required": True`` and
    a ``"default"`` (filled in when the key is absent).  ``exactly_one_of`` lists groups
    of keys of which exactly one must be present.
``{"type": "int", "min": a, "max": b}``
    An integer (``bool`` is not an integer here), bounds inclusive and optional.
``{"type": "number", "min": a, "max": b}``
    A finite int or float (not ``bool``).
``{"type": "str", "min_length": m, "max_length": n, "enum": [...], "pattern": re,
"format": "iso_datetime"}``
    A string of valid Unicode (no lone surrogates); ``pattern`` must match in full;
    ``iso_datetime`` means ``datetime.fromisoformat`` accepts it and the moment lies within
    the years 1-9999 in UTC.
``{"type": "list", "items": spec, "min_items": m, "max_items": n}``
    A list (or tuple) whose items all match ``items``.
``{"type": "one_of", "choices": [spec, ...], "discriminator": key}``
    Any one choice.  With a ``discriminator``, the choices are objects and the value of
    that key (an ``enum`` member in exactly one choice) picks the choice, so an error can
    name the exact field that is wrong.

Every spec may have a ``"description"``.  Errors raise
:class:`~runtime.errors.InvalidParams` naming the param with a dotted path
(``filters[0].op``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from runtime.errors import InvalidParams
from runtime.ops.schema import (
    AGGREGATE_FIELDS,
    CI_FIELDS,
    EVENT_KINDS,
    FILTER_FIELDS,
    METRIC_NAMES,
    RELATION_TYPES,
    SEVERITIES,
    SORT_FIELDS,
)
from runtime.ops.timerange import RELATIVE_RANGES, parse_iso

__all__ = [
    "BUCKETS",
    "CEP_OPS",
    "COMPARISON_OPS",
    "LIST_OPS",
    "MAX_CI_IDS",
    "MAX_ID",
    "PARAMS_SCHEMAS",
    "PATTERN_OPS",
    "RULE_PATTERN",
    "validate_params",
]

MAX_ID = 2**62
MAX_CI_IDS = 300
COMPARISON_OPS: tuple[str, ...] = ("=", "!=", "<", "<=", ">", ">=")
PATTERN_OPS: tuple[str, ...] = ("like", "not like")
LIST_OPS: tuple[str, ...] = ("in", "not in")
CEP_OPS: tuple[str, ...] = (">=", "<=", "==", "!=", ">", "<")
# Bucket name -> width in seconds; 0 means raw samples.
BUCKETS: Mapping[str, int] = {
    "raw": 0,
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "1h": 3600,
    "6h": 21_600,
    "1d": 86_400,
}

# "cpu_usage > 90 for 5m": a metric from the allowlist, a comparison, a threshold, an
# optional duration.  Digits are bounded so every string the pattern matches is valid.
RULE_PATTERN = (
    r" *(?P<metric>"
    + "|".join(METRIC_NAMES)
    + r") *(?P<op>>=|<=|==|!=|>|<) *(?P<threshold>-?[0-9]{1,9}(?:\.[0-9]{1,6})?)"
    r"(?: +for +(?P<amount>[1-9][0-9]{0,2}) *(?P<unit>[smh]))? *"
)

_ID: dict[str, Any] = {"type": "int", "min": 1, "max": MAX_ID}
_CI_IDS: dict[str, Any] = {
    "type": "list",
    "items": _ID,
    "min_items": 0,
    "max_items": MAX_CI_IDS,
    "description": "CI ids to restrict to; absent means every CI, [] means none",
}
_TIME_RANGE: dict[str, Any] = {
    "type": "one_of",
    "choices": [
        {"type": "str", "enum": list(RELATIVE_RANGES)},
        {
            "type": "object",
            "fields": {
                "from": {
                    "type": "str",
                    "format": "iso_datetime",
                    "max_length": 40,
                    "required": True,
                },
                "to": {"type": "str", "format": "iso_datetime", "max_length": 40, "required": True},
            },
        },
    ],
    "default": "last_24h",
    "description": "relative to the dataset's reference now; explicit ranges are [from, to)",
}
# Numbers are bounded to what SQLite stores exactly (a 64-bit int would overflow).
_SCALAR: dict[str, Any] = {
    "type": "one_of",
    "choices": [
        {"type": "str", "max_length": 200},
        {"type": "number", "min": -(2**53), "max": 2**53},
    ],
}
_FILTER: dict[str, Any] = {
    "type": "one_of",
    "discriminator": "op",
    "choices": [
        {
            "type": "object",
            "fields": {
                "field": {"type": "str", "enum": list(FILTER_FIELDS), "required": True},
                "op": {"type": "str", "enum": list(COMPARISON_OPS), "required": True},
                "value": {**_SCALAR, "required": True},
            },
        },
        {
            "type": "object",
            "fields": {
                "field": {"type": "str", "enum": list(FILTER_FIELDS), "required": True},
                "op": {"type": "str", "enum": list(PATTERN_OPS), "required": True},
                "value": {"type": "str", "max_length": 200, "required": True},
            },
        },
        {
            "type": "object",
            "fields": {
                "field": {"type": "str", "enum": list(FILTER_FIELDS), "required": True},
                "op": {"type": "str", "enum": list(LIST_OPS), "required": True},
                "value": {
                    "type": "list",
                    "items": _SCALAR,
                    "min_items": 1,
                    "max_items": 100,
                    "required": True,
                },
            },
        },
    ],
    "description": "{field, op, value}; 'tags' tests membership of any tag",
}
_FILTERS: dict[str, Any] = {"type": "list", "items": _FILTER, "max_items": 10}
_RELATION_TYPES: dict[str, Any] = {
    "type": "list",
    "items": {"type": "str", "enum": list(RELATION_TYPES)},
    "min_items": 1,
    "max_items": len(RELATION_TYPES),
    "description": "only follow these relation types; absent means all",
}
_DIRECTION: dict[str, Any] = {"type": "str", "enum": ["out", "in", "both"], "default": "both"}
_METRIC: dict[str, Any] = {"type": "str", "enum": list(METRIC_NAMES), "required": True}


def _obj(fields: dict[str, Any], *exactly_one_of: list[str]) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "fields": fields}
    if exactly_one_of:
        schema["exactly_one_of"] = [list(group) for group in exactly_one_of]
    return schema


PARAMS_SCHEMAS: Mapping[tuple[str, str], Mapping[str, Any]] = {
    ("CI", "search"): _obj(
        {
            "keywords": {
                "type": "list",
                "items": {"type": "str", "min_length": 1, "max_length": 100},
                "max_items": 10,
                "description": "each keyword must match name, code, type or a tag",
            },
            "filters": _FILTERS,
            "limit": {"type": "int", "min": 1, "max": 100, "default": 20},
            "sort": {
                "type": "str",
                "enum": [*SORT_FIELDS, *(f"-{f}" for f in SORT_FIELDS)],
                "default": "ci_id",
                "description": "a field, '-' prefixed for descending",
            },
        }
    ),
    ("CI", "get"): _obj(
        {"ci_id": _ID, "ci_code": {"type": "str", "min_length": 1, "max_length": 64}},
        ["ci_id", "ci_code"],
    ),
    ("CI", "aggregate"): _obj(
        {
            "group_by": {"type": "str", "enum": list(AGGREGATE_FIELDS)},
            "metrics": {
                "type": "list",
                "items": {"type": "str", "enum": ["count", "count_distinct"]},
                "min_items": 1,
                "max_items": 2,
                "default": ["count"],
            },
            "distinct_field": {
                "type": "str",
                "enum": list(CI_FIELDS),
                "default": "ci_id",
                "description": "the field count_distinct counts",
            },
            "filters": _FILTERS,
            "top_n": {"type": "int", "min": 1, "max": 200, "default": 10},
        }
    ),
    ("METRIC", "aggregate"): _obj(
        {
            "metric": _METRIC,
            "agg": {
                "type": "str",
                "enum": ["avg", "min", "max", "sum", "count", "p95"],
                "default": "avg",
            },
            "ci_ids": _CI_IDS,
            "time_range": _TIME_RANGE,
        }
    ),
    ("METRIC", "series"): _obj(
        {
            "ci_id": {**_ID, "required": True},
            "metric": _METRIC,
            "time_range": _TIME_RANGE,
            "bucket": {"type": "str", "enum": list(BUCKETS), "default": "5m"},
            "limit": {"type": "int", "min": 1, "max": 1000, "default": 500},
        }
    ),
    ("GRAPH", "expand"): _obj(
        {
            "ci_id": {**_ID, "required": True},
            "depth": {"type": "int", "min": 1, "max": 3, "default": 2},
            "direction": _DIRECTION,
            "relation_types": _RELATION_TYPES,
            "max_nodes": {"type": "int", "min": 1, "max": 500, "default": 200},
            "max_edges": {"type": "int", "min": 1, "max": 1000, "default": 400},
        }
    ),
    ("GRAPH", "path"): _obj(
        {
            "source": {**_ID, "required": True},
            "target": {**_ID, "required": True},
            "max_hops": {"type": "int", "min": 1, "max": 8, "default": 6},
            "direction": _DIRECTION,
            "relation_types": _RELATION_TYPES,
        }
    ),
    ("HISTORY", "event_log"): _obj(
        {
            "ci_ids": _CI_IDS,
            "time_range": _TIME_RANGE,
            "severity": {
                "type": "one_of",
                "choices": [
                    {"type": "str", "enum": list(SEVERITIES)},
                    {
                        "type": "list",
                        "items": {"type": "str", "enum": list(SEVERITIES)},
                        "min_items": 1,
                        "max_items": len(SEVERITIES),
                    },
                ],
            },
            "kinds": {
                "type": "list",
                "items": {"type": "str", "enum": list(EVENT_KINDS)},
                "min_items": 1,
                "max_items": len(EVENT_KINDS),
            },
            "limit": {"type": "int", "min": 1, "max": 200, "default": 50},
        }
    ),
    ("CEP", "simulate"): _obj(
        {
            "rule_id": _ID,
            "rule": {
                "type": "str",
                "max_length": 200,
                "pattern": RULE_PATTERN,
                "description": "inline rule 'metric op threshold [for N(s|m|h)]'",
            },
            "time_range": _TIME_RANGE,
            "ci_ids": _CI_IDS,
            "max_alerts": {"type": "int", "min": 1, "max": 500, "default": 100},
        },
        ["rule_id", "rule"],
    ),
}

_JSON_TYPE_NAMES = {
    "int": "an integer",
    "number": "a number",
    "str": "a string",
    "bool": "a boolean",
    "list": "a list",
    "object": "an object",
}


def _is_type(value: Any, type_name: str) -> bool:
    if type_name == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "number":
        return (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and (isinstance(value, int) or math.isfinite(value))
        )
    if type_name == "str":
        return isinstance(value, str)
    if type_name == "bool":
        return isinstance(value, bool)
    if type_name == "list":
        return isinstance(value, list | tuple)
    if type_name == "object":
        return isinstance(value, Mapping)
    raise AssertionError(f"unknown schema type {type_name!r}")


class _Checker:
    """Walks one value against one spec; raises InvalidParams at the first problem."""

    def __init__(self, tool_type: str, operation: str) -> None:
        self.tool_type = tool_type
        self.operation = operation

    def fail(self, path: str, problem: str) -> InvalidParams:
        return InvalidParams(self.tool_type, self.operation, path or "params", problem)

    def check(self, spec: Mapping[str, Any], value: Any, path: str) -> Any:
        kind = spec["type"]
        if kind == "one_of":
            return self._one_of(spec, value, path)
        if not _is_type(value, kind):
            got = type(value).__name__
            if kind == "number" and isinstance(value, float):
                got = "a non-finite float"
            raise self.fail(path, f"must be {_JSON_TYPE_NAMES[kind]}, got {got}")
        if kind in ("int", "number"):
            self._bounds(spec, value, path)
            return value
        if kind == "str":
            return self._string(spec, value, path)
        if kind == "list":
            return self._list(spec, value, path)
        if kind == "object":
            return self._object(spec, value, path)
        return value

    def _bounds(self, spec: Mapping[str, Any], value: float, path: str) -> None:
        low, high = spec.get("min"), spec.get("max")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self.fail(path, f"must be between {low} and {high}, got {value!r}")

    def _string(self, spec: Mapping[str, Any], value: str, path: str) -> str:
        shown = value if len(value) <= 40 else value[:37] + "..."
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise self.fail(path, "must be valid Unicode text (no lone surrogates)") from None
        if "enum" in spec and value not in spec["enum"]:
            allowed = ", ".join(map(str, spec["enum"]))
            raise self.fail(path, f"must be one of {allowed}; got {shown!r}")
        if len(value) < spec.get("min_length", 0):
            raise self.fail(path, f"must have at least {spec['min_length']} characters")
        if "max_length" in spec and len(value) > spec["max_length"]:
            raise self.fail(path, f"must have at most {spec['max_length']} characters")
        if "pattern" in spec and re.fullmatch(spec["pattern"], value) is None:
            hint = spec.get("description", "the required format")
            raise self.fail(path, f"must match {hint}; got {shown!r}")
        if spec.get("format") == "iso_datetime":
            try:
                parse_iso(value)
            except (ValueError, OverflowError):
                raise self.fail(path, f"must be an ISO-8601 datetime, got {shown!r}") from None
        return value

    def _list(self, spec: Mapping[str, Any], value: Sequence[Any], path: str) -> list[Any]:
        if len(value) < spec.get("min_items", 0):
            raise self.fail(path, f"must have at least {spec['min_items']} items")
        if "max_items" in spec and len(value) > spec["max_items"]:
            raise self.fail(path, f"must have at most {spec['max_items']} items, got {len(value)}")
        return [self.check(spec["items"], item, f"{path}[{i}]") for i, item in enumerate(value)]

    def _object(
        self, spec: Mapping[str, Any], value: Mapping[Any, Any], path: str
    ) -> dict[str, Any]:
        fields: Mapping[str, Mapping[str, Any]] = spec["fields"]
        prefix = f"{path}." if path else ""
        for key in value:
            if not isinstance(key, str) or key not in fields:
                known = ", ".join(fields)
                raise self.fail(f"{prefix}{key}", f"unknown param; accepted: {known}")
        for group in spec.get("exactly_one_of", ()):
            present = [key for key in group if key in value]
            if len(present) != 1:
                named = " or ".join(group)
                problem = "is required" if not present else "conflicts with " + present[1]
                raise self.fail(
                    f"{prefix}{present[0] if present else group[0]}",
                    f"{problem}: give exactly one of {named}",
                )
        result: dict[str, Any] = {}
        for name, field_spec in fields.items():
            if name in value:
                result[name] = self.check(field_spec, value[name], f"{prefix}{name}")
            elif field_spec.get("required", False):
                raise self.fail(f"{prefix}{name}", "is required")
            elif "default" in field_spec:
                default = field_spec["default"]
                result[name] = list(default) if isinstance(default, list) else default
        return result

    def _one_of(self, spec: Mapping[str, Any], value: Any, path: str) -> Any:
        choices: Sequence[Mapping[str, Any]] = spec["choices"]
        key = spec.get("discriminator")
        if key is not None and isinstance(value, Mapping):
            tag = value.get(key)
            for choice in choices:
                if tag in choice["fields"][key]["enum"]:
                    return self.check(choice, value, path)
            allowed = [v for choice in choices for v in choice["fields"][key]["enum"]]
            where = f"{path}.{key}" if path else key
            if key not in value:
                raise self.fail(where, "is required")
            raise self.fail(where, f"must be one of {', '.join(allowed)}; got {tag!r}")
        fitting = [c for c in choices if c["type"] == "one_of" or _is_type(value, c["type"])]
        if not fitting:
            kinds = " or ".join(dict.fromkeys(_JSON_TYPE_NAMES[c["type"]] for c in choices))
            raise self.fail(path, f"must be {kinds}, got {type(value).__name__}")
        first_error: InvalidParams | None = None
        for choice in fitting:
            try:
                return self.check(choice, value, path)
            except InvalidParams as exc:
                first_error = first_error or exc
        assert first_error is not None
        raise first_error


def validate_params(tool_type: str, operation: str, params: Any) -> dict[str, Any]:
    """The params of ``tool_type.operation``, checked, with defaults filled in.

    Raises :class:`~runtime.errors.InvalidParams` naming the first offending param.  The
    returned dict is a fresh copy: the tool may not alter what its caller passed in.
    """
    schema = PARAMS_SCHEMAS[(tool_type, operation)]
    checker = _Checker(tool_type, operation)
    if not isinstance(params, Mapping):
        raise checker.fail("params", f"must be an object, got {type(params).__name__}")
    result: dict[str, Any] = checker.check(schema, params, "")
    return result
