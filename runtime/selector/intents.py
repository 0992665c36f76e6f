"""What a caller wants, and which tool operations can answer it.

An *intent* names a kind of question ("find configuration items", "show a metric over
time"); a *candidate* is a ``(tool_type, operation)`` pair able to answer it.  The selector
ranks the candidates of an intent; it never invents them.

Intents are plain strings, named in the configuration (``selector.intents``) or by a
preset (the ops suite's ``runtime.ops.preset.IntentType``); the core knows none.
:func:`unreachable_operations` lets a test prove that every operation of a suite is
reachable from some intent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

__all__ = [
    "Candidate",
    "Intent",
    "intent_name",
    "unreachable_operations",
]

Candidate = tuple[str, str]
"""A ``(tool_type, operation)`` pair."""


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
    candidates: Mapping[str, Iterable[Candidate]], operations: Iterable[Candidate]
) -> frozenset[Candidate]:
    """The operations that no intent lists as a candidate (empty when all are reachable)."""
    reachable = {pair for pairs in candidates.values() for pair in pairs}
    return frozenset(operations) - reachable
