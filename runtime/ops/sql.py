"""Pure SQL building blocks: placeholders, LIKE escaping, CI filters and keywords.

The rule that makes the ops tools injection-proof lives here: SQL text is assembled only
from constants and from allowlisted identifiers (``schema.field_sql``, the operator tables
below); every caller-supplied *value* becomes a ``?`` parameter.  A keyword such as
``'; DROP TABLE cis; --`` is therefore a string the CI names are compared with, nothing
more — and ``%`` or ``_`` in a keyword are literal characters, not wildcards.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, TypeVar

from runtime.ops.schema import field_sql

__all__ = [
    "CHUNK",
    "SqlPart",
    "chunks",
    "filters_sql",
    "keywords_sql",
    "like_contains",
    "placeholders",
    "where",
]

T = TypeVar("T")

# Ids per ``IN (...)`` list: far below SQLite's variable limit, and small enough that a
# frontier of thousands of graph nodes becomes a handful of queries, not one huge one.
CHUNK = 500

SqlPart = tuple[str, list[Any]]

_COMPARISONS: Mapping[str, str] = {
    "=": "=",
    "!=": "IS NOT",
    "<": "<",
    "<=": "<=",
    ">": ">",
    ">=": ">=",
}


def placeholders(count: int) -> str:
    return ", ".join("?" * count)


def chunks(items: Sequence[T], size: int = CHUNK) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def like_contains(text: str) -> str:
    """A LIKE pattern (with ``ESCAPE '\\'``) matching ``text`` anywhere, literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _tag_predicate(op: str, value: Any) -> SqlPart:
    exists = "EXISTS (SELECT 1 FROM json_each(cis.tags) AS tag WHERE tag.value {})"
    if op in ("in", "not in"):
        test = exists.format(f"IN ({placeholders(len(value))})")
        return (f"NOT {test}" if op == "not in" else test), list(value)
    if op in ("like", "not like"):
        test = exists.format("LIKE ?")
        return (f"NOT {test}" if op == "not like" else test), [value]
    if op == "!=":
        return "NOT " + exists.format("= ?"), [value]
    return exists.format(f"{op} ?"), [value]


def _field_predicate(field: str, op: str, value: Any) -> SqlPart:
    expr = field_sql(field)
    # Negations keep rows where the field is NULL (a host has no vendor, so it is "not
    # cisco"); plain comparisons against NULL never match, as in SQL.
    if op in ("in", "not in"):
        test = f"{expr} IN ({placeholders(len(value))})"
        return (f"NOT COALESCE({test}, 0)" if op == "not in" else test), list(value)
    if op == "like":
        return f"{expr} LIKE ?", [value]
    if op == "not like":
        return f"NOT COALESCE({expr} LIKE ?, 0)", [value]
    return f"{expr} {_COMPARISONS[op]} ?", [value]


def filters_sql(filters: Sequence[Mapping[str, Any]]) -> list[SqlPart]:
    """One predicate per validated ``{field, op, value}`` filter (all ANDed by the caller)."""
    parts = []
    for item in filters:
        field, op, value = item["field"], item["op"], item["value"]
        if field == "tags":
            parts.append(_tag_predicate(op, value))
        else:
            parts.append(_field_predicate(field, op, value))
    return parts


def keywords_sql(keywords: Sequence[str]) -> list[SqlPart]:
    """One predicate per keyword: it must occur in the name, code, type or a tag."""
    parts = []
    for keyword in keywords:
        pattern = like_contains(keyword)
        parts.append(
            (
                "(cis.name LIKE ? ESCAPE '\\' OR cis.code LIKE ? ESCAPE '\\' "
                "OR cis.type LIKE ? ESCAPE '\\' OR EXISTS (SELECT 1 FROM json_each(cis.tags) "
                "AS tag WHERE tag.value LIKE ? ESCAPE '\\'))",
                [pattern] * 4,
            )
        )
    return parts


def where(parts: Sequence[SqlPart]) -> SqlPart:
    """``WHERE a AND b`` (or nothing) and the parameters, in order."""
    if not parts:
        return "", []
    args: list[Any] = []
    for _, part_args in parts:
        args.extend(part_args)
    return " WHERE " + " AND ".join(f"({sql})" for sql, _ in parts), args
