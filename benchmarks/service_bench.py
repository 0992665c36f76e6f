"""The example HTTP service under a real client: export stalls, 5xx, lost answers, shutdown.

Starts docs/examples/asgi_app.py on loopback (uvicorn on asyncio, then hypercorn on trio),
fills the tracer's ring (10,000 records) and, with 64 httpx clients (one connection each):

* ``healthz_p99_during_export_ms``: /healthz latency while full ``/traces?format=json``
  exports run, read by another process (anchor: the same probe with no export,
  ``healthz_p99_idle_ms``);
* ``status_5xx``: 5xx answers over two equal load rounds plus the bad-input set of issue 18
  (a chunked 1.1 MB body, unknown routes, LOOKUP without params or of an unknown CI, an
  inverted time range);
* ``rss_growth_pct``: the server's resident memory after round 2 vs after round 1;
* ``unanswered_at_shutdown``: requests sent before SIGTERM that got no answer, and
  ``shutdown_s_<server>``: SIGTERM to exit, with the 64 clients connected and busy.

Each figure is given per server (``_uvicorn``/``_hypercorn``); the unsuffixed figures are
the worse of the two (sums for counts).  Loopback only; ``--quick`` runs 3 s rounds.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

from _common import emit, parse_args  # noqa: E402

from runtime.ops import ensure_database  # noqa: E402

APP = ROOT / "docs" / "examples" / "asgi_app.py"
DATABASE = ROOT / "var" / "bench" / "service-cmdb.sqlite"
SIZE = {"cis": 100, "days": 1, "seed": 42}
CLIENTS = 64
RING = 10_000
SERVERS = {"uvicorn": [], "hypercorn": ["--trio"]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start(server: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [
        sys.executable,
        str(APP),
        "--port",
        str(port),
        "--database",
        str(DATABASE),
        *(f"--{k}={v}" for k, v in SIZE.items()),
        "--max-in-flight=1024",
        *SERVERS[server],
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{server} did not start:\n{log.read_text()}")


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def request_for(index: int) -> tuple[str, dict[str, Any]]:
    ci_id = index % SIZE["cis"] + 1
    tenant = f"t{index % 4}"
    kind = index % 10
    if kind < 5:
        body = {"tool": "CI", "operation": "get", "params": {"ci_id": ci_id}, "tenant": tenant}
        return "/execute", body
    if kind < 8:
        return "/ask", {"intent": "LOOKUP", "params": {"ci_id": ci_id}, "tenant": tenant}
    return "/compose", {"name": "impact_analysis", "params": {"ci_id": ci_id}, "tenant": tenant}


Clients = list[httpx.AsyncClient]


async def load(clients: Clients, seconds: float, statuses: dict[int, int]) -> int:
    """The clients, each one connection, asking as fast as answers come, for ``seconds``."""
    answered = 0
    stop_at = time.monotonic() + seconds

    async def one(worker: int, client: httpx.AsyncClient) -> None:
        nonlocal answered
        index = worker
        while time.monotonic() < stop_at:
            path, body = request_for(index)
            response = await client.post(path, json=body)
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            answered += 1
            index += CLIENTS

    async with anyio.create_task_group() as group:
        for worker, client in enumerate(clients):
            group.start_soon(one, worker, client)
    return answered


async def fill_ring(clients: Clients, statuses: dict[int, int]) -> int:
    while True:
        buffered: int = (await clients[0].get("/stats")).json()["tracer"]["buffered"]
        if buffered >= RING:
            return buffered
        await load(clients, 1.0, statuses)


def p99(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else 0.0


# The exports are read by another process: reading 8 MB costs the reader CPU, which on
# the probe's own event loop would delay the probe, not the server.
EXPORTER = """
import sys, httpx
url, count = sys.argv[1], int(sys.argv[2])
with httpx.Client(base_url=url, timeout=60) as client:
    for _ in range(count):
        print(len(client.get("/traces", params={"format": "json"}).content), flush=True)
"""


async def probe_healthz(url: str, exports: int) -> tuple[float, float, int]:
    """(p99 idle ms, p99 during exports ms, export bytes)."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as probe:
        idle: list[float] = []
        for _ in range(100):
            started = time.perf_counter()
            await probe.get("/healthz")
            idle.append((time.perf_counter() - started) * 1000)
            await anyio.sleep(0.005)
        during: list[float] = []
        command = [sys.executable, "-c", EXPORTER, url, str(exports)]
        sizes: list[bytes] = []

        async def export() -> None:
            sizes.extend((await anyio.run_process(command)).stdout.split() or [b"0"])

        async with anyio.create_task_group() as group:
            group.start_soon(export)
            await anyio.sleep(0.01)
            while not sizes:
                started = time.perf_counter()
                await probe.get("/healthz")
                during.append((time.perf_counter() - started) * 1000)
                await anyio.sleep(0.005)
    return p99(idle), p99(during), int(sizes[-1])


BIG = b'{"intent": "LOOKUP", "params": {"pad": "' + b"a" * 1_100_000 + b'"}}'
INVERTED = {"from": "2025-06-02T00:00:00", "to": "2025-06-01T00:00:00"}
BAD_POSTS: list[tuple[str, Any]] = [
    ("/ask", {"intent": "LOOKUP", "params": {}, "tenant": "t"}),
    ("/ask", {"intent": "LOOKUP", "params": {"ci_id": 99999}, "tenant": "t"}),
    ("/ask", {"intent": "LOOKUP", "params": {"ci_id": "x"}, "tenant": "t"}),
    (
        "/execute",
        {
            "tool": "METRIC",
            "operation": "aggregate",
            "params": {"metric": "cpu_usage", "time_range": INVERTED},
            "tenant": "t",
        },
    ),
    ("/ask", "not json"),
    ("/ask", BIG),
]


