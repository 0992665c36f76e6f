"""The selector core: intents, observations, ranking, learning, anti-herding, settings."""

from __future__ import annotations

import math
import random
from collections import Counter

import attrs
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from runtime import RuntimeConfig, apply_preset
from runtime.config import ProfileConfig, SelectorConfig
from runtime.errors import ConfigError, UnknownIntent
from runtime.ops.preset import (
    OPS_CANDIDATES,
    OPS_OPERATIONS,
    OPS_PRESET,
    IntentType,
    ops_selector_settings,
)
from runtime.selector import (
    Intent,
    ObservationSettings,
    SelectorSettings,
    SelectorState,
    Strategy,
    ToolProfile,
    unreachable_operations,
)
from runtime.selector import observations as obs

SETTINGS = ObservationSettings()
latency_st = st.floats(min_value=1e-4, max_value=10.0)

# -- intents --------------------------------------------------------------------------------

OPS_PROFILES = ops_selector_settings().profiles


def test_every_builtin_operation_is_reachable_by_some_intent() -> None:
    assert unreachable_operations(OPS_CANDIDATES, OPS_OPERATIONS) == frozenset()
    assert len(OPS_OPERATIONS) == 9
    # and the checker does catch a gap (the original's METRIC.series / HISTORY / CEP)
    gap = {k: v for k, v in OPS_CANDIDATES.items() if k != IntentType.SERIES}
    gap[IntentType.METRIC] = (("METRIC", "aggregate"),)
    gap[IntentType.ANALYSIS] = (("CEP", "simulate"),)
    assert unreachable_operations(gap, OPS_OPERATIONS) == {("METRIC", "series")}


def test_every_builtin_intent_has_candidates_and_every_candidate_a_profile() -> None:
    assert set(OPS_CANDIDATES) == set(IntentType)
    for pairs in OPS_CANDIDATES.values():
        assert pairs
        assert all(pair in OPS_PROFILES for pair in pairs)


def test_intent_accepts_enum_or_user_string() -> None:
    assert Intent(IntentType.SEARCH).type == "SEARCH"
    assert Intent("MY_INTENT", {"q": 1}).params == {"q": 1}
    with pytest.raises(ValueError, match="non-empty"):
        Intent("")


def test_unknown_intent_lists_the_known_intents() -> None:
    state = SelectorState(ops_selector_settings())
    with pytest.raises(UnknownIntent) as caught:
        state.rank("NO_SUCH_INTENT")
    assert caught.value.intent == "NO_SUCH_INTENT"
    assert caught.value.known == tuple(sorted(OPS_CANDIDATES))
    for name in OPS_CANDIDATES:
        assert name in str(caught.value)
    with pytest.raises(UnknownIntent):
        state.choose(Intent("NOPE"), None, (), 0.0, random.Random(0))


def test_unknown_strategy_lists_the_known_strategies() -> None:
    with pytest.raises(ValueError, match="MOST_ACCURATE"):
        SelectorState(ops_selector_settings()).rank(IntentType.SEARCH, "NO_SUCH_STRATEGY")


# -- observations ---------------------------------------------------------------------------


@given(st.floats(min_value=1e-3, max_value=1.0), latency_st, latency_st)
def test_peak_ewma_jumps_up_at_once_and_comes_down_gradually(
    prior: float, first: float, second: float
) -> None:
    stats = obs.finished(obs.started(obs.fresh(prior), 0.0), first, "ok", 1.0, SETTINGS)
    assert stats.latency_s == first  # the first sample replaces the prior
    # (Reads drift toward the prior meanwhile; a sample is weighed against the last
    # estimate, not against that drift: see observations.finished.)
    after = obs.finished(obs.started(stats, 1.0), second, "ok", 1.5, SETTINGS)
    if second >= first:
        assert after.latency_s == pytest.approx(second, rel=1e-12)  # a peak is believed at once
    else:
        assert second - 1e-12 <= after.latency_s <= first + 1e-12  # a dip only partly


