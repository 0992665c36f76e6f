"""Stored values: each caller gets its own copy, sizes are real, the unstorable is refused."""

from __future__ import annotations

import enum
import pickle
import threading
from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.cache import CacheStore, StoredValue, Uncacheable, freeze, make_key, thaw
from runtime.errors import InvalidParams


class ToolTypeLike(enum.StrEnum):
    CI = "CI"


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
    assert isinstance(stored, StoredValue)
    assert len(stored) == len(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


@given(json_like)
def test_every_thaw_is_a_fresh_copy_that_no_other_caller_sees(value: Any) -> None:
    stored = freeze(value)
    first, second = thaw(stored), thaw(stored)
    assert first == second == value
    if isinstance(first, dict | list):
        assert first is not second
        first.clear()  # one caller empties its copy...
        assert thaw(stored) == value  # ...the next still gets the whole value


flat_atoms = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8)
)


@given(
    st.dictionaries(st.text(max_size=6), flat_atoms, max_size=6)
    | st.lists(flat_atoms, max_size=6)
    | st.tuples(flat_atoms, flat_atoms)
    | flat_atoms
)
def test_flat_values_are_kept_as_copies_not_pickles(value: Any) -> None:
    # A flat value thaws by one copy of its container (values.py); the copy keeps the
    # exact types (0.0 and -0.0, True and 1) because the atoms are the same objects.
    stored = freeze(value)
    assert repr(stored).startswith("<StoredValue flat")
    again = thaw(stored)
    assert again == value
    assert type(again) is type(value)
    if isinstance(value, dict):
        assert [type(v) for v in again.values()] == [type(v) for v in value.values()]
    value_was = pickle.dumps(value)
    if isinstance(value, dict | list):
        value.clear()  # the caller's own object changes; the stored copy does not
        assert pickle.dumps(thaw(stored)) == value_was


@pytest.mark.parametrize(
    "value",
    [
        {"a": {"b": 1}},  # nested
        {"a": [1]},
        [[1]],
        {1: "int key"},
        {"e": ToolTypeLike.CI},  # a str subclass: kept exactly by its pickle
        ({"a": 1}, (), {}),
    ],
)
def test_anything_not_flat_is_kept_as_its_pickle(value: Any) -> None:
    stored = freeze(value)
    assert repr(stored).startswith("<StoredValue pickled")
    again = thaw(stored)
    assert again == value
    assert [type(v) for v in _leaves(again)] == [type(v) for v in _leaves(value)]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list | tuple):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


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
    store: CacheStore[StoredValue] = CacheStore(max_entries=4)
    key = make_key("A", "CI", "search", {"q": "web"})
    stored = freeze(ci_search_result())
    store.put(key, stored, size=len(stored), ttl=60, now=0)
    hit = store.get(key, now=1)
    assert isinstance(hit, StoredValue)
    thaw(hit)["records"].pop()
    hit_again = store.get(key, now=2)
    assert isinstance(hit_again, StoredValue)
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
