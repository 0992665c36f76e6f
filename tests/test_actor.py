"""The actor contract: replies, crashes without hangs, cancellation, shutdown, casts."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
from anyio.abc import TaskStatus

from runtime.actor import DEFER, Actor, ReplySlot
from runtime.errors import ActorUnavailable, CallTimeout

pytestmark = pytest.mark.anyio


class Boom(Exception):
    pass


class Probe(Actor[Any]):
    """Answers ``n`` with ``n + 1``; holds ``"hold"`` calls until ``"release"``."""

    def __init__(self, mailbox_size: int = 64) -> None:
        super().__init__("probe", mailbox_size=mailbox_size)
        self.held: list[ReplySlot] = []
        self.casts: list[Any] = []
        self.starts = 0
        self.stop_reasons: list[Any] = []

    def on_start(self) -> None:
        self.starts += 1
        self.held = []

    def on_stop(self, reason: BaseException | str) -> None:
        self.stop_reasons.append(reason)

    def handle_call(self, message: Any, slot: ReplySlot) -> Any:
        if message == "boom":
            raise Boom("handler exploded")
        if message == "hold":
            self.held.append(slot)
            return DEFER
        if message == "release":
            for held in self.held:
                self.reply(held, "released")
            count = len(self.held)
            self.held = []
            return count
        if message == "fail-held":
            for held in self.held:
                self.reply_error(held, KeyError("nope"))
            self.held = []
            return None
        return message + 1

    def handle_cast(self, message: Any) -> None:
        if message == "boom":
            raise Boom("cast handler exploded")
        self.casts.append(message)


async def serve_expecting_crash(actor: Actor[Any], *, task_status: TaskStatus[None]) -> None:
    with pytest.raises(Boom):
        await actor.serve(task_status=task_status)


async def wait_until(predicate: Any) -> None:
    while not predicate():
        await anyio.lowlevel.checkpoint()


async def test_thousand_concurrent_callers_all_get_their_own_answer() -> None:
    actor = Probe(mailbox_size=128)
    answers: dict[int, int] = {}

    async def caller(n: int) -> None:
        answers[n] = await actor.call(n)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            async with anyio.create_task_group() as callers:
                for n in range(1000):
                    callers.start_soon(caller, n)
            tg.cancel_scope.cancel()
    assert answers == {n: n + 1 for n in range(1000)}
    stats = actor.stats()
    assert stats.processed == 1000
    assert stats.mailbox_high_water > 1, "the serve loop should drain batches"


async def test_cancelled_caller_leaves_the_actor_serving_others() -> None:
    actor = Probe()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            with anyio.CancelScope() as scope:
                tg.start_soon(lambda: actor.call("hold"))
                await wait_until(lambda: len(actor.held) == 1)
                scope.cancel()
            # The held caller is still parked in its own task: cancel that task instead.
            victim = anyio.CancelScope()

            async def cancellable() -> None:
                with victim:
                    await actor.call("hold")

            tg.start_soon(cancellable)
            await wait_until(lambda: len(actor.held) == 2)
            victim.cancel()
            await anyio.wait_all_tasks_blocked()
            assert await actor.call(41) == 42
            released = await actor.call("release")
            assert released == 2  # the late reply to the cancelled caller is dropped
            assert await actor.call(1) == 2
            assert actor.running
            tg.cancel_scope.cancel()


async def test_a_reply_racing_a_cancellation_is_never_lost() -> None:
    """Whether the caller wakes with its reply or with its cancellation depends on the
    backend's scheduling; either way the reply reaches it exactly once."""
    actor = Probe()
    received: list[Any] = []
    handed_back: list[Any] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            scope = anyio.CancelScope()

            async def caller() -> None:
                with scope:
                    received.append(await actor.call("hold", on_late_reply=handed_back.append))

            tg.start_soon(caller)
            await wait_until(lambda: len(actor.held) == 1)
            actor.reply(actor.held[0], "lease")
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert received + handed_back == ["lease"]