@given(st.floats(min_value=1e-3, max_value=1.0), latency_st, st.floats(0, 1e3))
def test_an_idle_estimate_drifts_back_to_the_prior(prior: float, seen: float, idle: float) -> None:
    stats = obs.finished(obs.started(obs.fresh(prior), 0.0), seen, "ok", 0.0, SETTINGS)
    now = obs.latency_at(stats, idle, SETTINGS)
    assert min(prior, seen) - 1e-12 <= now <= max(prior, seen) + 1e-12
    assert obs.latency_at(stats, 1e6, SETTINGS) == pytest.approx(prior)


@given(st.floats(min_value=1e-3, max_value=1.0), latency_st, latency_st)
@example(prior=0.18493497007357598, first=0.18493497007357598, fast_failure=0.125)  # ulp rounding
def test_failures_never_lower_the_latency_estimate(
    prior: float, first: float, fast_failure: float
) -> None:
    stats = obs.finished(obs.started(obs.fresh(prior), 0.0), first, "ok", 1.0, SETTINGS)
    failed = obs.finished(obs.started(stats, 1.0), fast_failure, "error", 1.1, SETTINGS)
    assert failed.latency_s >= obs.latency_at(stats, 1.1, SETTINGS)
    assert failed.failures == 1
    assert failed.error_rate > 0
    assert obs.effective_latency(failed, 1.1, SETTINGS) > obs.effective_latency(
        stats, 1.1, SETTINGS
    )


@given(st.lists(st.sampled_from(["start", "ok", "error", "censored", "unmeasured"])))
def test_in_flight_never_goes_negative(events: list[str]) -> None:
    stats = obs.fresh(0.01)
    expected = 0
    for i, event in enumerate(events):
        if event == "start":
            stats = obs.started(stats, float(i))
            expected += 1
        else:
            stats = obs.finished(stats, 0.01, event, float(i), SETTINGS)  # type: ignore[arg-type]
            expected = max(expected - 1, 0)
        assert stats.in_flight == expected >= 0


def test_cold_tool_with_pending_calls_is_penalised() -> None:
    cold = obs.started(obs.fresh(0.01), 0.0)
    assert obs.effective_latency(cold, 0.0, SETTINGS) == pytest.approx(0.01 * SETTINGS.cold_penalty)
    assert obs.effective_latency(obs.fresh(0.01), 0.0, SETTINGS) == pytest.approx(0.01)


def test_unmeasured_and_censored_outcomes() -> None:
    stats = obs.finished(obs.started(obs.fresh(0.05), 0.0), 0.05, "ok", 0.05, SETTINGS)
    hit = obs.finished(obs.started(stats, 1.0), 0.0001, "unmeasured", 1.0, SETTINGS)
    assert (hit.latency_s, hit.samples, hit.error_rate) == (stats.latency_s, 1, 0.0)
    cancelled_fast = obs.finished(obs.started(stats, 1.0), 0.001, "censored", 1.0, SETTINGS)
    assert cancelled_fast.latency_s >= obs.latency_at(stats, 1.0, SETTINGS)
    cancelled_slow = obs.finished(obs.started(stats, 1.0), 2.0, "censored", 1.0, SETTINGS)
    assert cancelled_slow.latency_s == 2.0
    assert cancelled_slow.error_rate == 0.0


# -- ranking --------------------------------------------------------------------------------


def _settings(*profiles: tuple[str, ToolProfile], **kw: object) -> SelectorSettings:
    pairs = tuple(("T", name) for name, _ in profiles)
    return SelectorSettings(
        profiles={("T", name): p for name, p in profiles},
        candidates={"X": pairs},
        **kw,  # type: ignore[arg-type]
    )


def _profile(acc: float = 0.5, comp: float = 0.5, prior: float = 0.05) -> ToolProfile:
    return ToolProfile(acc, comp, prior, {"X": 1.0})


