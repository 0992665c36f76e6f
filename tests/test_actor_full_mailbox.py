"""Callers cancelled while they wait for room in a full mailbox."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime.actor import DEFER, Actor, ReplySlot

pytestmark = pytest.mark.anyio


class Canceller(Actor[Any]):
    """Answers ``n`` with ``n + 1``; ``"cancel"`` cancels every scope in ``scopes``."""

    def __init__(self) -> None:
        super().__init__("canceller", mailbox_size=1)
        self.scopes: list[anyio.CancelScope] = []
        self.answered: list[int] = []

    def handle_call(self, message: Any, slot: ReplySlot) -> Any:
        if message == "cancel":
            for scope in self.scopes:
                scope.cancel()
            return None
        if message < 100:  # the callers under test (100 and 101 only fill the mailbox)
            self.answered.append(message + 1)
        return message + 1


@pytest.mark.parametrize("callers", [5, 20])
async def test_a_reply_to_a_caller_cancelled_in_a_full_mailbox_is_never_lost(
    callers: int,
) -> None:
    """A caller cancelled while blocked on a full mailbox may already have had its message
    taken -- and answered -- by the actor: the reply then reaches ``on_late_reply``
    exactly as for a caller cancelled while waiting for its reply."""
    actor = Canceller()
    received: list[int] = []
    handed_back: list[int] = []

    async def caller(n: int) -> None:
        scope = anyio.CancelScope()
        actor.scopes.append(scope)
        with scope:
            received.append(await actor.call(n, on_late_reply=handed_back.append))

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            await anyio.wait_all_tasks_blocked()
            # Two calls fill the actor and its one-slot mailbox, so the cancel and the
            # callers behind it wait for room.  When the actor has served the two, the
            # cancel reaches it first and the callers block on the full mailbox: the
            # actor cancels them, then takes their messages in the same batch, before
            # their tasks run again.
            for n in (100, 101):
                tg.start_soon(actor.call, n)
            tg.start_soon(actor.call, "cancel")
            for n in range(callers):
                tg.start_soon(caller, n)
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert actor.answered, "the scenario needs messages answered after the cancel"
    assert sorted(received + handed_back) == sorted(actor.answered)


class Holder(Actor[Any]):
    """Defers every call; ``"cancel"`` cancels every scope in ``scopes``."""

    def __init__(self) -> None:
        super().__init__("holder", mailbox_size=1)
        self.scopes: list[anyio.CancelScope] = []
        self.held: list[ReplySlot] = []

    def handle_call(self, message: Any, slot: ReplySlot) -> Any:
        if message == "cancel":
            for scope in self.scopes:
                scope.cancel()
            return None
        if message in (100, 101):
            return message
        self.held.append(slot)
        return DEFER


async def test_a_caller_cancelled_in_a_full_mailbox_marks_its_slot_abandoned() -> None:
    """The actor may hand a duty to a deferred call (a cache follower's wait); when its
    caller was cancelled while blocked on the full mailbox, the slot must say so."""
    actor = Holder()

    async def caller(n: int) -> None:
        scope = anyio.CancelScope()
        actor.scopes.append(scope)
        with scope:
            await actor.call(n)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            await anyio.wait_all_tasks_blocked()
            for n in (100, 101):  # as above: the callers block on the full mailbox
                tg.start_soon(actor.call, n)
            tg.start_soon(actor.call, "cancel")
            for n in range(20):
                tg.start_soon(caller, n)
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert actor.held, "the scenario needs messages taken after the cancel"
    assert all(slot.abandoned for slot in actor.held)
