"""A cache hit against the bare actor round trip, counted in instructions under valgrind.

``cache_bench.py``'s ``ratio_hit_vs_floor`` times a hit through ``Runtime.execute``
against a bare request/reply over an anyio memory stream, in the same rounds.  On this
shared VM the timed ratio wanders by ~0.1 from run to run; the instruction count does not
(valgrind's ``cachegrind`` runs the program on a synthetic CPU), so it is what tells
whether a change to the hit path pays.  It leaves out what an instruction costs in time
(cache misses, mispredicted branches), so it complements the timed ratio.

Each figure is per call, from two runs of a child process that differ only in the number
of calls, ``(I(n2) - I(n1)) / (n2 - n1)``, so start-up cancels out.  The hit is
``cache_bench``'s (a traced, selector-observed hit of a small flat result); the floor is
``actor_overhead``'s bare round trip.

Figures: ``hit_instructions_<backend>``, ``floor_instructions_<backend>`` and
``ratio_hit_vs_floor_instructions_<backend>``.  ``--quick`` counts asyncio only (the
backend whose floor is the lower).

    python benchmarks/hit_instructions.py [--quick]

Needs ``valgrind``; without it the last line is a JSON object with ``"skipped"``.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from _common import emit, have_valgrind, instructions, parse_args

HERE = Path(__file__).resolve()


def _child(backend: str, side: str, calls: int) -> None:
    import anyio
    from actor_overhead import floor_call, floor_server
    from cache_bench import _hit_registry

    from runtime import ToolContext, open_runtime

    async def run() -> None:
        ctx = ToolContext(tenant_id="acme")
        params = {"ci_id": 7}
        async with open_runtime(_hit_registry()) as rt, anyio.create_task_group() as tg:
            send, receive = anyio.create_memory_object_stream[Any](1024)
            tg.start_soon(floor_server, receive)
            await rt.execute("CI", "get", params, ctx)  # the one miss
            for i in range(calls):
                if side == "hit":
                    await rt.execute("CI", "get", params, ctx)
                else:
                    await floor_call(send, i)
            send.close()
            tg.cancel_scope.cancel()

    anyio.run(run, backend=backend)


def _instructions(args: list[str]) -> int:
    return instructions(HERE, args)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        _child(argv[1], argv[2], int(argv[3]))
        return
    args = parse_args(__doc__, argv)
    if not have_valgrind():
        emit("hit_instructions", {"skipped": "valgrind not found"}, quick=args.quick)
        return
    n1, n2 = (1_000, 5_000) if args.quick else (2_000, 12_000)
    backends = ("asyncio",) if args.quick else ("trio", "asyncio")
    runs = [
        [backend, side, str(n)]
        for backend in backends
        for side in ("hit", "floor")
        for n in (n1, n2)
    ]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        counts = dict(zip(map(tuple, runs), pool.map(_instructions, runs), strict=True))
    figures: dict[str, Any] = {}
    for backend in backends:
        per_call = {
            side: (counts[(backend, side, str(n2))] - counts[(backend, side, str(n1))]) / (n2 - n1)
            for side in ("hit", "floor")
        }
        figures[f"hit_instructions_{backend}"] = round(per_call["hit"])
        figures[f"floor_instructions_{backend}"] = round(per_call["floor"])
        figures[f"ratio_hit_vs_floor_instructions_{backend}"] = round(
            per_call["hit"] / per_call["floor"], 3
        )
    emit("hit_instructions", figures, quick=args.quick)


if __name__ == "__main__":
    main()
