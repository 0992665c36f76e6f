"""An actor whose ``on_start`` raises is a crash like any other: no caller hangs on it."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime.actor import Actor, ReplySlot
from runtime.config import SupervisionConfig
from runtime.errors import ActorUnavailable
from runtime.supervisor import Supervisor

pytestmark = pytest.mark.anyio


class StartFailure(Exception):
    pass


class FlakyStart(Actor[Any]):
    """Answers ``n`` with ``n + 1``; its first ``failures`` starts raise in ``on_start``."""

    def __init__(self, failures: float) -> None:
        super().__init__("flaky")
        self.failures = failures

    def on_start(self) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise StartFailure("on_start exploded")

    def handle_call(self, message: Any, slot: ReplySlot) -> Any:
        return message + 1


async def test_a_failing_on_start_fails_later_calls_at_once_instead_of_hanging() -> None:
    actor = FlakyStart(failures=1)
    with anyio.fail_after(5):
        with pytest.raises(StartFailure):
            await actor.serve()
        with pytest.raises(ActorUnavailable) as caught:
            await actor.call(1)
    assert isinstance(caught.value.__cause__, StartFailure)
    assert not actor.running
    assert actor.stats().death_reason == "StartFailure: on_start exploded"


async def test_the_supervisor_restarts_an_actor_whose_first_start_failed() -> None:
    actor = FlakyStart(failures=1)
    supervisor = Supervisor(SupervisionConfig(max_restarts=3, window=60.0))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await supervisor.start(tg, (actor,))
            assert await actor.call(1) == 2
            tg.cancel_scope.cancel()
    assert supervisor.crashes == {"flaky": 1}
    assert supervisor.down == {}


async def test_an_actor_that_never_starts_is_left_down_and_start_returns() -> None:
    actor = FlakyStart(failures=float("inf"))
    supervisor = Supervisor(SupervisionConfig(max_restarts=2, window=60.0))
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await supervisor.start(tg, (actor,))
            with pytest.raises(ActorUnavailable):
                await actor.call(1)
            tg.cancel_scope.cancel()
    assert supervisor.crashes == {"flaky": 3}
    assert supervisor.down == {"flaky": "StartFailure: on_start exploded"}
