"""The cross-replica flight's waiting rule (runtime/cache/flight.py), by hypothesis.

Two levels: the :class:`Waiter` alone against arbitrary claim observations (its bounds),
and a discrete-event simulation of R replicas sharing one key through a model of the
claim script (value / lease with expiry / holder), with the holder possibly dying: one
execution per life of a lease, everyone answered within ``lease_ttl`` + the tool's time
(+ one poll), nobody left waiting.
"""

from __future__ import annotations

import heapq
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.cache.flight import FlightPolicy, GiveUp, Held, Sleep, Waiter

POLICY = FlightPolicy(lease_ttl=2.0, poll_initial=0.005, poll_max=0.05)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"lease_ttl": 0}, "lease_ttl"),
        ({"lease_ttl": math.inf}, "lease_ttl"),
        ({"poll_initial": -1.0}, "poll_initial"),
        ({"poll_max": True}, "poll_max"),
        ({"poll_initial": 0.5, "poll_max": 0.1}, "poll_initial"),
    ],
)
def test_policy_rejects_bad_numbers_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    values = {"lease_ttl": 1.0, "poll_initial": 0.01, "poll_max": 0.1, **kwargs}
    with pytest.raises(ValueError, match=field):
        FlightPolicy(**values)


observations = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),  # the holder's token
        st.none() | st.floats(min_value=-1.0, max_value=10.0),  # its TTL left
        st.floats(min_value=0.0, max_value=1.0),  # time since the previous claim
    ),
    min_size=1,
    max_size=60,
)


@given(observations)
def test_waiter_never_waits_on_one_lease_past_its_ttl(
    seen: list[tuple[str, float | None, float]],
) -> None:
    waiter = Waiter.start(POLICY)
    now = 0.0
    current: str | None = None
    expires = bound = pace = 0.0
    for token, ttl_left, elapsed in seen:
        now += elapsed
        step, waiter = waiter.observe(Held(token, ttl_left), now)
        if token != current:  # a new holder: its own TTL, from now; the pace restarts
            current = token
            left = POLICY.lease_ttl if ttl_left is None else ttl_left
            left = min(max(left, 0.0), POLICY.lease_ttl)
            expires, bound, pace = now + left, now + left + POLICY.poll_max, POLICY.poll_initial
        if now >= bound:
            assert isinstance(step, GiveUp)
            assert repr(token) in step.reason
            continue
        assert isinstance(step, Sleep)
        assert 0 < step.delay <= POLICY.poll_max
        assert now + step.delay <= bound + 1e-9  # never sleeps past the lease's bound
        expected = min(pace, bound - now)
        if now < expires:  # wakes just after the lease expires, not a whole poll later
            expected = min(expected, expires - now + 0.001)
        assert step.delay == pytest.approx(expected)
        pace = min(2 * pace, POLICY.poll_max)


def test_a_new_holder_restarts_the_bound_and_the_pace() -> None:
    waiter = Waiter.start(POLICY)
    first, waiter = waiter.observe(Held("a", 0.1), 0.0)
    later, waiter = waiter.observe(Held("a", 0.1), 0.01)
    assert isinstance(first, Sleep)
    assert isinstance(later, Sleep)
    assert later.delay == 2 * first.delay
    stuck, waiter = waiter.observe(Held("a", 5.0), 0.2)  # Redis says 5 s: too late
    assert isinstance(stuck, GiveUp)
    fresh, _ = waiter.observe(Held("b", 1.0), 0.2)
    assert fresh == Sleep(POLICY.poll_initial)


def test_a_lease_without_expiry_is_given_up_after_the_configured_ttl() -> None:
    waiter = Waiter.start(POLICY)
    now = 0.0
    while True:
        step, waiter = waiter.observe(Held("forever", None), now)
        if isinstance(step, GiveUp):
            break
        now += step.delay
    assert POLICY.lease_ttl <= now <= POLICY.lease_ttl + POLICY.poll_max + 1e-9


def _simulate(
    replicas: int, tool_s: float, ttl: float, poll_max: float, death_at: float | None
) -> tuple[int, list[float]]:
    """R replicas claim one cold key at t=0 through a model of the claim script.

    Returns (executions started, time each replica was answered).  The first holder
    dies at ``death_at`` (if before it finishes); its lease then expires by TTL.
    """
    policy = FlightPolicy(lease_ttl=ttl, poll_initial=min(0.005, poll_max), poll_max=poll_max)
    value_at: float | None = None  # when the value landed
    lease: tuple[str, float] | None = None  # (holder, expiry)
    executions = 0
    answered: dict[int, float] = {}
    waiters = {r: Waiter.start(policy) for r in range(replicas)}
    events: list[tuple[float, int, str]] = [(0.0, r, "claim") for r in range(replicas)]
    heapq.heapify(events)
    while events:
        now, replica, what = heapq.heappop(events)
        if what == "done":  # the holder finishes: write the value if the lease is still its own
            if lease is not None and lease[0] == str(replica) and now < lease[1]:
                value_at = now if value_at is None else value_at
                lease = None
            answered[replica] = now
            continue
        if value_at is not None and now >= value_at:
            answered[replica] = now
            continue
        if lease is None or now >= lease[1]:
            lease = (str(replica), now + ttl)
            executions += 1
            dies = executions == 1 and death_at is not None and death_at < tool_s
            if dies:
                assert death_at is not None
                # Dead holder: never finishes; the replica's callers are gone with it.
                answered[replica] = now + death_at
                continue
            heapq.heappush(events, (now + tool_s, replica, "done"))
            continue
        step, waiters[replica] = waiters[replica].observe(Held(lease[0], lease[1] - now), now)
        if isinstance(step, GiveUp):  # pragma: no cover - leases in the model always expire
            raise AssertionError("a waiter gave up on a lease that expires")
        heapq.heappush(events, (now + step.delay, replica, "claim"))
    return executions, [answered[r] for r in range(replicas)]


@given(
    replicas=st.integers(min_value=1, max_value=8),
    tool_s=st.floats(min_value=0.001, max_value=1.0),
    ttl=st.floats(min_value=1.01, max_value=5.0),
    poll_max=st.floats(min_value=0.005, max_value=0.2),
    death_at=st.none() | st.floats(min_value=0.0, max_value=1.0),
)
def test_replicas_share_one_execution_and_take_over_a_dead_holder(
    replicas: int, tool_s: float, ttl: float, poll_max: float, death_at: float | None
) -> None:
    executions, answered = _simulate(replicas, tool_s, ttl, poll_max, death_at)
    died = death_at is not None and death_at < tool_s
    assert executions == (2 if died and replicas > 1 else 1)
    # A takeover is seen at expiry (+1 ms); its value within one poll of landing.
    bound = (ttl + 0.001 + tool_s if died else tool_s) + poll_max + 1e-9
    assert max(answered) <= bound
