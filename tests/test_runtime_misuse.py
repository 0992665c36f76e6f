"""What a user gets for using the runtime wrongly: a specific error naming the problem,
and a runtime that stays usable -- never a silent wrong behaviour."""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import pytest

from runtime import (
    ConfigError,
    RuntimeClosed,
    RuntimeFault,
    ToolContext,
    ToolRegistry,
    UnknownComposition,
    UnknownStrategy,
    config_from_dict,
    load_config,
    open_runtime,
)
from runtime.ops.config import ops_defaults

pytestmark = pytest.mark.anyio

CTX = ToolContext(tenant_id="acme")


def registry(runs: list[str]) -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool("CI", "search")
    async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        runs.append("search")
        await anyio.sleep(params.get("sleep", 0))
        return {"records": []}

    return reg


async def test_unknown_names_are_runtime_faults_of_the_expected_kind() -> None:
    async with open_runtime(registry([]), ops_defaults()) as rt:
        with pytest.raises(UnknownComposition, match="known: impact_analysis") as composition:
            await rt.compose("nope", {}, CTX)
        with pytest.raises(UnknownStrategy, match="known strategies: ") as strategy:
            await rt.select("SEARCH", strategy="FAST")
        with pytest.raises(UnknownStrategy):
            await rt.execute_best("SEARCH", {}, CTX, strategy="FAST")
        assert await rt.execute("CI", "search", {}, CTX) == {"records": []}
    assert isinstance(composition.value, RuntimeFault)
    assert isinstance(composition.value, LookupError)
    assert composition.value.composition == "nope"
    assert isinstance(strategy.value, RuntimeFault)
    assert isinstance(strategy.value, ValueError)
    assert strategy.value.strategy == "FAST"


@pytest.mark.parametrize("timeout", [0, -1, math.nan])
async def test_a_call_timeout_that_is_not_positive_is_refused_naming_the_tool(
    timeout: float,
) -> None:
    runs: list[str] = []
    async with open_runtime(registry(runs), ops_defaults()) as rt:
        with pytest.raises(ValueError, match=r"timeout for CI\.search must be a positive"):
            await rt.execute("CI", "search", {}, CTX, timeout=timeout)
        assert runs == []
        assert await rt.execute("CI", "search", {}, CTX, timeout=5) == {"records": []}


@pytest.mark.virtual_time
async def test_an_infinite_call_timeout_lifts_the_configured_one() -> None:
    runs: list[str] = []
    config = config_from_dict({"executor": {"default_timeout": "1s"}, "cache": {"enabled": False}})
    with anyio.fail_after(100):
        async with open_runtime(registry(runs), config) as rt:
            slow = {"sleep": 5}
            assert await rt.execute("CI", "search", slow, CTX, timeout=math.inf) == {"records": []}
            result = await rt.execute_result("CI", "search", slow, CTX)
    assert result.error_type == "ToolTimeout"


async def test_a_mapping_given_as_the_config_is_a_type_error_pointing_to_the_loader() -> None:
    with pytest.raises(TypeError, match="config_from_dict"):
        async with open_runtime(registry([]), {"cache": {"enabled": False}}):  # type: ignore[arg-type]
            pass


async def test_a_closed_runtime_refuses_every_call_instead_of_running_tools_bare() -> None:
    runs: list[str] = []
    async with open_runtime(registry(runs), ops_defaults()) as rt:
        assert not rt.closed
        assert rt.health().ok
        await rt.execute("CI", "search", {}, CTX)
    assert rt.closed
    assert not rt.health().ok
    assert rt.health().closed
    for attempt in (
        rt.execute("CI", "search", {}, CTX),
        rt.execute_result("CI", "search", {}, CTX),
        rt.select("SEARCH"),
        rt.execute_best("SEARCH", {}, CTX),
        rt.compose("search_with_context", {"keywords": ["db"]}, CTX),
    ):
        with pytest.raises(RuntimeClosed, match="open_runtime block ended"):
            await attempt
    assert runs == ["search"]


async def test_a_runtime_whose_block_raised_is_closed_too() -> None:
    with pytest.raises(KeyError):
        async with open_runtime(registry([]), ops_defaults()) as rt:
            raise KeyError("app bug")
    assert rt.closed


def test_a_missing_config_file_is_one_plain_sentence(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "missing.yaml")
    assert caught.value.path == ""
    assert str(caught.value).startswith("cannot read config file ")
