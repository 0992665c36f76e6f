"""runtime.jsondata: the one checking walk and the one set of limits every walker uses."""

from __future__ import annotations

import importlib
import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.cache import keys
from runtime.cache.codec import NotJsonValue, check_json_value
from runtime.calls import snapshot_params
from runtime.jsondata import MAX_CONTAINERS, MAX_DEPTH, check_json_data

redact_module = importlib.import_module("runtime.tracer.redact")  # the package re-exports
# a function of the same name


class Refused(Exception):
    def __init__(self, reason: str, path: str) -> None:
        super().__init__(reason, path)
        self.reason, self.path = reason, path


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=30,
)
anything = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.binary(max_size=3)
    | st.sets(st.integers(), max_size=2),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner)
        | st.dictionaries(st.text() | st.integers(), inner, max_size=3)
    ),
    max_leaves=20,
)


def round_trips(value: Any) -> bool:
    try:
        return bool(json.loads(json.dumps(value, allow_nan=False)) == value)
    except (TypeError, ValueError):
        return False


@given(json_values)
def test_plain_json_passes_in_both_modes(value: Any) -> None:
    check_json_data(value, Refused)
    check_json_data(value, Refused, sequences=(list,), exact=True)


@given(anything)
def test_the_exact_mode_passes_exactly_what_json_round_trips(value: Any) -> None:
    try:
        check_json_data(value, Refused, sequences=(list,), exact=True)
    except Refused:
        passed = False
    else:
        passed = True
    assert passed == round_trips(value)


@pytest.mark.parametrize(
    ("value", "path", "reason"),
    [
        ({"a": [1, {"b": math.nan}]}, "a[1].b", "non-finite float"),
        ({"a": {"b": {1, 2}}}, "a.b", "a set is not a JSON value"),
        ({"a": [{1: "x"}]}, "a[0]", "dict key 1 is a int, not a str"),
    ],
)
def test_a_refusal_names_the_path_and_the_problem(value: Any, path: str, reason: str) -> None:
    with pytest.raises(Refused) as caught:
        check_json_data(value, Refused)
    assert caught.value.path == path
    assert reason in caught.value.reason


def test_one_depth_limit_for_the_checks_the_copy_and_redaction() -> None:
    deepest: Any = "leaf"
    for _ in range(MAX_DEPTH):
        deepest = [deepest]
    check_json_data(deepest, Refused)  # MAX_DEPTH levels pass
    with pytest.raises(Refused, match=f"nested deeper than {MAX_DEPTH} levels"):
        check_json_data([deepest], Refused)
    with pytest.raises(keys.Uncacheable, match="nested deeper"):
        keys.make_key("t", "CI", "get", {"p": [deepest]})
    with pytest.raises(NotJsonValue, match="nested deeper"):
        check_json_value([deepest])
    assert redact_module.MAX_DEPTH == MAX_DEPTH
    assert redact_module.MAX_CONTAINERS == MAX_CONTAINERS
    copied = snapshot_params({"p": deepest})
    assert copied == {"p": deepest}
    assert copied["p"] is not deepest


def test_a_shared_container_counts_once_per_reference() -> None:
    shared: Any = [1]
    for _ in range(20):  # 2**20 references written out, 21 lists in memory
        shared = [shared, shared]
    with pytest.raises(Refused, match=f"more than {MAX_CONTAINERS:,} nested containers"):
        check_json_data(shared, Refused)


def test_the_redact_keys_table_is_the_configs() -> None:
    from runtime.config import DEFAULT_REDACT_KEYS, TracerConfig

    assert redact_module.DEFAULT_REDACT_KEYS is DEFAULT_REDACT_KEYS
    assert TracerConfig().redact_keys == DEFAULT_REDACT_KEYS
