"""What enforcing a params schema costs a cache hit, measured against the same hit without.

Figures (no goal; issue 23 asks that a tool without a schema pay nothing and that the hit
path stay fast):

- ``validate_us_ci_search`` -- one ``ParamsChecker.validate`` of ``{"keywords": ["web"],
  "limit": 5}`` against the ops ``CI.search`` schema (defaults filled in);
- ``hit_us_plain_<backend>`` / ``hit_us_schema_<backend>`` -- a cache hit through
  ``Runtime.execute`` (default configuration) of a tool without a schema and of the same
  tool with the ``CI.search`` schema, alternating rounds in one runtime;
  ``schema_hit_vs_plain_hit_<backend>`` is the median per-round ratio.

    python benchmarks/schema_bench.py [--quick]
"""

from __future__ import annotations

import statistics
import time
import timeit
from typing import Any

import anyio
from _common import emit, parse_args

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.ops.params import PARAMS_SCHEMAS
from runtime.tools.schema import compile_schema

SCHEMA = PARAMS_SCHEMAS[("CI", "search")]
PARAMS = {"keywords": ["web"], "limit": 5}
CTX = ToolContext("acme")


def measure_validate(quick: bool) -> dict[str, Any]:
    checker = compile_schema(SCHEMA)
    number = 20_000 if quick else 200_000
    best = min(
        timeit.repeat(lambda: checker.validate(PARAMS, "CI", "search"), number=number, repeat=5)
    )
    return {"validate_us_ci_search": round(best / number * 1e6, 3)}


async def _answer(ctx: ToolContext, params: Any) -> Any:
    return {"records": [], "total": 0}


async def _hits(calls: int, rounds: int) -> tuple[float, float, float]:
    registry = ToolRegistry()
    registry.register("CI", "plain", _answer)
    registry.register("CI", "search", _answer, params_schema=SCHEMA)
    plain: list[float] = []
    schema: list[float] = []
    async with open_runtime(registry) as rt:
        for operation in ("plain", "search"):
            await rt.execute("CI", operation, PARAMS, CTX)  # the one miss each

        async def timed(operation: str, into: list[float]) -> None:
            started = time.perf_counter()
            for _ in range(calls):
                await rt.execute("CI", operation, PARAMS, CTX)
            into.append((time.perf_counter() - started) / calls * 1e6)

        for round_ in range(rounds):
            order = [("plain", plain), ("search", schema)]
            for operation, into in order if round_ % 2 else order[::-1]:
                await timed(operation, into)
    ratios = [s / p for s, p in zip(schema, plain, strict=True)]
    return statistics.median(plain), statistics.median(schema), statistics.median(ratios)


def measure_hits(quick: bool) -> dict[str, Any]:
    calls, rounds = (2_000, 9) if quick else (10_000, 15)
    figures: dict[str, Any] = {}
    for backend in ("trio", "asyncio"):
        plain, schema, ratio = anyio.run(_hits, calls, rounds, backend=backend)
        figures[f"hit_us_plain_{backend}"] = round(plain, 2)
        figures[f"hit_us_schema_{backend}"] = round(schema, 2)
        figures[f"schema_hit_vs_plain_hit_{backend}"] = round(ratio, 3)
    return figures


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    figures = {**measure_validate(args.quick), **measure_hits(args.quick)}
    emit("schema_bench", figures, quick=args.quick)


if __name__ == "__main__":
    main()
