"""Flight announcements (runtime/cache/signals.py): waiters woken by pub/sub, the poll kept
as the fallback.  Real redis-server on a unix socket, replicas as runtimes in one process
(helpers from tests/test_cache_lease.py); every test on asyncio and trio.

The polls here are long (``lease_poll`` 20 s, leases 60 s) so that an answer inside the
``fail_after`` bound can only come from the announcement -- except where the poll is the
subject, and there the counters say which of the two woke the waiter.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

import anyio
import pytest
from coredis.tokens import PureToken
from hypothesis import given, settings
from hypothesis import strategies as st
from redis_server import RedisServer, redis_server
from test_cache_lease import ACME, LIMIT, Source, flights, lease_of, raw_client, replicas

from runtime.cache.keys import CacheKey
from runtime.cache.lease import Lease, SharedFlights
from runtime.cache.signals import FlightSignals, flight_channel
from runtime.runtime import Runtime

__all__ = ["redis_server"]

pytestmark = pytest.mark.anyio

SLOW_POLL: dict[str, Any] = {"lease_poll": 20.0, "lease_ttl": 60.0}


def shared_flights(rt: Runtime) -> SharedFlights:
    cache = rt._cache  # the service behind the rt.cache handle
    assert cache is not None
    assert isinstance(cache.flights, SharedFlights)
    return cache.flights


def signals_of(rt: Runtime) -> FlightSignals:
    signals = shared_flights(rt).signals
    assert signals is not None
    return signals


async def until(condition: Any, what: str) -> None:
    """Wait (bounded by the test's fail_after) until ``condition()`` holds."""
    while not condition():
        await anyio.sleep(0.01)
    assert condition(), what


async def all_live(rts: list[Runtime]) -> None:
    await until(lambda: all(signals_of(rt).live for rt in rts), "subscriptions live")


# -- the bells, without Redis ------------------------------------------------------------


async def holder_then_waiter(
    first: Runtime,
    second: Runtime,
    source: Source,
    ci_id: int,
    *,
    answer_within: float | None = None,
) -> list[Any]:
    """``first`` holds the flight of CI ``ci_id`` (its tool stopped at ``source.gate``),
    ``second`` waits for it with its bell armed; then the gate opens.  Returns the
    waiter's answer, within ``answer_within`` seconds of the gate when given."""
    answers: list[Any] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: first.execute_result("CI", "get", {"ci_id": ci_id}, ACME))
        await source.started.wait()

        async def wait() -> None:
            answers.append(await second.execute_result("CI", "get", {"ci_id": ci_id}, ACME))

        tg.start_soon(wait)
        await until(lambda: signals_of(second).armed == 1, "the waiter's bell armed")
        source.gate.set()
        if answer_within is not None:
            with anyio.fail_after(answer_within):
                await until(lambda: bool(answers), "the waiter answered")
    return answers


async def test_a_ring_wakes_only_the_bells_of_its_lease() -> None:
    signals = FlightSignals()
    with signals.bell(b"lease-a") as a1, signals.bell(b"lease-a") as a2:
        with signals.bell(b"lease-b") as b:
            assert signals.armed == 3
            signals.ring(b"lease-a")
            assert a1.is_set()
            assert a2.is_set()
            assert not b.is_set()
            assert signals.armed == 1  # rung bells are spent
            signals.ring(b"nobody-waits")
            assert not b.is_set()
        assert signals.armed == 0  # leaving the block disarms
    assert signals.messages == 2


async def test_the_channel_is_per_prefix() -> None:
    assert flight_channel("runtime") == "runtime:flights"
    assert flight_channel("tenant-x") != flight_channel("runtime")


# -- announcements over a real Redis -----------------------------------------------------


async def test_a_waiter_is_woken_by_the_holders_announcement(redis_server: RedisServer) -> None:
    source = Source()
    source.gate = anyio.Event()
    with anyio.fail_after(LIMIT):
        async with replicas(redis_server, source, 2, **SLOW_POLL) as rts:
            first, second = rts
            await all_live(rts)
            # A poll would come 20 s after the claim: only the announcement is in time.
            answers = await holder_then_waiter(first, second, source, 1, answer_within=LIMIT / 2)
            counts = await flights(second)
    assert answers[0].success
    assert source.executions == 1
    assert counts["notified"] == 1
    assert counts["shared"] == 1


