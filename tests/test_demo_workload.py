"""The demo's workload core: Zipf popularity and the operator question catalogue (pure)."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.demo.workload import (
    CiRef,
    Estate,
    Question,
    distinct_count,
    question_catalogue,
    zipf_sample,
    zipf_weights,
)
from runtime.ops.params import validate_params
from runtime.ops.schema import CI_TYPES

DOMAINS = ("payments", "orders", "gateway", "identity")


@st.composite
def estates(draw: st.DrawFn) -> Estate:
    count = draw(st.integers(min_value=1, max_value=40))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=count, max_size=count, unique=True))
    cis = tuple(
        CiRef(
            ci_id=ci_id,
            code=f"CI-{ci_id:05d}",
            name=f"{draw(st.sampled_from(DOMAINS))}-node-{ci_id:02d}",
            ci_type=draw(st.sampled_from(CI_TYPES)),
            env=draw(st.sampled_from(("prod", "staging", "dev"))),
        )
        for ci_id in ids
    )
    hot = draw(st.lists(st.sampled_from(ids), unique=True, max_size=6))
    return Estate(cis, tuple(hot))


@given(st.integers(0, 200), st.floats(0, 3))
def test_zipf_weights_fall_with_rank(count: int, skew: float) -> None:
    weights = zipf_weights(count, skew)
    assert len(weights) == count
    assert all(a >= b for a, b in itertools.pairwise(weights))
    if count:
        assert weights[0] == 1.0
    if skew == 0:
        assert set(weights) <= {1.0}


def test_zipf_rejects_negative_inputs() -> None:
    with pytest.raises(ValueError, match="skew"):
        zipf_weights(3, -1)
    with pytest.raises(ValueError, match="count"):
        zipf_weights(-1, 1)
    with pytest.raises(ValueError, match="empty"):
        zipf_sample([], 1, skew=1, seed=0)


ITEMS = [Question(f"q{i}", "CI", "get", {"ci_id": i + 1}) for i in range(50)]


@given(st.integers(0, 500), st.floats(0, 2.5), st.integers())
def test_zipf_sample_is_repeatable_and_draws_only_catalogue_items(
    count: int, skew: float, seed: int
) -> None:
    first = zipf_sample(ITEMS, count, skew=skew, seed=seed)
    assert first == zipf_sample(ITEMS, count, skew=skew, seed=seed)
    assert len(first) == count
    assert all(item in ITEMS for item in first)


def test_zipf_sample_favours_the_head_as_the_skew_grows() -> None:
    mild = Counter(q.label for q in zipf_sample(ITEMS, 5000, skew=0.0, seed=1))
    steep = Counter(q.label for q in zipf_sample(ITEMS, 5000, skew=1.2, seed=1))
    assert steep.most_common(1)[0][0] == "q0"
    assert steep["q0"] > 3 * mild["q0"]
    assert len(steep) < len(mild) or steep["q49"] < mild["q49"]


@given(estates(), st.integers())
def test_every_catalogue_question_is_a_valid_distinct_tool_call(estate: Estate, seed: int) -> None:
    catalogue = question_catalogue(estate, seed=seed)
    assert catalogue
    assert distinct_count(catalogue) == len(catalogue)
    for question in catalogue:
        validate_params(question.tool_type, question.operation, question.params)
    assert catalogue == question_catalogue(estate, seed=seed)


@given(estates(), st.integers())
def test_the_hottest_ci_is_asked_about_near_the_head(estate: Estate, seed: int) -> None:
    catalogue = question_catalogue(estate, seed=seed)
    if not estate.hot:
        return
    hottest = estate.by_id()[estate.hot[0]]
    about = [
        index
        for index, question in enumerate(catalogue)
        if question.params.get("ci_code") == hottest.code
        or question.params.get("ci_ids") == [hottest.ci_id]
    ]
    # Its first questions sit in the head, among the dashboard panels (at most 7 of them).
    assert about
    assert min(about) <= 8


def test_simulations_can_be_left_out() -> None:
    estate = Estate((CiRef(1, "DB-1", "orders-pg-01", "database"),), (1,))
    with_sims = question_catalogue(estate, seed=0)
    without = question_catalogue(estate, seed=0, simulations=False)
    assert any(q.tool_type == "CEP" for q in with_sims)
    assert not any(q.tool_type == "CEP" for q in without)
