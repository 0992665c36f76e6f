"""Scale-out: N replicas of the ops service over one CMDB, with and without the shared tier.

Every replica (a worker *process*) runs the same Zipf-skewed operator workload -- the same
fixed set of questions, each replica drawing its own sequence (its own seed) -- through its
own runtime: ops tools over one shared SQLite CMDB, an in-process cache (L1) each.  The run
is done twice, first with L1 only, then with L1 + a shared Redis L2 (flushed before), and
the database load compared.

Figures:

- ``db_load_ratio_l2`` -- total tool executions with L1 + L2 / total with L1 only, summed
  over the workers (goal <= 0.35; 1/workers is the floor once every replica has seen every
  question).  An execution is a call the tool really ran:
  ``L1 misses - coalesced - l2_hits``, from each runtime's cache statistics.
- ``db_query_ratio_l2`` -- the same for the SQL queries the tools issued
  (``OpsDatabase.query_count``): the database's side of the same story.
- ``executions_l1_only`` / ``executions_l2``, ``db_queries_l1_only`` / ``db_queries_l2``,
  ``l2_hits``, ``l2_errors``, ``calls_per_worker``, ``distinct_questions_asked`` (the floor
  for ``executions_l2``) and ``workload_time_ratio_l2``: the slowest worker's workload time
  with L2 / without (informational: the tiny sample CMDB answers a query in ~0.2 ms, about
  what a Redis round trip costs, so here L2 saves load, not time; against a real database
  the ratio turns in L2's favour).

    python benchmarks/scaleout_bench.py [--quick]

Needs ``redis-server`` on PATH (``apt-get install redis-server``).
"""

from __future__ import annotations

import bisect
import itertools
import json
import multiprocessing
import random
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import anyio
from _common import emit, parse_args
from redis_server import RedisServer

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.config import CacheConfig, RedisConfig, RuntimeConfig, TracerConfig
from runtime.ops import OpsDatabase, ensure_database, register_ops_tools

WORKERS = 4
ZIPF_SKEW = 1.0
METRICS = ("cpu_usage", "mem_usage", "latency_ms", "error_rate", "request_rate")
AGGS = ("avg", "max", "p95")
RANGES = ("last_1h", "last_24h")
KEYWORDS = ("api", "db", "web", "worker", "payments", "prod", "cache", "switch", "k8s", "billing")
SEVERITIES = ("critical", "major", "minor")


