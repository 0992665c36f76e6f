"""The base actor's cast batching (``cast_batch``): what the tracer batches with."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime.actor import Actor, ReplySlot

pytestmark = pytest.mark.anyio


class Batcher(Actor[Any]):
    def __init__(self, cast_batch: int, mailbox_size: int = 100) -> None:
        super().__init__("batcher", mailbox_size=mailbox_size, cast_batch=cast_batch)
        self.batches: list[list[Any]] = []

    def handle_casts(self, messages: list[Any]) -> None:
        self.batches.append(messages)

    def handle_call(self, message: Any, slot: ReplySlot) -> Any:
        return [m for batch in self.batches for m in batch]


async def test_casts_wake_the_actor_only_a_batch_at_a_time() -> None:
    actor = Batcher(cast_batch=3)
    async with anyio.create_task_group() as group:
        await group.start(actor.serve)
        actor.cast(1)
        actor.cast(2)
        await anyio.wait_all_tasks_blocked()
        assert actor.batches == []  # two casts: not woken
        assert actor.stats().mailbox_used == 2
        actor.cast(3)
        await anyio.wait_all_tasks_blocked()
        assert actor.batches == [[1, 2, 3]]
        actor.cast(4)
        # A call is served after every cast queued before it, batch full or not.
        assert await actor.call("seen") == [1, 2, 3, 4]
        actor.cast(5)
        actor.stop()  # a stop drains what is queued
    assert actor.batches[-1] == [5]
    assert actor.stats().processed == 5 + 1


async def test_the_mailbox_bound_counts_each_batched_cast() -> None:
    actor = Batcher(cast_batch=4, mailbox_size=6)
    async with anyio.create_task_group() as group:
        await group.start(actor.serve)
        accepted = [actor.cast(n) for n in range(10)]  # no checkpoint: the actor cannot run
        assert accepted.count(True) == 6
        assert actor.stats().dropped == 4
        assert await actor.call("seen") == list(range(6))
        group.cancel_scope.cancel()


async def test_casts_queued_at_a_crash_or_a_shutdown_are_counted_as_dropped() -> None:
    actor = Batcher(cast_batch=10)
    async with anyio.create_task_group() as group:
        await group.start(actor.serve)
        for n in range(3):
            actor.cast(n)
        group.cancel_scope.cancel()
    assert actor.stats().dropped == 3
    assert actor.batches == []


def test_cast_batch_must_be_a_positive_integer() -> None:
    for bad in (0, -1, 1.5):
        with pytest.raises(ValueError, match="cast_batch"):
            Batcher(cast_batch=bad)  # type: ignore[arg-type]