@given(latency_st, latency_st)
def test_fastest_ranks_the_lower_latency_tool_first(a: float, b: float) -> None:
    if math.isclose(a, b, rel_tol=1e-6):
        return
    state = SelectorState(_settings(("a", _profile()), ("b", _profile())))
    for name, latency in (("a", a), ("b", b)):
        state.observe_start("T", name, 0.0)
        state.observe_finish("T", name, latency, True, 1.0)
    ranked = state.rank("X", Strategy.FASTEST, (), 1.0)
    assert ranked[0].operation == ("a" if a < b else "b")


@given(st.sampled_from(list(Strategy)), latency_st, latency_st, st.integers(0, 5))
def test_a_lower_latency_never_lowers_the_score(
    strategy: str, slow: float, fast: float, in_flight: int
) -> None:
    fast, slow = sorted((fast, slow))
    scores = []
    for latency in (slow, fast):
        state = SelectorState(_settings(("a", _profile()), ("b", _profile())))
        state.observe_start("T", "a", 0.0)
        state.observe_finish("T", "a", latency, True, 1.0)
        for _ in range(in_flight):
            state.observe_start("T", "a", 1.0)
        scores.append(next(r for r in state.rank("X", strategy, (), 1.0) if r.operation == "a"))
    assert scores[1].confidence >= scores[0].confidence


def test_every_strategy_can_change_the_ranking() -> None:
    state = SelectorState(
        _settings(
            ("accurate", _profile(acc=1.0, comp=0.2, prior=1.0)),
            ("complete", _profile(acc=0.2, comp=1.0, prior=1.0)),
            ("fast", _profile(acc=0.2, comp=0.2, prior=0.01)),
            ("idle", _profile(acc=0.2, comp=0.2, prior=1.0)),
        )
    )
    for name, latency in (("accurate", 1.0), ("complete", 1.0), ("fast", 0.01), ("idle", 1.0)):
        state.observe_start("T", name, 0.0)
        state.observe_finish("T", name, latency, True, 0.0)
    for name in ("accurate", "complete", "fast"):
        for _ in range(5):
            state.observe_start("T", name, 0.0)
    rankings = {s: tuple(r.operation for r in state.rank("X", s, (), 0.0)) for s in Strategy}
    assert rankings[Strategy.MOST_ACCURATE][0] == "accurate"
    assert rankings[Strategy.MOST_COMPLETE][0] == "complete"
    assert rankings[Strategy.FASTEST][0] == "fast"
    assert rankings[Strategy.LEAST_LOAD][0] == "idle"
    assert len(set(rankings.values())) == len(Strategy)  # five strategies, five orders


def test_cache_availability_is_an_input_and_counts() -> None:
    state = SelectorState(_settings(("a", _profile(acc=0.6)), ("b", _profile(acc=0.5))))
    assert state.rank("X", Strategy.BALANCED, (), 0.0)[0].operation == "a"
    ranked = state.rank("X", Strategy.BALANCED, {("T", "b")}, 0.0)
    assert ranked[0].operation == "b"
    assert ranked[0].evidence["cached"] is True
    assert ranked[0].explain()["factors"]["cache"]["value"] == 1.0


def test_explain_gives_the_breakdown() -> None:
    ranked = SelectorState(ops_selector_settings()).rank(
        IntentType.LOOKUP, Strategy.BALANCED, (), 0.0
    )
    for r in ranked:
        doc = r.explain()
        total = sum(f["contribution"] for f in doc["factors"].values())
        assert doc["confidence"] == pytest.approx(total * doc["reliability"])
        assert set(doc["evidence"]) >= {"latency_s", "in_flight", "error_rate", "cached"}
    assert ranked[0].candidate == ("CI", "get")


# -- learning -------------------------------------------------------------------------------


