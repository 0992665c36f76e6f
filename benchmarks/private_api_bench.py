"""What each private attribute of another library saves on the path it serves.

The runtime reads two private attributes where the public API is slower on a hot path:
anyio's memory-stream buffer (the actor's batch drain) and CPython's
``json.encoder.c_make_encoder`` (the cache key's canonical encoding).  The rule
(docs/architecture.md, "Private attributes of other libraries") keeps one only while it
saves more than 5 % of its hot path.  Each is measured here against its public
replacement in the same run, alternating rounds: the encoder on ``Runtime.execute``
answered from the cache, the buffer on sequential ``Actor.call`` round trips.

    python benchmarks/private_api_bench.py [--quick]

Figures: ``<name>_private_us`` / ``<name>_public_us`` per call and ``<name>_saved_pct``,
the share of the public path's cost the private attribute saves.  Costs are CPU time of
this process (``time.process_time``), so a machine shared with other work skews them less.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio
import anyio.lowlevel
from _common import emit, parse_args

import runtime.actor as actor_module
import runtime.cache.keys as keys_module
from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.actor import Actor, ReplySlot

Figures = dict[str, Any]


class Echo(Actor[int]):
    def handle_call(self, message: int, slot: ReplySlot) -> int:
        return message


@contextmanager
def public_mailbox() -> Iterator[None]:
    saved = actor_module._peek_buffer
    actor_module._peek_buffer = lambda receive: None
    try:
        yield
    finally:
        actor_module._peek_buffer = saved


@contextmanager
def public_encoder() -> Iterator[None]:
    saved = keys_module._C_ENCODE
    keys_module._C_ENCODE = None
    try:
        yield
    finally:
        keys_module._C_ENCODE = saved


def _registry() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool("CI", "get")
    async def get(ctx: ToolContext, params: Any) -> Any:
        return {"ci_id": params["ci_id"], "name": "web-1"}

    return registry


async def _hits(calls: int) -> float:
    """Per-call microseconds of ``execute`` answered from the cache, in a fresh runtime
    (so switches made before it apply to it)."""
    ctx = ToolContext(tenant_id="acme")
    params = {"ci_id": 7, "fields": ["name", "status"], "depth": 2}
    async with open_runtime(_registry()) as rt:
        await rt.execute("CI", "get", params, ctx)  # the one miss
        started = time.process_time()
        for _ in range(calls):
            await rt.execute("CI", "get", params, ctx)
        return (time.process_time() - started) / calls * 1e6


async def _round_trips(calls: int) -> float:
    """Per-call microseconds of a sequential ``Actor.call``."""
    actor = Echo("echo")
    async with anyio.create_task_group() as tg:
        await tg.start(actor.serve)
        started = time.process_time()
        for i in range(calls):
            await actor.call(i)
        elapsed = time.process_time() - started
        actor.stop()
    return elapsed / calls * 1e6


def _compare(
    backend: str,
    measure: Callable[[int], Any],
    public: Callable[[], Any],
    calls: int,
    rounds: int,
) -> tuple[float, float, float]:
    """Median private and public costs, and the median per-round saving (%)."""
    private_us: list[float] = []
    public_us: list[float] = []
    for round_ in range(rounds):
        gc.collect()
        for side in ("private", "public") if round_ % 2 else ("public", "private"):
            if side == "private":
                private_us.append(anyio.run(measure, calls, backend=backend))
            else:
                with public():
                    public_us.append(anyio.run(measure, calls, backend=backend))
    saved = [(pub - priv) / pub * 100 for priv, pub in zip(private_us, public_us, strict=True)]
    return statistics.median(private_us), statistics.median(public_us), statistics.median(saved)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    calls, rounds = (2_000, 7) if args.quick else (10_000, 15)
    cases: list[tuple[str, str, Callable[[int], Any], Callable[[], Any]]] = [
        ("mailbox_buffer", backend, _round_trips, public_mailbox) for backend in ("trio", "asyncio")
    ]
    cases += [("c_encoder", backend, _hits, public_encoder) for backend in ("trio", "asyncio")]
    figures: Figures = {}
    for name, backend, measure, public in cases:
        private, public_cost, saved = _compare(backend, measure, public, calls, rounds)
        figures[f"{name}_private_us_{backend}"] = round(private, 3)
        figures[f"{name}_public_us_{backend}"] = round(public_cost, 3)
        figures[f"{name}_saved_pct_{backend}"] = round(saved, 1)
    emit("private_api_bench", figures, quick=args.quick)


if __name__ == "__main__":
    main()