async def bad_inputs(url: str, statuses: dict[int, int]) -> None:
    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(BIG), 65536):
            yield BIG[start : start + 65536]

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        responses = [
            await client.post("/ask", content=chunked()),
            await client.get("/nope"),
            await client.put("/ask"),
        ]
        for path, body in BAD_POSTS:
            if isinstance(body, bytes | str):
                responses.append(await client.post(path, content=body))
            else:
                responses.append(await client.post(path, json=body))
    for response in responses:
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1


async def shutdown_under_load(
    process: subprocess.Popen[bytes], clients: Clients
) -> tuple[int, float]:
    """(requests sent before SIGTERM with no answer, seconds from SIGTERM to exit)."""
    signalled = [float("inf")]
    unanswered = 0
    answered = 0

    async def one(worker: int, client: httpx.AsyncClient) -> None:
        nonlocal unanswered, answered
        index = worker
        while True:
            path, body = request_for(index)
            sent = time.monotonic()
            try:
                await client.post(path, json=body)
            except httpx.TransportError:
                if sent < signalled[0]:
                    unanswered += 1
                return
            answered += 1
            index += CLIENTS

    async with anyio.create_task_group() as group:
        for worker, client in enumerate(clients):
            group.start_soon(one, worker, client)
        while answered < 4 * CLIENTS:  # noqa: ASYNC110 -- a count, polled
            await anyio.sleep(0.05)
        signalled[0] = time.monotonic()
        process.send_signal(signal.SIGTERM)
        await anyio.to_thread.run_sync(process.wait)
        took = time.monotonic() - signalled[0]
    return unanswered, took


def stage(server: str, text: str) -> None:
    print(f"{server}: {text}", file=sys.stderr, flush=True)


async def measure(server: str, seconds: float, log: Path) -> dict[str, Any]:
    process, url = await anyio.to_thread.run_sync(start, server, log)
    try:
        async with AsyncExitStack() as stack:
            # Made once: building an httpx client costs ~30 ms of CPU (its TLS context).
            clients = [
                await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
                for _ in range(CLIENTS)
            ]
            statuses: dict[int, int] = {}
            stage(server, "filling the tracer's ring")
            buffered = await fill_ring(clients, statuses)
            stage(server, f"{buffered} records buffered; probing /healthz during exports")
            idle_p99, export_p99, export_bytes = await probe_healthz(url, exports=3)
            stage(server, "two load rounds")
            await load(clients, seconds, statuses)
            rss_round_1 = rss_kb(process.pid)
            await load(clients, seconds, statuses)
            rss_round_2 = rss_kb(process.pid)
            stage(server, "bad inputs, then SIGTERM under load")
            await bad_inputs(url, statuses)
            unanswered, shutdown_s = await shutdown_under_load(process, clients)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return {
        "buffered_records": buffered,
        "export_bytes": export_bytes,
        "healthz_p99_idle_ms": round(idle_p99, 1),
        "healthz_p99_during_export_ms": round(export_p99, 1),
        "requests": sum(statuses.values()),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "status_5xx": sum(v for k, v in statuses.items() if k >= 500),
        "rss_round_1_mb": round(rss_round_1 / 1024, 1),
        "rss_round_2_mb": round(rss_round_2 / 1024, 1),
        "rss_growth_pct": round(100 * (rss_round_2 - rss_round_1) / max(rss_round_1, 1), 2),
        "unanswered_at_shutdown": unanswered,
        "shutdown_s": round(shutdown_s, 2),
        "exit_code": process.returncode,
    }


def main() -> None:
    args = parse_args(__doc__)
    seconds = 3.0 if args.quick else 20.0
    DATABASE.parent.mkdir(parents=True, exist_ok=True)
    ensure_database(DATABASE, **SIZE)
    figures: dict[str, Any] = {"clients": CLIENTS, "round_s": seconds, "cpus": os.cpu_count()}
    per: dict[str, dict[str, Any]] = {}
    for server in SERVERS:
        log = DATABASE.parent / f"service-{server}.log"
        per[server] = anyio.run(measure, server, seconds, log)
        print(f"{server}: {json.dumps(per[server])}", flush=True)
    for server, result in per.items():
        figures[server] = result
        for name in ("healthz_p99_during_export_ms", "shutdown_s", "rss_growth_pct"):
            figures[f"{name}_{server}"] = result[name]
    figures["healthz_p99_idle_ms"] = max(r["healthz_p99_idle_ms"] for r in per.values())
    figures["healthz_p99_during_export_ms"] = max(
        r["healthz_p99_during_export_ms"] for r in per.values()
    )
    figures["status_5xx"] = sum(r["status_5xx"] for r in per.values())
    figures["unanswered_at_shutdown"] = sum(r["unanswered_at_shutdown"] for r in per.values())
    figures["rss_growth_pct"] = max(r["rss_growth_pct"] for r in per.values())
    emit("service_bench", figures, quick=args.quick)


if __name__ == "__main__":
    main()
