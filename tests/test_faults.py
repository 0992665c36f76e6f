"""Fault injection: every fault has a documented outcome, and a test proving it.

The table in docs/reliability.md lists these faults, their outcomes and the tests below.
Every test runs on asyncio and on trio (conftest); the timing ones on virtual time, so a
timeout is checked to the exact virtual second.

The faulty tools are in-process fakes (:class:`FaultKit`) that count how often they really
ran, so "the tool ran once for ten callers" is observed by the tool, not inferred from the
runtime's own statistics.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from runtime import (
    ActorUnavailable,
    Runtime,
    ToolContext,
    ToolExecutionError,
    ToolRegistry,
    ToolTimeout,
    config_from_dict,
    open_runtime,
)
from runtime.cache.actor import Release
from runtime.config import RuntimeConfig

pytestmark = pytest.mark.anyio

CTX = ToolContext("acme")
HANG_TIMEOUT = 2.5
MAX_BYTES = 1 << 20  # 1 MiB of cache
HUGE_ITEMS = 40_000  # ~2.2 MB as pickle, ~2.5 MB as JSON


class DiskOnFire(OSError):
    """The error a broken tool raises (a subclass, to check the type name is kept)."""


class Unrepresentable:
    """A value nothing can serialise: pickling, JSON and even repr() raise."""

    def __reduce__(self) -> Any:
        raise TypeError("no pickling this")

    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


class FaultKit:
    """Fake tools with injected faults; ``runs`` counts real executions per operation."""

    def __init__(self) -> None:
        self.registry = ToolRegistry()
        self.runs: Counter[str] = Counter()
        self.cancelled: Counter[str] = Counter()
        self.gate = anyio.Event()
        registry = self.registry

        @registry.tool("FAULT", "ok")
        async def ok(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.runs["ok"] += 1
            return {"n": params.get("n", 0), "tenant": ctx.tenant_id}

        @registry.tool("FAULT", "gated")
        async def gated(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.runs["gated"] += 1
            await self.gate.wait()
            return {"n": params.get("n", 0)}

        @registry.tool("FAULT", "raise")
        async def raises(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.runs["raise"] += 1
            if params.get("wait"):
                await self.gate.wait()
            raise DiskOnFire(28, "no space left on device")

        @registry.tool("FAULT", "hang")
        async def hang(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.runs["hang"] += 1
            try:
                await anyio.sleep_forever()
            finally:
                self.cancelled["hang"] += 1

        @registry.tool("FAULT", "huge")
        async def huge(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.runs["huge"] += 1
            count = params.get("items", HUGE_ITEMS)
            return {"items": [f"item-{i:08d}-{'x' * 40}" for i in range(count)]}

        @registry.tool("FAULT", "unpicklable")
        async def unpicklable(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.runs["unpicklable"] += 1
            if params.get("wait"):
                await self.gate.wait()
            return {"lock": threading.Lock(), "n": params.get("n", 0)}

        @registry.tool("FAULT", "unrepresentable")
        async def unrepresentable(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.runs["unrepresentable"] += 1
            return Unrepresentable()


def config(**sections: Any) -> RuntimeConfig:
    base: dict[str, Any] = {
        "executor": {"timeouts": {"FAULT": {"hang": HANG_TIMEOUT}}},
        "cache": {"max_bytes": MAX_BYTES},
    }
    base.update(sections)
    return config_from_dict(base)


async def settle() -> None:
    """Let the actors drain their mailboxes (the tracer works in batches)."""
    await anyio.sleep(0.05)
    await anyio.wait_all_tasks_blocked()


async def assert_quiescent(rt: Runtime) -> None:
    """No waiter leaked: no deferred reply, no queued message, no open flight."""
    if rt.tracer is not None and rt.health().actors["tracer"].running:
        await rt.tracer.tracer_stats()  # a read hands over any reports still batched
    await settle()
    for name, actor in rt.health().actors.items():
        assert actor.deferred_replies == 0, name
        assert actor.mailbox_used == 0, name
    if rt.cache is not None and rt._cache.actor.running:
        snapshot = (await rt.cache.stats()).snapshot
        assert snapshot.in_flight == 0
        assert snapshot.waiting_followers == 0
    assert rt.running_pipelines == 0


async def records_of(rt: Runtime, operation: str) -> list[Any]:
    assert rt.tracer is not None
    return [r for r in await rt.tracer.records() if r.operation == operation]


# -- tools that raise ---------------------------------------------------------------------


async def test_a_raising_tool_is_a_tool_execution_error_keeping_its_type() -> None:
    kit = FaultKit()
    with anyio.fail_after(10):
        async with open_runtime(kit.registry, config()) as rt:
            for _ in range(2):
                with pytest.raises(ToolExecutionError) as caught:
                    await rt.execute("FAULT", "raise", {}, CTX)
                assert caught.value.error_type == "DiskOnFire"
                assert isinstance(caught.value.__cause__, DiskOnFire)
                assert "no space left on device" in str(caught.value)
            # A failure is never cached: the second call ran the tool again.
            assert kit.runs["raise"] == 2
            result = await rt.execute_result("FAULT", "raise", {}, CTX)
            assert (result.success, result.error_type) == (False, "DiskOnFire")
            # The runtime keeps serving.
            assert await rt.execute("FAULT", "ok", {"n": 1}, CTX) == {"n": 1, "tenant": "acme"}
            assert rt.health().ok
            records = await records_of(rt, "raise")
            assert [(r.status, r.error_type) for r in records] == [("error", "DiskOnFire")] * 3
            stats = (await rt.cache.stats()).snapshot.store.by_operation  # type: ignore[union-attr]
            assert stats[("FAULT", "raise")].fills == 0
            await assert_quiescent(rt)


async def test_concurrent_callers_share_one_failure_instead_of_retrying_it() -> None:
    kit = FaultKit()
    errors: list[str] = []

    async def call() -> None:
        try:
            await rt.execute("FAULT", "raise", {"wait": True}, CTX)
        except ToolExecutionError as exc:
            errors.append(exc.error_type)

    with anyio.fail_after(10):
        async with open_runtime(kit.registry, config()) as rt, anyio.create_task_group() as tg:
            for _ in range(10):
                tg.start_soon(call)
            await anyio.wait_all_tasks_blocked()
            kit.gate.set()
    assert errors == ["DiskOnFire"] * 10
    assert kit.runs["raise"] == 1


# -- tools that hang ------------------------------------------------------------------------


@pytest.mark.virtual_time
async def test_a_hanging_tool_times_out_at_its_configured_timeout_and_is_cancelled() -> None:
    kit = FaultKit()
    async with open_runtime(kit.registry, config()) as rt:
        started = anyio.current_time()
        with pytest.raises(ToolTimeout) as caught:
            await rt.execute("FAULT", "hang", {}, CTX)
        assert anyio.current_time() - started == pytest.approx(HANG_TIMEOUT, abs=1e-9)
        assert caught.value.timeout == HANG_TIMEOUT
        assert kit.cancelled["hang"] == 1  # the tool was cancelled, not abandoned
        assert await rt.execute("FAULT", "ok", {}, CTX) == {"n": 0, "tenant": "acme"}
        records = await records_of(rt, "hang")
        assert [(r.status, r.error_type) for r in records] == [("timeout", "ToolTimeout")]
        assert records[0].duration_ms == pytest.approx(HANG_TIMEOUT * 1000, abs=1e-6)
        await assert_quiescent(rt)


@pytest.mark.virtual_time
async def test_callers_coalesced_on_a_hanging_tool_all_time_out_once() -> None:
    kit = FaultKit()
    finished: list[tuple[str, float]] = []

    async def call(delay: float) -> None:
        await anyio.sleep(delay)
        try:
            await rt.execute("FAULT", "hang", {}, CTX)
        except ToolTimeout:
            finished.append(("ToolTimeout", anyio.current_time() - start))

    async with open_runtime(kit.registry, config()) as rt:
        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            for i in range(8):
                tg.start_soon(call, i * 0.25)
        # Followers share the leader's timeout: all end when it does, the tool ran once.
        assert len(finished) == 8
        for error, elapsed in finished:
            assert error == "ToolTimeout"
            assert elapsed == pytest.approx(HANG_TIMEOUT, abs=1e-9)
        assert kit.runs["hang"] == 1
        await assert_quiescent(rt)


# -- huge results ---------------------------------------------------------------------------


async def test_a_huge_result_is_served_sized_in_the_trace_and_not_cached() -> None:
    kit = FaultKit()
    with anyio.fail_after(20):
        async with open_runtime(kit.registry, config()) as rt:
            assert rt.cache is not None
            for _ in range(2):
                data = await rt.execute("FAULT", "huge", {}, CTX)
                assert len(data["items"]) == HUGE_ITEMS
            # Over max_bytes: never stored, so each call runs the tool.
            assert kit.runs["huge"] == 2
            small = await rt.execute("FAULT", "huge", {"items": 10}, CTX)
            assert await rt.execute("FAULT", "huge", {"items": 10}, CTX) == small
            assert kit.runs["huge"] == 3  # a small result of the same tool is cached
            report = await rt.cache.stats()
            counters = report.snapshot.store.by_operation[("FAULT", "huge")]
            assert counters.rejected_oversize == 2
            assert counters.fills == 1
            assert report.snapshot.store.entries == 1
            assert report.snapshot.store.bytes_used < MAX_BYTES
            records = await records_of(rt, "huge")
            sizes = [r.result_size_bytes for r in records]
            assert sizes[0] is not None
            assert sizes[0] > 2 * MAX_BYTES
            assert sizes[0] == sizes[1]
            assert [r.result_count for r in records[:2]] == [HUGE_ITEMS, HUGE_ITEMS]
            await assert_quiescent(rt)


# -- values that cannot be serialised ------------------------------------------------------


def executions(counters: Any) -> int:
    """Tool runs the cache accounts for: leaders (misses that did not follow anyone) plus
    callers told to run the tool themselves (bypasses).  Exact when nobody is cancelled."""
    runs: int = counters.misses - counters.coalesced + counters.bypasses
    return runs


async def test_an_unpicklable_result_is_answered_and_not_cached() -> None:
    kit = FaultKit()
    with anyio.fail_after(10):
        async with open_runtime(kit.registry, config()) as rt:
            assert rt.cache is not None
            for _ in range(2):
                data = await rt.execute("FAULT", "unpicklable", {"n": 3}, CTX)
                assert data["n"] == 3
                assert type(data["lock"]) is type(threading.Lock())
            assert kit.runs["unpicklable"] == 2
            counters = (await rt.cache.stats()).snapshot.store.by_operation[
                ("FAULT", "unpicklable")
            ]
            assert counters.fills == 0
            assert rt.cache.key_for(rt.registry.get("FAULT", "unpicklable"), {"n": 3}, CTX)
            assert (await rt.cache.stats()).snapshot.store.entries == 0
            assert executions(counters) == 2
            records = await records_of(rt, "unpicklable")
            assert [r.status for r in records] == ["ok", "ok"]
            assert all(r.result_size_bytes for r in records)  # sized through repr()
            assert '"unpicklable"' in await rt.tracer.export("json")  # type: ignore[union-attr]
            assert rt.health().crashes == {"cache": 0, "tracer": 0, "selector": 0}
            await assert_quiescent(rt)


async def test_followers_of_an_unpicklable_result_run_the_tool_themselves() -> None:
    kit = FaultKit()
    answers: list[int] = []

    async def call() -> None:
        answers.append((await rt.execute("FAULT", "unpicklable", {"wait": 1}, CTX))["n"])

    with anyio.fail_after(10):
        async with open_runtime(kit.registry, config()) as rt:
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(call)
                await anyio.wait_all_tasks_blocked()
                assert kit.runs["unpicklable"] == 1  # one leader, four followers waiting
                kit.gate.set()
            assert answers == [0] * 5
            # The value could not be shared, so each follower computed its own.
            assert kit.runs["unpicklable"] == 5
            counters = (await rt.cache.stats()).snapshot.store.by_operation  # type: ignore[union-attr]
            assert counters[("FAULT", "unpicklable")].coalesced == 4
            assert counters[("FAULT", "unpicklable")].bypasses == 4  # told to run it themselves
            assert executions(counters[("FAULT", "unpicklable")]) == 5
            await assert_quiescent(rt)


async def test_a_value_nothing_can_serialise_is_answered_and_traced_without_a_crash() -> None:
    kit = FaultKit()
    with anyio.fail_after(10):
        async with open_runtime(kit.registry, config()) as rt:
            data = await rt.execute("FAULT", "unrepresentable", {}, CTX)
            assert isinstance(data, Unrepresentable)
            records = await records_of(rt, "unrepresentable")
            assert [(r.status, r.result_size_bytes) for r in records] == [("ok", None)]
            text = await rt.tracer.export("csv")  # type: ignore[union-attr]
            assert "unrepresentable" in text
            assert rt.health().crashes == {"cache": 0, "tracer": 0, "selector": 0}
            counters = (await rt.cache.stats()).snapshot.store.by_operation  # type: ignore[union-attr]
            assert counters[("FAULT", "unrepresentable")].fills == 0
            assert executions(counters[("FAULT", "unrepresentable")]) == 1
            await assert_quiescent(rt)


# -- the tracer actor crashing ---------------------------------------------------------------

# One cast per report (no batch window), so that each traced call is one chance to crash.
UNBATCHED = {"tracer": {"batch_window": 0}}


class Explosion(Exception):
    pass


def explode(*args: Any) -> Any:
    raise Explosion("injected fault")


async def test_a_crashing_tracer_costs_reports_never_answers_and_is_restarted() -> None:
    kit = FaultKit()
    with anyio.fail_after(10):
        async with open_runtime(kit.registry, config(**UNBATCHED)) as rt:
            tracer = rt._tracer
            assert tracer is not None
            tracer.handle_casts = explode  # type: ignore[method-assign,assignment]
            for n in range(3):
                assert (await rt.execute("FAULT", "ok", {"n": n}, CTX))["n"] == n
                await settle()
            del tracer.handle_casts
            health = rt.health()
            assert health.crashes["tracer"] == 3
            assert health.actors["tracer"].starts == 4
            assert health.ok
            assert tracer.running
            await rt.execute("FAULT", "ok", {"n": 9}, CTX)
            stats = (await tracer.tracer_stats()).tool("FAULT", "ok")
            assert stats is not None
            assert stats.count == 1  # fresh state after the restart
            await assert_quiescent(rt)


async def test_a_tracer_crashing_past_max_restarts_stays_down_and_calls_still_answer() -> None:
    kit = FaultKit()
    settings = config(supervision={"max_restarts": 2, "window": "60s"}, **UNBATCHED)
    with anyio.fail_after(10):
        async with open_runtime(kit.registry, settings) as rt:
            tracer = rt._tracer
            assert tracer is not None
            tracer.handle_casts = explode  # type: ignore[method-assign,assignment]
            for n in range(6):
                assert (await rt.execute("FAULT", "ok", {"n": n}, CTX))["n"] == n
                await settle()
            health = rt.health()
            assert health.down == {"tracer": "Explosion: injected fault"}
            assert not health.ok
            assert not tracer.running
            # Reports to a dead tracer are dropped and counted, never waited for.
            assert health.actors["tracer"].dropped >= 3
            with pytest.raises(ActorUnavailable):
                await tracer.tracer_stats()
            await assert_quiescent(rt)


# -- the cache actor crashing --------------------------------------------------------------


def explode_once(actor: Any, hook: str) -> None:
    """Make ``actor.<hook>`` raise once, then behave again."""

    def boom(*args: Any) -> Any:
        delattr(actor, hook)
        raise Explosion("injected fault")

    setattr(actor, hook, boom)


async def test_a_cache_crash_with_followers_waiting_bypasses_and_restarts_fresh() -> None:
    kit = FaultKit()
    answers: list[Any] = []

    async def call(n: int) -> None:
        answers.append(await rt.execute("FAULT", "gated", {"n": n}, CTX))

    with anyio.fail_after(10):
        async with open_runtime(kit.registry, config()) as rt:
            assert rt.cache is not None
            actor = rt._cache.actor
            await rt.execute("FAULT", "ok", {}, CTX)  # an entry the crash will lose
            async with anyio.create_task_group() as tg:
                for _ in range(5):
                    tg.start_soon(call, 1)  # one leader, four followers
                await anyio.wait_all_tasks_blocked()
                assert kit.runs["gated"] == 1
                explode_once(actor, "handle_call")
                tg.start_soon(call, 2)  # its lookup crashes the actor
                await anyio.wait_all_tasks_blocked()
                # The followers were failed with ActorUnavailable and ran the tool
                # themselves (bypass); so did the caller whose lookup crashed it.
                assert kit.runs["gated"] == 6
                kit.gate.set()
            assert sorted(a["n"] for a in answers) == [1] * 5 + [2]
            health = rt.health()
            assert health.ok
            assert health.crashes["cache"] == 1
            assert health.actors["cache"].starts == 2
            report = await rt.cache.stats()
            assert report.actor_unavailable == 5
            # Fresh state: the old entry is gone, and the leader's late fill was not kept.
            assert report.snapshot.store.entries == 0
            await rt.execute("FAULT", "ok", {}, CTX)
            await rt.execute("FAULT", "ok", {}, CTX)
            assert kit.runs["ok"] == 2
            assert (await rt.cache.stats()).snapshot.store.total.hits == 1
            records = await records_of(rt, "gated")
            assert sorted(r.metadata.get("cache") for r in records) == ["bypass"] * 5 + ["miss"]
            await assert_quiescent(rt)


async def test_a_cache_crashing_past_max_restarts_stays_down_and_calls_bypass_it() -> None:
    kit = FaultKit()
    settings = config(supervision={"max_restarts": 2, "window": "60s"})
    with anyio.fail_after(10):
        async with open_runtime(kit.registry, settings) as rt:
            assert rt.cache is not None
            actor = rt._cache.actor
            actor.handle_call = explode  # type: ignore[method-assign,assignment]
            for _ in range(6):
                assert await rt.execute("FAULT", "ok", {"n": 4}, CTX) == {"n": 4, "tenant": "acme"}
                await anyio.wait_all_tasks_blocked()
            health = rt.health()
            assert health.down == {"cache": "Explosion: injected fault"}
            assert health.crashes["cache"] == 3
            assert not actor.running
            # Degraded, not dead: every call runs the tool, and is traced as a bypass.
            assert kit.runs["ok"] == 6
            records = await records_of(rt, "ok")
            assert [r.metadata.get("cache") for r in records] == ["bypass"] * 6
            with pytest.raises(ActorUnavailable, match="Explosion"):
                await rt.cache.stats()
            assert not await rt.cache.contains(rt.registry.get("FAULT", "ok"), {"n": 4}, CTX)
            await assert_quiescent(rt)


# -- cancellation storms -----------------------------------------------------------------------


class StormTools:
    """Four slow operations; each run sleeps a seeded random time and is counted."""

    OPERATIONS = ("a", "b", "c", "d")

    def __init__(self, rng: random.Random, scale: float = 1.0) -> None:
        self.scale = scale
        self.registry = ToolRegistry()
        self.runs: Counter[str] = Counter()
        self.cancelled: Counter[str] = Counter()
        self.completed: Counter[str] = Counter()
        for operation in self.OPERATIONS:
            self.registry.register("STORM", operation, self._tool(operation, rng))

    def _tool(self, operation: str, rng: random.Random) -> Any:
        async def tool(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
            self.runs[operation] += 1
            try:
                await anyio.sleep(rng.uniform(0.01, 0.4) * self.scale)
            except BaseException:
                self.cancelled[operation] += 1
                raise
            self.completed[operation] += 1
            if params["k"] == 4:
                raise DiskOnFire(5, "flaky")
            return {"op": operation, "k": params["k"]}

        return tool


def watch_releases(actor: Any) -> dict[str, Counter[str]]:
    """Count each Release cast by what it did: hand the lead to a waiting follower, close
    a flight nobody waits on any more, or nothing (the actor's flight table is private;
    this is the one place a test reads it, to make the accounting exact)."""
    handle_cast = actor.handle_cast
    seen: dict[str, Counter[str]] = {}

    def counting(message: Any) -> None:
        if type(message) is Release:
            had = message.key.digest in actor._flights
            handle_cast(message)
            still = message.key.digest in actor._flights
            kind = "noop" if not had else "handoff" if still else "abandoned"
            seen.setdefault(message.key.operation, Counter())[kind] += 1
        else:
            handle_cast(message)

    actor.handle_cast = counting
    return seen


async def cancellation_storm(seed: int, scale: float) -> None:
    """300 callers over 20 keys, a third never cancelled, a third cancelled at once, a
    third at a random moment; ten invalidations meanwhile.  Durations are ``scale`` times
    a tool run of 10-400 ms and arrivals spread over 1 s."""
    rng = random.Random(seed)
    tools = StormTools(rng, scale)
    outcomes: Counter[str] = Counter()

    async def caller(operation: str, k: int, start: float, patience: float | None) -> None:
        await anyio.sleep(start)
        with anyio.CancelScope() as scope:
            if patience is not None:
                scope.deadline = anyio.current_time() + patience
            result = await rt.execute_result("STORM", operation, {"k": k}, CTX)
            if result.success:
                assert result.data == {"op": operation, "k": k}
                outcomes["answered"] += 1
            else:
                assert (k, result.error_type) == (4, "DiskOnFire")
                outcomes["failed"] += 1
        if scope.cancelled_caught:
            outcomes["cancelled"] += 1

    async def invalidator() -> None:
        for _ in range(10):
            await anyio.sleep(rng.uniform(0.0, 0.3) * scale)
            assert rt.cache is not None
            await rt.cache.invalidate_tool("STORM", rng.choice(StormTools.OPERATIONS))

    async with open_runtime(tools.registry, config()) as rt:
        assert rt.cache is not None
        releases = watch_releases(rt._cache.actor)
        async with anyio.create_task_group() as tg:
            tg.start_soon(invalidator)
            for _ in range(300):  # 4 operations x 5 params = 20 keys
                operation, k = rng.choice(StormTools.OPERATIONS), rng.randrange(5)
                patience = rng.choice([None, 0.0, rng.uniform(0.0, 0.5) * scale])
                tg.start_soon(caller, operation, k, rng.uniform(0.0, 1.0) * scale, patience)
        assert sum(outcomes.values()) == 300
        assert outcomes["cancelled"] > 30
        assert outcomes["answered"] > 30
        await assert_quiescent(rt)
        store = (await rt.cache.stats()).snapshot.store
        for operation in StormTools.OPERATIONS:
            counters = store.by_operation[("STORM", operation)]
            flights = executions(counters)  # leaders made (no bypass in this storm)
            assert counters.bypasses == 0
            released = releases.get(operation, Counter())
            # Each flight ends exactly once: a run that completed (value or error, shared
            # with its followers), or a last leader cancelled with nobody left to take over.
            assert flights == tools.completed[operation] + released["abandoned"], operation
            # Every leader cancelled mid-run handed its lead back (to a follower, or by
            # closing the flight): no flight is ever left without a leader.  The excess
            # are leads given back unused: the caller's cancellation was already on its
            # way when the actor made it leader (Actor.call's on_late_reply).
            assert released["handoff"] + released["abandoned"] >= tools.cancelled[operation]
            assert released["noop"] == 0
            assert tools.runs[operation] == tools.completed[operation] + tools.cancelled[operation]
        # Still serving, with the cache working.
        await rt.execute("STORM", "a", {"k": 0}, CTX)
        runs = tools.runs["a"]
        await rt.execute("STORM", "a", {"k": 0}, CTX)
        assert tools.runs["a"] == runs
        await assert_quiescent(rt)


@pytest.mark.virtual_time
@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_a_cancellation_storm_leaks_nothing_and_the_stats_add_up(seed: int) -> None:
    with anyio.fail_after(1000):  # virtual seconds
        await cancellation_storm(seed, 1.0)


async def test_a_cancellation_storm_on_real_time_leaks_nothing() -> None:
    with anyio.fail_after(20):
        await cancellation_storm(4, 0.03)
