"""``docs/examples/asgi_app.py --workers 2``: worker processes, a runtime each, one Redis.

Both servers (uvicorn, hypercorn-trio) start two worker processes on one port, sharing a
real redis-server; every request is answered, the workers share cached values through
Redis, and SIGTERM stops the parent and every worker with status 0.  Under uvicorn each
worker has its own listening socket (SO_REUSEPORT), so a burst of keep-alive connections
is spread over the workers instead of landing on one.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from redis_server import RedisServer, redis_server
from test_apps_servers import APP, ROOT, TINY, free_port

from runtime.ops import ensure_database

__all__ = ["redis_server"]

pytestmark = pytest.mark.slow

START_TIMEOUT_S = 90.0


def workers_of(pid: int) -> list[int]:
    """The worker processes of server ``pid``: its children spawned by multiprocessing
    (not its resource tracker), from Linux /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for kid in kids:
            try:
                cmdline = Path(f"/proc/{kid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                found.append(kid)
    return found


def gone(pids: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("server", ["uvicorn", "hypercorn"])
def test_two_workers_serve_and_share_one_redis(
    redis_server: RedisServer, tmp_path: Path, server: str
) -> None:
    database = tmp_path / "cmdb.sqlite"
    ensure_database(database, **TINY)
    config = tmp_path / "runtime.yaml"
    config.write_text(f"cache:\n  redis:\n    url: {redis_server.url}\n    op_timeout: 1s\n")
    port = free_port()
    command = [
        sys.executable, str(APP), "--port", str(port), "--workers", "2",
        "--database", str(database), "--config", str(config),
    ]  # fmt: skip
    if server == "hypercorn":
        command.append("--trio")
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while len(workers_of(process.pid)) < 2 or not _healthy(port):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not up in {START_TIMEOUT_S}s:\n{log.read_text()}"
            time.sleep(0.1)
        workers = workers_of(process.pid)
        assert len(workers) == 2
        body = {"tool": "CI", "operation": "get", "params": {"ci_id": 3}, "tenant": "acme"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            answers = [client.post("/execute", json=body) for _ in range(40)]
            stats = [client.get("/stats").json()["cache"]["l2"] for _ in range(20)]
        assert all(a.status_code == 200 for a in answers)
        assert len({a.json()["data"]["record"]["ci_id"] for a in answers}) == 1
        assert all(s is not None for s in stats)  # every worker has the Redis tier
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert gone(workers, timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


def _healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


ESTABLISHED, LISTEN = "01", "0A"  # TCP states as /proc/net/tcp writes them


def sockets_on(pid: int, port: int, state: str) -> int:
    """Sockets on local ``port`` in ``state`` that process ``pid`` holds, from Linux /proc."""
    inodes: set[str] = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            in_state = fields[3] == state
            if in_state and int(fields[1].rsplit(":", 1)[1], 16) == port and fields[9] in inodes:
                count += 1
    return count


def ask_health(connection: socket.socket) -> bytes:
    """One keep-alive ``GET /healthz`` on ``connection``; the answer's status line."""
    connection.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = connection.recv(65536)
        assert chunk, "the worker closed the connection"
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head.split(b"\r\n", 1)[0]


def burst(port: int, count: int) -> list[socket.socket]:
    """``count`` connections opened at once (non-blocking connects, then waited for)."""
    opened = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(count)]
    for connection in opened:
        connection.setblocking(False)
        connection.connect_ex(("127.0.0.1", port))
    for connection in opened:
        select.select([], [connection], [], 30)
        connection.setblocking(True)
        connection.settimeout(30)
    return opened


def test_uvicorn_workers_share_a_burst_of_connections(tmp_path: Path) -> None:
    database = tmp_path / "cmdb.sqlite"
    ensure_database(database, **TINY)
    port = free_port()
    command = [
        sys.executable, str(APP), "--port", str(port), "--workers", "2",
        "--database", str(database),
    ]  # fmt: skip
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    connections: list[socket.socket] = []
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        # Up means both workers listen: a worker binds its socket at once but listens only
        # once its runtime has started, and until then the kernel routes nothing to it.
        while len(workers := workers_of(process.pid)) < 2 or not all(
            sockets_on(pid, port, LISTEN) for pid in workers
        ):
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"not up in {START_TIMEOUT_S}s:\n{log.read_text()}"
            time.sleep(0.1)
        # A burst, as a load balancer's pool or wrk opens it: all connected before any
        # request, so with one shared socket one worker's accept loop would take them all.
        connections.extend(burst(port, 16))
        statuses = [ask_health(connection) for connection in connections]
        held = [sockets_on(pid, port, ESTABLISHED) for pid in workers_of(process.pid)]
        assert all(status.endswith(b"200 OK") for status in statuses), statuses
        assert sum(held) == 16, (held, log.read_text())
        # The kernel hashes each connection to one socket: both see some (all 16 on one
        # worker has probability 2 / 2**16).
        assert min(held) >= 1, held
    finally:
        for connection in connections:
            connection.close()
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_a_worker_socket_turns_nagle_off_on_its_connections() -> None:
    """A worker's socket says it is TCP, so asyncio (uvicorn's loop; hence no trio case)
    sets TCP_NODELAY on every connection it accepts.  With the proto left 0 it did not,
    and each small answer waited ~40 ms for the client's delayed ACK."""
    spec = importlib.util.spec_from_file_location("_reuseport", APP.parent / "_reuseport.py")
    assert spec is not None
    assert spec.loader is not None
    reuseport = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reuseport)
    sock = reuseport.reuseport_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    nodelay: list[int] = []

    async def accept_one() -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            accepted = writer.get_extra_info("socket")
            nodelay.append(accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(handle, sock=sock)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the handler
            writer.close()

    asyncio.run(accept_one())
    assert nodelay == [1]
