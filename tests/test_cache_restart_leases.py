"""A leader that asked the cache actor *before* it crashed must not touch the flights of
the restarted actor (found by stress testing, reduced to a deterministic schedule).

After a restart the flight table is fresh, so a new caller of the same key leads a *new*
flight.  The old leader's late ``Fill`` must not answer that flight's followers (with a
value computed before an invalidation they came after) or close it while its leader
still runs; its late ``Release`` must not promote a second leader.  Leases tie each
message to the lead it came from (runtime.cache.actor).

docs/reliability.md: "a fill from a leader that asked the crashed actor is ignored";
docs/cache.md: "N concurrent misses for one key run the tool once", and a call made
after an invalidation is never given a result computed before it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from runtime import ActorUnavailable, ToolContext, ToolRegistry, config_from_dict, open_runtime

pytestmark = pytest.mark.anyio

CTX = ToolContext("acme")
PARAMS = {"ci_id": 7}


class Explosion(Exception):
    pass


def explode_once(actor: Any, hook: str) -> None:
    def boom(*args: Any) -> Any:
        delattr(actor, hook)
        raise Explosion("injected fault")

    setattr(actor, hook, boom)


class GatedVersionedTool:
    """CI.get answers the version current when its run *started*; each run waits on its
    own gate, so the test decides when each run ends."""

    def __init__(self) -> None:
        self.registry = ToolRegistry()
        self.version = 1
        self.gates: list[anyio.Event] = []
        self.running = 0
        self.max_running = 0

        @self.registry.tool("CI", "get")
        async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            seen = self.version
            gate = anyio.Event()
            self.gates.append(gate)
            self.running += 1
            self.max_running = max(self.max_running, self.running)
            try:
                await gate.wait()
            finally:
                self.running -= 1
            return {"ci_id": params["ci_id"], "version": seen}


async def crash_and_restart_cache(rt: Any) -> None:
    explode_once(rt._cache.actor, "handle_call")
    with pytest.raises(ActorUnavailable):
        await rt.cache.stats()  # this call crashes the actor; the supervisor restarts it
    await anyio.wait_all_tasks_blocked()
    assert rt._cache.actor.running
    assert rt.health().crashes["cache"] == 1


async def test_a_fill_from_before_a_cache_restart_does_not_answer_the_new_flight() -> None:
    tool = GatedVersionedTool()
    answers: dict[str, int] = {}

    async def call(name: str) -> None:
        answers[name] = (await rt.execute("CI", "get", PARAMS, CTX))["version"]

    with anyio.fail_after(10):
        async with open_runtime(tool.registry, config_from_dict({})) as rt:
            assert rt.cache is not None
            async with anyio.create_task_group() as tg:
                tg.start_soon(call, "old_leader")  # runs the tool, sees version 1
                await anyio.wait_all_tasks_blocked()
                tool.version = 2  # the CMDB changed ...
                await rt.cache.invalidate("CI", "get", PARAMS, CTX)  # ... and says so
                await crash_and_restart_cache(rt)
                tg.start_soon(call, "new_leader")  # after the restart: sees version 2
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(call, "follower")  # follows new_leader
                await anyio.wait_all_tasks_blocked()
                assert len(tool.gates) == 2
                tool.gates[0].set()  # the old leader finishes (version 1), fills late
                await anyio.wait_all_tasks_blocked()
                # The follower asked after the invalidation: version 1 is what it removed.
                assert "follower" not in answers, (
                    f"follower answered {answers['follower']} by the pre-restart leader"
                )
                tg.start_soon(call, "later")  # new_leader still runs: must follow it
                await anyio.wait_all_tasks_blocked()
                # One run per key at a time: "later" joined new_leader's flight.
                assert len(tool.gates) == 2, "a second concurrent run for one key started"
                for gate in tool.gates:
                    gate.set()
            assert answers["old_leader"] == 1
            assert answers["new_leader"] == 2
            # The follower asked after the invalidation: version 1 is what it removed.
            assert answers["follower"] == 2, "follower got the pre-invalidation value"
            assert answers["later"] == 2


async def test_a_release_from_before_a_cache_restart_does_not_start_a_second_leader() -> None:
    tool = GatedVersionedTool()
    answers: dict[str, int] = {}

    async def call(name: str) -> None:
        answers[name] = (await rt.execute("CI", "get", PARAMS, CTX))["version"]

    with anyio.fail_after(10):
        async with open_runtime(tool.registry, config_from_dict({})) as rt:
            assert rt.cache is not None
            async with anyio.create_task_group() as tg:
                old = anyio.CancelScope()

                async def old_leader() -> None:
                    with old:
                        await call("old_leader")

                tg.start_soon(old_leader)
                await anyio.wait_all_tasks_blocked()
                await crash_and_restart_cache(rt)
                tg.start_soon(call, "new_leader")
                await anyio.wait_all_tasks_blocked()
                tg.start_soon(call, "follower")  # follows new_leader
                await anyio.wait_all_tasks_blocked()
                assert len(tool.gates) == 2  # old_leader's run and new_leader's
                old.cancel()  # the old leader gives up: it casts Release for the key
                await anyio.wait_all_tasks_blocked()
                # new_leader is still running: nobody else may start a run of this key.
                assert tool.running == 1
                assert len(tool.gates) == 2, "the follower was made a second leader"
                for gate in tool.gates:
                    gate.set()
            assert answers == {"new_leader": 1, "follower": 1}
