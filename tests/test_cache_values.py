"""Stored values: each caller gets its own copy, sizes are real, the unstorable is refused."""

from __future__ import annotations

import pickle
import threading
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.cache import CacheStore, Uncacheable, freeze, make_key, thaw
from runtime.errors import InvalidParams

json_like = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=8)
    | st.binary(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6) | st.integers(), inner, max_size=4)
    ),
    max_leaves=20,
)


def ci_search_result() -> dict[str, Any]:
    return {
        "records": [
            {
                "ci_id": f"ci-{i}",
                "ci_name": f"web-{i}",
                "tags": {"env": "prod"},
                "attributes": {"disks": [{"size_gb": 100}]},
            }
            for i in range(20)
        ],
        "total": 20,
    }


@given(json_like)
def test_a_thawed_value_equals_the_frozen_one_with_the_same_types(value: Any) -> None:
    again = thaw(freeze(value))
    assert again == value
    assert type(again) is type(value)


@given(json_like)
def test_the_size_is_the_serialised_length(value: Any) -> None:
    stored = freeze(value)
    assert isinstance(stored, bytes)
    assert len(stored) == len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


def test_one_callers_mutation_never_reaches_the_next_caller() -> None:
    original = ci_search_result()
    stored = freeze(original)
    first = thaw(stored)
    first["records"].append({"ci_id": "poison"})
    first["records"][0]["tags"]["env"] = "poisoned"
    first["total"] = -1
    second = thaw(stored)
    assert second == ci_search_result()
    assert second is not first
    assert second["records"] is not first["records"]


def test_the_leaders_own_object_can_change_without_changing_the_stored_value() -> None:
    original = ci_search_result()
    stored = freeze(original)
    original["records"].clear()  # the leader's caller keeps and mutates its own object
    assert thaw(stored) == ci_search_result()


def test_mutation_safety_through_the_store() -> None:
    store: CacheStore[bytes] = CacheStore(max_entries=4)
    key = make_key("A", "CI", "search", {"q": "web"})
    stored = freeze(ci_search_result())
    store.put(key, stored, size=len(stored), ttl=60, now=0)
    hit = store.get(key, now=1)
    assert isinstance(hit, bytes)
    thaw(hit)["records"].pop()
    hit_again = store.get(key, now=2)
    assert isinstance(hit_again, bytes)
    assert thaw(hit_again) == ci_search_result()


@pytest.mark.parametrize("empty", [[], {}, (), "", None, 0])
def test_empty_values_freeze_to_a_truthy_stored_form(empty: Any) -> None:
    stored = freeze(empty)
    assert stored  # so even an `if cached:` cannot mistake it for a miss
    assert thaw(stored) == empty


@attrs.frozen
class Record:
    name: str
    tags: tuple[str, ...]


def test_records_and_tuples_keep_their_types() -> None:
    value = {"record": Record("a", ("x",)), "pair": (1, 2)}
    again = thaw(freeze(value))
    assert again == value
    assert isinstance(again["record"], Record)
    assert isinstance(again["pair"], tuple)


class _NoRoundTrip(Exception):
    def __init__(self, a: str, b: str) -> None:
        super().__init__(a)  # pickles as (a,), so unpickling calls __init__(a): TypeError


@pytest.mark.parametrize(
    "value",
    [
        lambda: None,
        threading.Lock(),
        (x for x in range(3)),
        {"nested": [threading.Lock()]},
        _NoRoundTrip("a", "b"),
    ],
)
def test_unstorable_values_raise_uncacheable(value: Any) -> None:
    with pytest.raises(Uncacheable) as caught:
        freeze(value)
    assert caught.value.reason


def test_exceptions_that_define_reduce_are_storable() -> None:
    error = InvalidParams("CI", "search", "limit", "must be <= 50")
    again = thaw(freeze(error))
    assert isinstance(again, InvalidParams)
    assert (again.param, again.problem) == ("limit", "must be <= 50")
