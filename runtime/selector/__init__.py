"""Smart tool selection: rank the operations that can answer an intent, learn from calls.

``scoring`` is the pure scorer, ``observations`` the pure live statistics, ``state`` the
core a SelectorActor owns; ``intents``, ``profiles`` and ``settings`` hold the vocabulary,
the static beliefs and the configuration.
"""

from __future__ import annotations

from runtime.selector.intents import (
    Candidate,
    Intent,
    unreachable_operations,
)
from runtime.selector.observations import ObservationSettings, Outcome, ToolStats
from runtime.selector.profiles import DEFAULT_PROFILE, ToolProfile
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
    "DEFAULT_PROFILE",
    "DEFAULT_STRATEGIES",
    "Candidate",
    "FactorScore",
    "Factors",
    "Intent",
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
