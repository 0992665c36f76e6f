"""Exploration in the selector's pure core: bounded, never onto a failing tool, finds a
newcomer, rediscovers a tool that got better, replays exactly."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.config import config_from_dict
from runtime.errors import ConfigError
from runtime.selector import SelectorSettings, SelectorState, ToolProfile
from runtime.selector.scoring import Strategy


def _state(*names_priors: tuple[str, float], **kw: object) -> SelectorState:
    profiles = {
        ("T", name): ToolProfile(0.5, 0.5, prior, {"X": 1.0}) for name, prior in names_priors
    }
    return SelectorState(
        SelectorSettings(profiles=profiles, candidates={"X": tuple(profiles)}, **kw)  # type: ignore[arg-type]
    )


def _call(state: SelectorState, now: float, latency: dict[str, float], failing: set[str]) -> str:
    """One sequential call under FASTEST; the pick, suffixed ``?`` when it explored."""
    chosen = state.choose("X", Strategy.FASTEST, (), now, random.Random(0))
    op = chosen.operation
    state.observe_start("T", op, now)
    ok = op not in failing
    state.observe_finish("T", op, latency[op], ok, now + latency[op])
    return op + "?" if chosen.explored else op


# -- properties -------------------------------------------------------------------------------

calls_st = st.lists(
    st.tuples(st.sampled_from("abcd"), st.booleans(), st.floats(0.001, 0.5)), max_size=120
)


@given(calls_st, st.sampled_from([0.0, 0.02, 0.1, 0.5]), st.floats(0.0, 5.0))
@settings(max_examples=80, deadline=None)
def test_exploration_is_bounded_and_never_picks_a_failing_candidate(
    script: list[tuple[str, bool, float]], share: float, refresh: float
) -> None:
    state = _state(
        ("a", 0.05),
        ("b", 0.05),
        ("c", 0.2),
        ("d", 0.4),
        exploration_share=share,
        exploration_refresh=refresh,
    )
    now, choices, explored = 0.0, 0, 0
    rng = random.Random(1)
    max_error = state.settings.exploration_max_error
    for op, ok, latency in script:
        chosen = state.choose("X", Strategy.BALANCED, (), now, rng)
        choices += 1
        if chosen.explored:
            explored += 1
            assert chosen.evidence["error_rate"] <= max_error
            assert chosen.evidence["in_flight"] == 0
        # The observation may be of another candidate (observations come from anywhere).
        state.observe_start("T", op, now)
        state.observe_finish("T", op, latency, ok, now + latency)
        now += 0.25
    assert explored == state.explorations("X")
    assert explored <= 1 + share * choices
    if share == 0.0:
        assert explored == 0


@given(calls_st)
@settings(max_examples=30, deadline=None)
def test_same_inputs_same_choices(script: list[tuple[str, bool, float]]) -> None:
    def run() -> list[tuple[str, bool]]:
        state = _state(("a", 0.05), ("b", 0.1), ("c", 0.2), exploration_share=0.2)
        out = []
        for i, (op, ok, latency) in enumerate(script):
            chosen = state.choose("X", None, (), i * 0.5, random.Random(i))
            out.append((chosen.operation, chosen.explored))
            state.observe_start("T", op if op != "d" else "a", i * 0.5)
            state.observe_finish("T", op if op != "d" else "a", latency, ok, i * 0.5 + latency)
        return out

    assert run() == run()


# -- behaviours -------------------------------------------------------------------------------


def test_a_never_tried_newcomer_is_tried_and_wins_when_faster() -> None:
    # The case: the slow tool was called once; the fast one has a pessimistic prior.
    state = _state(("slow", 0.05), ("fast", 0.5))
    latency = {"slow": 0.1, "fast": 0.02}
    state.observe_start("T", "slow", 0.0)
    state.observe_finish("T", "slow", 0.1, True, 0.1)
    picks = [_call(state, 1.0 + i * 0.1, latency, set()) for i in range(200)]
    assert picks[0] == "fast?"  # tried at once
    assert picks[1:].count("fast") >= 0.95 * 199  # then it serves the traffic


def test_without_exploration_the_newcomer_is_never_tried() -> None:
    state = _state(("slow", 0.05), ("fast", 0.5), exploration_share=0.0)
    latency = {"slow": 0.1, "fast": 0.02}
    state.observe_start("T", "slow", 0.0)
    state.observe_finish("T", "slow", 0.1, True, 0.1)
    assert {_call(state, 1.0 + i * 0.1, latency, set()) for i in range(200)} == {"slow"}


def test_a_tool_that_got_better_is_rediscovered() -> None:
    state = _state(("a", 0.05), ("b", 0.05), exploration_refresh=30.0)
    latency = {"a": 0.05, "b": 2.0}  # b is slow for now
    now = 0.0
    for _ in range(200):
        _call(state, now, latency, set())
        now += 0.5
    assert state.rank("X", Strategy.FASTEST, (), now)[0].operation == "a"
    latency["b"] = 0.01  # b got better; nobody sends it traffic
    picks = []
    for _ in range(400):
        picks.append(_call(state, now, latency, set()))
        now += 0.5
    assert "b?" in picks  # explored once it had been idle for the refresh time
    found = picks.index("b?")
    assert found * 0.5 <= 30.0 + 0.5
    # A probe weighs its sample against the old estimate, a long idle time making the old
    # one count little: within two probes b ranks first again, and serves.
    assert picks.count("b?") <= 3
    assert [p for p in picks[-100:] if not p.endswith("?")] == ["b"] * len(
        [p for p in picks[-100:] if not p.endswith("?")]
    )
    assert picks[-100:].count("b") >= 95


def test_a_candidate_with_a_high_error_rate_is_not_explored() -> None:
    state = _state(("a", 0.05), ("b", 0.05), exploration_refresh=1.0)
    for i in range(5):  # b fails 5 times in a row: error rate ~0.41
        state.observe_start("T", "b", i * 0.01)
        state.observe_finish("T", "b", 0.001, False, i * 0.01 + 0.001)
    latency = {"a": 0.05, "b": 0.001}
    now = 0.1
    for _ in range(20):  # within an error-decay constant: still known to fail
        chosen = state.choose("X", Strategy.FASTEST, (), now, random.Random(0))
        assert not (chosen.explored and chosen.operation == "b")
        state.observe_start("T", chosen.operation, now)
        state.observe_finish("T", chosen.operation, latency["a"], True, now + 0.05)
        now += 0.2


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("exploration_share", 1.5, "between 0 and 1"),
        ("exploration_max_error", -0.1, "between 0 and 1"),
        ("exploration_refresh", "soon", "duration"),
    ],
)
def test_exploration_settings_are_validated_with_their_key_path(
    key: str, value: object, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        config_from_dict({"selector": {key: value}})
    assert f"selector.{key}" in str(caught.value)


def test_exploration_settings_reach_the_selector() -> None:
    config = config_from_dict({"selector": {"exploration_share": 0.1, "exploration_refresh": "1m"}})
    resolved = SelectorSettings.from_config(config.selector)
    assert (resolved.exploration_share, resolved.exploration_refresh) == (0.1, 60.0)
