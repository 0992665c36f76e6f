"""The tracer's figures with caller-side batching on (batch_window > 0, the default):
every report is observed or counted as dropped, one by one, as unbatched casts are --
in the tracer's statistics and in the actor's own (``rt.health()``) alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest

from runtime import ActorUnavailable, ToolContext, ToolRegistry, config_from_dict, open_runtime
from runtime.calls import CallReport
from runtime.tracer.actor import TracerActor

pytestmark = pytest.mark.anyio

CTX = ToolContext("acme")


def make_report(n: int = 0, **overrides: Any) -> CallReport:
    values: dict[str, Any] = {
        "kind": "tool_call",
        "trace_id": "t-1",
        "span_id": f"s-{n}",
        "parent_span_id": None,
        "tool_type": "CI",
        "operation": "search",
        "tenant_id": "acme",
        "started_at": float(n),
        "started_wall": 1_700_000_000.0 + n,
        "duration_s": 0.002,
        "status": "ok",
    }
    values.update(overrides)
    return CallReport(**values)


def registry() -> ToolRegistry:
    reg = ToolRegistry()

    @reg.tool("AUDIT", "ok")
    async def ok(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        return {"n": params.get("n", 0)}

    return reg


class Explosion(Exception):
    pass


def explode(*args: Any) -> Any:
    raise Explosion("injected fault")


# -- drops reach ActorStats.dropped and Runtime.health() ------------------------------------


async def test_batched_drops_are_counted_in_actor_stats_like_unbatched_ones() -> None:
    # docs/tracer.md, "Drops": counted in the tracer's statistics and in rt.health().
    tracer = TracerActor(batch_window=0.002, mailbox_size=8, batch_size=4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            # No checkpoint: the tracer cannot run; 8 reports fit, 12 are dropped.
            for n in range(20):
                tracer.call_finished(make_report(n))
            stats = await tracer.tracer_stats()
            actor_dropped = tracer.stats().dropped
            tracer.stop()
    assert (stats.observed, stats.dropped) == (8, 12)
    assert actor_dropped == stats.dropped


async def test_reports_to_a_tracer_left_down_are_counted_in_health() -> None:
    # docs/reliability.md: past max_restarts the tracer stays down and "reports are
    # dropped and counted (ActorStats.dropped)" -- with the default batch window too.
    settings = config_from_dict({"supervision": {"max_restarts": 2, "window": "60s"}})
    assert settings.tracer.batch_window > 0  # the default: batching on
    with anyio.fail_after(10):
        async with open_runtime(registry(), settings) as rt:
            tracer = rt._tracer
            assert tracer is not None
            tracer.handle_casts = explode  # type: ignore[method-assign,assignment]
            for n in range(3):  # each read hands a batch over, which crashes the tracer
                await rt.execute("AUDIT", "ok", {"n": n}, CTX)
                with pytest.raises(ActorUnavailable):
                    await tracer.tracer_stats()
                await anyio.sleep(0.01)
            assert rt.health().down.keys() == {"tracer"}
            for n in range(10):
                await rt.execute("AUDIT", "ok", {"n": n}, CTX)
            with pytest.raises(ActorUnavailable):
                await tracer.tracer_stats()  # hands the pending ones over: dropped
            health = rt.health()
    assert health.actors["tracer"].mailbox_used == 0
    assert health.actors["tracer"].dropped >= 10


# -- shutdown: reports not handled are counted, one by one --------------------------------


async def test_shutdown_counts_every_report_of_a_queued_batch() -> None:
    # Unbatched, each cast still queued when the tracer is cancelled is one drop; so is
    # each report of a queued batch.
    tracer = TracerActor(batch_window=0.002, batch_size=4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            # Shutdown begins (as open_runtime's exit does) while calls still finish.
            group.cancel_scope.cancel()
            for n in range(8):  # two batches cast; the tracer never handles them
                tracer.call_finished(make_report(n))
    # Every report is either observed or counted as dropped.
    assert tracer._state.observed + tracer.stats().dropped == 8


async def test_runtime_exit_with_pending_reports_counts_them_as_dropped() -> None:
    # open_runtime stops its actors by cancelling them: the reports still in the
    # callers' batch are lost, so they are counted as dropped, not left "waiting" on a
    # stopped actor.
    with anyio.fail_after(10):
        async with open_runtime(registry(), config_from_dict({})) as rt:
            tracer = rt._tracer
            assert tracer is not None
            for n in range(5):
                await rt.execute("AUDIT", "ok", {"n": n}, CTX)
    after = tracer.stats()
    assert not after.running
    assert after.mailbox_used == 0
    assert after.dropped == 5


# -- mailbox_used counts reports, not batches -----------------------------------------------


async def test_mailbox_used_counts_reports_in_queued_batches() -> None:
    # The mailbox bound counts reports, so mailbox_used does too: a nearly full tracer
    # must not look nearly empty.
    tracer = TracerActor(batch_window=0.002, mailbox_size=100, batch_size=10)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            for n in range(50):  # five batches cast, none handled yet
                tracer.call_finished(make_report(n))
            used = tracer.stats().mailbox_used
            stats = await tracer.tracer_stats()
            tracer.stop()
    assert stats.observed == 50
    assert used >= 50
