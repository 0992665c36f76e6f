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
from collections.abc import Callable, Mapping
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

    ``herd_margin``: candidates within this confidence of the best are near-top.
    ``choices``: how the pick among them goes (0 = the least loaded of all, the default;
    2 = power of two choices, the robust setting when several independent selectors share
    the same tools; see ``scoring.choose``).
    ``reservation_ttl``: how long a choice counts as load before its call start arrives
    (0 disables reservations; see ``state.py``).
    ``exploration_share``: the most of an intent's choices that may go to a candidate the
    ranking did not put first, to learn about it (0 disables exploration; see
    ``exploration.py``).  ``exploration_refresh``: a candidate with no finished call for
    this long is worth a look again (it may have got better).  ``exploration_max_error``:
    a candidate whose error-rate estimate is above this is never explored.
    """

    profiles: Mapping[Candidate, ToolProfile] = attrs.field(factory=dict)
    candidates: Mapping[str, tuple[Candidate, ...]] = attrs.field(factory=dict)
    strategies: Mapping[str, Weights] = attrs.field(factory=lambda: dict(DEFAULT_STRATEGIES))
    observation: ObservationSettings = attrs.field(factory=ObservationSettings)
    herd_margin: float = attrs.field(default=0.05, validator=_margin)
    choices: int = attrs.field(default=0, validator=_choices)
    reservation_ttl: float = attrs.field(default=1.0, validator=_seconds)
    exploration_share: float = attrs.field(default=0.02, validator=_margin)
    exploration_refresh: float = attrs.field(default=30.0, validator=_seconds)
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

        Every setting has the configuration key's name, so an error names the key.
        """
        strategies = _strategies(config, path)
        if config.default_strategy not in strategies:
            raise ConfigError(
                f"{path}.default_strategy",
                f"{config.default_strategy!r} is not one of {', '.join(sorted(strategies))}",
            )
        observation = {name: getattr(config, name) for name in _OBSERVATION_KEYS}
        for name, value in observation.items():
            _check(f"{path}.{name}", ObservationSettings, {name: value})
        tuning = {name: getattr(config, name) for name in _TUNING_KEYS}
        for name, value in tuning.items():
            _check(f"{path}.{name}", cls, {name: value})
        return cls(
            profiles=_profiles(config, path),
            candidates=_candidates(config, path),
            strategies=strategies,
            observation=ObservationSettings(**observation),
            default_strategy=config.default_strategy,
            **tuning,
        )


_OBSERVATION_KEYS = (
    "decay_time",
    "error_decay_time",
    "error_alpha",
    "failure_penalty",
    "cold_penalty",
)
_TUNING_KEYS = (
    "herd_margin",
    "choices",
    "reservation_ttl",
    "exploration_share",
    "exploration_refresh",
    "exploration_max_error",
)


def _check(where: str, build: Callable[..., object], setting: dict[str, Any]) -> None:
    """Build ``build(**setting)`` alone, so a bad value's error names its key."""
    try:
        build(**setting)
    except (TypeError, ValueError) as exc:
        raise ConfigError(where, str(exc)) from exc


def _candidates(config: SelectorConfig, path: str) -> dict[str, tuple[Candidate, ...]]:
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
    return candidates


def _profiles(config: SelectorConfig, path: str) -> dict[Candidate, ToolProfile]:
    profiles: dict[Candidate, ToolProfile] = {}
    for tool, operations in config.profiles.items():
        for op, given in operations.items():
            try:
                profiles[(tool, op)] = ToolProfile(
                    accuracy=given.accuracy,
                    completeness=given.completeness,
                    latency_prior_s=given.latency,
                    intent_bonus=dict(given.intent_bonus),
                )
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{path}.profiles.{tool}.{op}", str(exc)) from exc
    return profiles


def _strategies(config: SelectorConfig, path: str) -> dict[str, Weights]:
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
    return strategies