def _drive(state: SelectorState, clock: list[float], calls: int, failing: set[str]) -> list[str]:
    """Sequential calls every 50 ms; a failing tool fails fast (1 ms).  The picks the
    ranking made (exploring ones left out)."""
    rng = random.Random(7)
    picked = []
    for _ in range(calls):
        now = clock[0]
        chosen = state.choose(IntentType.LOOKUP, Strategy.BALANCED, (), now, rng)
        tool, op = chosen.candidate
        state.observe_start(tool, op, now)
        ok = op not in failing
        duration = 0.001 if not ok else OPS_PROFILES[(tool, op)].latency_prior_s
        state.observe_finish(tool, op, duration, ok, now + duration)
        if not chosen.explored:  # probes are exploration's (test_selector_exploration.py)
            picked.append(op)
        clock[0] = now + 0.05
    return picked


def test_a_failing_tool_drops_within_a_bounded_number_of_calls_and_comes_back() -> None:
    state = SelectorState(ops_selector_settings())
    clock = [0.0]
    assert set(_drive(state, clock, 50, failing=set())) == {"get"}

    # CI.get starts failing.  Its confidence is scaled by 1 - error_rate (α = 0.1): after
    # 3 failures it ranks below CI.search, after 4 it is out of the near-top margin too.
    picked = _drive(state, clock, 40, failing={"get"})
    failures_before_switch = picked.index("search")
    assert failures_before_switch <= 4
    # It is still probed now and then (its error rate is forgotten over time), rarely.
    assert picked[failures_before_switch:].count("get") <= 0.15 * len(picked)
    assert state.rank(IntentType.LOOKUP, None, (), clock[0])[0].operation == "search"

    # CI.get recovers.  It is not chosen, so only forgetting can bring it back: within a
    # bounded time (a few error-decay constants) it is ranked first and chosen again.
    picked = _drive(state, clock, 1200, failing=set())
    assert "get" in picked
    came_back_after_s = picked.index("get") * 0.05
    assert came_back_after_s <= 3 * state.settings.observation.error_decay_time
    assert picked[-50:] == ["get"] * 50


def test_a_slow_tool_loses_traffic_to_a_fast_one() -> None:
    state = SelectorState(_settings(("a", _profile()), ("b", _profile())))
    rng = random.Random(3)
    now = 0.0
    counts: Counter[str] = Counter()
    for i in range(400):
        chosen = state.choose("X", Strategy.FASTEST, (), now, rng)
        state.observe_start("T", chosen.operation, now)
        latency = 0.5 if chosen.operation == "a" and i >= 100 else 0.05
        state.observe_finish("T", chosen.operation, latency, True, now + latency)
        if i >= 200:
            counts[chosen.operation] += 1
        now += 0.1
    assert counts["b"] > 0.9 * sum(counts.values())


# -- anti-herding ---------------------------------------------------------------------------


@pytest.mark.parametrize("choices", [0, 2])
def test_near_equal_candidates_share_the_traffic(choices: int) -> None:
    # Six identical tools, no observations delivered at all (maximally stale statistics):
    # "always the top score" would send every call to T.t0.
    names = [f"t{i}" for i in range(6)]
    settings = _settings(*((n, _profile()) for n in names), choices=choices)
    for reserve in (True, False):
        state = SelectorState(settings)
        rng = random.Random(11)
        picks = Counter(
            state.choose("X", None, (), 0.001 * i, rng, reserve=reserve).operation
            for i in range(600)
        )
        assert set(picks) == set(names), (reserve, picks)
        assert max(picks.values()) < 200, (reserve, picks)


def test_reservations_are_settled_by_starts_and_expire() -> None:
    state = SelectorState(_settings(("a", _profile()), ("b", _profile())))
    rng = random.Random(0)
    chosen = state.choose("X", None, (), 0.0, rng)
    op = chosen.operation
    assert state.reserved("T", op, 0.0) == 1
    ranked = {r.operation: r for r in state.rank("X", None, (), 0.0)}
    assert ranked[op].evidence["reserved"] == 1
    state.observe_start("T", op, 0.01)
    assert state.reserved("T", op, 0.01) == 0
    assert state.stats("T", op).in_flight == 1
    # a choice never executed stops counting after the reservation TTL
    other = state.choose("X", None, (), 1.0, rng).operation
    assert state.reserved("T", other, 1.0) == 1
    assert state.reserved("T", other, 1.0 + state.settings.reservation_ttl + 0.01) == 0


