"""The selector core's settings: defaults in code, overrides from the runtime configuration.

``SelectorSettings`` is what :class:`~runtime.selector.state.SelectorState` runs on: resolved
profiles, candidates and weight vectors, plus the learning parameters.
:meth:`SelectorSettings.from_config` builds it from the ``selector:`` section of the runtime
configuration (:class:`runtime.config.SelectorConfig`).  There, intents, profiles and
strategies given by name replace the built-in entry of the same name (intents and profiles
have none: a preset such as ``runtime.ops.preset`` supplies them through the config).  Problems the
generic config loader cannot see, such as an unknown factor in a strategy or a malformed
``TOOL.operation``, are reported as :class:`~runtime.errors.ConfigError` with the dotted path
of the offending value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import attrs

from runtime.errors import ConfigError
from runtime.selector.intents import Candidate
from runtime.selector.observations import ObservationSettings
from runtime.selector.profiles import DEFAULT_PROFILE, ToolProfile
from runtime.selector.scoring import DEFAULT_STRATEGIES, FACTORS, Strategy, Weights

if TYPE_CHECKING:
    from runtime.config import SelectorConfig

__all__ = ["SelectorSettings", "parse_candidate"]


def parse_candidate(text: object, path: str) -> Candidate:
    """``"CI.search"`` -> ``("CI", "search")``; the tool type is everything before the first dot."""
    if not isinstance(text, str):
        raise ConfigError(path, f"expected 'TOOL.operation', got {text!r}")
    tool, _, op = text.partition(".")
    if not tool or not op:
        raise ConfigError(path, f"expected 'TOOL.operation', got {text!r}")
    return (tool, op)


def _margin(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and 0.0 <= value <= 1.0):
        raise ValueError(f"{attribute.name} must be in [0, 1], got {value!r}")


def _seconds(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0.0):
        raise ValueError(f"{attribute.name} must be a number of seconds >= 0, got {value!r}")


def _choices(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or (value != 0 and value < 2):
        raise ValueError(f"{attribute.name} must be 0 (all) or an integer >= 2, got {value!r}")


@attrs.frozen(slots=True)
class SelectorSettings:
    """Everything the selector core needs to know before it has seen a call.

    ``near_top_margin``: candidates within this confidence of the best are near-top.
    ``choices``: how the pick among them goes (0 = the least loaded of all, the default;
    2 = power of two choices, the robust setting when several independent selectors share
    the same tools; see ``scoring.choose``).
    ``reservation_ttl_s``: how long a choice counts as load before its call start arrives
    (0 disables reservations; see ``state.py``).
    ``exploration_share``: the most of an intent's choices that may go to a candidate the
    ranking did not put first, to learn about it (0 disables exploration; see
    ``exploration.py``).  ``exploration_refresh_s``: a candidate with no finished call for
    this long is worth a look again (it may have got better).  ``exploration_max_error``:
    a candidate whose error-rate estimate is above this is never explored.
    """

    profiles: Mapping[Candidate, ToolProfile] = attrs.field(factory=dict)
    candidates: Mapping[str, tuple[Candidate, ...]] = attrs.field(factory=dict)
    strategies: Mapping[str, Weights] = attrs.field(factory=lambda: dict(DEFAULT_STRATEGIES))
    observation: ObservationSettings = attrs.field(factory=ObservationSettings)
    near_top_margin: float = attrs.field(default=0.05, validator=_margin)
    choices: int = attrs.field(default=0, validator=_choices)
    reservation_ttl_s: float = attrs.field(default=1.0, validator=_seconds)
    exploration_share: float = attrs.field(default=0.02, validator=_margin)
    exploration_refresh_s: float = attrs.field(default=30.0, validator=_seconds)
    exploration_max_error: float = attrs.field(default=0.2, validator=_margin)
    default_strategy: str = Strategy.BALANCED
    default_profile: ToolProfile = DEFAULT_PROFILE

    def __attrs_post_init__(self) -> None:
        if self.default_strategy not in self.strategies:
            raise ValueError(
                f"default_strategy {self.default_strategy!r} is not one of "
                f"{', '.join(sorted(self.strategies))}"
            )
        for intent, pairs in self.candidates.items():
            if not pairs:
                raise ValueError(f"intent {intent!r} has no candidates")
            for i, pair in enumerate(pairs):
                if pair in pairs[:i]:
                    # It would be ranked twice, and run again as its own fallback.
                    raise ValueError(f"intent {intent!r} lists {pair!r} twice")

    def profile(self, candidate: Candidate) -> ToolProfile:
        """The candidate's profile, or the neutral default for an unprofiled user tool."""
        return self.profiles.get(candidate, self.default_profile)

    @classmethod
    def from_config(cls, config: SelectorConfig, path: str = "selector") -> SelectorSettings:
        """Resolve the runtime configuration's ``selector:`` section over the defaults.

        Learning parameters the configuration does not (yet) carry keep their defaults
        here; they are read by name so that adding them to the schema is enough.
        """
        candidates: dict[str, tuple[Candidate, ...]] = {}
        for intent, names in config.intents.items():
            where = f"{path}.intents.{intent}"
            if not names:
                raise ConfigError(where, "an intent needs at least one 'TOOL.operation'")
            parsed: list[Candidate] = []
            for i, text in enumerate(names):
                pair = parse_candidate(text, f"{where}[{i}]")
                if pair in parsed:
                    raise ConfigError(f"{where}[{i}]", f"{text!r} is listed twice")
                parsed.append(pair)
            candidates[intent] = tuple(parsed)

        profiles: dict[Candidate, ToolProfile] = {}
        for tool, operations in config.profiles.items():
            for op, given in operations.items():
                where = f"{path}.profiles.{tool}.{op}"
                try:
                    profiles[(tool, op)] = ToolProfile(
                        accuracy=given.accuracy,
                        completeness=given.completeness,
                        latency_prior_s=given.latency,
                        intent_bonus=dict(given.intent_bonus),
                    )
                except (TypeError, ValueError) as exc:
                    raise ConfigError(where, str(exc)) from exc

        strategies = dict(DEFAULT_STRATEGIES)
        for name, vector in config.strategies.items():
            where = f"{path}.strategies.{name}"
            for factor in vector:
                if factor not in FACTORS:
                    raise ConfigError(
                        f"{where}.{factor}", f"unknown factor; known: {', '.join(FACTORS)}"
                    )
            try:
                strategies[name] = Weights(**vector)
            except (TypeError, ValueError) as exc:
                raise ConfigError(where, str(exc)) from exc

        if config.default_strategy not in strategies:
            raise ConfigError(
                f"{path}.default_strategy",
                f"{config.default_strategy!r} is not one of {', '.join(sorted(strategies))}",
            )

        # setting name -> (configuration key, value); errors name the configuration key.
        observed: dict[str, tuple[str, Any]] = {
            "decay_s": ("decay_time", config.decay_time),
            "error_decay_s": ("error_decay_time", config.error_decay_time),
            "error_alpha": ("error_alpha", config.error_alpha),
            "failure_penalty": ("failure_penalty", config.failure_penalty),
            "cold_penalty": ("cold_penalty", config.cold_penalty),
        }
        for name, (key, value) in observed.items():
            try:
                ObservationSettings(**{name: value})
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{path}.{key}", str(exc)) from exc

        extra: dict[str, tuple[str, Any]] = {
            "near_top_margin": ("herd_margin", config.herd_margin),
            "choices": ("choices", config.choices),
            "reservation_ttl_s": ("reservation_ttl", config.reservation_ttl),
            "exploration_share": ("exploration_share", config.exploration_share),
            "exploration_refresh_s": ("exploration_refresh", config.exploration_refresh),
            "exploration_max_error": ("exploration_max_error", config.exploration_max_error),
        }
        for name, (key, value) in extra.items():
            try:
                attrs.evolve(cls(), **{name: value})
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{path}.{key}", str(exc)) from exc

        return cls(
            profiles=profiles,
            candidates=candidates,
            strategies=strategies,
            observation=ObservationSettings(**{k: v for k, (_, v) in observed.items()}),
            default_strategy=config.default_strategy,
            **{k: v for k, (_, v) in extra.items()},
        )
