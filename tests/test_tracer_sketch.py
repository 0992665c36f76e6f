"""The quantile sketch: <= 1% relative error, mergeable, zero-safe, bounded in size."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.tracer.sketch import QuantileSketch

ALPHA = 0.01
QUANTILES = (0.5, 0.95, 0.99)
# Float rounding at a bucket boundary may add a few ulps on top of alpha.
TOLERANCE = ALPHA * (1 + 1e-9)


def exact_quantile(values: list[float], q: float) -> float:
    """The lower quantile: the element of rank floor(q * (n - 1))."""
    ordered = sorted(values)
    return ordered[math.floor(q * (len(ordered) - 1))]


def relative_error(estimate: float | None, exact: float) -> float:
    assert estimate is not None
    return abs(estimate - exact) / exact


positive = st.floats(min_value=1e-6, max_value=1e7, allow_nan=False, allow_infinity=False)


@given(st.lists(positive, min_size=1, max_size=400))
def test_quantiles_are_within_one_percent_of_exact(values: list[float]) -> None:
    sketch = QuantileSketch(ALPHA)
    sketch.add_all(values)
    for q in QUANTILES:
        assert relative_error(sketch.quantile(q), exact_quantile(values, q)) <= TOLERANCE


@given(
    st.lists(positive, min_size=1, max_size=200),
    st.lists(positive, min_size=1, max_size=200),
)
def test_merged_sketch_answers_for_the_union(left: list[float], right: list[float]) -> None:
    a, b = QuantileSketch(ALPHA), QuantileSketch(ALPHA)
    a.add_all(left)
    b.add_all(right)
    a.merge(b)
    union = left + right
    assert a.count == len(union)
    assert a.min == min(union)
    assert a.max == max(union)
    assert a.sum == pytest.approx(sum(union))
    for q in QUANTILES:
        assert relative_error(a.quantile(q), exact_quantile(union, q)) <= TOLERANCE


def test_heavy_tailed_data_keeps_the_tail_accurate() -> None:
    rng = random.Random(7)
    values = [rng.lognormvariate(math.log(20), 1.0) for _ in range(20_000)]
    values += [rng.uniform(400, 600) for _ in range(200)]  # a second mode right at p99
    sketch = QuantileSketch(ALPHA)
    sketch.add_all(values)
    for q in (*QUANTILES, 0.999):
        assert relative_error(sketch.quantile(q), exact_quantile(values, q)) <= TOLERANCE


def test_zero_and_tiny_values_are_counted_as_zero() -> None:
    sketch = QuantileSketch(ALPHA)
    sketch.add_all([0.0, 0.0, 1e-12, 0.0, 5.0])
    assert sketch.count == 5
    assert sketch.quantile(0.5) == 0.0
    assert sketch.quantile(1.0) == 5.0
    assert sketch.bucket_count == 2


def test_empty_sketch_and_invalid_input() -> None:
    sketch = QuantileSketch()
    assert sketch.quantile(0.5) is None
    assert sketch.min is None
    assert sketch.max is None
    with pytest.raises(ValueError, match="quantile"):
        sketch.quantile(1.5)
    for bad in (math.nan, math.inf):
        with pytest.raises(ValueError, match="non-finite"):
            sketch.add(bad)
    assert sketch.count == 0
    with pytest.raises(ValueError, match="different accuracy"):
        sketch.merge(QuantileSketch(0.02))
    with pytest.raises(ValueError, match="relative_accuracy"):
        QuantileSketch(1.0)


def test_bucket_count_is_bounded_and_the_top_stays_accurate() -> None:
    sketch = QuantileSketch(ALPHA, max_buckets=64)
    # 200 decades apart: far more than 64 buckets' worth of range.
    values = [10.0 ** (i / 50) for i in range(-5000, 5000)]
    sketch.add_all(values)
    assert sketch.bucket_count <= 64
    assert sketch.count == len(values)
    # The highest quantiles still lie above the collapsed floor: their guarantee holds.
    for q in (0.999, 1.0):
        assert relative_error(sketch.quantile(q), exact_quantile(values, q)) <= TOLERANCE
    assert sketch.quantile(0.0) is not None


def test_merge_respects_the_bound_and_collapsed_floors() -> None:
    low, high = QuantileSketch(ALPHA, max_buckets=32), QuantileSketch(ALPHA, max_buckets=32)
    low.add_all(10.0 ** (i / 20) for i in range(-400, 0))
    high.add_all(10.0 ** (i / 20) for i in range(0, 400))
    low.merge(high)
    assert low.bucket_count <= 32
    assert low.count == 800
    copy = low.copy()
    assert copy.quantiles(QUANTILES) == low.quantiles(QUANTILES)


def _state(sketch: QuantileSketch) -> tuple[object, ...]:
    return (
        dict(sketch._buckets),
        sketch._zero_count,
        sketch.count,
        sketch.min,
        sketch.max,
        sketch._floor_key,
    )


batches_of_values = st.lists(
    st.lists(
        st.one_of(positive, st.just(0.0), st.floats(min_value=-5.0, max_value=1e-10)),
        max_size=60,
    ),
    max_size=6,
)


@given(batches_of_values)
def test_add_all_counts_exactly_like_adding_one_by_one(batches: list[list[float]]) -> None:
    one_by_one = QuantileSketch(ALPHA)
    batched = QuantileSketch(ALPHA)
    for batch in batches:
        for value in batch:
            one_by_one.add(value)
        batched.add_all(batch)
    assert _state(batched) == _state(one_by_one)
    assert batched.sum == one_by_one.sum
    assert batched.quantiles(QUANTILES) == one_by_one.quantiles(QUANTILES)


@given(st.lists(positive, min_size=1, max_size=50), st.sampled_from([math.nan, math.inf]))
def test_add_all_rejects_a_non_finite_value_before_counting_anything(
    values: list[float], bad: float
) -> None:
    sketch = QuantileSketch(ALPHA)
    sketch.add_all(values[:1])
    before = _state(sketch)
    with pytest.raises(ValueError, match="non-finite"):
        sketch.add_all([*values, bad])
    assert _state(sketch) == before


def test_add_all_accepts_finite_values_whose_sum_overflows() -> None:
    sketch = QuantileSketch(ALPHA)
    sketch.add_all([1e308, 1e308])
    assert sketch.count == 2
    assert sketch.max == 1e308


def test_add_all_past_the_bound_collapses_once_and_keeps_the_top() -> None:
    sketch = QuantileSketch(ALPHA, max_buckets=64)
    values = [1.03**i for i in range(400)]
    sketch.add_all(values)
    assert sketch.bucket_count <= 64
    assert sketch.count == 400
    assert relative_error(sketch.quantile(0.99), exact_quantile(values, 0.99)) <= TOLERANCE
