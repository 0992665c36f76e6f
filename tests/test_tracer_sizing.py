"""Result sizing at report time: counts always exact, sizes measured one in N, else scaled."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.tracer.sizing import ResultSizer, result_count, result_size_bytes


def rows(n: int, width: int = 5) -> dict[str, Any]:
    return {"records": [{"id": k, "name": "x" * width} for k in range(n)]}


def exact(data: Any) -> int:
    return len(json.dumps(data, separators=(",", ":")))


def test_the_first_result_of_each_operation_is_measured() -> None:
    sizer = ResultSizer(every=10)
    assert sizer.size("CI", "search", rows(3)) == (3, exact(rows(3)), False)
    assert sizer.size("CI", "get", rows(3)) == (3, exact(rows(3)), False)
    assert sizer.size("METRIC", "search", [1, 2]) == (2, exact([1, 2]), False)


def test_results_are_estimated_from_the_last_measurement_scaled_by_count() -> None:
    sizer = ResultSizer(every=10)
    measured = exact(rows(4))
    sizer.size("CI", "search", rows(4))
    # Same count: exactly the measured size; another count: scaled linearly.
    assert sizer.size("CI", "search", rows(4, width=50)) == (4, measured, True)
    assert sizer.size("CI", "search", rows(8)) == (8, round(measured * 8 / 4), True)
    assert sizer.size("CI", "search", rows(1)) == (1, round(measured / 4), True)


def test_one_result_in_every_is_measured_again() -> None:
    sizer = ResultSizer(every=4)
    flags = [sizer.size("CI", "search", rows(2))[2] for _ in range(12)]
    assert flags == [False, True, True, True] * 3


def test_every_one_measures_every_result() -> None:
    sizer = ResultSizer(every=1)
    assert [sizer.size("CI", "search", rows(n)) for n in (1, 2)] == [
        (1, exact(rows(1)), False),
        (2, exact(rows(2)), False),
    ]


def test_counts_that_cannot_be_scaled_are_measured() -> None:
    sizer = ResultSizer(every=100)
    sizer.size("CI", "search", rows(3))
    assert sizer.size("CI", "search", rows(0)) == (0, exact(rows(0)), False)  # count 0
    assert sizer.size("CI", "search", {"x": 1}) == (None, exact({"x": 1}), False)  # no count
    # Both without a count: the measured size stands for the next one.
    assert sizer.size("CI", "search", {"x": 2}) == (None, exact({"x": 1}), True)
    assert sizer.size("CI", "search", rows(2)) == (2, exact(rows(2)), False)


def test_a_result_without_a_size_is_measured_each_time() -> None:
    class Unrepresentable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    sizer = ResultSizer(every=100)
    assert sizer.size("CI", "odd", Unrepresentable()) == (None, None, False)
    assert sizer.size("CI", "odd", [1]) == (1, exact([1]), False)


def test_clear_forgets_the_measurements() -> None:
    sizer = ResultSizer(every=100)
    sizer.size("CI", "search", rows(2))
    assert sizer.size("CI", "search", rows(2))[2] is True
    sizer.clear()
    assert sizer.size("CI", "search", rows(2))[2] is False


def test_every_must_be_positive() -> None:
    with pytest.raises(ValueError, match="every"):
        ResultSizer(every=0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=12,
)
shapes = json_values | st.dictionaries(
    st.sampled_from(["records", "rows", "items", "events", "nodes", "other"]),
    st.lists(json_values, max_size=4) | json_values,
    max_size=3,
)


@given(st.lists(shapes.filter(lambda d: d is not None), min_size=1, max_size=20), st.integers(1, 5))
def test_counts_are_exact_and_measured_sizes_too(results: list[Any], every: int) -> None:
    sizer = ResultSizer(every=every)
    for data in results:
        count, size, estimated = sizer.size("T", "op", data)
        assert count == result_count(data)
        if not estimated:
            assert size == result_size_bytes(data)
        else:
            assert size is not None
            assert size >= 0
    # Never more than every - 1 estimates in a row.
    flags = [sizer.size("T", "op", results[0])[2] for _ in range(2 * every)]
    assert "".join("e" if f else "m" for f in flags).count("e" * every) == 0
