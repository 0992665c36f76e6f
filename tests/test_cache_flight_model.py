"""The single-flight table against a model: a stateful test of the pure core.

The machine drives :class:`SingleFlight` directly -- no event loop, no actor, no private
fields -- and delivers its decisions the way the cache actor does: ``answered`` waiters
get the leader's outcome, ``lead`` starts a new run, ``dropped`` waiters get nothing.
Each leader's run is named, so every answer can be traced to the run that produced it.

It covers lookups (lead / follow / late-follow), a leader's finish (fill, fail, unshare)
and release (cancelled), waiters that give up, invalidations (covering a key or not),
restarts (flights forgotten, leases keep counting) and reports with stale, foreign or
never-issued leases.  Checked after every step:

- at most one leader per key, and the table holds exactly the running leaders' leases;
  leases are never reused;
- nobody is answered with a run that started before an invalidation (of its key) which
  its lookup came after, and ``current`` (may the value be stored) is true only for a
  run no invalidation overtook;
- every waiter is mentioned by at most one decision, a waiter always has a running
  leader to wait on, no waiter that gave up is made leader, and once every leader
  finishes every waiter has been answered;
- coalesced counts add up: misses - coalesced == runs started by a miss (finished,
  running, or released with nobody to take over) + late waiters not yet counted;
- a report carrying a stale lease changes nothing and decides nothing.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from runtime.cache.singleflight import FOLLOW, FOLLOW_LATE, Handoff, Lead, SingleFlight

KEYS = ("k1", "k2", "k3")
# An invalidation covers some keys (possibly none): the table only sees "one happened".
INVALIDATIONS = (("k1",), ("k2",), ("k1", "k2"), (), KEYS)
OUTCOMES = ("fill", "fail", "unshare")


@attrs.define(eq=False)
class Waiter:
    seq: int
    key: str
    life: int  # the table life (restart count) its lookup was made in
    asked_cov: int  # invalidations covering its key before its lookup
    gave_up: bool = False
    late: bool = False  # joined after an invalidation overtook the flight's leader
    replies: list[Any] = attrs.Factory(list)  # decisions that mentioned it


@attrs.define(eq=False)
class Run:
    rid: int
    key: str
    lease: int
    epoch: int  # the table's epoch when it started
    life: int
    started_cov: int  # invalidations covering its key before it started
    outcome: str | None = None  # None while running; "release" or one of OUTCOMES


def gave_up(waiter: Waiter) -> bool:
    return waiter.gave_up


class FlightMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table: SingleFlight[str, Waiter] = SingleFlight(gave_up)
        self.life = 0
        self.cov = Counter[str]()
        self.waiters: list[Waiter] = []
        self.runs: list[Run] = []
        self.leases: list[int] = []
        self.misses = Counter[str]()
        self.coalesced = Counter[str]()
        self.dead_lines = Counter[str]()  # released with nobody to take over

    # -- the model's view -------------------------------------------------------------

    def _active(self, key: str | None = None) -> list[Run]:
        return [
            r
            for r in self.runs
            if r.outcome is None and r.life == self.life and key in (None, r.key)
        ]

    def _waiting(self, key: str | None = None) -> list[Waiter]:
        return [
            w
            for w in self.waiters
            if w.life == self.life and not w.replies and key in (None, w.key)
        ]

    def _observable(self) -> Any:
        """Everything the table shows through its public surface, and every delivery."""
        return (
            len(self.table),
            self.table.waiting(),
            self.table.epoch,
            self.table.leases_granted,
            [k in self.table for k in KEYS],
            [self.table.holds(r.key, r.lease) for r in self.runs],
            [len(w.replies) for w in self.waiters],
        )

    def _start_run(self, waiter: Waiter, lead: Lead) -> None:
        assert not waiter.gave_up, "a waiter that gave up was made leader"
        assert lead.epoch == self.table.epoch
        assert not self.leases or lead.lease > self.leases[-1], "a lease was reused"
        assert not self._active(waiter.key), "a second leader for one key"
        self.leases.append(lead.lease)
        run = Run(
            len(self.runs), waiter.key, lead.lease, lead.epoch, self.life, self.cov[waiter.key]
        )
        self.runs.append(run)

    def _deliver(self, run: Run, outcome: str, handoff: Handoff[Waiter]) -> None:
        """Deliver a decision about ``run``'s flight and check who gets what."""
        key = run.key
        waiting = self._waiting(key)
        assert handoff.current == (run.epoch == self.table.epoch)
        if handoff.current:
            assert run.started_cov == self.cov[key], "a value from before an invalidation"
        if outcome != "release":
            assert list(handoff.answered) == [w for w in waiting if not w.late]
        else:
            assert handoff.answered == ()
        for waiter in handoff.answered:
            assert waiter.key == key
            assert run.started_cov >= waiter.asked_cov, (
                f"waiter #{waiter.seq} asked after an invalidation, got run {run.rid}'s "
                "outcome computed before it"
            )
            waiter.replies.append((outcome, run.rid))
        # Whoever leads next is the first still waiting: for a finish the first late
        # waiter; for a release the first of all (late ones joined the followers last).
        # Those before it that gave up are dropped.
        order = waiting if outcome == "release" else [w for w in waiting if w.late]
        candidates = [w for w in order if not w.gave_up]
        skipped = order[: order.index(candidates[0])] if candidates else order
        assert list(handoff.dropped) == skipped
        for waiter in handoff.dropped:
            waiter.replies.append(None)
        if handoff.lead is None:
            assert not candidates, "a waiter was left without a leader"
            assert key not in self.table
            if outcome == "release":
                self.dead_lines[key] += 1
        else:
            waiter, lead = handoff.lead
            assert waiter is candidates[0], "the lead did not pass to the first waiting"
            waiter.replies.append(lead)
            self._start_run(waiter, lead)
        self.coalesced[key] += handoff.coalesced
        for w in waiting:
            w.late = False  # answered, gave up, or following a leader that runs after it

    # -- rules ---------------------------------------------------------------------------

    @rule(key=st.sampled_from(KEYS))
    def lookup(self, key: str) -> None:
        active = self._active(key)
        waiter = Waiter(len(self.waiters), key, self.life, self.cov[key])
        self.waiters.append(waiter)
        self.misses[key] += 1
        decision = self.table.lookup(key, waiter)
        if not active:
            assert type(decision) is Lead
            waiter.replies.append(decision)
            self._start_run(waiter, decision)
        elif self.table.epoch != active[0].epoch:
            assert decision is FOLLOW_LATE
            waiter.late = True
        else:
            assert decision is FOLLOW
            self.coalesced[key] += 1

    # Rules are drawn uniformly: these make followers and hand-overs common.
    @precondition(lambda self: self._active())
    @rule(data=st.data())
    def join_a_flight(self, data: st.DataObject) -> None:
        self.lookup(data.draw(st.sampled_from(self._active()), label="run").key)

    @precondition(lambda self: self._active())
    @rule(data=st.data())
    def invalidate_a_flight(self, data: st.DataObject) -> None:
        self.invalidate((data.draw(st.sampled_from(self._active()), label="run").key,))

    @precondition(lambda self: self._active())
    @rule(data=st.data(), outcome=st.sampled_from(OUTCOMES))
    def leader_finishes(self, data: st.DataObject, outcome: str) -> None:
        run = data.draw(st.sampled_from(self._active()), label="run")
        handoff = self.table.finish(run.key, run.lease)
        assert handoff is not None
        run.outcome = outcome
        self._deliver(run, outcome, handoff)

    @precondition(lambda self: self._active())
    @rule(data=st.data())
    def leader_is_cancelled(self, data: st.DataObject) -> None:
        run = data.draw(st.sampled_from(self._active()), label="run")
        handoff = self.table.release(run.key, run.lease)
        assert handoff is not None
        run.outcome = "release"
        self._deliver(run, "release", handoff)

    @precondition(lambda self: [w for w in self._waiting() if not w.gave_up])
    @rule(data=st.data())
    def waiter_gives_up(self, data: st.DataObject) -> None:
        waiting = [w for w in self._waiting() if not w.gave_up]
        data.draw(st.sampled_from(waiting), label="waiter").gave_up = True

    @rule(covered=st.sampled_from(INVALIDATIONS))
    def invalidate(self, covered: tuple[str, ...]) -> None:
        epoch = self.table.epoch
        self.table.invalidate()
        assert self.table.epoch > epoch
        for key in covered:
            self.cov[key] += 1

    @precondition(lambda self: len(self.waiters) % 6 == 5)  # now and then
    @rule()
    def restart(self) -> None:
        """The shell fails every waiter; the table forgets its flights, not its leases."""
        leases = self.table.leases_granted
        for waiter in self._waiting():
            waiter.replies.append("failed by the shell")
        self.table.restart()
        self.life += 1
        # A restarted actor counts afresh in its new store.
        self.misses, self.coalesced, self.dead_lines = Counter(), Counter(), Counter()
        assert (len(self.table), self.table.waiting()) == (0, 0)
        assert self.table.leases_granted == leases

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), release=st.booleans(), key=st.sampled_from(KEYS))
    def stale_report(self, data: st.DataObject, release: bool, key: str) -> None:
        """A report whose lease is not its key's current leader's decides nothing: a
        leader from before a restart, a duplicate, another key's lease, or a lease never
        handed out (0, or the next one)."""
        stale = [(r.key, r.lease, r) for r in self.runs if r.outcome or r.life != self.life]
        stale += [(key, r.lease, None) for r in self._active() if r.key != key]
        stale += [(key, 0, None), (key, self.table.leases_granted + 1, None)]
        report_key, lease, run = data.draw(st.sampled_from(stale), label="lease")
        before = self._observable()
        report = self.table.release if release else self.table.finish
        assert report(report_key, lease) is None
        assert self._observable() == before, "a stale report changed the table"
        if run is not None and run.outcome is None:
            run.outcome = "release" if release else "fill"  # a leader of a past life

    @precondition(lambda self: len(self.waiters) % 4 == 3)  # now and then
    @rule()
    def all_leaders_finish(self) -> None:
        for _ in range(len(self.waiters) + 1):
            active = self._active()
            if not active:
                break
            for run in active:
                handoff = self.table.finish(run.key, run.lease)
                assert handoff is not None
                run.outcome = "fill"
                self._deliver(run, "fill", handoff)
        assert not self._active()
        assert (len(self.table), self.table.waiting()) == (0, 0)
        for waiter in self.waiters:
            assert len(waiter.replies) == 1, f"waiter #{waiter.seq} is still waiting"

    # -- invariants ----------------------------------------------------------------------

    @invariant()
    def one_leader_per_key_and_the_table_holds_exactly_them(self) -> None:
        active = self._active()
        assert len({r.key for r in active}) == len(active)
        assert {k for k in KEYS if k in self.table} == {r.key for r in active}
        for run in self.runs:
            assert self.table.holds(run.key, run.lease) == (run in active)

    @invariant()
    def at_most_one_reply_and_nobody_waits_on_nothing(self) -> None:
        running = {r.key for r in self._active()}
        for waiter in self.waiters:
            assert len(waiter.replies) <= 1, f"waiter #{waiter.seq} was answered twice"
            if not waiter.replies:
                assert waiter.life == self.life
                assert waiter.key in running, f"waiter #{waiter.seq} waits on no leader"
        assert self.table.waiting() == len(self._waiting())

    @invariant()
    def coalesced_counts_add_up(self) -> None:
        for key in KEYS:
            runs = [r for r in self.runs if r.life == self.life and r.key == key]
            lines = sum(1 for r in runs if r.outcome != "release") + self.dead_lines[key]
            late = sum(1 for w in self._waiting(key) if w.late)
            assert self.misses[key] - self.coalesced[key] == lines + late


FlightMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=50)
TestFlightModel = FlightMachine.TestCase
