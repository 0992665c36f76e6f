"""The cache actor's single-flight table against a model: a stateful test of its core.

The machine drives :class:`CacheActor`'s synchronous handlers directly (``_take`` for a
call, as the serve loop does, ``cast`` + ``_drain_casts`` for a cast), with the clock as
data, so thousands of steps run in a second.  Each caller is a :class:`ReplySlot` that
counts its deliveries; each leader's run produces a value that names the run, so every
reply can be traced to the run that computed it.

It covers: lookups (hit / lead / follow / late-follow), a leader's Fill (stored or not,
by TTL and epoch), Fail, Unshare and Release (cancelled), followers and late followers
that give up, lookups abandoned while still in the mailbox, invalidation by key / tool /
tenant / clear, time passing (expiry), actor restarts (state reset, deferred replies
failed, leases keep counting) and leaders from before a restart reporting late, plus
reports carrying stale or fabricated leases.

Checked after every step (docs/cache.md, runtime/cache/actor.py):

- at most one leader per key at any time (per actor life), and the flight table holds
  exactly the running leaders with their leases; leases are never reused;
- a reply is never a value computed by a run that started before an invalidation (of
  that key) which the caller's lookup came after; a hit is live and for the same key;
- every caller gets at most one reply, a waiting caller always has a running leader to
  wait on, and once every leader finishes every caller has exactly one reply;
- the counters add up: hits and misses per lookup, and ``misses - coalesced`` is the
  number of tool runs (finished, running, or cancelled with nobody to take over) plus
  the late followers not yet served, so executions = misses - coalesced + bypasses;
- a message carrying a stale lease changes nothing at all.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any
from unittest import mock

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

import runtime.cache.actor as cache_actor
from runtime.actor import ReplySlot
from runtime.cache import CacheCounters, CacheKey, freeze, make_key, thaw
from runtime.cache.actor import (
    CacheActor,
    Fail,
    Fill,
    GetStats,
    Hit,
    Invalidate,
    Lead,
    Lookup,
    RecordBypass,
    Release,
    RunYourself,
    Shared,
    SharedFailure,
    Unshare,
)
from runtime.errors import ActorUnavailable
from runtime.tools import ToolResult

KEYS = (
    make_key("acme", "CI", "get", {"ci_id": 1}),
    make_key("acme", "CI", "get", {"ci_id": 2}),
    make_key("globex", "METRIC", "series", {"metric": "cpu"}),
)
INVALIDATIONS = (
    *(Invalidate(key=k) for k in KEYS),
    Invalidate(tool_type="CI"),
    Invalidate(tool_type="CI", operation="get"),
    Invalidate(tool_type="METRIC", operation="get"),  # covers nothing, still an epoch
    Invalidate(tenant="acme"),
    Invalidate(tenant="globex"),
    Invalidate(),
)
TTLS = (0.0, 1.0, 2.0, math.inf)
REPORTS = ("fill", "fail", "unshare", "release")


def covers(message: Invalidate, key: CacheKey) -> bool:
    if message.key is not None:
        return message.key.digest == key.digest
    if message.tool_type is not None:
        return message.tool_type == key.tool_type and message.operation in (None, key.operation)
    if message.tenant is not None:
        return message.tenant == key.tenant
    return True


def group(key: CacheKey) -> tuple[str, str]:
    return (key.tool_type, key.operation)


class Slot(ReplySlot):
    """A reply slot that counts deliveries: a second one would be silently ignored."""

    def __init__(self) -> None:
        super().__init__()
        self.deliveries = 0

    def set_result(self, value: Any) -> bool:
        self.deliveries += 1
        return super().set_result(value)

    def set_error(self, error: BaseException) -> bool:
        self.deliveries += 1
        return super().set_error(error)


@attrs.define(eq=False)
class Caller:
    seq: int
    key: CacheKey
    slot: Slot
    life: int  # the actor life (start count) its lookup was served in
    asked_cov: int  # invalidations covering its key before its lookup
    late: bool = False  # joined after an invalidation overtook the flight's leader
    handled: bool = False  # the model has examined its reply


@attrs.define(eq=False)
class Run:
    rid: int
    key: CacheKey
    lease: int
    epoch: int
    life: int
    started_cov: int  # invalidations covering its key before it started
    outcome: str | None = None  # None while running; else one of REPORTS


class FlightMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.actor = CacheActor(max_entries=64, max_bytes=None)
        self.now = 0.0
        self.life = 0
        self.epoch = 0  # the model of the actor's epoch
        self.cov = {k.digest: 0 for k in KEYS}
        self.callers: list[Caller] = []
        self.runs: list[Run] = []
        self.leases: list[int] = []
        self.expect_error = False
        self._start()

    # -- driving the actor ------------------------------------------------------------

    def _start(self) -> None:
        """What ``Actor.serve`` does before its loop, with our clock as the loop's."""
        actor = self.actor
        actor._deferred = set()
        actor._starts += 1
        actor._death = None
        with mock.patch.object(cache_actor, "loop_clock", return_value=lambda: self.now):
            actor.on_start()
        actor._running = True
        self.life += 1
        self.epoch += 1
        self.entries: dict[bytes, tuple[Run, float]] = {}  # the store's live model
        self.counts: dict[tuple[str, str], Counter[str]] = {}
        self.dead_chains: Counter[tuple[str, str]] = Counter()

    def _call(self, message: Any, slot: ReplySlot) -> None:
        self.actor._take((message, slot))  # exactly the serve loop's path for a call

    def _cast(self, message: Any) -> None:
        assert self.actor.cast(message)
        self.actor._drain_casts()

    def _count(self, key: CacheKey) -> Counter[str]:
        return self.counts.setdefault(group(key), Counter())

    def _snapshot(self) -> Any:
        actor = self.actor
        flights = {
            digest: (f.lease, f.epoch, [id(s) for s in f.followers], [id(s) for s in f.late])
            for digest, f in actor._flights.items()
        }
        store = actor._store
        live = [(e.key, e.value, e.expires) for e in store.live_entries(self.now)]
        slots = [(c.slot.deliveries, c.slot.done, c.slot.value) for c in self.callers]
        deferred = sorted(map(id, actor._deferred))
        return (
            flights,
            actor._epoch,
            actor._leases,
            store.stats(),
            live,
            len(store),
            deferred,
            slots,
        )

    # -- the model's view -------------------------------------------------------------

    def _active(self, key: CacheKey | None = None) -> list[Run]:
        return [
            r
            for r in self.runs
            if r.outcome is None
            and r.life == self.life
            and (key is None or r.key.digest == key.digest)
        ]

    def _waiting(self, key: CacheKey) -> list[Caller]:
        """Callers of this life deferred on ``key``'s flight, in lookup order."""
        return [
            c
            for c in self.callers
            if c.life == self.life and not c.slot.done and c.key.digest == key.digest
        ]

    def _value_of(self, run: Run) -> Any:
        return freeze(("run", run.rid))

    def _new_run(self, caller: Caller, lead: Lead) -> None:
        assert not caller.slot.abandoned, "a caller that gave up was made leader"
        assert lead.epoch == self.epoch
        assert not self.leases or lead.lease > self.leases[-1], "a lease was reused"
        assert not self._active(caller.key), "a second leader for one key"
        self.leases.append(lead.lease)
        run = Run(
            len(self.runs),
            caller.key,
            lead.lease,
            lead.epoch,
            self.life,
            self.cov[caller.key.digest],
        )
        self.runs.append(run)

    def _check_fresh(self, caller: Caller, run: Run, outcome: str) -> None:
        assert run.key.digest == caller.key.digest
        assert run.outcome == outcome
        assert run.life == caller.life
        assert run.started_cov >= caller.asked_cov, (
            f"caller #{caller.seq} asked after an invalidation, got run {run.rid}'s value "
            "computed before it"
        )

    def _settle(self) -> None:
        """Examine every reply delivered since the last step."""
        for caller in self.callers:
            slot = caller.slot
            if caller.handled or not slot.done:
                continue
            caller.handled = True
            if slot.error is not None:
                assert self.expect_error, f"caller #{caller.seq} failed: {slot.error!r}"
                assert isinstance(slot.error, ActorUnavailable)
                continue
            value = slot.value
            kind = type(value)
            if value is None:
                assert slot.abandoned, "a waiting caller was answered None"
            elif kind is Lead:
                self._new_run(caller, value)
            elif kind is Shared:
                self._check_fresh(caller, self.runs[thaw(value.stored)[1]], "fill")
            elif kind is SharedFailure:
                self._check_fresh(caller, self.runs[value.result.data], "fail")
            elif kind is RunYourself:
                if not slot.abandoned:  # the service runs the tool, counted as a bypass
                    self._cast(RecordBypass(caller.key.tool_type, caller.key.operation))
                    self._count(caller.key)["bypasses"] += 1
            else:
                raise AssertionError(f"unexpected deferred reply {value!r}")

    def _report(self, run: Run, kind: str, ttl: float = 1.0) -> None:
        """The leader of ``run`` reports ``kind``; check who gets what."""
        key = run.key
        waiting = self._waiting(key)
        if kind == "fill":
            self._cast(Fill(key, self._value_of(run), ttl, run.epoch, run.lease))
        elif kind == "fail":
            self._cast(Fail(key, ToolResult(False, run.rid, error="boom"), run.lease))
        elif kind == "unshare":
            self._cast(Unshare(key, run.lease))
        else:
            self._cast(Release(key, run.lease))
        run.outcome = kind
        leads = [c for c in waiting if c.slot.done and type(c.slot.value) is Lead]
        assert len(leads) <= 1
        if kind == "release":
            # Whoever takes over runs after any invalidation: late followers join it.
            candidates = [c for c in waiting if not c.slot.abandoned]
            assert leads == candidates[:1], "the lead did not pass to the first caller waiting"
            if not candidates:
                self.dead_chains[group(key)] += 1
                assert all(c.slot.done for c in waiting)
        else:
            expected = {"fill": Shared, "fail": SharedFailure, "unshare": RunYourself}[kind]
            for c in waiting:
                if not c.late:
                    assert c.slot.done, f"follower #{c.seq} was not answered"
                    assert type(c.slot.value) is expected
            late = [c for c in waiting if c.late and not c.slot.abandoned]
            assert leads == late[:1], "the late followers' run did not go to the first of them"
            if kind == "fill":
                if ttl > 0 and run.epoch == self.epoch:
                    self.entries[key.digest] = (run, self.now + ttl)
                    self._count(key)["fills"] += 1
                assert self.actor.has_live(key) == (key.digest in self.entries)
        for c in waiting:
            c.late = False  # served, gave up, or following a leader that runs after it
        self._settle()

    # -- rules ---------------------------------------------------------------------------

    @rule(key=st.sampled_from(KEYS))
    def lookup(self, key: CacheKey) -> None:
        entry = self.entries.get(key.digest)
        if entry is not None and self.now >= entry[1]:
            del self.entries[key.digest]
            entry = None
        active = self._active(key)
        caller = Caller(len(self.callers), key, Slot(), self.life, self.cov[key.digest])
        self.callers.append(caller)
        self._call(Lookup(key), caller.slot)
        slot, count = caller.slot, self._count(key)
        if entry is not None:
            assert type(slot.value) is Hit
            caller.handled = True
            count["hits"] += 1
            run = entry[0]
            assert slot.value.stored == self._value_of(run)
            self._check_fresh(caller, run, "fill")
            return
        count["misses"] += 1
        if not active:
            assert type(slot.value) is Lead
        else:
            assert not slot.done, f"expected to wait, got {slot.value!r}"
            caller.late = active[0].epoch != self.epoch
        self._settle()

    # Rules are drawn uniformly: the next four make followers, late followers and their
    # hand-overs common rather than rare.
    @precondition(lambda self: self._active())
    @rule(data=st.data())
    def join_a_flight(self, data: st.DataObject) -> None:
        self.lookup(data.draw(st.sampled_from(self._active()), label="run").key)

    @precondition(lambda self: self._active())
    @rule(data=st.data())
    def invalidate_a_flight(self, data: st.DataObject) -> None:
        self.invalidate(Invalidate(key=data.draw(st.sampled_from(self._active()), label="run").key))

    def _late(self) -> list[Caller]:
        return [c for c in self.callers if c.late and not c.slot.done and not c.slot.abandoned]

    @precondition(lambda self: self._late())
    @rule(data=st.data(), kind=st.sampled_from(REPORTS))
    def leader_of_late_followers_reports(self, data: st.DataObject, kind: str) -> None:
        late = data.draw(st.sampled_from(self._late()), label="late")
        self._report(self._active(late.key)[0], kind)

    @precondition(lambda self: self._late())
    @rule(data=st.data())
    def late_follower_gives_up(self, data: st.DataObject) -> None:
        data.draw(st.sampled_from(self._late()), label="late").slot.abandoned = True

    @rule(key=st.sampled_from(KEYS))
    def lookup_abandoned_in_mailbox(self, key: CacheKey) -> None:
        """A caller cancelled before the actor took its lookup: nothing happens."""
        before = self._snapshot()
        slot = Slot()
        slot.abandoned = True
        self._call(Lookup(key), slot)
        assert slot.deliveries == 0
        assert self._snapshot() == before

    @precondition(lambda self: self._active())
    @rule(data=st.data(), kind=st.sampled_from(REPORTS), ttl=st.sampled_from(TTLS))
    def leader_reports(self, data: st.DataObject, kind: str, ttl: float) -> None:
        run = data.draw(st.sampled_from(self._active()), label="run")
        self._report(run, kind, ttl)

    @precondition(
        lambda self: any(
            c.life == self.life and not c.slot.done and not c.slot.abandoned for c in self.callers
        )
    )
    @rule(data=st.data())
    def follower_gives_up(self, data: st.DataObject) -> None:
        waiting = [
            c
            for c in self.callers
            if c.life == self.life and not c.slot.done and not c.slot.abandoned
        ]
        caller = data.draw(st.sampled_from(waiting), label="caller")
        caller.slot.abandoned = True  # what Actor.call does when its caller is cancelled

    @rule(message=st.sampled_from(INVALIDATIONS))
    def invalidate(self, message: Invalidate) -> None:
        removed = 0
        self.epoch += 1
        for key in KEYS:
            if covers(message, key):
                self.cov[key.digest] += 1
                entry = self.entries.pop(key.digest, None)
                removed += entry is not None and self.now < entry[1]
        slot = Slot()
        self._call(message, slot)
        assert slot.value == removed

    @rule(dt=st.sampled_from([0.5, 1.0, 3.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @precondition(lambda self: len(self.callers) % 6 == 5)  # now and then
    @rule()
    def restart(self) -> None:
        """The actor crashes and is restarted: deferred callers fail; leases go on."""
        waiting = [c for c in self.callers if c.life == self.life and not c.slot.done]
        self.actor._shutdown(RuntimeError("injected crash"))
        assert all(isinstance(c.slot.error, ActorUnavailable) for c in waiting)
        self.expect_error = True
        self._settle()
        self.expect_error = False
        self._start()

    @precondition(lambda self: self.runs)
    @rule(data=st.data(), kind=st.sampled_from(REPORTS), key=st.sampled_from(KEYS))
    def stale_report(self, data: st.DataObject, kind: str, key: CacheKey) -> None:
        """A report whose lease is not the current leader's of that key changes nothing:
        a leader from before a restart, a duplicate, a running leader's lease with
        another key, or a lease never handed out (0, or the next one)."""
        stale = [r for r in self.runs if r.outcome is not None or r.life != self.life]
        sources = [("run", r) for r in stale]
        sources += [("foreign", r) for r in self._active() if r.key.digest != key.digest]
        sources += [("never", 0), ("never", self.actor._leases + 1)]
        source, what = data.draw(st.sampled_from(sources), label="lease")
        if source == "run":
            run_key, lease, epoch, rid = what.key, what.lease, what.epoch, what.rid
        elif source == "foreign":
            run_key, lease, epoch, rid = key, what.lease, self.epoch, what.rid
        else:
            run_key, lease, epoch, rid = key, what, self.epoch, 0
        before = self._snapshot()
        if kind == "fill":
            self._cast(Fill(run_key, freeze(("run", rid)), 1.0, epoch, lease))
        elif kind == "fail":
            self._cast(Fail(run_key, ToolResult(False, rid, error="boom"), lease))
        elif kind == "unshare":
            self._cast(Unshare(run_key, lease))
        else:
            self._cast(Release(run_key, lease))
        assert self._snapshot() == before, f"a {kind} with a stale lease changed the actor"
        if source == "run" and what.outcome is None:
            what.outcome = kind  # a leader from before the restart has now reported

    @precondition(lambda self: len(self.callers) % 4 == 3)  # now and then
    @rule()
    def all_leaders_finish(self) -> None:
        """Leaders finish until none is left: then every caller has exactly one reply."""
        for _ in range(len(self.callers) + 1):
            active = self._active()
            if not active:
                break
            for run in active:
                self._report(run, "fill")
        assert not self._active()
        for caller in self.callers:
            assert caller.slot.deliveries == 1, f"caller #{caller.seq} is still waiting"
        snapshot = self._stats()
        assert (snapshot.in_flight, snapshot.waiting_followers) == (0, 0)
        assert not self.actor._deferred
        for g, count in self.counts.items():
            counters = snapshot.store.by_operation.get(g, CacheCounters())
            executions = (
                sum(
                    1
                    for r in self.runs
                    if r.life == self.life and group(r.key) == g and r.outcome != "release"
                )
                + count["bypasses"]
            )
            # docs/cache.md; a leader cancelled with nobody to take over ran no tool.
            assert executions + self.dead_chains[g] == (
                counters.misses - counters.coalesced + counters.bypasses
            )

    # -- invariants ----------------------------------------------------------------------

    def _stats(self) -> Any:
        slot = Slot()
        self._call(GetStats(), slot)
        return slot.value

    @invariant()
    def one_leader_per_key_and_the_table_holds_exactly_them(self) -> None:
        active = self._active()
        assert len({r.key.digest for r in active}) == len(active)
        assert {r.key.digest: r.lease for r in active} == {
            digest: flight.lease for digest, flight in self.actor._flights.items()
        }

    @invariant()
    def at_most_one_reply_and_nobody_waits_on_nothing(self) -> None:
        running = {r.key.digest for r in self._active()}
        for caller in self.callers:
            assert caller.slot.deliveries <= 1, f"caller #{caller.seq} was answered twice"
            if not caller.slot.done:
                assert caller.life == self.life
                assert caller.key.digest in running, f"caller #{caller.seq} waits on no leader"

    @invariant()
    def counters_add_up(self) -> None:
        snapshot = self._stats()
        waiting = [c for c in self.callers if c.life == self.life and not c.slot.done]
        assert snapshot.in_flight == len(self._active())
        assert snapshot.waiting_followers == len(waiting)
        by_operation = snapshot.store.by_operation
        for g in {group(k) for k in KEYS}:
            counters = by_operation.get(g, CacheCounters())
            count = self.counts.get(g, Counter())
            runs = [r for r in self.runs if r.life == self.life and group(r.key) == g]
            late = sum(1 for c in waiting if c.late and group(c.key) == g)
            assert counters.hits == count["hits"]
            assert counters.misses == count["misses"]
            assert counters.bypasses == count["bypasses"]
            assert counters.fills == count["fills"]
            # Each uncoalesced miss started a line of runs (a cancelled leader hands its
            # run to a follower): finished, still running, or cancelled with nobody to
            # take over; late followers are counted when they are served or give up.
            lines = sum(1 for r in runs if r.outcome != "release") + self.dead_chains[g]
            assert counters.misses - counters.coalesced == lines + late


FlightMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=50)
TestFlightModel = FlightMachine.TestCase
