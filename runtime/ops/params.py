"""Declarative params schemas of the ops tools, and the validator that enforces them.

Each tool's accepted params are data (:data:`PARAMS_SCHEMAS`), read by the validator
every tool runs before touching the database and by test-input strategies: whatever the
validator accepts, the schema says, and nothing else is checked.

The schema language is the core's (:mod:`runtime.tools.schema`, documented in
docs/schemas.md); this module only holds the ops tools' schemas and checks params against
them, raising :class:`~runtime.errors.InvalidParams` with a dotted path (``filters[0].op``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from runtime.ops.timerange import RELATIVE_RANGES
from runtime.tools.schema import ParamsChecker, compile_schema

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
# Absent and [] mean the same (no filter), so [] is the default: one cache key for both.
_FILTERS: dict[str, Any] = {"type": "list", "items": _FILTER, "max_items": 10, "default": []}
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
                "default": [],
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

# Compiled once: a malformed schema here fails at import, with the place named.
_CHECKERS: Mapping[tuple[str, str], ParamsChecker] = {
    key: compile_schema(schema) for key, schema in PARAMS_SCHEMAS.items()
}


def validate_params(tool_type: str, operation: str, params: Any) -> dict[str, Any]:
    """The params of ``tool_type.operation``, checked, with defaults filled in.

    Raises :class:`~runtime.errors.InvalidParams` naming the first offending param.  The
    returned dict is a fresh copy: the tool may not alter what its caller passed in.
    """
    return _CHECKERS[(tool_type, operation)].validate(params, tool_type, operation)
