"""Params built by code can share containers, or contain themselves.  JSON cannot express
either, so such params come from a program, not a wire -- but a call with them must
still finish: nothing on the call's path may walk a shared container once per path
(``x = [x, x]`` forty times over is forty lists, and 2**40 paths)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import pytest

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.cache import Uncacheable, make_key
from runtime.cache.codec import NotJsonValue, serialise
from runtime.tracer.redact import CYCLE, REDACTED


def finishes_within(seconds: float, work: Callable[[], Any]) -> Any:
    """``work()``'s value or exception, failing (not hanging) past ``seconds``."""
    outcome: list[Any] = []

    def run() -> None:
        try:
            outcome.append(work())
        except Exception as exc:
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    assert outcome, f"did not finish in {seconds} s"
    return outcome[0]


def tower(levels: int) -> Any:
    level: Any = ["leaf"]
    for _ in range(levels):
        level = [level, {"left": level}]
    return level


def test_a_cache_key_refuses_params_too_large_to_write_out() -> None:
    outcome = finishes_within(30, lambda: make_key("acme", "CI", "search", {"t": tower(40)}))
    assert isinstance(outcome, Uncacheable)
    assert "nested containers" in str(outcome)


def test_a_shared_container_keys_as_its_copies_do() -> None:
    shared = {"env": "prod", "tags": [{"k": 1}]}
    alike = {"env": "prod", "tags": [{"k": 1}]}
    assert make_key("acme", "CI", "search", {"a": shared, "b": shared}) == make_key(
        "acme", "CI", "search", {"a": alike, "b": dict(alike)}
    )


def test_a_result_too_large_to_write_out_is_refused_for_the_shared_tier() -> None:
    outcome = finishes_within(30, lambda: serialise({"t": tower(40)}))
    assert isinstance(outcome, NotJsonValue)
    assert "nested containers" in str(outcome)
    shared = [1, 2]
    assert serialise({"a": shared, "b": shared}) == b'{"a":[1,2],"b":[1,2]}'


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_calls_with_shared_or_cyclic_params_finish_and_are_traced(backend: str) -> None:
    # Its own event loop in a watched thread: a regression here is synchronous work no
    # cancel scope can interrupt, and must fail the test rather than hang the suite.
    registry = ToolRegistry()

    @registry.tool("CI", "search")
    async def search(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        return {"records": [{"ci_id": 1}]}

    cyclic: dict[str, Any] = {"password": "hunter22"}
    cyclic["a"] = cyclic
    cyclic["b"] = cyclic
    ctx = ToolContext(tenant_id="acme")

    async def session() -> tuple[Any, ...]:
        async with open_runtime(registry) as rt:
            assert rt.tracer is not None
            first = await rt.execute("CI", "search", {"t": tower(40)}, ctx)
            second = await rt.execute("CI", "search", {"c": cyclic}, ctx)
            return first, second, await rt.tracer.records(), await rt.tracer.export("json")

    outcome = finishes_within(60, lambda: anyio.run(session, backend=backend))
    assert not isinstance(outcome, Exception), outcome
    first, second, records, text = outcome
    assert first == second == {"records": [{"ci_id": 1}]}
    assert len(records) == 2
    assert records[1].params == {"c": {"password": REDACTED, "a": CYCLE, "b": CYCLE}}
    assert "hunter22" not in text
