"""The benchmark goals, one table (:data:`GOALS`), and how a run is judged against them.

Each goal comes from the issue that asked for its benchmark; run_all.py reports them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import attrs


@attrs.frozen(slots=True)
class Goal:
    """One goal figure: where it comes from, what it is compared against, and the bar.

    ``figure`` is the key the goal applies to.  For a ratio (``ratio=True``) ``ours`` and
    ``anchor`` name the figures it divides, shown beside it; for an absolute figure
    ``anchor`` names a comparison figure, if the benchmark has one.  ``anchor_text`` says
    what the anchor is.  ``aliases`` are other names the benchmark may print the same
    figure under (the first one present is judged).  ``proxy`` names a different figure,
    shown but never judged, while ``figure`` is missing from the benchmark's output.
    ``when_missed`` explains a miss that has been investigated (shown only on a miss).
    """

    benchmark: str
    figure: str
    op: str  # "<=", ">=" or "=="
    target: float
    anchor_text: str
    ours: str | None = None
    anchor: str | None = None
    ratio: bool = True
    issue: int = 0
    aliases: tuple[str, ...] = ()
    proxy: str | None = None
    when_missed: str = ""  # what is known about a miss, printed under the table when missed

    def met(self, value: float) -> bool:
        if self.op == "<=":
            return value <= self.target
        if self.op == ">=":
            return value >= self.target
        return value == self.target


def _actor_goals() -> list[Goal]:
    return [
        Goal(
            "actor_overhead",
            f"ratio_{mode}_{backend}",
            "<=",
            1.25,
            f"bare request/reply on {backend} (memory stream + Event slot), {label}",
            ours=f"actor_{mode}_us_{backend}",
            anchor=f"floor_{mode}_us_{backend}",
            issue=2,
        )
        for backend in ("trio", "asyncio")
        for mode, label in (("seq", "sequential"), ("100", "100 concurrent callers"))
    ]


def _service_goals() -> list[Goal]:
    """The example HTTP service under 64 real clients, on uvicorn and hypercorn-trio."""
    loaded = "64 httpx clients on loopback, uvicorn and hypercorn-trio"
    return [
        Goal(
            "service_bench",
            "healthz_p99_during_export_ms",
            "<=",
            50,
            "/healthz p99 with no export running",
            anchor="healthz_p99_idle_ms",
            ratio=False,
            issue=18,
        ),
        Goal(
            "service_bench",
            "status_5xx",
            "==",
            0,
            f"{loaded}, two load rounds plus issue 18's bad inputs",
            ratio=False,
            issue=18,
        ),
        Goal(
            "service_bench",
            "unanswered_at_shutdown",
            "==",
            0,
            f"requests sent before SIGTERM, {loaded}",
            ratio=False,
            issue=18,
        ),
        *(
            Goal(
                "service_bench",
                f"shutdown_s_{server}",
                "<=",
                3,
                f"SIGTERM to exit with 64 busy keep-alive clients ({server})",
                ratio=False,
                issue=18,
            )
            for server in ("uvicorn", "hypercorn")
        ),
        Goal(
            "service_bench",
            "rss_growth_pct",
            "<=",
            5,
            "server RSS after load round 1 (two equal rounds)",
            ratio=False,
            issue=18,
        ),
    ]


def _selector_goals() -> list[Goal]:
    goals = [
        Goal(
            "selector_bench",
            f"p99_vs_p2c_ewma_{scenario}",
            "<=",
            1.0,
            f"P2C peak-EWMA (Finagle) p99, `{scenario}` scenario (median of per-seed ratios)",
            ours=f"{scenario}_ours_p99_ms",
            anchor=f"{scenario}_p2c_peak_ewma_p99_ms",
            issue=5,
        )
        for scenario in ("spike", "drift", "fast_failing", "stale")
    ]
    goals.append(
        Goal(
            "selector_bench",
            "errors_vs_round_robin",
            "<=",
            1.0,
            "round-robin error rate, `fast_failing` scenario",
            ours="fast_failing_ours_error_rate",
            anchor="fast_failing_round_robin_error_rate",
            issue=5,
        )
    )
    return goals


def _issue20_goals() -> list[Goal]:
    """W-TinyLFU and canonical keys in the cache; exploration in the selector."""
    return [
        Goal(
            "cache_bench",
            "hit_ratio_vs_opt",
            ">=",
            0.95,
            "analytic optimum (mass of the top-C keys), Zipf(0.99), 1% capacity, default policy",
            ours="hit_ratio",
            anchor="hit_ratio_opt",
            issue=20,
        ),
        Goal(
            "cache_bench",
            "hit_ratio_vs_theine",
            ">=",
            1.0,
            "`theine` (W-TinyLFU in Rust) on the same Zipf(0.99) trace and capacity",
            ours="hit_ratio",
            anchor="hit_ratio_theine",
            issue=20,
        ),
        Goal(
            "cache_bench",
            "scan_hit_ratio_vs_lru",
            ">=",
            1.2,
            "LRU on the scan-mixed trace (a one-off sweep of 5x capacity every 50,000 requests)",
            ours="scan_hit_ratio",
            anchor="scan_hit_ratio_lru",
            issue=20,
        ),
        Goal(
            "cache_bench",
            "equivalent_call_executions",
            "==",
            1,
            "a call and its default-filled twin, through the runtime",
            ratio=False,
            issue=20,
        ),
        Goal(
            "selector_bench",
            "newcomer_discovery_calls",
            "<=",
            50,
            "the same scenario without exploration (400: never)",
            anchor="newcomer_discovery_calls_no_exploration",
            ratio=False,
            issue=20,
        ),
        Goal(
            "selector_bench",
            "exploration_share",
            "<=",
            0.05,
            "choices spent exploring in the spike, drift, fast_failing and stale scenarios",
            ratio=False,
            issue=20,
        ),
    ]


_HIT_VS_FLOOR_MISSED = (
    "A hit costs about the same Python work on both backends; asyncio's bare request/reply "
    "costs less than half of trio's, so asyncio decides the goal.  Full runs measured "
    "1.36-1.39 after issue 19's hit-path work (2.12 before); the timed ratio wanders by "
    "~0.1 on this shared VM, so a miss near 1.5 is worth recounting in instructions "
    "(`python benchmarks/hit_instructions.py`: 1.33 of the floor on asyncio, which load "
    "cannot move).  `ratio_hit_untraced_vs_floor_asyncio` (tracer and selector off) and "
    '`ratio_cancel_check_vs_floor_asyncio` split the ratio; docs/architecture.md, "What a '
    'hit costs", has the count of each part.'
)


GOALS: tuple[Goal, ...] = (
    *_actor_goals(),
    *(
        Goal(
            "cache_bench",
            f"ratio_hit_vs_floor_{backend}",
            "<=",
            1.5,
            f"bare actor request/reply on {backend}; ours is a hit through `Runtime.execute`",
            ours=f"hit_us_{backend}",
            anchor=f"floor_us_{backend}",
            issue=3,
            when_missed=_HIT_VS_FLOOR_MISSED if backend == "asyncio" else "",
        )
        for backend in ("trio", "asyncio")
    ),
    Goal(
        "cache_bench",
        "speedup_vs_seed_evict",
        ">=",
        1000,
        "the original design's O(n) eviction, per insert at 100k entries",
        ours="store_evict_us_per_insert",
        anchor="seed_evict_us_per_insert",
        issue=3,
    ),
    Goal(
        "cache_bench",
        "executions_stampede",
        "==",
        1,
        "1000 concurrent cold calls for one key (trio)",
        ratio=False,
        issue=3,
    ),
    Goal(
        "cache_bench",
        "executions_stampede_asyncio",
        "==",
        1,
        "1000 concurrent cold calls for one key (asyncio)",
        ratio=False,
        issue=3,
    ),
    Goal(
        "cache_bench",
        "hit_ratio_lru_vs_opt",
        ">=",
        0.78,
        "analytic optimum (mass of the top-C keys), Zipf(0.99), 1% capacity, `cache.policy: lru`",
        ours="hit_ratio_lru",
        anchor="hit_ratio_opt",
        issue=3,
        aliases=("hit_ratio_vs_opt",),
    ),
    Goal(
        "cache_bench",
        "store_vs_cachetools_get",
        ">=",
        1.0,
        "`cachetools.TTLCache` hits, same size",
        ours="store_get_mops",
        anchor="cachetools_get_mops",
        issue=3,
    ),
    Goal(
        "cache_bench",
        "store_vs_cachetools_set",
        ">=",
        1.0,
        "`cachetools.TTLCache` sets that evict, same size",
        ours="store_set_evict_mops",
        anchor="cachetools_set_evict_mops",
        issue=3,
    ),
    Goal(
        "cache_bench",
        "overhead_bytes_per_entry",
        "<=",
        300,
        "`cachetools.TTLCache`, same method (for comparison)",
        anchor="overhead_bytes_per_entry_cachetools",
        ratio=False,
        issue=3,
        when_missed=(
            "Measured with the default policy, W-TinyLFU (issue 20): 288.7 bytes an entry"
            " on 2026-12-07 (352 before its regions became the only map). Of that, the"
            " frequency sketch is 16-32 bytes (rows rounded up to a power of two), the"
            " three region OrderedDicts ~105; see docs/cache.md."
        ),
    ),
    Goal(
        "tracer_bench",
        "tracer_vs_otel_span",
        "<=",
        0.1,
        "one OpenTelemetry SDK span (BatchSpanProcessor + in-memory exporter)",
        ours="tracer_overhead_us",
        anchor="otel_span_us",
        issue=4,
        aliases=("tracer_overhead_vs_otel_span",),
        proxy="tracer_observe_lazy_vs_otel_span",
        when_missed=(
            "`report_handoff_us` is what the executor pays to hand a report to an"
            " observer that throws it away -- the params copied as called, the report"
            " built, the hand-off -- before any tracer work; the tracer's own share on top"
            " is sizing the result, the aggregates and sketch, and keeping 10,000 records."
            " Counted in instructions, which this machine's noise cannot move"
            " (`python benchmarks/tracer_instructions.py`, needs valgrind), tracing is"
            " ~30,000 instructions a call against ~200,000 for the span: 0.15, with the"
            " hand-off alone 0.06. Every part is a requirement (every call counted, params"
            " as called, result count and size, N records kept); the same modules compiled"
            " with mypyc still measure 0.131. docs/tracer.md has the breakdown."
        ),
    ),
    *_selector_goals(),
    *_issue20_goals(),
    Goal(
        "pipeline_bench",
        "fanout_overhead_ratio",
        "<=",
        1.05,
        "one 20 ms step (k=10 parallel steps of 20 ms each)",
        anchor="step_ms",
        issue=6,
        when_missed=(
            "The event loop alone is at the goal: ten of trio's own sleeps in a trio"
            " nursery, no anyio, no pipeline (`fanout_native_floor_ratio`), take ~1.045-1.05"
            " of 20 ms -- the timer fires 0.2-0.4 ms late (epoll rounds its timeout up to"
            " whole milliseconds, and the VM's timer adds latency) and waking the ten takes"
            " ~0.5 ms (each `trio.sleep` ends by unwinding a cancel scope with an"
            " exception). anyio's task group (since"
            " anyio 4.14 every task gets a handle and a cancel scope, ~16 µs more per task)"
            " brings the bare floor to ~1.06 (`fanout_floor_ratio`); the pipeline's own"
            " share, `fanout_vs_floor`, is ~1.02."
        ),
    ),
    Goal(
        "pipeline_bench",
        "cancel_latency_ms",
        "<=",
        1.0,
        "from a fail_fast error to every sibling stopped",
        ratio=False,
        issue=6,
    ),
    Goal(
        "pipeline_bench",
        "side_effects",
        "==",
        0,
        "`asyncio.gather` in the same scenario (siblings that still committed)",
        anchor="gather_side_effects",
        ratio=False,
        issue=6,
    ),
    Goal(
        "ops_bench",
        "throughput_ratio",
        ">=",
        5,
        "the same workload with `cache.enabled: false` (calls/s)",
        ours="calls_per_s_with_cache",
        anchor="calls_per_s_without_cache",
        issue=7,
    ),
    Goal(
        "scaleout_bench",
        "db_load_ratio_l2",
        "<=",
        0.27,  # issue 8 asked 0.35; issue 22's cross-replica flights bring it to 0.27
        "4 replicas with L1 only (tool executions)",
        ours="executions_l2",
        anchor="executions_l1_only",
        issue=22,
        when_missed=(
            "it is at its floor, `db_load_floor_l2` (distinct questions asked / executions with"
            " L1 only: each question run once across the 4 replicas); below 0.27 needs a"
            " workload in which every replica asks every question. Cross-replica flights are"
            " what bring it there: `db_load_ratio_l2_without_flights` is the same run with"
            " `shared_flight: false`."
        ),
    ),
    Goal(
        "scaleout_bench",
        "executions_cross_replica_stampede",
        "<=",
        1,
        "4 replicas x 50 callers, one cold key, `shared_flight: false` (executions)",
        anchor="executions_stampede_without_flights",
        ratio=False,
        issue=22,
    ),
    Goal(
        "scaleout_bench",
        "lease_takeover_s",
        "<=",
        1.0,
        "lease TTL + tool time; ours is holder SIGKILLed -> last waiter answered (s)",
        ours="lease_takeover_raw_s",
        anchor="lease_ttl_s",
        issue=22,
    ),
    Goal(
        "scaleout_bench",
        "workers_throughput_ratio",
        ">=",
        1.3,
        "the example service with 1 worker process (req/s, wrk on loopback)",
        ours="requests_per_s_2_workers",
        anchor="requests_per_s_1_worker",
        issue=22,
        when_missed=(
            "compare it with `cpu_available_ratio`, the CPU time two busy processes get over"
            " what one gets on the machine in the same run: a shared VM that caps a session's"
            " share of its vCPUs (~1 while other sessions are busy) leaves a second worker"
            " nothing to gain, and two workers then split the same CPU with more per-request"
            " overhead. `load_generator_cpu_share` is the generator's own cost (wrk: ~1 %)."
        ),
    ),
    Goal(
        "soak",
        "rss_growth_pct",
        "<=",
        5,
        "resident memory after warm-up",
        ratio=False,
        issue=9,
    ),
    Goal(
        "soak",
        "unexpected_errors",
        "==",
        0,
        "mixed workload with injected faults",
        ratio=False,
        issue=9,
    ),
    Goal(
        "report_bench",
        "report_render_s",
        "<=",
        2.0,
        "the tracer's json export of the same 10,000 records",
        anchor="json_export_s",
        ratio=False,
        issue=21,
    ),
    Goal(
        "report_bench",
        "report_size_mb",
        "<=",
        2.0,
        "HTML trace report of a 10,000-record ring, MB",
        ratio=False,
        issue=21,
    ),
    Goal(
        "mcp_bench",
        "throughput_vs_fastmcp",
        ">=",
        1.2,
        "FastMCP 4 + ResponseCachingMiddleware, 32 clients, streamable HTTP (calls/s)",
        ours="calls_per_s_ours",
        anchor="calls_per_s_fastmcp",
        issue=17,
        when_missed=(
            "the `mcp` client driving every server from one process costs more per call "
            "than any server, so the ratio shrinks towards 1 as the load grows: "
            "`throughput_floor_vs_fastmcp` (the SDK's bare server, same result shape, no "
            "tool, no cache) bounds it; docs/mcp.md says what ours adds"
        ),
    ),
    Goal(
        "mcp_bench",
        "executions_stampede",
        "==",
        1,
        "200 concurrent identical cold calls over MCP; FastMCP's figure beside it",
        anchor="executions_stampede_fastmcp",
        ratio=False,
        issue=17,
    ),
    Goal(
        "mcp_bench",
        "hit_p50_vs_fastmcp",
        "<=",
        1.0,
        "FastMCP 4 cache-hit round trip p50, streamable HTTP",
        ours="hit_p50_ms_ours",
        anchor="hit_p50_ms_fastmcp",
        issue=17,
        when_missed=(
            "a hit is the SDK's own request cost plus ~0.1 ms of runtime: "
            "`hit_p50_ms_floor` (the bare SDK server) is the floor of both"
        ),
    ),
    *_service_goals(),
    Goal(
        "testing_bench",
        "stateful_trio_vs_asyncio",
        "<=",
        1.5,
        "the same stateful steps on asyncio (wall time per step)",
        ours="stateful_ms_per_step_trio",
        anchor="stateful_ms_per_step_asyncio",
        issue=23,
    ),
    Goal(
        "testing_bench",
        "portal_virtual_vs_bare_trio",
        "<=",
        1.5,
        "a bare blocking-portal call on trio, real clock",
        ours="portal_call_us_trio_virtual",
        anchor="portal_call_us_bare_trio",
        issue=23,
    ),
    Goal(
        "testing_bench",
        "quiescence_kinds_detected",
        ">=",
        7,
        "planted leftovers, one per kind (quiescence_kinds_total)",
        ratio=False,
        anchor="quiescence_kinds_total",
        issue=23,
    ),
)


@attrs.frozen(slots=True)
class Verdict:
    """A goal judged against one run: ``status`` is met, missed or missing."""

    goal: Goal
    status: str
    value: float | None = None
    ours: float | None = None
    anchor: float | None = None
    proxy_value: float | None = None
    key: str | None = None  # the figure's name in the output, when an alias was used


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def judge(goal: Goal, figures: Mapping[str, Any] | None) -> Verdict:
    """The verdict of ``goal`` on a benchmark's figures (``None``: it produced none)."""
    figures = figures or {}
    ours = _number(figures.get(goal.ours)) if goal.ours else None
    anchor = _number(figures.get(goal.anchor)) if goal.anchor else None
    for key in (goal.figure, *goal.aliases):
        value = _number(figures.get(key))
        if value is not None:
            status = "met" if goal.met(value) else "missed"
            return Verdict(goal, status, value, ours, anchor, key=key)
    proxy = _number(figures.get(goal.proxy)) if goal.proxy else None
    return Verdict(goal, "missing", None, ours, anchor, proxy)


# -- running the benchmarks ---------------------------------------------------------------