def test_snapshot_reports_what_was_observed() -> None:
    state = SelectorState(ops_selector_settings())
    state.observe_start("CI", "get", 0.0)
    state.observe_finish("CI", "get", 0.02, False, 0.02)
    state.observe_start("CI", "search", 0.1)
    snap = {(s.tool_type, s.operation): s for s in state.snapshot(0.2)}
    assert snap[("CI", "get")].failures == 1
    assert snap[("CI", "get")].in_flight == 0
    assert snap[("CI", "search")].in_flight == 1
    assert snap[("CI", "search")].samples == 0
    assert snap[("CI", "get")].as_dict()["error_rate"] > 0


# -- settings -------------------------------------------------------------------------------


def test_settings_from_the_runtime_config() -> None:
    config = SelectorConfig(
        default_strategy="CHEAP",
        decay_time=5.0,
        herd_margin=0.1,
        strategies={"CHEAP": {"latency": 1.0, "cache": 1.0}},
        intents={"MY_INTENT": ("MY.tool", "CI.search")},
        profiles={"MY": {"tool": ProfileConfig(0.7, 0.6, 0.2, {"MY_INTENT": 1.0})}},
    )
    settings = SelectorSettings.from_config(
        apply_preset(RuntimeConfig(selector=config), OPS_PRESET).selector
    )
    assert settings.default_strategy == "CHEAP"
    assert settings.observation.decay_time == 5.0
    assert settings.herd_margin == 0.1
    assert settings.candidates["MY_INTENT"] == (("MY", "tool"), ("CI", "search"))
    assert settings.profiles[("MY", "tool")].latency_prior_s == 0.2
    assert settings.candidates[IntentType.SEARCH] == OPS_CANDIDATES[IntentType.SEARCH]
    ranked = SelectorState(settings).rank("MY_INTENT", None, (), 0.0)
    assert {r.candidate for r in ranked} == {("MY", "tool"), ("CI", "search")}


def test_the_core_has_no_intents_or_profiles_of_its_own() -> None:
    settings = SelectorSettings.from_config(SelectorConfig())
    assert (settings.candidates, settings.profiles) == ({}, {})
    with pytest.raises(UnknownIntent):
        SelectorState(settings).rank(IntentType.SEARCH)


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"strategies": {"BAD": {"speed": 1.0}}}, "selector.strategies.BAD.speed"),
        ({"strategies": {"ZERO": {"latency": 0.0}}}, "selector.strategies.ZERO"),
        (
            {"strategies": {"HUGE": {"accuracy": 1e308, "latency": 1e308}}},
            "selector.strategies.HUGE",
        ),
        ({"intents": {"X": ("nodot",)}}, "selector.intents.X[0]"),
        ({"intents": {"X": ()}}, "selector.intents.X"),
        ({"intents": {"X": ("CI.get", "CI.search", "CI.get")}}, "selector.intents.X[2]"),
        ({"default_strategy": "NOPE"}, "selector.default_strategy"),
    ],
)
def test_settings_errors_name_the_offending_key(changes: dict[str, object], path: str) -> None:
    config = attrs.evolve(SelectorConfig(), **changes)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as caught:
        SelectorSettings.from_config(config)
    assert caught.value.path == path


def test_a_candidate_listed_twice_is_refused() -> None:
    # Listed twice, it would be ranked twice and run again as its own fallback.
    with pytest.raises(ValueError, match=r"'X' lists \('CI', 'get'\) twice"):
        SelectorSettings(candidates={"X": (("CI", "get"), ("CI", "search"), ("CI", "get"))})
