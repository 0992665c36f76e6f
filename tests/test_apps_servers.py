"""The example HTTP service (docs/examples/asgi_app.py) under real servers.

Each async test runs twice (conftest): on asyncio it drives the app served by **uvicorn**,
on trio the same app served by **hypercorn's trio worker**.  The servers are real
subprocesses on 127.0.0.1 and a free port, started once per module (the shutdown tests
start their own), over a tiny CMDB built once per session.  Expected answers come from
a runtime opened in the test process over the same database: the HTTP layer must give
exactly what a direct call gives.
"""

from __future__ import annotations

import json
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest

from runtime import Runtime, ToolContext, ToolRegistry, open_runtime
from runtime.ops import OpsDatabase, ensure_database, register_ops_tools
from runtime.ops.config import ops_defaults

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "docs" / "examples" / "asgi_app.py"
TINY: dict[str, Any] = {"cis": 40, "days": 1, "seed": 42}
SERVER_FLAGS = {"asyncio": [], "trio": ["--trio"]}
# What a clean run must never log (asyncio's lost tasks, unhandled errors in the app).
BAD_LOG_MARKERS = ("Task was destroyed", "Traceback", "never awaited", "Exception in ASGI")
CI_IDS = range(1, TINY["cis"] + 1)
START_TIMEOUT_S = 60
KEYWORDS = ["web", "db", "svc", "api", "prod", "k8s", "cache", "gateway"]


# -- servers as subprocesses ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """One example service process and its log file."""

    def __init__(
        self,
        backend: str,
        database: Path,
        log_path: Path,
        *extra: str,
        sizes: tuple[str, ...] | None = None,
    ) -> None:
        self.backend = backend
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        command = [
            sys.executable,
            str(APP),
            "--port",
            str(self.port),
            "--database",
            str(database),
            *(sizes if sizes is not None else (f"--{k}={v}" for k, v in TINY.items())),
            "--demo-tools",
            *SERVER_FLAGS[backend],
            *extra,
        ]
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        # Generous: on a loaded 2-CPU host importing and starting takes 10 s and more.
        self._wait_ready(deadline=time.monotonic() + START_TIMEOUT_S)

    def _wait_ready(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited at start:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.process.kill()
        raise AssertionError(f"server not ready within {START_TIMEOUT_S} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, signum: int = signal.SIGINT, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
        return self.wait(timeout)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"server did not exit within {timeout} s:\n{self.log()}") from None


def backend_of(anyio_backend: Any) -> str:
    name: str = anyio_backend[0] if isinstance(anyio_backend, tuple) else anyio_backend
    return name


@pytest.fixture(scope="session")
def tiny_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("apps") / "tiny.db"
    ensure_database(path, **TINY)
    return path


@pytest.fixture(scope="module")
def running_servers(
    tiny_db: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Server]]:
    servers: dict[str, Server] = {}
    yield servers
    for server in servers.values():
        assert server.stop() == 0, server.log()


