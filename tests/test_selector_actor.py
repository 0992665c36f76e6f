"""SelectorActor: fed by casts from the executor's observer seam, answering by call."""

from __future__ import annotations

import random
from typing import Any

import anyio
import pytest

from runtime.calls import CallReport, CallStart
from runtime.errors import ActorUnavailable, UnknownIntent
from runtime.ops.preset import IntentType, ops_selector_settings
from runtime.selector import Strategy
from runtime.selector.actor import SelectorActor, outcome_of

pytestmark = pytest.mark.anyio


def _report(tool: str, op: str, at: float, duration: float, **kw: Any) -> CallReport:
    base = CallReport(
        kind="tool_call",
        trace_id="t",
        span_id="s",
        parent_span_id=None,
        tool_type=tool,
        operation=op,
        tenant_id="acme",
        started_at=at,
        started_wall=0.0,
        duration_s=duration,
        status="ok",
    )
    return base._replace(**kw)


def test_outcome_of_reports() -> None:
    ok = _report("CI", "get", 0, 0.01)
    assert outcome_of(ok) == "ok"
    assert outcome_of(ok._replace(status="error")) == "error"
    assert outcome_of(ok._replace(status="timeout")) == "error"
    assert outcome_of(ok._replace(status="cancelled")) == "censored"
    assert outcome_of(ok._replace(cache_hit=True)) == "unmeasured"
    assert outcome_of(ok._replace(coalesced=True)) == "unmeasured"
    rejected = ok._replace(status="rejected", error_type="BadFilter")
    assert outcome_of(rejected) == "unmeasured"
    # The type's name is never read: an error named like a rejection is still an error.
    named_alike = ok._replace(status="error", error_type="InvalidParams")
    assert outcome_of(named_alike) == "error"


async def test_learns_from_casts_and_answers_calls() -> None:
    clock = [100.0]
    actor = SelectorActor(ops_selector_settings(), rng=random.Random(1), clock=lambda: clock[0])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            before = await actor.rank(IntentType.LOOKUP, Strategy.BALANCED)
            assert before[0].candidate == ("CI", "get")
            # CI.get fails five calls in a row (observed through the CallObserver seam)
            for i in range(5):
                actor.call_started(CallStart("CI", "get", 99.0 + i * 0.1))
                actor.call_finished(
                    _report("CI", "get", 99.0 + i * 0.1, 0.001, status="error", error_type="X")
                )
            # a pipeline report must not count as a tool call
            actor.call_finished(_report("CI", "search", 99.0, 5.0, kind="pipeline"))
            after = await actor.rank(IntentType.LOOKUP, Strategy.BALANCED)
            assert after[0].candidate == ("CI", "search")
            snapshot = {(s.tool_type, s.operation): s for s in await actor.snapshot()}
            assert snapshot[("CI", "get")].failures == 5
            assert snapshot[("CI", "get")].in_flight == 0
            assert ("CI", "search") not in snapshot
            actor.stop()


async def test_choose_reserves_until_the_call_start_arrives() -> None:
    actor = SelectorActor(ops_selector_settings(), rng=random.Random(2), clock=lambda: 10.0)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            chosen = await actor.choose(IntentType.METRIC)
            ranked = {r.candidate: r for r in await actor.rank(IntentType.METRIC)}
            assert ranked[chosen.candidate].evidence["reserved"] == 1
            actor.call_started(CallStart(*chosen.candidate, 10.0))
            ranked = {r.candidate: r for r in await actor.rank(IntentType.METRIC)}
            assert ranked[chosen.candidate].evidence["reserved"] == 0
            assert ranked[chosen.candidate].evidence["in_flight"] == 1
            actor.stop()


async def test_cache_hits_passed_by_the_caller_count() -> None:
    actor = SelectorActor(ops_selector_settings(), clock=lambda: 0.0)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            ranked = await actor.rank(IntentType.PATH, Strategy.FASTEST, {("GRAPH", "expand")})
            by = {r.candidate: r for r in ranked}
            assert by[("GRAPH", "expand")].evidence["cached"] is True
            assert by[("GRAPH", "path")].evidence["cached"] is False
            actor.stop()


