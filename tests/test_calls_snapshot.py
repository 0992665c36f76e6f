"""Reported params are the params as called: later changes by the caller never reach them."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.calls import snapshot_params

atoms = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
values = st.recursive(
    atoms,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.lists(inner, max_size=5).map(tuple)
        | st.dictionaries(st.text(max_size=5), inner, max_size=5)
    ),
    max_leaves=30,
)
params_st = st.dictionaries(st.text(max_size=8), values, max_size=6)


def mutable_parts(value: Any) -> Iterator[int]:
    """The ids of every dict and list reachable from ``value``."""
    if isinstance(value, dict):
        yield id(value)
        for item in value.values():
            yield from mutable_parts(item)
    elif isinstance(value, list):
        yield id(value)
        for item in value:
            yield from mutable_parts(item)
    elif isinstance(value, tuple):
        for item in value:
            yield from mutable_parts(item)


@given(params_st)
def test_a_snapshot_equals_the_params_and_shares_nothing_mutable(params: dict[str, Any]) -> None:
    copied = snapshot_params(params)
    assert copied == params
    assert set(mutable_parts(copied)).isdisjoint(mutable_parts(params))


def test_any_mapping_is_snapshot_as_a_dict() -> None:
    from types import MappingProxyType

    copied = snapshot_params(MappingProxyType({"ids": [1, 2]}))
    assert copied == {"ids": [1, 2]}
    assert type(copied) is dict


def test_a_cycle_is_copied_as_a_cycle_not_followed_forever() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    copied = snapshot_params({"loop": loop})
    assert copied["loop"] is not loop
    assert copied["loop"][0] == 1
    assert copied["loop"][1] is copied["loop"]


def test_params_that_contain_themselves_map_to_the_copy() -> None:
    params: dict[str, Any] = {"n": 1}
    params["self"] = params
    params["pair"] = (params, [params])
    copied = snapshot_params(params)
    assert copied is not params
    assert copied["self"] is copied
    assert copied["pair"][0] is copied
    assert copied["pair"][1][0] is copied


def test_a_shared_container_is_copied_once() -> None:
    # (A list of plain values is copied anew wherever it is met: it holds nothing that
    # could make the work grow.)
    level: Any = [{"id": 1}]
    top = [level, {"left": level, "right": (level,)}]
    copied = snapshot_params({"top": top})["top"]
    assert copied == top
    assert copied[0] is copied[1]["left"] is copied[1]["right"][0]
    assert copied[0] is not level


def test_shared_references_cost_linear_work_not_exponential() -> None:
    # Copied per reference, each of these is 2**32 containers (or more) before the depth
    # limit stops it: the call would never finish.  The watchdog turns such a regression
    # into a failure rather than a hung suite.
    doubled: dict[str, Any] = {}
    doubled["a"] = doubled
    doubled["b"] = doubled
    tower: Any = [1]
    for _ in range(40):
        tower = [tower, {"left": tower, "right": (tower,)}]
    done: list[dict[str, Any]] = []
    worker = threading.Thread(
        target=lambda: done.append(snapshot_params({"d": doubled, "t": tower})), daemon=True
    )
    worker.start()
    worker.join(timeout=30)
    assert done, "snapshot_params did not finish in 30 s"
    copied = done[0]
    assert copied["d"]["a"] is copied["d"]["b"] is copied["d"]
    assert copied["t"][0] is copied["t"][1]["left"]


@pytest.mark.anyio
async def test_records_show_params_as_called_whatever_the_caller_does_after() -> None:
    registry = ToolRegistry()

    @registry.tool("CI", "search")
    async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        return {"records": []}

    params: dict[str, Any] = {"offset": 0, "ids": [1], "filters": [{"value": "a"}]}
    async with open_runtime(registry) as rt:
        assert rt.tracer is not None
        for page in range(3):
            await rt.execute("CI", "search", params, ToolContext(tenant_id="acme"))
            params["offset"] += 20
            params["ids"].append(page + 2)
            params["filters"][0]["value"] += "a"
        records = await rt.tracer.records()
    assert [r.params for r in records] == [
        {"offset": 0, "ids": [1], "filters": [{"value": "a"}]},
        {"offset": 20, "ids": [1, 2], "filters": [{"value": "aa"}]},
        {"offset": 40, "ids": [1, 2, 3], "filters": [{"value": "aaa"}]},
    ]