async def test_late_reply_is_handed_back_when_the_caller_was_cancelled_first() -> None:
    actor = Probe()
    handed_back: list[Any] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            scope = anyio.CancelScope()

            async def caller() -> None:
                with scope:
                    await actor.call("hold", on_late_reply=handed_back.append)

            tg.start_soon(caller)
            await wait_until(lambda: len(actor.held) == 1)
            scope.cancel()
            await anyio.wait_all_tasks_blocked()
            # The caller has gone; the actor answers anyway (it cannot know yet).
            assert actor.held[0].abandoned
            actor.reply(actor.held[0], "lease")
            tg.cancel_scope.cancel()
    assert handed_back == []  # nobody is left to hand it back: the duty is the actor's


async def test_crash_fails_all_fifty_waiters_promptly_and_later_calls_at_once() -> None:
    actor = Probe()
    outcomes: list[BaseException] = []

    async def waiter() -> None:
        try:
            await actor.call("hold")
        except ActorUnavailable as exc:
            outcomes.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(serve_expecting_crash, actor)
            for _ in range(50):
                tg.start_soon(waiter)
            await wait_until(lambda: len(actor.held) == 50)
            with pytest.raises(ActorUnavailable) as crashed:
                await actor.call("boom")
    assert len(outcomes) == 50
    assert all(isinstance(exc.__cause__, Boom) for exc in outcomes)
    assert isinstance(crashed.value.__cause__, Boom)
    assert "Boom" in str(crashed.value)
    with anyio.fail_after(1), pytest.raises(ActorUnavailable) as later:
        await actor.call(1)
    assert isinstance(later.value.__cause__, Boom)
    assert actor.stats().death_reason == "Boom: handler exploded"


async def test_crash_fails_callers_still_queued_in_the_mailbox() -> None:
    actor = Probe(mailbox_size=64)
    failures: list[BaseException] = []

    async def queued(n: int) -> None:
        try:
            await actor.call(n)
        except ActorUnavailable as exc:
            failures.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(serve_expecting_crash, actor)
            # A crashing cast is queued ahead of 20 calls; all of them are in the mailbox
            # before the actor task runs again.
            actor.cast("boom")
            for n in range(20):
                tg.start_soon(queued, n)
    assert len(failures) == 20


async def test_shutdown_with_queued_requests_fails_them_instead_of_dropping_them() -> None:
    actor = Probe(mailbox_size=64)
    failures: list[BaseException] = []

    async def queued(n: int) -> None:
        try:
            await actor.call(n)
        except ActorUnavailable as exc:
            failures.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as outer, anyio.create_task_group() as actor_group:
            await actor_group.start(actor.serve)
            # Shut the actor down, then call it before its task has run again: callers
            # that got into the mailbox are failed by the drain, later ones at once.
            actor_group.cancel_scope.cancel()
            for n in range(10):
                outer.start_soon(queued, n)
    assert len(failures) == 10
    assert all("shut down" in str(exc) for exc in failures)
    assert actor.stop_reasons == ["was shut down"]


async def test_graceful_stop_serves_what_was_queued_then_refuses() -> None:
    actor = Probe()
    results: list[int] = []
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)

            async def caller(n: int) -> None:
                results.append(await actor.call(n))

            for n in range(5):
                tg.start_soon(caller, n)
            await anyio.wait_all_tasks_blocked()
            actor.stop()
    assert sorted(results) == [1, 2, 3, 4, 5]
    with pytest.raises(ActorUnavailable, match="stopped"):
        await actor.call(1)


