"""A pipeline step's record sizes the result as the step returned it: the report is sized
when handed over, before the application can change the result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from runtime import ToolContext, ToolRegistry, config_from_dict, open_runtime
from runtime.pipeline import Pipeline, Step

pytestmark = pytest.mark.anyio

CTX = ToolContext("acme")


def registry() -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool("AUDIT", "rows")
    async def rows(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        return {"rows": [1, 2, 3]}

    return reg


@pytest.mark.parametrize("batch_window", [0, 0.002])
async def test_step_record_sizes_the_result_as_the_step_returned_it(
    batch_window: float,
) -> None:
    # The application consumes its result before the tracer handles the step's report
    # (with batching, that is the next read).
    settings = config_from_dict({"tracer": {"batch_window": batch_window}})
    with anyio.fail_after(10):
        async with open_runtime(registry(), settings) as rt:
            assert rt.tracer is not None
            result = await rt.compose(Pipeline("p", [Step("s", "AUDIT", "rows")]), {}, CTX)
            result.primary["rows"].clear()  # the application consumes its result
            records = await rt.tracer.records()
    by_kind = {record.kind: record for record in records}
    assert by_kind["tool_call"].result_count == 3
    assert by_kind["step"].result_count == 3
    assert by_kind["step"].result_size_bytes == by_kind["tool_call"].result_size_bytes
