"""What a caller wants, and which tool operations can answer it.

An *intent* names a kind of question ("find configuration items", "show a metric over
time"); a *candidate* is a ``(tool_type, operation)`` pair able to answer it.  The selector
ranks the candidates of an intent; it never invents them.

Intents are plain strings in the core, because users add their own by name in the
configuration; :class:`IntentType` lists the built-in ones as a convenience
(``IntentType.SEARCH == "SEARCH"``).  The list merges the two vocabularies of the original:
the design's (SEARCH, METRIC, RELATIONSHIP, HISTORY, ANALYSIS) and the planner's real
``Intent`` enum (LOOKUP, SEARCH, LIST, AGGREGATE, EXPAND, PATH), with EXPAND folded into
RELATIONSHIP and SERIES split from METRIC.  The original keyed its candidate map on one
vocabulary and looked it up with the other, so METRIC.series, HISTORY and CEP could never be
chosen; :func:`unreachable_operations` exists so a test (and config validation) can prove
that every operation is reachable.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = [
    "BUILTIN_OPERATIONS",
    "DEFAULT_CANDIDATES",
    "Candidate",
    "Intent",
    "IntentType",
    "intent_name",
    "unreachable_operations",
]

Candidate = tuple[str, str]
"""A ``(tool_type, operation)`` pair."""


class IntentType(enum.StrEnum):
    """The built-in intents of the operations assistant."""

    SEARCH = "SEARCH"
    """Find configuration items matching keywords or filters."""
    LOOKUP = "LOOKUP"
    """Fetch one configuration item by id or code."""
    LIST = "LIST"
    """Enumerate configuration items of a kind, possibly grouped."""
    AGGREGATE = "AGGREGATE"
    """Count or summarise items or metric values."""
    METRIC = "METRIC"
    """A metric value for one or more items."""
    SERIES = "SERIES"
    """A metric over time for one item."""
    RELATIONSHIP = "RELATIONSHIP"
    """What an item depends on or what depends on it."""
    PATH = "PATH"
    """How two items are connected."""
    HISTORY = "HISTORY"
    """What happened to items: events, alerts, changes."""
    ANALYSIS = "ANALYSIS"
    """Why something happens: rule simulation and supporting evidence."""


BUILTIN_OPERATIONS: tuple[Candidate, ...] = (
    ("CI", "search"),
    ("CI", "get"),
    ("CI", "aggregate"),
    ("METRIC", "aggregate"),
    ("METRIC", "series"),
    ("GRAPH", "expand"),
    ("GRAPH", "path"),
    ("HISTORY", "event_log"),
    ("CEP", "simulate"),
)
"""The nine operations of the built-in ops tool suite."""

# Order within a list is the author's preference; ranking never depends on it (ties break
# by name), it only documents which operation is the natural answer.
DEFAULT_CANDIDATES: Mapping[str, tuple[Candidate, ...]] = {
    IntentType.SEARCH: (("CI", "search"), ("CI", "get")),
    IntentType.LOOKUP: (("CI", "get"), ("CI", "search")),
    IntentType.LIST: (("CI", "search"), ("CI", "aggregate")),
    IntentType.AGGREGATE: (("CI", "aggregate"), ("METRIC", "aggregate")),
    IntentType.METRIC: (("METRIC", "aggregate"), ("METRIC", "series")),
    IntentType.SERIES: (("METRIC", "series"),),
    IntentType.RELATIONSHIP: (("GRAPH", "expand"), ("GRAPH", "path")),
    IntentType.PATH: (("GRAPH", "path"), ("GRAPH", "expand")),
    IntentType.HISTORY: (("HISTORY", "event_log"),),
    IntentType.ANALYSIS: (("CEP", "simulate"), ("METRIC", "series"), ("HISTORY", "event_log")),
}


def intent_name(intent: Intent | str) -> str:
    """The string key of an intent, whether given as :class:`Intent`, enum or string."""
    if isinstance(intent, Intent):
        return intent.type
    return str(intent)


def _to_name(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"intent type must be a non-empty string, got {value!r}")
    return str(value)


@attrs.frozen(slots=True)
class Intent:
    """A question to answer: its type and the concrete parameters it was asked with.

    The selector only uses ``type``.  ``params`` travel with the question for the
    caller's own use: ``Runtime.select`` and ``Runtime.execute_best`` take the params to
    run (and to ask the cache about) as their own argument.
    """

    type: str = attrs.field(converter=_to_name)
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=dict)


def unreachable_operations(
    candidates: Mapping[str, Iterable[Candidate]],
    operations: Iterable[Candidate] = BUILTIN_OPERATIONS,
) -> frozenset[Candidate]:
    """The operations that no intent lists as a candidate (empty when all are reachable)."""
    reachable = {pair for pairs in candidates.values() for pair in pairs}
    return frozenset(operations) - reachable
