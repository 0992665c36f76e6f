"""ToolResult as a cache hit rebuilds it: the same value the constructor makes."""

from __future__ import annotations

from typing import Any

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.tools import ToolResult
from runtime.tools.model import rebuilt_ok_result

data = (
    st.none()
    | st.integers()
    | st.text(max_size=5)
    | st.dictionaries(st.text(max_size=3), st.integers())
)


@given(
    data,
    st.lists(st.text(max_size=5), max_size=3).map(tuple),
    st.dictionaries(st.text(max_size=3), st.integers()),
)
def test_a_rebuilt_result_is_the_one_the_constructor_makes(
    value: Any, warnings: tuple[str, ...], metadata: dict[str, Any]
) -> None:
    rebuilt = rebuilt_ok_result(value, warnings, metadata)
    built = ToolResult(True, value, warnings=warnings, metadata=metadata)
    assert rebuilt == built
    assert repr(rebuilt) == repr(built)
    assert attrs.asdict(rebuilt) == attrs.asdict(built)
    assert type(rebuilt) is ToolResult


def test_a_rebuilt_result_is_as_frozen_as_a_built_one() -> None:
    rebuilt = rebuilt_ok_result({"a": 1}, (), {})
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        rebuilt.data = None  # type: ignore[misc]
    assert attrs.evolve(rebuilt, data=2) == ToolResult.ok(2)


def test_every_field_of_toolresult_is_set_by_the_rebuild() -> None:
    # A field added to ToolResult must be added to rebuilt_ok_result too: unset, reading
    # it would raise AttributeError.
    rebuilt = rebuilt_ok_result([1], ("w",), {"m": 1})
    for field in attrs.fields(ToolResult):
        getattr(rebuilt, field.name)
