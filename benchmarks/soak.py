"""Soak: a long mixed workload with injected faults; memory must stay flat, nothing unexpected.

Sixteen workers share one runtime over the nine ops tools and a small CMDB (100 CIs x 2
days, built once into ``var/bench/``) and, until the time is up, each keeps picking:

- a single call to an ops tool (CI.get/search, METRIC.aggregate, GRAPH.expand,
  HISTORY.event_log) for one of four tenants;
- ``execute_best`` by intent (LOOKUP, SEARCH, SERIES, RELATIONSHIP, and FLAKY_LOOKUP, whose
  first candidate is the faulty wrapper below, so its faults exercise the fallbacks);
- a named composition (``impact_analysis``, ``search_with_context``);
- a call to ``FLAKY.get``, a wrapper of CI.get that on a miss raises (6 %), hangs past its
  0.2 s timeout (2 %), or answers ~2 MB of data (3 %);
- a call given up early: a random deadline of 0-20 ms cancels it mid-flight (3 %);
- a cache invalidation (by tool, by tenant, or everything; 0.5 %).

The faults are *expected* errors: the wrapper's ``InjectedFault`` (as a
``ToolExecutionError``), ``ToolTimeout``, ``AllCandidatesFailed`` made of those, and the
cancelled calls.  Anything else -- any other exception, a wrong answer, a waiter left
behind at the end -- counts in ``unexpected_errors`` (goal 0; the first few are printed to
stderr).

Memory: resident set size (``/proc/self/statm``) sampled every second.  The warm-up is
the first 20 % of the run, at least 10 s: by then the cache (5 s TTLs in this run), the
trace ring and the worker threads have reached their steady size.  Single samples swing
by a few MB (a 2 MB answer in flight, a cache clear), so the baseline is the mean of the
first tenth (at least 3 samples) after the warm-up, the end the mean of the last tenth,
and ``rss_growth_pct`` = (end - baseline) / baseline x 100 (goal <= 5).
``rss_timeline_mb`` shows eleven samples across the run.  ``python_blocks_growth_pct`` is
the same comparison for the Python heap (``sys.getallocatedblocks``): a leak of Python
objects shows there, allocator fragmentation does not.  ``--malloc-arena-max 2`` caps
glibc's per-thread malloc arenas, which the SQLite worker threads otherwise fragment (see
docs/reliability.md, "Long runs").

    python benchmarks/soak.py            # 10 minutes on trio
    python benchmarks/soak.py --quick    # 30 seconds
    python benchmarks/soak.py --seconds 120 --backend both
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import anyio
from _common import emit, parse_args

from runtime import (
    AllCandidatesFailed,
    Runtime,
    ToolContext,
    ToolExecutionError,
    ToolRegistry,
    ToolTimeout,
    open_runtime,
)
from runtime.ops import OpsDatabase, ensure_database, register_ops_tools
from runtime.ops.config import ops_config_from_dict

ROOT = Path(__file__).resolve().parent.parent
DATABASE = ROOT / "var" / "bench" / "soak-cmdb.sqlite"
CIS, DAYS = 100, 2
TENANTS = ("acme", "globex", "initech", "umbrella")
WORKERS = 16
HUGE_ITEMS = 36_000  # ~2 MB of strings
SHORT_TTL = "5s"
CONFIG = {
    "executor": {"timeouts": {"FLAKY": {"get": "200ms"}}},
    # Short TTLs, so the cache reaches its steady size (entries expiring as fast as they
    # are added) within the warm-up: growth after it is then a leak, not a filling cache.
    "cache": {
        "max_bytes": 24 * 1024 * 1024,
        "default_ttl": SHORT_TTL,
        "ttl": {
            "CI": {"search": SHORT_TTL, "get": SHORT_TTL, "aggregate": SHORT_TTL},
            "METRIC": {"aggregate": SHORT_TTL, "series": SHORT_TTL},
            "GRAPH": {"expand": SHORT_TTL, "path": SHORT_TTL},
            "HISTORY": {"event_log": SHORT_TTL},
            "CEP": {"simulate": "0"},
            "FLAKY": {"get": SHORT_TTL},
        },
    },
    "selector": {"intents": {"FLAKY_LOOKUP": ["FLAKY.get", "CI.get"]}},
}


class InjectedFault(RuntimeError):
    """What the faulty wrapper raises."""


class FlakyTool:
    """CI.get with faults: raises, hangs past its timeout, or answers huge data."""

    def __init__(self, inner: Any, rng: random.Random) -> None:
        self.inner = inner
        self.rng = rng
        self.injected: Counter[str] = Counter()

    async def execute(self, ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        roll = self.rng.random()
        if roll < 0.06:
            self.injected["raise"] += 1
            raise InjectedFault("injected fault")
        if roll < 0.08:
            self.injected["hang"] += 1
            await anyio.sleep(3600)
        if roll < 0.11:
            self.injected["huge"] += 1
            # A fresh payload each time, as a real tool's would be.
            return {"items": [f"{ctx.tenant_id}-{i:08d}-{'x' * 40}" for i in range(HUGE_ITEMS)]}
        return await self.inner.execute(ctx, params)


def sqlite_heap() -> Callable[[], int] | None:
    """SQLite's own heap in use (``sqlite3_memory_used``), or None where it can't be read.

    Each worker thread's connection keeps a page cache (up to 2 MB by default) that fills
    as queries touch pages: bounded, but slower to fill than the warm-up.  It is reported
    apart so that the runtime's own growth can be read without it.
    """
    try:
        library = ctypes.CDLL(ctypes.util.find_library("sqlite3") or "libsqlite3.so.0")
        used = library.sqlite3_memory_used
    except (OSError, AttributeError):
        return None
    used.restype = ctypes.c_int64
    return lambda: int(used())


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        resident_pages = int(statm.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


class Soak:
    def __init__(self, rt: Runtime, flaky: FlakyTool, seed: int) -> None:
        self.rt = rt
        self.flaky = flaky
        self.rng = random.Random(seed)
        self.calls: Counter[str] = Counter()
        self.expected_failures: Counter[str] = Counter()
        self.unexpected: list[str] = []

    def unexpected_error(self, what: str, error: BaseException | str) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        self.unexpected.append(f"{what}: {text}")
        if len(self.unexpected) <= 5:
            print(f"unexpected: {what}: {text}", file=sys.stderr)

    def question(self) -> tuple[str, str, dict[str, Any]]:
        rng = self.rng
        ci_id = rng.randint(1, CIS)
        choice = rng.randrange(5)
        if choice == 0:
            return "CI", "get", {"ci_id": ci_id}
        if choice == 1:
            keywords = [rng.choice(["web", "db", "svc", "api", "cache", "gateway"])]
            return "CI", "search", {"keywords": keywords, "limit": 10}
        if choice == 2:
            return "METRIC", "aggregate", {"metric": "cpu_usage", "ci_ids": [ci_id]}
        if choice == 3:
            return "GRAPH", "expand", {"ci_id": ci_id, "depth": rng.randint(1, 2)}
        return "HISTORY", "event_log", {"ci_ids": [ci_id], "limit": 20}

    async def one(self) -> None:
        rng = self.rng
        ctx = ToolContext(rng.choice(TENANTS))
        roll = rng.random()
        try:
            if roll < 0.45:
                self.calls["execute"] += 1
                tool, op, params = self.question()
                data = await self.rt.execute(tool, op, params, ctx)
                if tool == "CI" and op == "get" and data["record"]["ci_id"] != params["ci_id"]:
                    self.unexpected_error("CI.get", "wrong record")
            elif roll < 0.70:
                self.calls["execute_best"] += 1
                await self.best(ctx)
            elif roll < 0.82:
                self.calls["compose"] += 1
                await self.compose(ctx)
            elif roll < 0.965:
                self.calls["flaky"] += 1
                params = {"ci_id": rng.randint(1, 12)}
                data = await self.rt.execute("FLAKY", "get", params, ctx)
                if "items" not in data and data["record"]["ci_id"] != params["ci_id"]:
                    self.unexpected_error("FLAKY.get", "wrong record")
            elif roll < 0.995:
                self.calls["cancelled_early"] += 1
                with anyio.move_on_after(rng.uniform(0.0, 0.02)):
                    tool, op, params = self.question()
                    await self.rt.execute(tool, op, params, ctx)
            else:
                self.calls["invalidate"] += 1
                await self.invalidate()
        except (ToolTimeout, ToolExecutionError) as exc:
            if exc.tool_type == "FLAKY" and exc.error_type in ("InjectedFault", "ToolTimeout"):
                self.expected_failures[exc.error_type] += 1
            else:
                self.unexpected_error(f"{exc.tool_type}.{exc.operation}", exc)
        except AllCandidatesFailed as exc:
            if all(tool == "FLAKY" for tool, _, _ in exc.attempts):
                self.expected_failures["AllCandidatesFailed"] += 1
            else:
                self.unexpected_error("execute_best", exc)
        except Exception as exc:
            self.unexpected_error("call", exc)

    async def best(self, ctx: ToolContext) -> None:
        rng = self.rng
        ci_id = rng.randint(1, CIS)
        questions: list[tuple[str, dict[str, Any]]] = [
            ("LOOKUP", {"ci_id": ci_id}),
            ("FLAKY_LOOKUP", {"ci_id": rng.randint(1, 12)}),
            ("SEARCH", {"keywords": [rng.choice(["web", "db", "api"])]}),
            ("SERIES", {"ci_id": ci_id, "metric": "cpu_usage"}),
            ("RELATIONSHIP", {"ci_id": ci_id, "depth": 1}),
        ]
        intent, params = rng.choice(questions)
        best = await self.rt.execute_best(intent, params, ctx)
        if best.fallback_used:
            self.calls["fallbacks"] += 1
        record = best.data.get("record") if intent in ("LOOKUP", "FLAKY_LOOKUP") else None
        if record is not None and record["ci_id"] != params["ci_id"]:
            self.unexpected_error(intent, "wrong record")

    async def compose(self, ctx: ToolContext) -> None:
        rng = self.rng
        if rng.random() < 0.5:
            result = await self.rt.compose("impact_analysis", {"ci_id": rng.randint(1, CIS)}, ctx)
        else:
            keywords = [rng.choice(["web", "db", "api"])]
            result = await self.rt.compose("search_with_context", {"keywords": keywords}, ctx)
        if not result.ok:
            failed = {n: o.error for n, o in result.outcomes.items() if o.status == "failed"}
            self.unexpected_error(f"compose {result.pipeline}", str(failed))

    async def invalidate(self) -> None:
        cache = self.rt.cache
        assert cache is not None
        what = self.rng.randrange(3)
        if what == 0:
            await cache.invalidate_tool(self.rng.choice(["CI", "FLAKY", "GRAPH"]))
        elif what == 1:
            await cache.invalidate_tenant(self.rng.choice(TENANTS))
        else:
            await cache.clear()

    async def worker(self, until: float) -> None:
        while time.monotonic() < until:
            await self.one()


async def soak(seconds: float, seed: int) -> dict[str, Any]:
    warmup = max(10.0, seconds * 0.2)
    db = await OpsDatabase.open(DATABASE)
    registry = ToolRegistry()
    register_ops_tools(registry, db)
    flaky = FlakyTool(registry.get("CI", "get").tool, random.Random(seed + 1))
    registry.register("FLAKY", "get", flaky)
    samples: list[tuple[float, int]] = []
    sqlite_samples: list[tuple[float, int]] = []
    block_samples: list[tuple[float, int]] = []
    sqlite_used = sqlite_heap()
    started = time.monotonic()
    rss_start = rss_bytes()
    try:
        async with open_runtime(registry, ops_config_from_dict(CONFIG)) as rt:
            run = Soak(rt, flaky, seed)

            async def sample_memory() -> None:
                while True:
                    at = time.monotonic() - started
                    samples.append((at, rss_bytes()))
                    block_samples.append((at, sys.getallocatedblocks()))
                    if sqlite_used is not None:
                        sqlite_samples.append((at, sqlite_used()))
                    await anyio.sleep(1.0)

            async with anyio.create_task_group() as group:
                group.start_soon(sample_memory)
                async with anyio.create_task_group() as workers:
                    for _ in range(WORKERS):
                        workers.start_soon(run.worker, started + seconds)
                samples.append((time.monotonic() - started, rss_bytes()))
                group.cancel_scope.cancel()
            elapsed = time.monotonic() - started
            leaks = await leaked_waiters(rt)
            for leak in leaks:
                run.unexpected_error("quiescence", leak)
            cache = await rt.cache.stats() if rt.cache is not None else None
            health = rt.health()
    finally:
        db.close()
    # Single samples swing by a few MB (a 2 MB answer in flight, a cache clear): compare
    # the mean of the first window after the warm-up with the mean of the last window.
    rss_warm, rss_end = warm_and_end(samples, warmup)
    growth = rss_end - rss_warm
    blocks_warm, blocks_end = warm_and_end(block_samples, warmup)
    sqlite_growth = None
    if sqlite_samples:
        sqlite_warm, sqlite_end = warm_and_end(sqlite_samples, warmup)
        sqlite_growth = sqlite_end - sqlite_warm
    total = sum(v for k, v in run.calls.items() if k != "fallbacks")
    return {
        "seconds": round(elapsed, 1),
        "warmup_s": warmup,
        "calls": total,
        "calls_per_s": round(total / elapsed, 1),
        "by_kind": dict(sorted(run.calls.items())),
        "injected": dict(sorted(flaky.injected.items())),
        "expected_failures": dict(sorted(run.expected_failures.items())),
        "unexpected_errors": len(run.unexpected),
        "rss_start_mb": round(rss_start / 2**20, 1),
        "rss_warm_mb": round(rss_warm / 2**20, 1),
        "rss_end_mb": round(rss_end / 2**20, 1),
        "rss_max_mb": round(max(rss for _, rss in samples) / 2**20, 1),
        "rss_growth_pct": round(growth / rss_warm * 100, 2),
        "sqlite_heap_growth_mb": None if sqlite_growth is None else round(sqlite_growth / 2**20, 1),
        "rss_growth_ex_sqlite_pct": (
            None if sqlite_growth is None else round((growth - sqlite_growth) / rss_warm * 100, 2)
        ),
        "rss_timeline_mb": timeline(samples, points=11),
        "python_blocks_growth_pct": round((blocks_end - blocks_warm) / blocks_warm * 100, 2),
        "cache_hit_rate": round(cache.hit_rate, 4) if cache is not None else None,
        "cache_rejected_oversize": cache.snapshot.store.total.rejected_oversize if cache else 0,
        "actor_crashes": sum(health.crashes.values()),
        "healthy": health.ok,
    }


def warm_and_end(samples: list[tuple[float, int]], warmup: float) -> tuple[float, float]:
    """Mean of the first and of the last tenth (at least 3 samples) after the warm-up."""
    warm = [value for at, value in samples if at >= warmup] or [samples[-1][1]]
    window = max(3, len(warm) // 10)
    return sum(warm[:window]) / len(warm[:window]), sum(warm[-window:]) / len(warm[-window:])


def timeline(samples: list[tuple[float, int]], points: int) -> list[float]:
    """RSS in MB at ``points`` evenly spaced moments of the run (to see a plateau)."""
    step = max(1, (len(samples) - 1) // (points - 1))
    picked = [*samples[::step][: points - 1], samples[-1]]
    return [round(rss / 2**20, 1) for _, rss in picked]


async def leaked_waiters(rt: Runtime) -> list[str]:
    """What is left behind once every caller has finished (should be nothing)."""
    # Let the actors drain what the last calls cast.  The tracer batches reports in the
    # callers' tasks until a batch is full or someone reads: read, to hand them over.
    if rt.tracer is not None and rt.health().actors["tracer"].running:
        await rt.tracer.tracer_stats()
    for _ in range(100):
        if not any(a.mailbox_used for a in rt.health().actors.values()):
            break
        await anyio.sleep(0.05)
    leaks = []
    for name, actor in rt.health().actors.items():
        if actor.deferred_replies or actor.mailbox_used:
            leaks.append(f"{name}: {actor.deferred_replies} deferred, {actor.mailbox_used} queued")
    if rt.cache is not None:
        snapshot = (await rt.cache.stats()).snapshot
        if snapshot.in_flight or snapshot.waiting_followers:
            leaks.append(
                f"cache: {snapshot.in_flight} in flight, {snapshot.waiting_followers} waiting"
            )
    if rt.running_pipelines:
        leaks.append(f"{rt.running_pipelines} pipelines still running")
    return leaks


def cap_malloc_arenas(count: int) -> None:
    """``mallopt(M_ARENA_MAX, count)``: glibc gives each thread that allocates its own arena
    (up to 8 per core), and the SQLite worker threads' page caches, created and freed as
    threads come and go, fragment them -- RSS grows while the Python heap stays flat."""
    m_arena_max = -8
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    if not libc.mallopt(m_arena_max, count):
        raise SystemExit("mallopt(M_ARENA_MAX) failed (not glibc?)")


def main() -> None:
    extra = argparse.ArgumentParser(add_help=False)
    extra.add_argument("--seconds", type=float, help="run length (default 600, --quick 30)")
    extra.add_argument("--backend", choices=["trio", "asyncio", "both"], default="trio")
    extra.add_argument("--seed", type=int, default=1)
    extra.add_argument(
        "--malloc-arena-max",
        type=int,
        metavar="N",
        help="cap glibc's malloc arenas (as MALLOC_ARENA_MAX=N would) before starting",
    )
    known, rest = extra.parse_known_args()
    args = parse_args(__doc__, rest)
    seconds = known.seconds or (30.0 if args.quick else 600.0)
    if known.malloc_arena_max:
        cap_malloc_arenas(known.malloc_arena_max)
    summary = ensure_database(DATABASE, cis=CIS, days=DAYS)
    backends = ["trio", "asyncio"] if known.backend == "both" else [known.backend]
    figures: dict[str, Any] = {
        "database": str(summary.path),
        "workers": WORKERS,
        "malloc_arena_max": known.malloc_arena_max or os.environ.get("MALLOC_ARENA_MAX"),
    }
    for backend in backends:
        result = anyio.run(partial(soak, seconds, known.seed), backend=backend)
        print(f"{backend}: {result}", file=sys.stderr)
        figures[backend] = result
    first = figures[backends[0]]
    figures["rss_growth_pct"] = max(figures[b]["rss_growth_pct"] for b in backends)
    figures["unexpected_errors"] = sum(figures[b]["unexpected_errors"] for b in backends)
    figures["calls"] = sum(figures[b]["calls"] for b in backends)
    figures["calls_per_s"] = first["calls_per_s"]
    emit("soak", figures, quick=args.quick)


if __name__ == "__main__":
    main()
