"""Races between invalidation and a fill in flight, through the runtime."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from runtime import ToolContext, ToolRegistry, open_runtime

pytestmark = pytest.mark.anyio

ACME = ToolContext(tenant_id="acme")


class Versioned:
    """A CI.get whose answer is the CMDB ``version`` at the moment the tool reads it.

    The first run is held at ``gate`` *after* reading, so the test can change the CMDB
    and invalidate while that (now stale) answer is in flight.
    """

    def __init__(self) -> None:
        self.version = 1
        self.runs = 0
        self.gate = anyio.Event()
        self.registry = ToolRegistry()

        @self.registry.tool("CI", "get")
        async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.runs += 1
            seen = self.version
            if self.runs == 1:
                await self.gate.wait()
            return {"version": seen}


async def wait_for(predicate: Any) -> None:
    while not predicate():
        await anyio.lowlevel.checkpoint()


async def test_a_call_made_after_an_invalidation_never_gets_the_stale_in_flight_answer() -> None:
    tools = Versioned()
    answers: dict[str, Any] = {}
    with anyio.fail_after(20):
        async with open_runtime(tools.registry) as rt:
            cache = rt.cache
            assert cache is not None

            async def ask(name: str) -> None:
                answers[name] = await rt.execute("CI", "get", {"ci_id": 7}, ACME)

            async with anyio.create_task_group() as tg:
                tg.start_soon(ask, "before")  # leads, reads version 1, then waits
                await wait_for(lambda: tools.runs == 1)
                tg.start_soon(ask, "follower")  # asked before the invalidation too
                await anyio.wait_all_tasks_blocked()
                tools.version = 2  # the CMDB changed ...
                await cache.invalidate("CI", "get", {"ci_id": 7}, ACME)  # ... and we said so
                for name in ("after-1", "after-2", "after-3"):
                    tg.start_soon(ask, name)  # asked after the invalidation returned
                await anyio.wait_all_tasks_blocked()
                tools.gate.set()
            # The late callers ran the tool once among themselves; their answer is kept.
            assert tools.runs == 2
            assert await rt.execute("CI", "get", {"ci_id": 7}, ACME) == {"version": 2}
            assert tools.runs == 2
            stats = await cache.stats()
    # Asked before the invalidation: the old answer is fair.
    assert answers.pop("before") == answers.pop("follower") == {"version": 1}
    assert answers == {f"after-{n}": {"version": 2} for n in (1, 2, 3)}
    counters = stats.snapshot.store.by_operation[("CI", "get")]
    assert counters.misses - counters.coalesced == tools.runs  # two leaders
    assert (stats.snapshot.in_flight, stats.snapshot.waiting_followers) == (0, 0)


async def test_a_late_caller_joins_the_follower_that_takes_over_from_a_cancelled_leader() -> None:
    tools = Versioned()
    answers: dict[str, Any] = {}
    with anyio.fail_after(20):
        async with open_runtime(tools.registry) as rt:
            cache = rt.cache
            assert cache is not None
            leader_scope = anyio.CancelScope()

            async def ask(name: str) -> None:
                answers[name] = await rt.execute("CI", "get", {"ci_id": 7}, ACME)

            async def leader() -> None:
                with leader_scope:
                    await ask("leader")

            async with anyio.create_task_group() as tg:
                tg.start_soon(leader)
                await wait_for(lambda: tools.runs == 1)
                tg.start_soon(ask, "follower")
                await anyio.wait_all_tasks_blocked()
                tools.version = 2
                await cache.invalidate("CI", "get", {"ci_id": 7}, ACME)
                tg.start_soon(ask, "after")
                await anyio.wait_all_tasks_blocked()
                leader_scope.cancel()  # the follower takes over, after the invalidation
            snapshot = (await cache.stats()).snapshot
            assert (snapshot.in_flight, snapshot.waiting_followers) == (0, 0)
    assert answers == {"follower": {"version": 2}, "after": {"version": 2}}
    assert tools.runs == 2


async def test_late_callers_that_give_up_leave_nothing_behind() -> None:
    tools = Versioned()
    with anyio.fail_after(20):
        async with open_runtime(tools.registry) as rt:
            cache = rt.cache
            assert cache is not None
            scopes = [anyio.CancelScope() for _ in range(3)]

            async def late(scope: anyio.CancelScope) -> None:
                with scope:
                    await rt.execute("CI", "get", {"ci_id": 7}, ACME)

            async with anyio.create_task_group() as tg:
                tg.start_soon(rt.execute, "CI", "get", {"ci_id": 7}, ACME)
                await wait_for(lambda: tools.runs == 1)
                await cache.invalidate("CI", "get", {"ci_id": 7}, ACME)
                for scope in scopes:
                    tg.start_soon(late, scope)
                await anyio.wait_all_tasks_blocked()
                for scope in scopes:
                    scope.cancel()
                await anyio.wait_all_tasks_blocked()
                tools.gate.set()
            stats = await cache.stats()
    assert tools.runs == 1
    counters = stats.snapshot.store.by_operation[("CI", "get")]
    assert counters.misses - counters.coalesced == tools.runs
    assert (stats.snapshot.in_flight, stats.snapshot.waiting_followers) == (0, 0)