def questions(count: int, cis: int, seed: int = 7) -> list[tuple[str, str, dict[str, Any]]]:
    """A fixed, deterministic set of ``count`` distinct operator questions."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[tuple[str, str, dict[str, Any]]] = []
    makers = [
        lambda: (
            "CI",
            "search",
            {
                "keywords": [rng.choice(KEYWORDS)],
                "limit": rng.choice((10, 20, 50)),
                "sort": rng.choice(("ci_id", "-ci_id", "ci_name")),
            },
        ),
        lambda: ("CI", "get", {"ci_id": rng.randint(1, cis)}),
        lambda: (
            "METRIC",
            "aggregate",
            {
                "metric": rng.choice(METRICS),
                "agg": rng.choice(AGGS),
                "ci_ids": sorted(rng.sample(range(1, cis + 1), 3)),
                "time_range": rng.choice(RANGES),
            },
        ),
        lambda: (
            "HISTORY",
            "event_log",
            {
                "ci_ids": [rng.randint(1, cis)],
                "severity": rng.choice(SEVERITIES),
                "time_range": "last_24h",
                "limit": 20,
            },
        ),
    ]
    for attempt in range(100 * count):  # bounded: a too-small question space must not hang
        if len(out) == count:
            break
        question = makers[attempt % len(makers)]()
        fingerprint = json.dumps(question, sort_keys=True)
        if fingerprint not in seen:
            seen.add(fingerprint)
            out.append(question)
    if len(out) < count:
        raise ValueError(f"could not draw {count} distinct questions")
    rng.shuffle(out)  # popularity (Zipf rank) must not follow the tool order
    return out


def zipf_trace(items: int, calls: int, seed: int) -> list[int]:
    weights = [1.0 / rank**ZIPF_SKEW for rank in range(1, items + 1)]
    cumulative = list(itertools.accumulate(weights))
    rng = random.Random(seed)
    return [
        min(bisect.bisect_left(cumulative, rng.random() * cumulative[-1]), items - 1)
        for _ in range(calls)
    ]


async def run_worker(job: dict[str, Any]) -> dict[str, Any]:
    asked = questions(job["questions"], job["cis"])
    trace = zipf_trace(len(asked), job["calls"], seed=1000 + job["index"])
    redis = (
        RedisConfig(url=job["redis_url"], op_timeout=1.0, generation_cache=1.0)
        if job["redis_url"]
        else None
    )
    config = RuntimeConfig(cache=CacheConfig(redis=redis), tracer=TracerConfig(enabled=False))
    db = await OpsDatabase.open(job["db_path"])
    registry = ToolRegistry()
    register_ops_tools(registry, db)
    context = ToolContext(tenant_id="ops-team")
    failures = 0
    async with open_runtime(registry, config) as rt:
        assert rt.cache is not None
        started = time.perf_counter()
        for index in trace:
            tool, op, params = asked[index]
            result = await rt.execute_result(tool, op, params, context)
            failures += not result.success
        elapsed = time.perf_counter() - started
        stats = await rt.cache.stats()
    total = stats.snapshot.store.total
    return {
        "executions": total.misses - total.coalesced - stats.l2_hits + total.bypasses,
        "db_queries": db.query_count,
        "l2_hits": stats.l2_hits,
        "l2_errors": stats.l2_errors,
        "l2_unencodable": stats.l2.unencodable if stats.l2 is not None else 0,
        "failures": failures,
        "distinct": sorted(set(trace)),
        "workload_s": elapsed,
    }


def worker_main(job: dict[str, Any], barrier: Any, results: Any) -> None:
    barrier.wait()  # every replica starts its workload together, as under real traffic
    results.put((job["index"], anyio.run(run_worker, job)))


def run_phase(base: dict[str, Any], redis_url: str | None) -> list[dict[str, Any]]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS + 1)
    results = context.Queue()
    processes = [
        context.Process(
            target=worker_main,
            args=({**base, "index": index, "redis_url": redis_url}, barrier, results),
        )
        for index in range(WORKERS)
    ]
    try:
        for process in processes:
            process.start()
        barrier.wait(timeout=120)
        collected = dict(results.get(timeout=600) for _ in processes)
        for process in processes:
            process.join(timeout=60)
            if process.exitcode != 0:
                raise RuntimeError(f"worker exited with {process.exitcode}")
    finally:
        for process in processes:  # never leave a worker behind, whatever went wrong
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
    return [collected[index] for index in range(WORKERS)]


def flush(server: RedisServer) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5.0)
        sock.connect(str(server.socket_path))
        sock.sendall(b"FLUSHALL\r\n")
        if not sock.recv(64).startswith(b"+OK"):
            raise RuntimeError("FLUSHALL failed")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(__doc__, argv)
    # SIGTERM (a timeout, a CI cancel) must still run the clean-up below.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    quick = bool(args.quick)
    cis, days = (120, 2) if quick else (400, 7)
    question_count, calls = (120, 1000) if quick else (400, 4000)
    executable = shutil.which("redis-server")
    if executable is None:
        raise SystemExit(
            "redis-server not installed; install it with: apt-get install redis-server"
        )
    directory = Path(tempfile.mkdtemp(prefix="rt-scaleout-"))
    server = RedisServer(executable, directory)
    try:
        db_path = directory / "cmdb.sqlite"
        ensure_database(db_path, cis=cis, days=days)
        server.start()
        base = {"db_path": str(db_path), "cis": cis, "questions": question_count, "calls": calls}
        l1_only = run_phase(base, None)
        flush(server)
        with_l2 = run_phase(base, server.url)
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)

    def total(rows: list[dict[str, Any]], name: str) -> int:
        return sum(int(row[name]) for row in rows)

    executions_l1, executions_l2 = total(l1_only, "executions"), total(with_l2, "executions")
    queries_l1, queries_l2 = total(l1_only, "db_queries"), total(with_l2, "db_queries")
    distinct = len(set().union(*(set(row["distinct"]) for row in with_l2)))
    print(
        f"{WORKERS} workers x {calls} calls over {question_count} questions "
        f"(Zipf {ZIPF_SKEW}), CMDB {cis} CIs x {days} days"
    )
    print(f"  L1 only : {executions_l1} tool executions, {queries_l1} SQL queries")
    print(f"  L1 + L2 : {executions_l2} tool executions, {queries_l2} SQL queries")
    emit(
        "scaleout_bench",
        {
            "db_load_ratio_l2": round(executions_l2 / executions_l1, 4),
            "db_query_ratio_l2": round(queries_l2 / queries_l1, 4),
            "executions_l1_only": executions_l1,
            "executions_l2": executions_l2,
            "executions_l1_only_per_worker": [row["executions"] for row in l1_only],
            "executions_l2_per_worker": [row["executions"] for row in with_l2],
            "distinct_questions_asked": distinct,
            "db_queries_l1_only": queries_l1,
            "db_queries_l2": queries_l2,
            "l2_hits": total(with_l2, "l2_hits"),
            "l2_errors": total(with_l2, "l2_errors"),
            "l2_unencodable": total(with_l2, "l2_unencodable"),
            "failed_calls": total(l1_only, "failures") + total(with_l2, "failures"),
            "workers": WORKERS,
            "calls_per_worker": calls,
            "questions": question_count,
            "zipf_skew": ZIPF_SKEW,
            "cmdb_cis": cis,
            "cmdb_days": days,
            "workload_s_l1_only": round(max(row["workload_s"] for row in l1_only), 4),
            "workload_s_l2": round(max(row["workload_s"] for row in with_l2), 4),
            "workload_time_ratio_l2": round(
                max(row["workload_s"] for row in with_l2)
                / max(row["workload_s"] for row in l1_only),
                4,
            ),
        },
        quick=quick,
    )


if __name__ == "__main__":
    main()
