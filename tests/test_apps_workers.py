"""``docs/examples/asgi_app.py --workers 2``: worker processes, a runtime each, one Redis.

Both servers (uvicorn, hypercorn-trio) start two worker processes on one port, sharing a
real redis-server; every request is answered, the workers share cached values through
Redis, and SIGTERM stops the parent and every worker with status 0.
"""

from __future__ import annotations

import signal
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
