"""What we believe about a tool operation before (and besides) watching it run.

A profile holds the static half of a candidate's score: how accurate and how complete its
answers are (both judgements in [0, 1]), how fast we expect it to be before any call has
been observed (the latency *prior*, which is also where the live estimate drifts back to
when the operation sits idle), and how well it fits each intent (the seed design's
"intent bonus").  Accuracy and completeness are properties of the operation; the intent
bonus corrects them per question, e.g. ``GRAPH.path`` answers PATH exactly and
RELATIONSHIP only partly.

The core has no profiles of its own: an unprofiled operation gets :data:`DEFAULT_PROFILE`;
a preset (the ops suite's, ``runtime.ops.preset``) or the configuration adds the rest.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import attrs

__all__ = ["DEFAULT_PROFILE", "ToolProfile"]


def _unit_interval(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"{attribute.name} must be a number in [0, 1], got {value!r}")


def _positive_seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0.0):
        raise ValueError(f"{attribute.name} must be a positive number of seconds, got {value!r}")


def _bonuses(instance: object, attribute: attrs.Attribute[object], value: object) -> None:
    assert isinstance(value, Mapping)
    for intent, bonus in value.items():
        if not isinstance(intent, str) or not intent:
            raise ValueError(f"intent_bonus keys must be intent names, got {intent!r}")
        if not (isinstance(bonus, int | float) and 0.0 <= bonus <= 1.0):
            raise ValueError(f"intent_bonus[{intent!r}] must be a number in [0, 1], got {bonus!r}")


def _bonus_dict(value: Mapping[str, float]) -> dict[str, float]:
    return {str(intent): bonus for intent, bonus in value.items()}


@attrs.frozen(slots=True)
class ToolProfile:
    """Static beliefs about one ``(tool_type, operation)``."""

    accuracy: float = attrs.field(validator=_unit_interval)
    completeness: float = attrs.field(validator=_unit_interval)
    latency_prior_s: float = attrs.field(validator=_positive_seconds)
    intent_bonus: Mapping[str, float] = attrs.field(
        factory=dict, converter=_bonus_dict, validator=_bonuses
    )

    def bonus(self, intent: str) -> float:
        """How well this operation fits ``intent``: 0 when the profile does not say."""
        return self.intent_bonus.get(intent, 0.0)


DEFAULT_PROFILE = ToolProfile(accuracy=0.5, completeness=0.5, latency_prior_s=0.1)
"""Used for candidates that have no profile of their own (user tools configured sparsely)."""
