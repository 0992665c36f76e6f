"""The selector's in-flight count returns to 0 when every call is done, however many
finish at once.

Observations reach the selector by cast, and a cast is dropped when its mailbox is full.
The end of a call whose start was counted is never dropped (and the end of one whose
start was dropped is not sent): otherwise a burst of calls finishing together leaves
phantom calls "running" for ever, the tool's load factor (docs/selector.md) never
recovers, and execute_best steers away from it for the life of the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from runtime import ToolContext, ToolRegistry, config_from_dict, open_runtime

pytestmark = pytest.mark.anyio

ACME = ToolContext(tenant_id="acme")
CALLS = 12


async def test_in_flight_returns_to_zero_after_a_burst_of_finishes() -> None:
    registry = ToolRegistry()
    release = anyio.Event()

    @registry.tool("A", "work")
    async def work(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        await release.wait()
        return {"n": params["n"]}

    config = config_from_dict({"selector": {"mailbox_size": 4}})
    with anyio.fail_after(10):
        async with open_runtime(registry, config) as rt:
            selector = rt._selector
            assert selector is not None

            async def in_flight() -> int:
                snapshot = {s.operation: s for s in await selector.snapshot()}
                return snapshot["work"].in_flight if "work" in snapshot else 0

            async with anyio.create_task_group() as tg:
                for n in range(CALLS):
                    tg.start_soon(rt.execute, "A", "work", {"n": n}, ACME)
                    # each start is seen before the next call begins: none is dropped
                    while await in_flight() != n + 1:
                        await anyio.sleep(0.001)
                release.set()  # every call finishes at once
            await anyio.sleep(0.05)
            left = await in_flight()
            dropped = selector.stats().dropped
    assert left == 0, f"{left} calls still 'in flight' after all finished ({dropped} dropped)"


async def test_in_flight_returns_to_zero_with_the_default_mailbox() -> None:
    registry = ToolRegistry()
    release = anyio.Event()

    @registry.tool("A", "work")
    async def work(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        await release.wait()
        return {"n": params["n"]}

    calls, chunk = 4400, 1000  # the default mailbox holds 4096 observations
    with anyio.fail_after(60):
        async with open_runtime(registry) as rt:
            selector = rt._selector
            assert selector is not None

            async def in_flight() -> int:
                snapshot = {s.operation: s for s in await selector.snapshot()}
                return snapshot["work"].in_flight if "work" in snapshot else 0

            async with anyio.create_task_group() as tg:
                for first in range(0, calls, chunk):
                    for n in range(first, min(first + chunk, calls)):
                        tg.start_soon(rt.execute, "A", "work", {"n": n}, ACME)
                    while await in_flight() != min(first + chunk, calls):
                        await anyio.sleep(0.001)
                assert selector.stats().dropped == 0  # every start was counted
                release.set()
            await anyio.sleep(0.05)
            left = await in_flight()
            dropped = selector.stats().dropped
    assert left == 0, f"{left} calls still 'in flight' after all finished ({dropped} dropped)"
