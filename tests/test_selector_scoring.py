"""Properties of the pure scorer: bounds, monotonicity, explanations, the pick."""

from __future__ import annotations

import math
import random
from collections import Counter

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.selector.scoring import (
    DEFAULT_STRATEGIES,
    FACTORS,
    Factors,
    Ranked,
    Strategy,
    Weights,
    choose,
    confidence,
    explain,
    latency_score,
    load_score,
    rank,
)

unit = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)
factors_st = st.builds(Factors, unit, unit, unit, unit, unit, unit)
weight = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)
weights_st = (
    st.tuples(weight, weight, weight, weight, weight, weight)
    .filter(lambda t: sum(t) > 1e-6)
    .map(lambda t: Weights(*t))
)


@given(factors_st, weights_st, unit)
def test_confidence_is_in_unit_interval(factors: Factors, weights: Weights, rel: float) -> None:
    assert 0.0 <= confidence(factors, weights, rel) <= 1.0


@given(factors_st, weights_st, st.sampled_from(FACTORS), unit, unit)
def test_improving_a_factor_never_lowers_the_confidence(
    factors: Factors, weights: Weights, name: str, raise_to: float, rel: float
) -> None:
    better_value = max(getattr(factors, name), raise_to)
    better = attrs.evolve(factors, **{name: better_value})
    assert confidence(better, weights, rel) >= confidence(factors, weights, rel)


@given(factors_st, weights_st, st.sampled_from(FACTORS))
def test_improving_a_weighted_factor_raises_the_confidence(
    factors: Factors, weights: Weights, name: str
) -> None:
    share = getattr(weights, name) / weights.total()
    if share < 0.01 or getattr(factors, name) > 0.9:
        return  # the strict part only applies to a factor with real weight and room to grow
    better = attrs.evolve(factors, **{name: getattr(factors, name) + 0.1})
    assert confidence(better, weights) > confidence(factors, weights)


@given(factors_st, unit, unit)
def test_higher_reliability_never_lowers_the_confidence(
    factors: Factors, low: float, high: float
) -> None:
    low, high = sorted((low, high))
    for weights in DEFAULT_STRATEGIES.values():
        assert confidence(factors, weights, high) >= confidence(factors, weights, low)


@given(factors_st, weights_st)
def test_explain_sums_to_the_confidence(factors: Factors, weights: Weights) -> None:
    lines = explain(factors, weights)
    assert [line.factor for line in lines] == list(FACTORS)
    assert math.isclose(sum(line.weight for line in lines), 1.0, rel_tol=1e-9)
    assert math.isclose(
        sum(line.contribution for line in lines), confidence(factors, weights), abs_tol=1e-9
    )


def test_weights_are_normalised_not_capped() -> None:
    # The original summed and capped at 1.0: two candidates above the cap tied.  Doubling
    # every weight must change nothing, and a perfect candidate must score exactly 1.
    perfect = Factors(1, 1, 1, 1, 1, 1)
    good = Factors(1, 1, 1, 1, 1, 0.5)
    heavy = Weights(*(2.0 * w for w in attrs.astuple(DEFAULT_STRATEGIES[Strategy.BALANCED])))
    assert confidence(perfect, heavy) == pytest.approx(1.0)
    assert confidence(good, heavy) == pytest.approx(
        confidence(good, DEFAULT_STRATEGIES[Strategy.BALANCED])
    )
    assert confidence(good, heavy) < confidence(perfect, heavy)


def test_balanced_is_the_seed_scorer() -> None:
    assert DEFAULT_STRATEGIES[Strategy.BALANCED].as_dict() == {
        "accuracy": 0.3,
        "completeness": 0.0,
        "latency": 0.25,
        "load": 0.2,
        "cache": 0.15,
        "intent": 0.1,
    }


def test_weights_reject_negative_and_all_zero() -> None:
    with pytest.raises(ValueError, match="latency"):
        Weights(latency=-0.1, accuracy=1)
    with pytest.raises(ValueError, match="positive"):
        Weights()