@pytest.fixture
def server(
    anyio_backend: Any,
    running_servers: dict[str, Server],
    tiny_db: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Server:
    backend = backend_of(anyio_backend)
    if backend not in running_servers:
        log = tmp_path_factory.mktemp("logs") / f"{backend}.log"
        running_servers[backend] = Server(backend, tiny_db, log)
    return running_servers[backend]


@asynccontextmanager
async def direct_runtime(database: Path) -> AsyncIterator[Runtime]:
    db = await OpsDatabase.open(database)
    try:
        registry = ToolRegistry()
        register_ops_tools(registry, db)
        async with open_runtime(registry, ops_defaults()) as rt:
            yield rt
    finally:
        db.close()


def as_json(value: Any) -> Any:
    """What ``value`` looks like after a trip through the service's JSON encoder."""
    return json.loads(json.dumps(value, default=str))


# -- requests and their expected answers -------------------------------------------------------

Request = tuple[str, dict[str, Any]]


def request_key(request: Request) -> str:
    return request[0] + json.dumps(request[1], sort_keys=True)


def answer_of(path: str, body: dict[str, Any]) -> Any:
    """The part of a response that must equal the direct call's answer."""
    if path == "/ask":
        return {"data": body["data"], "tool": body["tool"], "operation": body["operation"]}
    if path == "/compose":
        return {
            "primary": body["primary"],
            "enriched": body["enriched"],
            "trace": sorted(body["execution_trace"]),
            "statuses": {name: step["status"] for name, step in body["steps"].items()},
        }
    return body


async def expected(rt: Runtime, request: Request) -> Any:
    path, body = request
    ctx = ToolContext(body["tenant"])
    if path == "/execute":
        data = await rt.execute(body["tool"], body["operation"], body["params"], ctx)
        return as_json({"data": data})
    if path == "/ask":
        best = await rt.execute_best(body["intent"], body["params"], ctx)
        return as_json({"data": best.data, "tool": best.tool_type, "operation": best.operation})
    result = await rt.compose(body["name"], body["params"], ctx)
    return answer_of("/compose", as_json(result.to_dict()))


def workload(count: int, seed: int) -> list[Request]:
    """A seeded mix: single calls, asks by intent and compositions, for two tenants."""
    rng = random.Random(seed)
    requests: list[Request] = []
    for _ in range(count):
        tenant = rng.choice(["acme", "globex"])
        roll = rng.random()
        ci_id = rng.choice(CI_IDS)
        if roll < 0.6:
            body = {"tool": "CI", "operation": "get", "params": {"ci_id": ci_id}}
            requests.append(("/execute", {**body, "tenant": tenant}))
        elif roll < 0.75:
            params = {"keywords": [rng.choice(KEYWORDS)], "limit": 5}
            body = {"tool": "CI", "operation": "search", "params": params}
            requests.append(("/execute", {**body, "tenant": tenant}))
        elif roll < 0.95:
            body = {"intent": "LOOKUP", "params": {"ci_id": ci_id}}
            requests.append(("/ask", {**body, "tenant": tenant}))
        else:
            body = {"name": "impact_analysis", "params": {"ci_id": ci_id}}
            requests.append(("/compose", {**body, "tenant": tenant}))
    return requests


async def expected_answers(database: Path, requests: list[Request]) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    async with direct_runtime(database) as rt:
        for request in requests:
            key = request_key(request)
            if key not in answers:
                answers[key] = await expected(rt, request)
    return answers


# -- answers ---------------------------------------------------------------------------------------


async def test_answers_equal_direct_runtime_calls(server: Server, tiny_db: Path) -> None:
    metric_aggregate = {
        "tool": "METRIC",
        "operation": "aggregate",
        "params": {"metric": "cpu_usage"},
    }
    requests = [
        ("/execute", {"tool": "CI", "operation": "get", "params": {"ci_id": 3}, "tenant": "a"}),
        ("/execute", {"tool": "CI", "operation": "aggregate", "params": {"group_by": "env"}}),
        ("/execute", metric_aggregate),
        ("/execute", {"tool": "GRAPH", "operation": "expand", "params": {"ci_id": 5, "depth": 2}}),
        ("/execute", {"tool": "HISTORY", "operation": "event_log", "params": {"limit": 10}}),
        ("/ask", {"intent": "SEARCH", "params": {"keywords": ["web"]}}),
        ("/ask", {"intent": "SERIES", "params": {"ci_id": 2, "metric": "cpu_usage"}}),
        ("/compose", {"name": "impact_analysis", "params": {"ci_id": 3}}),
        ("/compose", {"name": "search_with_context", "params": {"keywords": ["db"]}}),
    ]
    requests = [(path, {"tenant": "acme", **body}) for path, body in requests]
    wanted = await expected_answers(tiny_db, requests)
    with anyio.fail_after(30):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for request in requests:
                response = await client.post(request[0], json=request[1])
                assert response.status_code == 200, response.text
                assert answer_of(request[0], response.json()) == wanted[request_key(request)]


def read_facts(database: Path) -> tuple[list[tuple[Any, ...]], dict[str, int]]:
    conn = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT id, code, name, type FROM cis ORDER BY id").fetchall()
        by_env = dict(conn.execute("SELECT env, COUNT(*) FROM cis GROUP BY env").fetchall())
    finally:
        conn.close()
    return rows, by_env


async def test_answers_agree_with_the_database(server: Server, tiny_db: Path) -> None:
    rows, by_env = read_facts(tiny_db)
    assert len(rows) == TINY["cis"]
    with anyio.fail_after(30):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for ci_id, code, name, ci_type in rows[:10]:
                body = {"intent": "LOOKUP", "params": {"ci_code": code}, "tenant": "facts"}
                record = (await client.post("/ask", json=body)).json()["data"]["record"]
                assert (record["ci_id"], record["ci_name"], record["ci_type"]) == (
                    ci_id,
                    name,
                    ci_type,
                )
            body = {"tool": "CI", "operation": "aggregate", "params": {"group_by": "env"}}
            answer = (await client.post("/execute", json={**body, "tenant": "facts"})).json()
    assert answer["data"]["columns"] == ["env", "count"]
    assert {env: count for env, count in answer["data"]["rows"]} == by_env


SLEEP: dict[str, Any] = {"tool": "DEMO", "operation": "sleep"}
BAD_REQUESTS: list[tuple[str, Any, int, str | None]] = [
    # (path, body or raw text, status, error type)
    ("/ask", "not json", 400, "BadRequest"),
    ("/ask", [1, 2], 400, "BadRequest"),
    ("/ask", {"params": {}, "tenant": "t"}, 400, "BadRequest"),
    ("/ask", {"intent": "LOOKUP", "params": [], "tenant": "t"}, 400, "BadRequest"),
    ("/ask", {"intent": "LOOKUP", "params": {"ci_id": 1}, "tenant": ""}, 400, "BadRequest"),
    ("/ask", {"intent": "NOPE", "params": {}, "tenant": "t"}, 422, "UnknownIntent"),
    ("/ask", {"intent": "LOOKUP", "params": {"ci_id": "x"}, "tenant": "t"}, 422, None),
    ("/ask", {"intent": "LOOKUP", "params": {}, "tenant": "t", "strategy": "NOPE"}, 422, None),
    ("/execute", {"tool": "CI", "operation": "get", "params": {"x": 1}, "tenant": "t"}, 422, None),
    ("/execute", {"tool": "NOPE", "operation": "get", "params": {}, "tenant": "t"}, 404, None),
    ("/execute", {**SLEEP, "params": {"seconds": -1}, "tenant": "t"}, 422, "InvalidParams"),
    ("/compose", {"name": "nope", "params": {}, "tenant": "t"}, 422, "UnknownComposition"),
    ("/compose", {"name": "impact_analysis", "params": {}, "tenant": "t"}, 422, "PipelineError"),
]


@pytest.mark.parametrize(("path", "body", "status", "error"), BAD_REQUESTS)
async def test_bad_input_is_a_client_error_with_the_runtimes_message(
    server: Server, path: str, body: Any, status: int, error: str | None
) -> None:
    with anyio.fail_after(10):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            if isinstance(body, str):
                response = await client.post(path, content=body)
            else:
                response = await client.post(path, json=body)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["message"]
    if error is not None:
        assert answer["error"] == error
    # The service still answers after a bad request.
    assert (await anyio.to_thread.run_sync(httpx.get, f"{server.url}/healthz")).status_code == 200


async def test_invalid_params_name_the_param(server: Server) -> None:
    body = {"tool": "CI", "operation": "get", "params": {"ci_id": "seven"}, "tenant": "t"}
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
        response = await client.post("/execute", json=body)
    assert response.status_code == 422
    answer = response.json()
    assert answer["error"] == "InvalidParams"
    assert answer["param"] == "ci_id"
    assert "ci_id" in answer["message"]


async def test_stats_and_traces_reflect_the_calls(server: Server) -> None:
    tenant = f"stats-{random.random()}"
    body = {"tool": "CI", "operation": "get", "params": {"ci_id": 7}, "tenant": tenant}
    with anyio.fail_after(20):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            before = (await client.get("/stats")).json()
            for _ in range(3):
                assert (await client.post("/execute", json=body)).status_code == 200
            after = (await client.get("/stats")).json()
            exports = {
                fmt: await client.get("/traces", params={"format": fmt})
                for fmt in ("json", "jsonl", "csv")
            }
            bad = await client.get("/traces", params={"format": "xml"})
    get_before = before["cache"]["by_operation"].get("CI.get", {"hits": 0, "misses": 0})
    get_after = after["cache"]["by_operation"]["CI.get"]
    assert get_after["misses"] - get_before["misses"] == 1  # a new tenant: one miss...
    assert get_after["hits"] - get_before["hits"] == 2  # ...then hits
    assert after["health"]["ok"] is True
    assert set(after["health"]["actors"]) == {"cache", "tracer", "selector"}
    assert after["tracer"]["observed"] >= before["tracer"]["observed"] + 3
    records = exports["json"].json()
    mine = [r for r in records if r["tenant"] == tenant]
    assert [r["cache_hit"] for r in mine] == [False, True, True]
    lines = exports["jsonl"].text.strip().splitlines()
    assert len(lines) == len(records)
    assert exports["csv"].headers["content-type"].startswith("text/csv")
    assert exports["csv"].text.splitlines()[0].startswith("trace_id,span_id")
    assert bad.status_code == 400


async def test_2000_requests_at_100_concurrent_all_answered_correctly(
    server: Server, tiny_db: Path
) -> None:
    requests = workload(2000, seed=9)
    wanted = await expected_answers(tiny_db, requests)
    failures: list[str] = []
    answered = 0
    pending = iter(requests)

    async def worker() -> None:
        # One client (one connection) per worker: httpx's shared pool costs the client
        # more CPU than the server spends at 100 connections, on the same two cores.
        nonlocal answered
        async with httpx.AsyncClient(base_url=server.url, timeout=30, verify=False) as client:
            for path, body in pending:
                response = await client.post(path, json=body)
                answered += 1
                if response.status_code != 200:
                    failures.append(f"{path} {body}: {response.status_code} {response.text[:200]}")
                elif answer_of(path, response.json()) != wanted[request_key((path, body))]:
                    failures.append(f"{path} {body}: wrong answer")

    with anyio.fail_after(60):
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            before = (await client.get("/stats")).json()
            async with anyio.create_task_group() as group:
                for _ in range(100):
                    group.start_soon(worker)
            after = (await client.get("/stats")).json()
    assert failures == []
    assert answered == 2000
    assert after["health"]["ok"] is True
    assert after["cache"]["in_flight"] == 0
    assert after["cache"]["waiting_followers"] == 0
    # Nothing lost on the way: every single call made one cache lookup.
    singles = sum(1 for path, body in requests if path == "/execute" and body["tool"] == "CI")
    lookups = {
        op: after["cache"]["by_operation"][op]["hits"]
        + after["cache"]["by_operation"][op]["misses"]
        - before["cache"]["by_operation"].get(op, {}).get("hits", 0)
        - before["cache"]["by_operation"].get(op, {}).get("misses", 0)
        for op in ("CI.get", "CI.search")
    }
    asks_and_compositions = len(requests) - singles
    assert singles <= lookups["CI.get"] + lookups["CI.search"]
    assert lookups["CI.get"] + lookups["CI.search"] <= singles + asks_and_compositions * 2
    assert "Task was destroyed" not in server.log()


# -- shutdown ------------------------------------------------------------------------------------


async def burst_then_signal(
    server: Server, signum: int, *, sleep_s: float, slow: int, fast: int
) -> tuple[list[Any], float]:
    """Start ``slow`` DEMO.sleep requests and a stream of fast ones, signal the server once
    they are in flight, and collect every outcome (a status code or an exception name)."""
    outcomes: list[Any] = []
    limits = httpx.Limits(max_connections=slow + 10)

    async def slow_call(client: httpx.AsyncClient, tag: int) -> None:
        params = {"seconds": sleep_s, "tag": tag}
        body = {"tool": "DEMO", "operation": "sleep", "params": params, "tenant": "t"}
        try:
            response = await client.post("/execute", json=body)
        except httpx.TransportError as exc:
            outcomes.append(("slow", type(exc).__name__))
        else:
            ok = response.status_code == 200 and response.json()["data"]["tag"] == tag
            outcomes.append(("slow", 200 if ok else response.status_code))

    async def fast_calls(client: httpx.AsyncClient) -> None:
        for i in range(fast):
            body = {"intent": "LOOKUP", "params": {"ci_id": i % 40 + 1}, "tenant": "t"}
            try:
                response = await client.post("/ask", json=body)
            except httpx.TransportError as exc:
                outcomes.append(("fast", type(exc).__name__))
            else:
                outcomes.append(("fast", response.status_code))
            await anyio.sleep(0.01)

    client = httpx.AsyncClient(base_url=server.url, limits=limits, timeout=30)
    async with client, anyio.create_task_group() as group:
        for tag in range(slow):
            group.start_soon(slow_call, client, tag)
        group.start_soon(fast_calls, client)
        await anyio.sleep(0.4)  # the slow ones are now sleeping inside the server
        started = time.monotonic()
        server.process.send_signal(signum)
        code = await anyio.to_thread.run_sync(server.wait, 20.0)
        took = time.monotonic() - started
    assert code == 0, server.log()
    return outcomes, took


async def test_shutdown_with_requests_in_flight_finishes_them_and_exits(
    anyio_backend: Any, tiny_db: Path, tmp_path: Path
) -> None:
    backend = backend_of(anyio_backend)
    server = Server(backend, tiny_db, tmp_path / "server.log")
    signum = signal.SIGTERM if backend == "asyncio" else signal.SIGINT
    with anyio.fail_after(40):
        outcomes, took = await burst_then_signal(server, signum, sleep_s=1.0, slow=30, fast=50)
    slow = [outcome for kind, outcome in outcomes if kind == "slow"]
    fast = [outcome for kind, outcome in outcomes if kind == "fast"]
    # Graceful: every request the server had accepted is answered, and correctly.
    assert slow == [200] * 30, slow
    # Requests made after the signal are refused at the door, never left hanging.
    assert all(o == 200 or isinstance(o, str) for o in fast), fast
    assert took < 10
    log = server.log()
    assert not [marker for marker in BAD_LOG_MARKERS if marker in log], log
    assert "shutting the runtime down" in log
    assert "runtime stopped; actors still running: 0" in log


async def test_shutdown_past_the_graceful_timeout_cancels_and_exits(
    anyio_backend: Any, tiny_db: Path, tmp_path: Path
) -> None:
    backend = backend_of(anyio_backend)
    server = Server(backend, tiny_db, tmp_path / "server.log", "--graceful-timeout=1")
    with anyio.fail_after(40):
        outcomes, took = await burst_then_signal(
            server, signal.SIGINT, sleep_s=25.0, slow=10, fast=5
        )
    slow = [outcome for kind, outcome in outcomes if kind == "slow"]
    # The sleeps could not finish: they were cut off, not waited for.
    assert len(slow) == 10
    assert 200 not in slow
    assert took < 8
    log = server.log()
    assert "Task was destroyed" not in log
    assert "never awaited" not in log
    # uvicorn logs each request it cancels as "Exception in ASGI application" with the
    # CancelledError it threw in: those, and only those, are the tracebacks allowed here.
    cancelled = log.count("CancelledError: Task cancelled, timeout graceful shutdown exceeded")
    assert log.count("Traceback") == cancelled, log
    assert "runtime stopped; actors still running: 0" in log
