"""What ``Actor.call`` costs over the floor: a bare request/reply on the same primitives.

The floor is the cheapest correct request/reply anyio offers on each backend: a memory
object stream as the mailbox, a server loop that answers each request by setting an
``anyio.Event`` reply slot.  ``Actor.call`` adds the gen_server guarantees (closed-mailbox
checks, abandoned-slot handling, crash draining, counters) and batch draining.  Both are
timed in the same process, alternating, sequentially and with 100 concurrent callers;
the figures are per-request microseconds and the ratios ours / floor (goal <= 1.25).

    python benchmarks/actor_overhead.py [--quick]
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import anyio
from _common import emit, parse_args

from runtime.actor import Actor, ReplySlot

MAILBOX = 1024


class _Slot:
    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.value: Any = None


class Increment(Actor[int]):
    def handle_call(self, message: int, slot: ReplySlot) -> int:
        return message + 1


async def floor_server(receive: Any) -> None:
    while True:
        try:
            request, slot = await receive.receive()
        except anyio.EndOfStream:
            return
        slot.value = request + 1
        slot.event.set()


async def floor_call(send: Any, request: int) -> int:
    slot = _Slot()
    try:
        send.send_nowait((request, slot))  # the cheapest path, as the actor takes it
    except anyio.WouldBlock:
        await send.send((request, slot))
    await slot.event.wait()
    value: int = slot.value
    return value


async def _drive(call: Any, callers: int, per_caller: int) -> float:
    async def one_caller(offset: int) -> None:
        for i in range(per_caller):
            result = await call(offset + i)
            if result != offset + i + 1:
                raise AssertionError(f"wrong reply {result} for {offset + i}")

    started = time.perf_counter()
    if callers == 1:
        await one_caller(0)
    else:
        async with anyio.create_task_group() as tg:
            for c in range(callers):
                tg.start_soon(one_caller, c * per_caller)
    return (time.perf_counter() - started) / (callers * per_caller) * 1e6


async def _measure(callers: int, per_caller: int, rounds: int) -> tuple[float, float]:
    floor_us: list[float] = []
    ours_us: list[float] = []
    async with anyio.create_task_group() as tg:
        send, receive = anyio.create_memory_object_stream[Any](MAILBOX)
        tg.start_soon(floor_server, receive)
        actor = Increment("bench", mailbox_size=MAILBOX)
        await tg.start(actor.serve)

        async def floor(n: int) -> int:
            return await floor_call(send, n)

        await _drive(floor, callers, per_caller // 4)  # warm-up
        await _drive(actor.call, callers, per_caller // 4)
        for _ in range(rounds):
            floor_us.append(await _drive(floor, callers, per_caller))
            ours_us.append(await _drive(actor.call, callers, per_caller))
        send.close()
        tg.cancel_scope.cancel()
    return statistics.median(floor_us), statistics.median(ours_us)


def run(quick: bool) -> dict[str, Any]:
    sequential_n = 4_000 if quick else 20_000
    concurrent_per_caller = 40 if quick else 200
    rounds = 3 if quick else 7
    figures: dict[str, Any] = {}
    for backend in ("trio", "asyncio"):
        seq_floor, seq_ours = anyio.run(_measure, 1, sequential_n, rounds, backend=backend)
        par_floor, par_ours = anyio.run(
            _measure, 100, concurrent_per_caller, rounds, backend=backend
        )
        figures[f"floor_seq_us_{backend}"] = round(seq_floor, 3)
        figures[f"actor_seq_us_{backend}"] = round(seq_ours, 3)
        figures[f"ratio_seq_{backend}"] = round(seq_ours / seq_floor, 3)
        figures[f"floor_100_us_{backend}"] = round(par_floor, 3)
        figures[f"actor_100_us_{backend}"] = round(par_ours, 3)
        figures[f"ratio_100_{backend}"] = round(par_ours / par_floor, 3)
    figures["goal_ratio_max"] = 1.25
    return figures


if __name__ == "__main__":
    args = parse_args(__doc__)
    emit("actor_overhead", run(args.quick), quick=args.quick)
