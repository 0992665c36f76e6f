"""The example service under bad clients (issue 18), on a real server on loopback: uvicorn
on asyncio, hypercorn's trio worker on trio (see test_apps_servers.py).

Oversized bodies (chunked or not) are a 413 JSON answer logged as one line; unknown routes
and wrong methods are JSON; a LOOKUP naming nothing, an unknown CI and an inverted time
range are client errors; admission beyond the in-flight limit is a 503 with Retry-After;
a request past its deadline is a 504; the access log writes one line per request; at
shutdown every request sent before the signal is answered, answers say Connection: close,
and hypercorn exits once drained instead of waiting out its graceful timeout.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
from test_apps_servers import APP, Server, backend_of, running_servers, server, tiny_db

from runtime.ops import content_digest, ensure_database

__all__ = ["running_servers", "server", "tiny_db"]  # fixtures, shared

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

OVER_LIMIT = b'{"intent": "LOOKUP", "params": {"pad": "' + b"a" * 1_100_000 + b'"}}'
SLEEP: dict[str, Any] = {"tool": "DEMO", "operation": "sleep", "tenant": "t"}


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunked", [True, False])
async def test_a_body_over_the_limit_is_a_413_json_logged_as_one_line(
    server: Server, chunked: bool
) -> None:
    before = server.log()
    with anyio.fail_after(20):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            content: Any = chunks(OVER_LIMIT) if chunked else OVER_LIMIT
            response = await client.post("/ask", content=content)
            health = await client.get("/healthz")
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "BodyTooLarge"
    assert "1048576 bytes" in response.json()["message"]
    assert health.status_code == 200
    await anyio.sleep(0.2)  # the log line is written after the answer
    new = server.log()[len(before) :]
    assert "Traceback" not in new
    assert "unexpected error" not in new
    assert new.count("\n") <= 1, new


def send_then_read(port: int, head: bytes, body: bytes) -> bytes:
    """Send the head, give the server time to answer early, send the body, read to EOF."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        time.sleep(0.3)  # before the fix the 413 and the close came here, mid-upload
        sock.sendall(body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


@pytest.mark.parametrize("chunked", [True, False])
async def test_a_client_still_uploading_an_oversized_body_reads_the_413(
    server: Server, chunked: bool
) -> None:
    # The server used to answer at the headers (or at the limit) and close with the rest
    # of the body unread: the kernel then resets the connection, and the client -- still
    # sending -- got a reset instead of the answer.
    if chunked:
        head = b"POST /ask HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        piece = b"a" * 65536
        body = (b"%x\r\n%s\r\n" % (len(piece), piece)) * 20 + b"0\r\n\r\n"
    else:
        head = b"POST /ask HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(OVER_LIMIT)
        body = OVER_LIMIT
    head = head.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n")
    with anyio.fail_after(30):
        answer = await anyio.to_thread.run_sync(send_then_read, server.port, head, body)
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"413", answer[:300]
    assert b"BodyTooLarge" in rest


@pytest.mark.parametrize(
    ("method", "path", "status", "error"),
    [
        ("GET", "/nope", 404, "NotFound"),
        ("POST", "/", 404, "NotFound"),
        ("PUT", "/ask", 405, "MethodNotAllowed"),
        ("POST", "/healthz", 405, "MethodNotAllowed"),
    ],
)
async def test_unknown_routes_and_methods_answer_json(
    server: Server, method: str, path: str, status: int, error: str
) -> None:
    with anyio.fail_after(10):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            response = await client.request(method, path)
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"] == error
    assert path in response.json()["message"]


INVERTED = {"from": "2025-06-02T00:00:00", "to": "2025-06-01T00:00:00"}
CLIENT_ERRORS: list[tuple[str, dict[str, Any], int, str]] = [
    ("/ask", {"intent": "LOOKUP", "params": {}}, 422, "MissingParams"),
    ("/ask", {"intent": "lookup"}, 422, "MissingParams"),
    ("/ask", {"intent": "LOOKUP", "params": {"ci_id": 99999}}, 404, "NotFound"),
    ("/ask", {"intent": "LOOKUP", "params": {"ci_code": "NOPE-1"}}, 404, "NotFound"),
    ("/execute", {"tool": "CI", "operation": "get", "params": {"ci_id": 99999}}, 404, "NotFound"),
    (
        "/execute",
        {
            "tool": "METRIC",
            "operation": "aggregate",
            "params": {"metric": "cpu_usage", "time_range": INVERTED},
        },
        422,
        "InvalidParams",
    ),
    (
        "/ask",
        {"intent": "AGGREGATE", "params": {"metric": "cpu_usage", "time_range": INVERTED}},
        422,
        "AllCandidatesFailed",
    ),
]


@pytest.mark.parametrize(("path", "body", "status", "error"), CLIENT_ERRORS)
async def test_asks_that_cannot_be_answered_are_client_errors(
    server: Server, path: str, body: dict[str, Any], status: int, error: str
) -> None:
    with anyio.fail_after(10):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            response = await client.post(path, json={**body, "tenant": "t"})
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["error"] == error
    if "time_range" in body.get("params", {}):
        assert "time_range.from" in answer["message"]
        assert "time_range.to" in answer["message"]
    assert "failed with" not in answer["message"] or error == "InvalidParams"


async def test_a_trace_export_can_be_limited(server: Server) -> None:
    with anyio.fail_after(20):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            for ci_id in (1, 2, 3):
                body = {"tool": "CI", "operation": "get", "params": {"ci_id": ci_id}}
                await client.post("/execute", json={**body, "tenant": "limit"})
            two = await client.get("/traces", params={"format": "jsonl", "limit": "2"})
            bad = await client.get("/traces", params={"limit": "0"})
    assert len(two.text.strip().splitlines()) == 2
    assert bad.status_code == 400
    assert "limit" in bad.json()["message"]


# -- admission, deadline, access log: a server of their own --------------------------------


@pytest.fixture
def guarded_server(anyio_backend: Any, tiny_db: Path, tmp_path: Path) -> Iterator[Server]:
    flags = ("--request-deadline=3", "--access-log")
    started = Server(backend_of(anyio_backend), tiny_db, tmp_path / "server.log", *flags)
    yield started
    assert started.stop() == 0, started.log()


@pytest.fixture
def small_door(anyio_backend: Any, tiny_db: Path, tmp_path: Path) -> Iterator[Server]:
    flags = ("--max-in-flight=2", "--access-log")
    started = Server(backend_of(anyio_backend), tiny_db, tmp_path / "door.log", *flags)
    yield started
    assert started.stop() == 0, started.log()


async def test_beyond_the_in_flight_limit_is_a_503_with_retry_after(small_door: Server) -> None:
    statuses: list[int] = []
    sleeps: list[int] = []
    refusals: list[httpx.Response] = []

    async def sleep_call(client: httpx.AsyncClient) -> None:
        # Long enough that both are surely in flight together, even on a loaded machine.
        response = await client.post("/execute", json={**SLEEP, "params": {"seconds": 8}})
        sleeps.append(response.status_code)
        if response.status_code == 503:  # a probe was in flight as it arrived: refused too
            refusals.append(response)

    limits = httpx.Limits(max_connections=10)
    with anyio.fail_after(40):
        async with (
            httpx.AsyncClient(base_url=small_door.url, timeout=30, limits=limits) as client,
            anyio.create_task_group() as group,
        ):
            group.start_soon(sleep_call, client)
            group.start_soon(sleep_call, client)
            while not refusals:  # two requests in flight: the next one is refused
                probe = await client.get("/healthz")
                statuses.append(probe.status_code)
                if probe.status_code == 503:
                    refusals.append(probe)
                await anyio.sleep(0.05)
    refused = refusals[0]
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"] == "Overloaded"
    assert "2 requests in flight" in refused.json()["message"]
    assert set(statuses) <= {200, 503}
    assert len(sleeps) == 2
    assert 200 in sleeps  # admitted requests are answered
    assert set(sleeps) <= {200, 503}


async def test_a_request_past_its_deadline_is_a_504(guarded_server: Server) -> None:
    with anyio.fail_after(20):
        async with httpx.AsyncClient(base_url=guarded_server.url, timeout=15) as client:
            late = await client.post("/execute", json={**SLEEP, "params": {"seconds": 10}})
            health = await client.get("/healthz")
    assert late.status_code == 504
    assert late.json()["error"] == "DeadlineExceeded"
    assert health.status_code == 200


async def test_the_access_log_has_one_line_per_request(guarded_server: Server) -> None:
    with anyio.fail_after(20):
        async with httpx.AsyncClient(base_url=guarded_server.url, timeout=10) as client:
            for _ in range(3):
                await client.get("/stats")
            await client.get("/nope")
    await anyio.sleep(0.2)
    log = guarded_server.log()
    assert log.count('"GET /stats" 200') == 3
    assert log.count('"GET /nope" 404') == 1


# -- shutdown under keep-alive load --------------------------------------------------------


async def test_shutdown_answers_every_request_sent_before_the_signal(
    anyio_backend: Any, tiny_db: Path, tmp_path: Path
) -> None:
    backend = backend_of(anyio_backend)
    # A graceful timeout far above what draining needs: hypercorn must not wait it out.
    started = Server(backend, tiny_db, tmp_path / "server.log", "--graceful-timeout=30")
    signalled = [float("inf")]
    lost_before: list[str] = []
    after: list[str | None] = []
    answered = [0]

    async def keep_asking(index: int) -> None:
        async with httpx.AsyncClient(base_url=started.url, timeout=20) as client:
            while True:
                sent = time.monotonic()
                body = {"intent": "LOOKUP", "params": {"ci_id": index % 40 + 1}, "tenant": "t"}
                try:
                    response = await client.post("/ask", json=body)
                except httpx.TransportError as exc:
                    if sent < signalled[0]:
                        lost_before.append(type(exc).__name__)
                    return
                answered[0] += 1
                if sent >= signalled[0]:
                    after.append(response.headers.get("connection"))

    with anyio.fail_after(60):
        async with anyio.create_task_group() as group:
            for index in range(16):
                group.start_soon(keep_asking, index)
            while answered[0] < 200:
                await anyio.sleep(0.05)
            signalled[0] = time.monotonic()
            started.process.send_signal(signal.SIGTERM)
            code = await anyio.to_thread.run_sync(started.wait, 40.0)
            took = time.monotonic() - signalled[0]
    assert code == 0, started.log()
    assert lost_before == []
    # Requests that got in after the signal were answered and told to close.
    assert after
    assert set(after) == {"close"}
    assert took < 15  # the drain, not the 30 s graceful timeout
    assert "runtime stopped; actors still running: 0" in started.log()


# -- the database: used as it is, never resized unasked --------------------------------------


async def test_an_existing_database_is_served_as_it_is(anyio_backend: Any, tmp_path: Path) -> None:
    small = tmp_path / "small.sqlite"
    ensure_database(small, cis=12, days=1, seed=3)
    digest = content_digest(small)
    backend = backend_of(anyio_backend)
    # No --cis/--days/--seed: whatever the file holds is used.
    started = Server(backend, small, tmp_path / "server.log", sizes=())
    try:
        body = {"tool": "CI", "operation": "aggregate", "params": {}, "tenant": "t"}
        async with httpx.AsyncClient(base_url=started.url, timeout=10) as client:
            answer = (await client.post("/execute", json=body)).json()
    finally:
        assert started.stop() == 0, started.log()
    assert answer["data"]["rows"] == [[12]]
    assert content_digest(small) == digest
    # Asked for other sizes: refused at start, with the reason, and the file left alone.
    with pytest.raises(AssertionError, match="--cis 12, not 40"):
        Server(backend, small, tmp_path / "refused.log")
    assert content_digest(small) == digest


@pytest.mark.parametrize(
    ("flag", "named"),
    [
        ("--cis=999999999999999999999", "--cis must be between 8 and 50000"),
        ("--days=99999", "--days must be between 1 and 30"),
        ("--max-in-flight=0", "max_in_flight must be in [1, 100000]"),
        ("--request-deadline=1e9", "deadline_s must be in (0, 3600] s"),
    ],
)
def test_sizes_beyond_their_bound_stop_the_service_before_it_starts(
    flag: str, named: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, str(APP), "--database", str(tmp_path / "db.sqlite"), flag],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert named in done.stderr
    assert not (tmp_path / "db.sqlite").exists()