def test_weights_whose_sum_overflows_are_a_value_error() -> None:
    # Each weight is finite, as the validator asks, but their sum is not: normalising
    # would turn every weight into 0 (every confidence 0) if it did not raise first.
    with pytest.raises(ValueError, match="sum"):
        Weights(accuracy=1e308, latency=1e308)
    assert Weights(accuracy=1e308, latency=1e300).normalised()[0] == pytest.approx(1.0)


def test_factors_reject_values_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="load"):
        Factors(1, 1, 1, 1.5, 0, 0)


@given(st.floats(min_value=0, max_value=1e6), st.floats(min_value=0, max_value=1e6))
def test_latency_and_load_scores_are_monotone_and_bounded(a: float, b: float) -> None:
    low, high = sorted((a, b))
    assert 0.0 <= latency_score(high, 0.05) <= latency_score(low, 0.05) <= 1.0
    assert load_score(int(high)) <= load_score(int(low)) <= 1.0


def _ranked(name: str, conf: float, load: float = 0.0) -> Ranked:
    factors = Factors(conf, conf, conf, conf, conf, conf)
    return Ranked("T", name, conf, factors, Weights(accuracy=1), 1.0, {"load": load})


def test_rank_breaks_ties_by_name_whatever_the_input_order() -> None:
    same = Factors(0.5, 0.5, 0.5, 0.5, 0.5, 0.5)
    scored = [(("B", "x"), same, 1.0, {}), (("A", "y"), same, 1.0, {}), (("A", "x"), same, 1.0, {})]
    weights = Weights(accuracy=1)
    expected = [("A", "x"), ("A", "y"), ("B", "x")]
    assert [r.candidate for r in rank(scored, weights)] == expected
    assert [r.candidate for r in rank(scored[::-1], weights)] == expected


def test_choose_takes_the_top_when_alone_within_the_margin() -> None:
    ranked = [_ranked("a", 0.9, load=100.0), _ranked("b", 0.5, load=0.0)]
    rng = random.Random(0)
    assert all(
        choose(ranked, lambda r: r.evidence["load"], 0.1, rng).operation == "a" for _ in range(20)
    )


@pytest.mark.parametrize("choices", [0, 2])
def test_choose_spreads_equal_candidates(choices: int) -> None:
    # Four candidates equal in score and load: neither mode may pile everything on one.
    ranked = [_ranked(name, 0.8) for name in "abcd"]
    rng = random.Random(42)
    picks = Counter(
        choose(ranked, lambda r: r.evidence["load"], 0.05, rng, choices).operation
        for _ in range(400)
    )
    assert set(picks) == set("abcd")
    assert max(picks.values()) < 200


def test_p2c_prefers_the_less_loaded_of_its_pair() -> None:
    ranked = [_ranked("a", 0.8, load=5.0), _ranked("b", 0.8, load=1.0)]
    rng = random.Random(1)
    picks = {
        choose(ranked, lambda r: r.evidence["load"], 0.05, rng, 2).operation for _ in range(50)
    }
    assert picks == {"b"}


def test_least_loaded_of_all_near_top() -> None:
    ranked = [_ranked(n, 0.8, load) for n, load in (("a", 3.0), ("b", 2.0), ("c", 1.0))]
    ranked.append(_ranked("d", 0.1, load=0.0))  # least loaded, but far from the top
    rng = random.Random(7)
    assert {
        choose(ranked, lambda r: r.evidence["load"], 0.05, rng).operation for _ in range(30)
    } == {"c"}


def test_choose_is_reproducible_with_a_seed() -> None:
    ranked = [_ranked(name, 0.8) for name in "abcdef"]

    def run(seed: int) -> list[str]:
        rng = random.Random(seed)
        return [choose(ranked, lambda r: 0.0, 0.1, rng, 2).operation for _ in range(50)]

    assert run(3) == run(3)
    assert run(3) != run(4)
