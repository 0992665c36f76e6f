"""The ops suite's preset: its tool types, intents, profiles, TTL table and compositions.

:data:`OPS_PRESET` is what the faces (``python -m runtime demo|mcp``, the example
service) lay under the configuration with :func:`runtime.apply_preset` -- through
:func:`runtime.ops.config.load_ops_config` -- so that the core itself knows no ops domain.
The intents merge the two vocabularies of the original design (SEARCH, METRIC,
RELATIONSHIP, HISTORY, ANALYSIS) and of its planner (LOOKUP, SEARCH, LIST, AGGREGATE,
EXPAND, PATH), with EXPAND folded into RELATIONSHIP and SERIES split from METRIC, so every
operation is reachable (a test checks it with ``unreachable_operations``).  Profiles are
starting beliefs: ``CI.get`` is an indexed point read, a rule simulation replays a time
range and writes an execution log.  ``CEP.simulate``'s TTL of 0 keeps a side effect
uncached.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping

from runtime.config import ProfileConfig, RuntimeConfig
from runtime.ops.compositions import OPS_COMPOSITIONS
from runtime.preset import Preset, apply_preset
from runtime.selector.intents import Candidate
from runtime.selector.settings import SelectorSettings

__all__ = [
    "OPS_CANDIDATES",
    "OPS_OPERATIONS",
    "OPS_PRESET",
    "OPS_TTLS",
    "IntentType",
    "ToolType",
    "ops_selector_settings",
]


class ToolType(enum.StrEnum):
    """The ops suite's tool families (``ToolType.CI == "CI"``: any API takes the string)."""

    CI = "CI"
    METRIC = "METRIC"
    GRAPH = "GRAPH"
    HISTORY = "HISTORY"
    CEP = "CEP"


class IntentType(enum.StrEnum):
    """The ops suite's intents (``IntentType.SEARCH == "SEARCH"``)."""

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


OPS_OPERATIONS: tuple[Candidate, ...] = (
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
"""The nine operations of the ops tool suite."""

_I = IntentType

# Order within a list is the author's preference; ranking never depends on it (ties break
# by name), it only documents which operation is the natural answer.
OPS_CANDIDATES: Mapping[str, tuple[Candidate, ...]] = {
    _I.SEARCH: (("CI", "search"), ("CI", "get")),
    _I.LOOKUP: (("CI", "get"), ("CI", "search")),
    _I.LIST: (("CI", "search"), ("CI", "aggregate")),
    _I.AGGREGATE: (("CI", "aggregate"), ("METRIC", "aggregate")),
    _I.METRIC: (("METRIC", "aggregate"), ("METRIC", "series")),
    _I.SERIES: (("METRIC", "series"),),
    _I.RELATIONSHIP: (("GRAPH", "expand"), ("GRAPH", "path")),
    _I.PATH: (("GRAPH", "path"), ("GRAPH", "expand")),
    _I.HISTORY: (("HISTORY", "event_log"),),
    _I.ANALYSIS: (("CEP", "simulate"), ("METRIC", "series"), ("HISTORY", "event_log")),
}
"""Intent -> the operations able to answer it."""

# (tool, operation): (accuracy, completeness, latency prior in seconds, intent bonus)
_PROFILES: Mapping[Candidate, tuple[float, float, float, Mapping[str, float]]] = {
    ("CI", "search"): (0.85, 0.8, 0.03, {_I.SEARCH: 1.0, _I.LIST: 0.9, _I.LOOKUP: 0.5}),
    ("CI", "get"): (1.0, 0.6, 0.005, {_I.LOOKUP: 1.0, _I.SEARCH: 0.4}),
    ("CI", "aggregate"): (0.9, 0.7, 0.05, {_I.AGGREGATE: 1.0, _I.LIST: 0.5}),
    ("METRIC", "aggregate"): (0.9, 0.6, 0.08, {_I.METRIC: 1.0, _I.AGGREGATE: 0.7}),
    ("METRIC", "series"): (0.95, 0.95, 0.12, {_I.SERIES: 1.0, _I.METRIC: 0.7, _I.ANALYSIS: 0.5}),
    ("GRAPH", "expand"): (0.9, 0.9, 0.06, {_I.RELATIONSHIP: 1.0, _I.PATH: 0.4}),
    ("GRAPH", "path"): (0.95, 0.5, 0.1, {_I.PATH: 1.0, _I.RELATIONSHIP: 0.5}),
    ("HISTORY", "event_log"): (0.9, 0.85, 0.05, {_I.HISTORY: 1.0, _I.ANALYSIS: 0.6}),
    ("CEP", "simulate"): (0.85, 0.9, 0.5, {_I.ANALYSIS: 1.0}),
}

OPS_TTLS: Mapping[str, Mapping[str, float]] = {
    "CI": {"search": 300.0, "get": 600.0, "aggregate": 300.0},
    "METRIC": {"aggregate": 180.0, "series": 120.0},
    "GRAPH": {"expand": 600.0, "path": 600.0},
    "HISTORY": {"event_log": 120.0},
    "CEP": {"simulate": 0.0},
}
"""Seconds a result stays cached, per tool type and operation (the original table)."""


def _profiles() -> dict[str, dict[str, ProfileConfig]]:
    table: dict[str, dict[str, ProfileConfig]] = {}
    for (tool, operation), (accuracy, completeness, latency, bonus) in _PROFILES.items():
        table.setdefault(tool, {})[operation] = ProfileConfig(
            accuracy=accuracy,
            completeness=completeness,
            latency=latency,
            intent_bonus={str(intent): value for intent, value in bonus.items()},
        )
    return table


OPS_PRESET = Preset(
    name="ops",
    ttls=OPS_TTLS,
    intents={
        str(intent): tuple(f"{tool}.{operation}" for tool, operation in pairs)
        for intent, pairs in OPS_CANDIDATES.items()
    },
    profiles=_profiles(),
    compositions=OPS_COMPOSITIONS,
)
"""The ops suite's defaults, laid under a configuration by :func:`runtime.apply_preset`."""


def ops_selector_settings() -> SelectorSettings:
    """The selector core's settings under the ops preset (for a ``SelectorState`` used
    without a runtime: tests, benchmarks)."""
    return SelectorSettings.from_config(apply_preset(RuntimeConfig(), OPS_PRESET).selector)