async def test_cast_to_full_mailbox_is_dropped_and_counted_never_blocks() -> None:
    actor = Probe(mailbox_size=4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            # The actor task cannot run between these synchronous casts.
            accepted = [actor.cast(n) for n in range(10)]  # synchronous: cannot block
            taken = sum(accepted)
            # 4 buffered, plus possibly one handed straight to the waiting actor task.
            assert taken in (4, 5)
            assert accepted == [True] * taken + [False] * (10 - taken)
            assert actor.stats().dropped == 10 - taken
            await anyio.wait_all_tasks_blocked()
            assert actor.casts == list(range(taken))
            tg.cancel_scope.cancel()


async def test_cast_to_a_stopped_actor_is_dropped_and_counted() -> None:
    actor = Probe()
    assert actor.cast("early") is False
    assert actor.stats().dropped == 1


async def test_call_before_start_fails_at_once() -> None:
    with anyio.fail_after(1), pytest.raises(ActorUnavailable, match="not been started"):
        await Probe().call(1)


async def test_deferred_reply_errors_reach_the_caller() -> None:
    actor = Probe()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            errors: list[BaseException] = []

            async def holder() -> None:
                try:
                    await actor.call("hold")
                except KeyError as exc:
                    errors.append(exc)

            tg.start_soon(holder)
            await wait_until(lambda: len(actor.held) == 1)
            await actor.call("fail-held")
            await anyio.wait_all_tasks_blocked()
            assert [type(e) for e in errors] == [KeyError]
            assert actor.stats().deferred_replies == 0
            tg.cancel_scope.cancel()


@pytest.mark.virtual_time
async def test_call_timeout_raises_call_timeout_and_keeps_the_actor() -> None:
    actor = Probe()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            started = anyio.current_time()
            with pytest.raises(CallTimeout, match=r"within 2\.5s"):
                await actor.call("hold", timeout=2.5)
            assert anyio.current_time() - started == pytest.approx(2.5)
            assert await actor.call(1, timeout=1) == 2
            tg.cancel_scope.cancel()


async def test_timeout_errors_in_replies_are_not_mistaken_for_call_timeouts() -> None:
    class Replier(Actor[Any]):
        def handle_call(self, message: Any, slot: ReplySlot) -> Any:
            self.reply_error(slot, TimeoutError("the tool's own timeout"))
            return DEFER

    actor = Replier("replier")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            with pytest.raises(TimeoutError, match="tool's own") as caught:
                await actor.call("x", timeout=5)
            assert not isinstance(caught.value, CallTimeout)
            tg.cancel_scope.cancel()


async def test_an_actor_can_be_served_again_after_a_crash_with_fresh_state() -> None:
    actor = Probe()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(serve_expecting_crash, actor)
            with pytest.raises(ActorUnavailable):
                await actor.call("boom")
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            assert await actor.call(1) == 2
            assert actor.stats().starts == 2
            assert actor.stats().death_reason is None
            tg.cancel_scope.cancel()
    assert actor.starts == 2


async def test_serving_twice_at_once_is_refused() -> None:
    actor = Probe()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            with pytest.raises(RuntimeError, match="already running"):
                await actor.serve()
            tg.cancel_scope.cancel()


def test_mailbox_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="mailbox_size"):
        Probe(mailbox_size=0)


class Ordered(Actor[Any]):
    def __init__(self, linger: float = 0.0) -> None:
        super().__init__("ordered", mailbox_size=64, linger=linger)
        self.seen: list[Any] = []

    def handle_cast(self, message: Any) -> None:
        self.seen.append(("cast", message))

    def handle_call(self, message: Any, slot: ReplySlot) -> Any:
        self.seen.append(("call", message))
        return list(self.seen)


async def test_casts_sent_before_a_call_are_handled_before_it() -> None:
    actor = Ordered()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            for n in range(3):
                actor.cast(n)
            seen = await actor.call("q")
            tg.cancel_scope.cancel()
    assert seen == [("cast", 0), ("cast", 1), ("cast", 2), ("call", "q")]


async def test_a_burst_of_casts_is_handled_in_one_batch() -> None:
    actor = Ordered()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            for n in range(50):
                actor.cast(n)
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
    assert actor.seen == [("cast", n) for n in range(50)]
    assert actor.stats().mailbox_high_water == 50


@pytest.mark.virtual_time
async def test_linger_batches_casts_but_a_call_ends_the_pause_at_once() -> None:
    actor = Ordered(linger=10.0)
    with anyio.fail_after(100):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            actor.cast("early")
            await anyio.sleep(1)  # inside the 10 s pause: nothing handled yet
            assert actor.seen == []
            actor.cast("late")
            started = anyio.current_time()
            seen = await actor.call("now")
            assert anyio.current_time() - started == pytest.approx(0)
            tg.cancel_scope.cancel()
    assert seen == [("cast", "early"), ("cast", "late"), ("call", "now")]


async def test_casts_are_dropped_once_the_actor_has_stopped() -> None:
    actor = Ordered()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            actor.stop()
    assert actor.cast("after") is False
    assert actor.stats().dropped == 1
