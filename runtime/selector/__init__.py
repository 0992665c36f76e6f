"""Smart tool selection: rank the operations that can answer an intent, learn from calls.

``scoring`` is the pure scorer, ``observations`` the pure live statistics, ``state`` the
core a SelectorActor owns; ``intents``, ``profiles`` and ``settings`` hold the vocabulary,
the static beliefs and the configuration.
"""

from __future__ import annotations

from runtime.selector.intents import (
    BUILTIN_OPERATIONS,
    DEFAULT_CANDIDATES,
    Candidate,
    Intent,
    IntentType,
    unreachable_operations,
)
from runtime.selector.observations import ObservationSettings, Outcome, ToolStats
from runtime.selector.profiles import DEFAULT_PROFILES, ToolProfile
from runtime.selector.scoring import (
    DEFAULT_STRATEGIES,
    Factors,
    FactorScore,
    Ranked,
    Strategy,
    Weights,
)
from runtime.selector.settings import SelectorSettings
from runtime.selector.state import SelectorState, ToolSnapshot

__all__ = [
    "BUILTIN_OPERATIONS",
    "DEFAULT_CANDIDATES",
    "DEFAULT_PROFILES",
    "DEFAULT_STRATEGIES",
    "Candidate",
    "FactorScore",
    "Factors",
    "Intent",
    "IntentType",
    "ObservationSettings",
    "Outcome",
    "Ranked",
    "SelectorSettings",
    "SelectorState",
    "Strategy",
    "ToolProfile",
    "ToolSnapshot",
    "ToolStats",
    "Weights",
    "unreachable_operations",
]
