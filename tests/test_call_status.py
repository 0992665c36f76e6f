"""One classification of how a call ended, decided once by isinstance (runtime.calls).

A tool's own subclass of InvalidParams is a rejection everywhere -- in the trace record,
in the tracer's statistics, in the selector (no ill health) and in a pipeline step's
report -- and a timeout subclass is a timeout; nothing compares type names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import (
    InvalidParams,
    Pipeline,
    PipelineError,
    Step,
    ToolContext,
    ToolExecutionError,
    ToolRegistry,
    ToolTimeout,
    open_runtime,
)
from runtime.calls import status_of
from runtime.config import CacheConfig, RuntimeConfig, TracerConfig

CTX = ToolContext(tenant_id="acme")


class BadFilter(InvalidParams):
    """A tool's own, more specific rejection."""


class SlowBackend(ToolTimeout):
    """A tool's own timeout."""


class Kaput(ToolExecutionError):
    """An ordinary tool failure."""


def test_status_of_decides_by_isinstance_not_by_name() -> None:
    assert status_of(None) == "ok"
    assert status_of(BadFilter("CI", "search", "filter", "unknown field")) == "rejected"
    assert status_of(InvalidParams("CI", "search", "q", "empty")) == "rejected"
    assert status_of(SlowBackend("CI", "search", 1.0)) == "timeout"
    assert status_of(Kaput("CI", "search", "InvalidParams", "named like a rejection")) == "error"
    assert status_of(ValueError("plain")) == "error"


@given(st.sampled_from([ValueError, KeyError, RuntimeError, ConnectionError, TimeoutError]))
def test_any_other_exception_is_an_error(kind: type[Exception]) -> None:
    assert status_of(kind("x")) == "error"


def registry() -> ToolRegistry:
    tools = ToolRegistry()

    @tools.tool("CI", "search")
    async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        if params.get("filter") == "bad":
            raise BadFilter("CI", "search", "filter", "unknown field 'bad'")
        if params.get("filter") == "slow":
            raise SlowBackend("CI", "search", 0.5)
        return [params.get("filter")]

    return tools


def config() -> RuntimeConfig:
    return RuntimeConfig(cache=CacheConfig(enabled=False), tracer=TracerConfig(batch_window=0))


@pytest.mark.anyio
async def test_a_subclass_of_invalid_params_is_rejected_in_trace_stats_and_selector() -> None:
    async with open_runtime(registry(), config()) as rt:
        for _ in range(5):
            with pytest.raises(BadFilter):
                await rt.execute("CI", "search", {"filter": "bad"}, CTX)
        with pytest.raises(SlowBackend):
            await rt.execute("CI", "search", {"filter": "slow"}, CTX)
        assert await rt.execute("CI", "search", {"filter": "ok"}, CTX) == ["ok"]
        await anyio.wait_all_tasks_blocked()
        assert rt.tracer is not None
        assert rt.selector is not None
        records = await rt.tracer.records()
        assert [(r.status, r.error_type) for r in records] == [
            *[("rejected", "BadFilter")] * 5,
            ("timeout", "SlowBackend"),
            ("ok", None),
        ]
        stats = (await rt.tracer.tracer_stats()).tool("CI", "search")
        assert stats is not None
        assert (stats.rejected, stats.timeout, stats.error, stats.ok) == (5, 1, 0, 1)
        (snapshot,) = [s for s in await rt.selector.snapshot() if s.operation == "search"]
        # Five rejections taught the selector nothing; the timeout is the one failure.
        assert snapshot.failures == 1
        assert snapshot.samples == 2


@pytest.mark.anyio
async def test_a_subclass_of_invalid_params_is_rejected_in_a_pipeline_step() -> None:
    pipeline = Pipeline("lookup", [Step("find", "CI", "search", {"filter": "bad"})])
    async with open_runtime(registry(), config()) as rt:
        with pytest.raises(PipelineError) as caught:
            await rt.compose(pipeline, {}, CTX)
        assert isinstance(caught.value.cause, BadFilter)
        await anyio.wait_all_tasks_blocked()
        assert rt.tracer is not None
        by_kind = {r.kind: r for r in await rt.tracer.records()}
        assert (by_kind["tool_call"].status, by_kind["step"].status) == ("rejected", "rejected")
        assert by_kind["step"].error_type == "BadFilter"