async def test_caller_mistakes_raise_in_the_caller_and_the_actor_survives() -> None:
    actor = SelectorActor(ops_selector_settings(), clock=lambda: 0.0)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            with pytest.raises(UnknownIntent, match="LOOKUP"):
                await actor.choose("NOT_AN_INTENT")
            with pytest.raises(ValueError, match="unknown strategy"):
                await actor.rank(IntentType.SEARCH, "NOT_A_STRATEGY")
            assert actor.running
            assert (await actor.rank(IntentType.SEARCH))[0].tool_type == "CI"
            actor.stop()


async def test_a_stopped_selector_fails_calls_and_drops_casts() -> None:
    actor = SelectorActor(ops_selector_settings(), clock=lambda: 0.0)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tg:
            await tg.start(actor.serve)
            actor.stop()
    with pytest.raises(ActorUnavailable):
        await actor.rank(IntentType.SEARCH)
    actor.call_started(CallStart("CI", "get", 0.0))  # must neither block nor raise
    assert actor.stats().dropped == 1


def test_a_call_served_without_running_the_tool_only_settles_its_reservation() -> None:
    import random as _random

    from runtime.selector.state import SelectorState

    state = SelectorState(ops_selector_settings())
    state.choose("LOOKUP", None, (), 0.0, _random.Random(1))
    chosen = [key for key in (("CI", "get"), ("CI", "search")) if state.reserved(*key, 0.0)]
    assert len(chosen) == 1
    before = state.stats(*chosen[0])
    state.settle(*chosen[0], 0.1)
    assert state.reserved(*chosen[0], 0.1) == 0
    assert state.stats(*chosen[0]) == before  # no load, no latency sample


def test_plan_returns_the_choice_and_the_ranking_it_came_from() -> None:
    import random as _random

    from runtime.selector.state import SelectorState

    state = SelectorState(ops_selector_settings())
    before = [r.candidate for r in state.rank("SEARCH", now=0.0)]  # nothing reserved yet
    chosen, ranked = state.plan("SEARCH", None, (), 0.0, _random.Random(3))
    assert chosen.candidate in {r.candidate for r in ranked}
    assert [r.candidate for r in ranked] == before
    assert state.reserved(*chosen.candidate, 0.0) == 1


async def test_the_reserved_view_is_the_only_caller_side_read_and_is_replaced_not_mutated() -> None:
    actor = SelectorActor(ops_selector_settings(), rng=random.Random(1), clock=lambda: 100.0)
    async with anyio.create_task_group() as group:
        await group.start(actor.serve)
        empty = actor.reserved_view
        assert empty == frozenset()
        chosen = await actor.choose("SEARCH")
        view = actor.reserved_view
        assert isinstance(view, frozenset)
        assert view == {chosen.candidate}
        assert empty == frozenset()  # the old view was replaced, not changed
        unreserved = await actor.choose("SEARCH", reserve=False)
        assert actor.reserved_view is view  # a choice that reserves nothing publishes nothing
        assert unreserved.candidate
        # A hit on another operation holds no reservation: not even sent.
        before = actor.stats().processed
        other = "get" if chosen.operation != "get" else "search"
        actor.call_finished(_report("CI", other, 100.0, 0.0, cache_hit=True, executed=False))
        await actor.snapshot()
        assert actor.stats().processed - before == 1  # only the snapshot
        # The hit answering the choice settles it, and the view is published empty.
        hit = _report(chosen.tool_type, chosen.operation, 100.0, 0.0, cache_hit=True)
        actor.call_finished(hit._replace(executed=False))
        await actor.snapshot()
        assert actor.reserved_view == frozenset()
        actor.stop()


async def test_an_end_whose_start_was_dropped_leaves_no_negative_load() -> None:
    actor = SelectorActor(rng=random.Random(1), clock=lambda: 100.0, mailbox_size=1)
    async with anyio.create_task_group() as group:
        await group.start(actor.serve)
        start = CallStart("CI", "get", 99.0)
        actor.call_started(start)
        actor.call_started(start)  # the mailbox holds one: this start is dropped
        for _ in range(2):  # both ends arrive: an end is never dropped
            actor.call_finished(_report("CI", "get", 99.0, 0.5))
        (snapshot,) = await actor.snapshot()
        assert snapshot.in_flight == 0
        assert snapshot.samples == 2
        actor.stop()