async def test_a_release_without_a_value_is_announced_too(redis_server: RedisServer) -> None:
    source = Source()
    source.gate = anyio.Event()
    source.fail_next = 1  # the holder's run fails: it releases, and the waiter takes over
    with anyio.fail_after(LIMIT):
        async with replicas(redis_server, source, 2, **SLOW_POLL) as rts:
            first, second = rts
            await all_live(rts)
            answers = await holder_then_waiter(first, second, source, 2)
            counts = await flights(second)
    assert answers[0].success
    assert source.runs["r1"] == 1
    assert counts["notified"] == 1
    assert counts["takeovers"] == 1


async def test_a_lost_announcement_is_caught_by_the_fallback_poll(
    redis_server: RedisServer,
) -> None:
    source = Source()
    with anyio.fail_after(LIMIT):
        async with (
            replicas(redis_server, source, 2, lease_poll=0.2, lease_ttl=60.0) as rts,
            raw_client(redis_server) as raw,
        ):
            first, second = rts
            await all_live(rts)
            assert first.cache is not None
            assert first._cache.l2 is not None
            key = first.cache.key_for(first.registry.get("CI", "get"), {"ci_id": 3}, ACME)
            assert isinstance(key, CacheKey)
            held = await shared_flights(first).claim(key)
            assert isinstance(held, Lease)
            found: list[Any] = []

            async def wait() -> None:
                found.append(await shared_flights(second).claim(key))

            async with anyio.create_task_group() as tg:
                tg.start_soon(wait)
                await until(lambda: signals_of(second).armed == 1, "the waiter's bell armed")
                # The flight ends as a publish would end it, but nobody announces it.
                assert await first._cache.l2.set(key, {"answer": 42}, 60.0)
                assert await raw.delete([await lease_of(first, 3)]) == 1
            counts = await flights(second)
    assert found[0] is not None
    assert found[0].value == {"answer": 42}
    assert counts["notified"] == 0  # the poll, not a message, found the value
    assert counts["shared"] == 1


async def test_a_dropped_subscription_is_redialled(redis_server: RedisServer) -> None:
    source = Source()
    source.gate = anyio.Event()
    with anyio.fail_after(LIMIT):
        async with (
            replicas(redis_server, source, 2, **SLOW_POLL) as rts,
            raw_client(redis_server) as raw,
        ):
            first, second = rts
            await all_live(rts)
            before = signals_of(second).subscriptions
            assert await raw.client_kill(type_=PureToken.PUBSUB) == 2  # both replicas'

            await until(lambda: signals_of(second).subscriptions > before, "redialled")
            await all_live(rts)
            answers = await holder_then_waiter(first, second, source, 4)
            counts = await flights(second)
    assert answers[0].success
    assert counts["notified"] == 1
    assert source.executions == 1


async def test_start_up_does_not_wait_for_a_redis_that_is_down(
    redis_server: RedisServer,
) -> None:
    source = Source()
    redis_server.kill()
    with anyio.fail_after(LIMIT):
        async with replicas(redis_server, source, 1) as (rt,):
            assert not signals_of(rt).live
            answer = await rt.execute_result("CI", "get", {"ci_id": 5}, ACME)
    assert answer.success
    assert source.executions == 1


# -- the bells, as a property ------------------------------------------------------------

LEASES = st.sampled_from([b"a", b"b", b"c"])
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("arm"), LEASES),
        st.tuples(st.just("ring"), LEASES),
        st.tuples(st.just("disarm"), st.integers(0, 20)),
    ),
    max_size=40,
)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
@given(steps=STEPS)
@settings(max_examples=200, deadline=None)
def test_a_bell_is_set_exactly_when_its_lease_rang_while_it_was_armed(
    backend: str, steps: list[tuple[str, Any]]
) -> None:
    async def play() -> None:
        signals = FlightSignals()
        every: list[tuple[anyio.Event, bool]] = []  # each bell, and whether it must be set
        armed: list[tuple[bytes, int, ExitStack]] = []  # lease, index in every, its scope
        for action, arg in steps:
            if action == "arm":
                scope = ExitStack()
                event = scope.enter_context(signals.bell(arg))
                armed.append((arg, len(every), scope))
                every.append((event, False))
            elif action == "ring":
                signals.ring(arg)
                for lease, index, _ in armed:
                    if lease == arg:
                        every[index] = (every[index][0], True)
                armed = [entry for entry in armed if entry[0] != arg]  # rung: spent
            elif armed:
                _, _, scope = armed.pop(arg % len(armed))
                scope.close()  # the claim stopped waiting
            assert signals.armed == len(armed)
        assert [event.is_set() for event, _ in every] == [must for _, must in every]
        for _, _, scope in armed:
            scope.close()
        assert signals.armed == 0

    anyio.run(play, backend=backend)
