"""open_runtime: lifecycle, supervision of crashed actors, shutdown with work in flight."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.config import RuntimeConfig, SupervisionConfig, TracerConfig
from runtime.errors import ActorUnavailable
from runtime.ops.config import ops_defaults
from runtime.selector.actor import SelectorActor

pytestmark = pytest.mark.anyio

CTX = ToolContext(tenant_id="acme")


def counting_registry() -> tuple[ToolRegistry, Counter[str], anyio.Event]:
    registry = ToolRegistry()
    calls: Counter[str] = Counter()
    gate = anyio.Event()

    @registry.tool("CI", "get")
    async def get(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        calls["get"] += 1
        return {"ci_id": params["ci_id"]}

    @registry.tool("CI", "slow")
    async def slow(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        calls["slow"] += 1
        await gate.wait()
        return "slow"

    return registry, calls, gate


class Explosion(Exception):
    pass


def explode(*args: Any) -> Any:
    raise Explosion("injected fault")


async def test_leaving_the_runtime_leaves_no_task_behind() -> None:
    registry, _, _ = counting_registry()
    before = len(anyio.get_running_tasks())
    async with open_runtime(registry, ops_defaults()) as rt:
        assert len(anyio.get_running_tasks()) > before
        await rt.execute("CI", "get", {"ci_id": 1}, CTX)
        assert rt.health().ok
        assert set(rt.health().actors) == {"cache", "tracer", "selector"}
    assert len(anyio.get_running_tasks()) == before


async def test_a_crashed_cache_actor_is_restarted_and_calls_never_fail() -> None:
    registry, calls, _ = counting_registry()
    with anyio.fail_after(10):
        async with open_runtime(registry, ops_defaults()) as rt:
            assert rt.cache is not None
            actor = rt._cache.actor
            await rt.execute("CI", "get", {"ci_id": 1}, CTX)
            actor.handle_call = explode  # type: ignore[method-assign]
            # A miss's lookup crashes the actor: the call bypasses the cache and answers.
            assert await rt.execute("CI", "get", {"ci_id": 5}, CTX) == {"ci_id": 5}
            del actor.handle_call
            while not actor.running:
                await anyio.lowlevel.checkpoint()
            health = rt.health()
            assert health.crashes["cache"] == 1
            assert health.actors["cache"].starts == 2
            assert health.ok
            # Fresh state after the restart: one miss, then hits again.
            await rt.execute("CI", "get", {"ci_id": 1}, CTX)
            await rt.execute("CI", "get", {"ci_id": 1}, CTX)
            stats = await rt.cache.stats()
    assert calls["get"] == 3  # ci_id 1 before the crash, 5 bypassing, 1 after the restart
    assert stats.actor_unavailable == 1
    assert stats.snapshot.store.total.hits == 1


async def test_an_actor_crashing_too_often_stays_down_and_the_runtime_degrades() -> None:
    registry, calls, _ = counting_registry()
    config = RuntimeConfig(supervision=SupervisionConfig(max_restarts=2, window=60.0))
    with anyio.fail_after(10):
        async with open_runtime(registry, config) as rt:
            assert rt.cache is not None
            actor = rt._cache.actor
            actor.handle_call = explode  # type: ignore[method-assign]
            for _ in range(6):
                assert await rt.execute("CI", "get", {"ci_id": 2}, CTX) == {"ci_id": 2}
                await anyio.wait_all_tasks_blocked()
            health = rt.health()
            assert not health.ok
            assert health.down["cache"] == "Explosion: injected fault"
            assert health.crashes["cache"] == 3
            assert not actor.running
    assert calls["get"] == 6


async def test_a_crashed_tracer_costs_reports_not_answers() -> None:
    registry, _, _ = counting_registry()
    # No batch window: each report is handled before the test looks (deterministic).
    config = RuntimeConfig(tracer=TracerConfig(batch_window=0))
    with anyio.fail_after(10):
        async with open_runtime(registry, config) as rt:
            assert rt.tracer is not None
            rt._tracer.handle_casts = explode  # type: ignore[method-assign]
            for i in range(3):
                assert await rt.execute("CI", "get", {"ci_id": i}, CTX) == {"ci_id": i}
                await anyio.wait_all_tasks_blocked()
            del rt._tracer.handle_casts
            assert rt.health().crashes["tracer"] == 3
            await rt.execute("CI", "get", {"ci_id": 9}, CTX)
            stats = await rt.tracer.tracer_stats()
            assert stats.tool("CI", "get").count == 1  # fresh state after the last restart


async def test_shutdown_with_calls_in_flight_does_not_hang() -> None:
    registry, calls, gate = counting_registry()
    answers: list[Any] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as app:
            async with open_runtime(registry, ops_defaults()) as rt:

                async def ask() -> None:
                    answers.append(await rt.execute("CI", "slow", {}, CTX))

                for _ in range(20):
                    app.start_soon(ask)
                await anyio.wait_all_tasks_blocked()
                assert calls["slow"] == 1  # one leader, 19 followers
            # The runtime is gone; the followers were released and run the tool themselves.
            await anyio.wait_all_tasks_blocked()
            gate.set()
    assert answers == ["slow"] * 20


async def test_unknown_composition_lists_the_known_ones() -> None:
    registry, _, _ = counting_registry()
    async with open_runtime(registry, ops_defaults()) as rt:
        with pytest.raises(LookupError, match="impact_analysis, search_with_context"):
            await rt.compose("nope", {}, CTX)


async def test_errors_raised_in_the_block_come_out_unwrapped() -> None:
    registry, _, _ = counting_registry()
    with pytest.raises(KeyError, match="mine"):
        async with open_runtime(registry):
            raise KeyError("mine")


async def test_an_actor_that_cannot_start_leaves_the_runtime_open_and_degraded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(SelectorActor, "on_start", explode)
    registry, _, _ = counting_registry()
    config = RuntimeConfig(supervision=SupervisionConfig(max_restarts=1, window=60.0))
    with anyio.fail_after(5):
        async with open_runtime(registry, config) as rt:
            assert await rt.execute("CI", "get", {"ci_id": 3}, CTX) == {"ci_id": 3}
            with pytest.raises(ActorUnavailable):
                await rt.select("LOOKUP")
            health = rt.health()
            assert health.down == {"selector": "Explosion: injected fault"}
            assert health.crashes["selector"] == 2
