"""Presets: a domain's defaults, laid under a configuration by one function.

The core's own defaults are generic: no TTL table (every cached operation takes
``cache.default_ttl``), no intents, no profiles, no compositions.  A :class:`Preset`
carries what a tool suite adds -- its TTL table, intents, profiles and compositions, in
the configuration's own format -- and :func:`apply_preset` lays it *under* a
:class:`~runtime.config.RuntimeConfig`: an entry the configuration gives wins over the
preset's entry of the same name (per ``(tool, operation)`` for TTLs and profiles, per
name for intents and compositions); everything else comes from the preset.

Invariants: ``apply_preset`` is pure and idempotent (applying twice equals applying once)
and keeps the configuration's class (an application's subclass with extra sections stays
that subclass).  The reference ops suite's preset is ``runtime.ops.preset.OPS_PRESET``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from runtime.config import ProfileConfig, RuntimeConfig

__all__ = ["Preset", "apply_preset"]

C = TypeVar("C", bound=RuntimeConfig)


def _frozen_table(value: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    return {outer: dict(inner) for outer, inner in value.items()}


@attrs.frozen(slots=True)
class Preset:
    """A tool suite's defaults, in the configuration's format (see the module doc)."""

    name: str
    ttls: Mapping[str, Mapping[str, float]] = attrs.field(factory=dict, converter=_frozen_table)
    """``cache.ttl``: seconds per tool type and operation (0 never caches)."""
    intents: Mapping[str, tuple[str, ...]] = attrs.field(factory=dict)
    """``selector.intents``: intent name -> its candidates as ``"TOOL.operation"``."""
    profiles: Mapping[str, Mapping[str, ProfileConfig]] = attrs.field(
        factory=dict, converter=_frozen_table
    )
    """``selector.profiles``: tool type -> operation -> what it is like before any call."""
    compositions: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    """``compositions``: name -> a composition in the data format of docs/pipelines.md."""


def _under(
    preset: Mapping[str, Mapping[str, Any]], given: Mapping[str, Mapping[str, Any]]
) -> dict[str, dict[str, Any]]:
    merged = {outer: dict(inner) for outer, inner in preset.items()}
    for outer, inner in given.items():
        merged.setdefault(outer, {}).update(inner)
    return merged


def apply_preset(config: C, preset: Preset) -> C:
    """``config`` with ``preset`` laid under it (the configuration wins, entry by entry)."""
    cache = attrs.evolve(config.cache, ttl=_under(preset.ttls, config.cache.ttl))
    selector = attrs.evolve(
        config.selector,
        intents={**preset.intents, **config.selector.intents},
        profiles=_under(preset.profiles, config.selector.profiles),
    )
    compositions = {**preset.compositions, **config.compositions}
    return attrs.evolve(config, cache=cache, selector=selector, compositions=compositions)
