"""Shrink and replay: a bug injected in a test-only tool shrinks to a tiny example, and
the same seed replays the very same trace ids.

The injected bug is the classic one: a tool memoises its answers by params and forgets
the tenant, so tenant ``b`` is served tenant ``a``'s answer.  The runtime's cache is
tenant-safe, so only the tool leaks -- exactly the kind of bug a user's property test
must find and reduce to its essence: two calls, same params, different tenants.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st

from runtime import Pipeline, Step, ToolContext, ToolRegistry
from runtime.ops.config import ops_defaults
from runtime.testing import (
    ScriptedTool,
    open_test_runtime,
    params_key,
    virtual_time_backend_options,
)

BACKENDS = ["asyncio", "trio"]
Calls = list[tuple[str, int]]
calls_strategy = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 5)))


def leaky_tool() -> ScriptedTool:
    memo: dict[str, dict[str, Any]] = {}

    def respond(context: ToolContext, params: Mapping[str, Any], index: int) -> dict[str, Any]:
        # The injected bug: the memo key leaves out the tenant.
        key = params_key(params)
        if key not in memo:
            memo[key] = {"tenant": context.tenant_id, "k": params["k"]}
        return memo[key]

    return ScriptedTool("LEAKY", "get", respond=respond)


def run_calls(calls: Calls, backend: str, seed: int) -> tuple[bool, list[tuple[Any, ...]]]:
    """Run ``calls`` on a fresh test runtime; (a tenant got foreign data, trace ids)."""

    async def main() -> tuple[bool, list[tuple[Any, ...]]]:
        registry = ToolRegistry()
        leaky_tool().register(registry)
        leaked = False
        with anyio.fail_after(60):
            async with open_test_runtime(registry, ops_defaults(), seed=seed) as runtime:
                for tenant, k in calls:
                    data = await runtime.execute("LEAKY", "get", {"k": k}, ToolContext(tenant))
                    leaked = leaked or data["tenant"] != tenant
                assert runtime.tracer is not None
                records = await runtime.tracer.records()
        return leaked, [(r.trace_id, r.span_id, r.parent_span_id) for r in records]

    return anyio.run(main, backend=backend, backend_options=virtual_time_backend_options(backend))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_injected_tenant_leak_shrinks_to_two_calls(backend: str) -> None:
    shrunk = find(
        calls_strategy,
        lambda calls: run_calls(calls, backend, seed=0)[0],
        settings=settings(
            max_examples=300, database=None, suppress_health_check=[HealthCheck.too_slow]
        ),
    )
    assert len(shrunk) == 2
    (first_tenant, first_k), (second_tenant, second_k) = shrunk
    assert first_k == second_k
    assert first_tenant != second_tenant
    # ...and the shrunk example replays: same seed, same failure, same trace ids.
    leaked, ids = run_calls(shrunk, backend, seed=0)
    assert leaked
    assert run_calls(shrunk, backend, seed=0) == (True, ids)


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_same_seed_replays_the_same_trace_ids(backend: str) -> None:
    calls = [("a", 0), ("b", 0), ("a", 1), ("a", 0)]
    leaked, first = run_calls(calls, backend, seed=42)
    replay_leaked, again = run_calls(calls, backend, seed=42)
    _, other = run_calls(calls, backend, seed=43)
    assert leaked
    assert replay_leaked
    assert len(first) == len(calls)
    assert first == again
    assert {span for _, span, _ in first}.isdisjoint({span for _, span, _ in other})


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_composition_replays_with_the_same_ids(backend: str) -> None:
    async def main(seed: int) -> list[tuple[Any, ...]]:
        registry = ToolRegistry()
        for operation in ("a", "b"):
            ScriptedTool("FAKE", operation).register(registry)
        pipeline = Pipeline(
            "replayed",
            [Step("first", "FAKE", "a", {"n": 1}), Step("second", "FAKE", "b", {"n": 2})],
        )
        with anyio.fail_after(60):
            async with open_test_runtime(registry, ops_defaults(), seed=seed) as runtime:
                await runtime.compose(pipeline, {}, ToolContext("t"))
                assert runtime.tracer is not None
                records = await runtime.tracer.records()
        return [(r.kind, r.operation, r.trace_id, r.span_id, r.parent_span_id) for r in records]

    first, again = (
        anyio.run(main, 5, backend=backend, backend_options=virtual_time_backend_options(backend))
        for _ in range(2)
    )
    assert [kind for kind, *_ in first].count("step") == 2
    assert first == again
