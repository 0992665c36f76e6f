"""Cache keys: canonical, tenant-safe, collision-free, and uncacheable params are refused."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from runtime.cache import CacheKey, Uncacheable, make_key, volatile_keys
from runtime.cache.keys import DigestMemo, key_digest
from runtime.ops.preset import ToolType

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
param_dicts = st.dictionaries(st.text(max_size=8), json_values, max_size=5)
names = st.text(min_size=1, max_size=8)


def reference_form(value: Any) -> Any:
    """An independent canonical form: tagged, so bool/int/float/str never meet."""
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", value.hex())
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, list | tuple):
        return ("list", tuple(reference_form(item) for item in value))
    return ("dict", tuple(sorted((k, reference_form(v)) for k, v in value.items())))


def reordered(value: Any) -> Any:
    """The same value with every dict's insertion order reversed."""
    if isinstance(value, dict):
        return {k: reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [reordered(item) for item in value]
    return value


def as_tuples(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: as_tuples(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(as_tuples(item) for item in value)
    return value


@given(param_dicts)
def test_dict_key_order_never_matters(params: dict[str, Any]) -> None:
    assert make_key("t", "CI", "search", params) == make_key("t", "CI", "search", reordered(params))


@given(param_dicts)
def test_tuples_and_lists_give_the_same_key(params: dict[str, Any]) -> None:
    assert make_key("t", "CI", "search", params) == make_key("t", "CI", "search", as_tuples(params))


@given(param_dicts, names, names)
def test_different_tenants_never_collide(params: dict[str, Any], a: str, b: str) -> None:
    assume(a != b)
    ka, kb = make_key(a, "CI", "search", params), make_key(b, "CI", "search", params)
    assert ka.digest != kb.digest
    assert ka != kb


@given(param_dicts, names, names, names, names)
def test_tool_and_operation_are_part_of_the_key(
    params: dict[str, Any], tool_a: str, tool_b: str, op_a: str, op_b: str
) -> None:
    assume((tool_a, op_a) != (tool_b, op_b))
    assert make_key("t", tool_a, op_a, params).digest != make_key("t", tool_b, op_b, params).digest


@given(param_dicts, st.text(max_size=8), st.text(max_size=8), json_values)
def test_volatile_keys_are_ignored(
    params: dict[str, Any], request_id: str, trace_id: str, extra: Any
) -> None:
    volatile = volatile_keys(["session"])
    base = {k: v for k, v in params.items() if k not in volatile}
    noisy = {**base, "request_id": request_id, "trace_id": trace_id, "session": extra}
    assert make_key("t", "CI", "get", noisy, volatile) == make_key("t", "CI", "get", base, volatile)
    # Not volatile unless configured: "session" changes the default key.
    assert make_key("t", "CI", "get", noisy) != make_key("t", "CI", "get", base)


@given(param_dicts, param_dicts)
def test_distinct_canonical_params_give_distinct_keys(a: dict[str, Any], b: dict[str, Any]) -> None:
    same = reference_form(a) == reference_form(b)
    assert (make_key("t", "CI", "search", a) == make_key("t", "CI", "search", b)) == same


@given(param_dicts, st.sampled_from(["CI", ToolType.CI, "METRIC"]), st.booleans())
def test_the_hit_paths_digest_is_the_keys_digest(
    params: dict[str, Any], tool_type: str, noisy: bool
) -> None:
    # The hit path looks entries up by key_digest alone; it must be make_key's digest.
    volatile = volatile_keys(["session"])
    if noisy:
        params = {**params, "request_id": "r-1", "session": 7}
    key = make_key("t", tool_type, "get", params, volatile)
    assert key_digest("t", tool_type, "get", params, volatile) == key.digest
    assert key.tool_type == str(tool_type)
    assert type(key.tool_type) is str


@given(param_dicts)
def test_keys_are_stable_across_a_json_round_trip(params: dict[str, Any]) -> None:
    again = json.loads(json.dumps(params))
    assert make_key("t", "CI", "search", params) == make_key("t", "CI", "search", again)
    assert make_key("t", "CI", "search", params) == make_key("t", "CI", "search", params)


def test_a_known_key_does_not_drift_between_versions() -> None:
    # Pinned: a changed canonical form would silently orphan every stored key.
    key = make_key("tenant-1", "CI", "search", {"keywords": ["web"], "limit": 10})
    assert key.digest.hex() == "b7b5a85a5c62c50e1325fee96b13c600"
    assert key == make_key(
        "tenant-1", "CI", "search", {"limit": 10, "keywords": ("web",), "request_id": "r-9"}
    )
    assert key == CacheKey("tenant-1", "CI", "search", key.digest)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (True, 1),
        (False, 0),
        (1, 1.0),
        (0.0, -0.0),
        ("1", 1),
        (None, "null"),
        ([1, 2], [2, 1]),
        ({"a": None}, {}),
        ([], {}),
        ("\ud800", "\ud801"),  # lone surrogates are escaped, not an encoding error
    ],
)
def test_values_that_compare_equal_or_look_alike_do_not_collide(a: Any, b: Any) -> None:
    assert make_key("t", "CI", "get", {"x": a}) != make_key("t", "CI", "get", {"x": b})


def test_str_enum_members_key_like_their_values() -> None:
    assert make_key("t", ToolType.CI, "get", {"tool": ToolType.METRIC}) == make_key(
        "t", "CI", "get", {"tool": "METRIC"}
    )


def _cyclic() -> list[Any]:
    loop: list[Any] = []
    loop.append(loop)
    return loop


@pytest.mark.parametrize(
    ("params", "where"),
    [
        ({"x": math.nan}, "x"),
        ({"x": [1, math.inf]}, "x[1]"),
        ({"x": -math.inf}, "x"),
        ({"x": {1: "a"}}, "x"),
        ({"x": {"a", "b"}}, "x"),
        ({"x": b"bytes"}, "x"),
        ({"x": object()}, "x"),
        ({"f": [{"field": "a", "value": 1j}]}, "f[0].value"),
        ({"x": _cyclic()}, ""),
    ],
)
def test_uncanonicalisable_params_raise_uncacheable(params: dict[str, Any], where: str) -> None:
    with pytest.raises(Uncacheable) as caught:
        make_key("t", "CI", "search", params)
    assert caught.value.path.startswith(where)
    assert caught.value.reason


def test_non_mapping_params_and_non_str_names_raise_uncacheable() -> None:
    with pytest.raises(Uncacheable):
        make_key("t", "CI", "search", [("a", 1)])  # type: ignore[arg-type]
    with pytest.raises(Uncacheable):
        make_key(None, "CI", "search", {})  # type: ignore[arg-type]


arbitrary = st.recursive(
    scalars
    | st.floats()
    | st.binary(max_size=4)
    | st.complex_numbers(max_magnitude=10)
    | st.frozensets(st.integers(), max_size=3),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.tuples(inner, inner)
        | st.dictionaries(st.integers() | st.text(max_size=3) | st.booleans(), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.text(max_size=4), arbitrary, max_size=4))
def test_any_params_give_a_key_or_uncacheable_never_a_crash(params: dict[str, Any]) -> None:
    try:
        key = make_key("t", "CI", "search", params)
    except Uncacheable:
        return
    # If a key was made, it is the key of the JSON form of the params.
    assert key == make_key("t", "CI", "search", json.loads(json.dumps(params)))


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_the_direct_c_encoder_writes_what_the_json_encoder_writes(value: object) -> None:
    from runtime.cache import keys

    document = ["v1", "t", "CI", "op", {"p": value}]
    assert keys._C_ENCODE is not None
    assert "".join(keys._C_ENCODE(document, 0)) == keys._ENCODER.encode(document)


# -- DigestMemo: the hit path's digests, remembered for flat params -----------------------

flat_values = st.none() | st.booleans() | st.integers() | st.text(max_size=6) | st.floats()
flat_params = st.dictionaries(st.text(max_size=6), flat_values, max_size=4)
any_params = flat_params | param_dicts


@given(st.lists(st.tuples(names, any_params), min_size=1, max_size=12))
def test_the_memo_always_answers_what_key_digest_answers(calls: list[Any]) -> None:
    # Repeats included: every answer, remembered or not, is key_digest's.
    memo = DigestMemo(size=3)
    for tenant, params in calls + calls:
        try:
            expected = key_digest(tenant, "CI", "get", params)
        except Uncacheable:
            with pytest.raises(Uncacheable):
                memo.digest(tenant, "CI", "get", params)
            continue
        assert memo.digest(tenant, "CI", "get", params) == expected
        assert len(memo) <= 3


@pytest.mark.parametrize(
    "values",
    [
        [1, True, 1.0],  # equal in Python, three keys
        [0, False, 0.0, -0.0],
        ["1", 1],
        [None, "None", 0],
    ],
)
def test_the_memo_never_mixes_values_python_calls_equal(values: list[Any]) -> None:
    memo = DigestMemo()
    for _ in range(2):  # the second round answers from the memo where it can
        digests = [memo.digest("t", "CI", "get", {"x": value}) for value in values]
        assert digests == [key_digest("t", "CI", "get", {"x": value}) for value in values]
        assert len(set(digests)) == len(values)


def test_the_memo_keeps_only_exact_flat_shapes_without_volatile_names() -> None:
    memo = DigestMemo()
    memo.digest("t", "CI", "get", {"id": 1, "name": "a", "on": True, "gone": None})
    assert len(memo) == 1
    memo.digest("t", "CI", "get", {"ratio": 0.5})  # floats: 0.0 == -0.0
    memo.digest("t", "CI", "get", {"ids": [1, 2]})  # not flat
    memo.digest("t", "CI", "get", {"id": 1, "request_id": "r-1"})  # volatile
    memo.digest("t", ToolType.CI, "get", {"id": 1})  # a str subclass name
    memo.digest("t", "CI", "get", {"tool": ToolType.CI})  # a str subclass value
    assert len(memo) == 1


def test_a_full_memo_starts_over_and_stays_bounded() -> None:
    memo = DigestMemo(size=4)
    for i in range(10):
        assert memo.digest("t", "CI", "get", {"i": i}) == key_digest("t", "CI", "get", {"i": i})
        assert 1 <= len(memo) <= 4


def test_the_memo_leaves_volatile_names_out_of_the_digest_as_key_digest_does() -> None:
    memo = DigestMemo(volatile_keys(["session"]))
    assert memo.digest("t", "CI", "get", {"id": 1, "session": "s-1"}) == key_digest(
        "t", "CI", "get", {"id": 1}
    )


class _Sneaky(str):
    """Equal to every string and hashing like "a": a memo that compared it with the
    remembered name "a" would answer with {"a": 1}'s digest."""

    def __eq__(self, other: object) -> bool:
        return True

    def __hash__(self) -> int:
        return hash("a")


def test_a_name_that_claims_equality_never_reaches_a_remembered_shape() -> None:
    memo = DigestMemo()
    memo.digest("t", "CI", "get", {"a": 1})
    sneaky = {_Sneaky("b"): 1}
    assert memo.digest("t", "CI", "get", sneaky) == key_digest("t", "CI", "get", {"b": 1})


@pytest.mark.parametrize("size", [0, -1, 1.5, "4"])
def test_a_memo_size_below_one_is_refused(size: Any) -> None:
    with pytest.raises(ValueError, match="size must be an integer >= 1"):
        DigestMemo(size=size)
