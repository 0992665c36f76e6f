"""``python -m runtime mcp`` as a subprocess: the real ``mcp`` client over stdio and over
streamable HTTP (hypercorn on trio, uvicorn on asyncio), with bearer-token tenants."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from ops_fixtures import SMALL, fixture_ops_db_path  # noqa: F401
from test_apps_servers import BAD_LOG_MARKERS, Server, running_servers, server, tiny_db

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.mcp.client import RemoteServer, connect_remote_servers
from runtime.ops.config import ops_defaults

__all__ = ["running_servers", "server", "tiny_db"]  # fixtures, shared

pytestmark = [pytest.mark.anyio, pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
REMOTE_SCRIPT = ROOT / "tests" / "mcp_remote_server.py"
LIMIT = 60
DB_FLAGS = ["--cis", str(SMALL["cis"]), "--days", str(SMALL["days"]), "--seed", str(SMALL["seed"])]


@pytest.fixture(name="db")
def fixture_db(ops_db_path: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "cmdb.sqlite"
    shutil.copy(ops_db_path, copy)
    return copy


def test_help_explains_both_transports() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "mcp", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=LIMIT,
        check=True,
    )
    assert "stdio (default)" in done.stdout
    assert "--http" in done.stdout
    assert "hypercorn" in done.stdout
    assert "uvicorn" in done.stdout


async def test_stdio_subprocess_lists_and_calls_the_ops_tools(
    db: Path, anyio_backend_name: str, tmp_path: Path
) -> None:
    # The server runs on the same event loop as the test's client, and serves the tools
    # of the remote server its config names next to the ops tools.
    config = tmp_path / "runtime.yaml"
    remote = REMOTE_SCRIPT
    config.write_text(f"mcp_servers:\n  far:\n    command: [{sys.executable}, {remote}]\n")
    args = ["-m", "runtime", "mcp", "--db", str(db), *DB_FLAGS, "--config", str(config)]
    if anyio_backend_name == "asyncio":
        args.append("--asyncio")
    server = StdioServerParameters(command=sys.executable, args=args, cwd=str(ROOT))
    stderr_path = tmp_path / "server-stderr.txt"
    with anyio.fail_after(LIMIT), stderr_path.open("w") as errlog:
        async with Client(stdio_client(server, errlog=errlog)) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            found = await client.call_tool("ci_search", {"keywords": ["db"], "limit": 2})
            bad = await client.call_tool("ci_search", {"limit": 1000})
            unknown = await client.call_tool("ci_get", {"ci_id": 1, "extra": True})
            far = await client.call_tool("far_lookup", {"key": "x"})
    assert {"ci_search", "cep_simulate", "compose_impact_analysis"} <= names
    assert not found.is_error
    assert found.structured_content is not None
    assert len(found.structured_content["records"]) == 2
    assert bad.is_error
    assert "'limit'" in bad.content[0].text
    assert unknown.is_error
    assert far.structured_content == {"key": "x", "calls": 1}
    assert "Traceback" not in stderr_path.read_text()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(name="http_server")
def fixture_http_server(db: Path, tmp_path: Path, anyio_backend_name: str) -> Iterator[str]:
    # hypercorn on trio for the trio run, uvicorn on asyncio for the asyncio run.
    loop = anyio_backend_name
    port = _free_port()
    config = tmp_path / "runtime.yaml"
    config.write_text("mcp:\n  tokens:\n    tok-a: tenant-a\n    tok-b: tenant-b\n")
    args = [sys.executable, "-m", "runtime", "mcp", "--http", "--port", str(port)]
    args += ["--db", str(db), *DB_FLAGS, "--config", str(config)]
    if loop == "asyncio":
        args.append("--asyncio")
    process = subprocess.Popen(args, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        _wait_until_listening(port, process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def _wait_until_listening(port: int, process: subprocess.Popen[str]) -> None:
    for _ in range(600):
        if process.poll() is not None:
            stderr = process.stderr.read() if process.stderr is not None else ""
            raise RuntimeError(f"the MCP server exited with {process.returncode}: {stderr}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            import time

            time.sleep(0.05)
    raise TimeoutError("the MCP server did not listen within 30s")


@asynccontextmanager
async def http_client(url: str, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


async def test_streamable_http_serves_tokens_and_refuses_strangers(http_server: str) -> None:
    with anyio.fail_after(LIMIT):
        async with http_client(http_server, "tok-a") as a:
            names = {tool.name for tool in (await a.list_tools()).tools}
            first = await a.call_tool("ci_get", {"ci_id": 5})
        async with http_client(http_server, "tok-b") as b:
            other = await b.call_tool("ci_get", {"ci_id": 5})
        async with httpx.AsyncClient() as plain:
            refused = await plain.post(
                http_server,
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream"},
            )
            wrong = await plain.post(http_server, headers={"Authorization": "Bearer nope"})
    assert "ci_get" in names
    assert first.structured_content == other.structured_content
    assert refused.status_code == 401
    assert wrong.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")


async def test_the_example_service_mounts_the_mcp_endpoint(server: Server) -> None:
    with anyio.fail_after(LIMIT):
        async with http_client(f"{server.url}/mcp", None) as client:
            names = {tool.name for tool in (await client.list_tools()).tools}
            answer = await client.call_tool("ci_get", {"ci_id": 2})
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as plain:
            health = await plain.get("/healthz")
    assert {"ci_get", "demo_sleep", "compose_impact_analysis"} <= names
    assert not answer.is_error
    assert answer.structured_content is not None
    assert answer.structured_content["record"]["ci_id"] == 2
    assert health.status_code == 200
    for marker in BAD_LOG_MARKERS:
        assert marker not in server.log()


async def test_our_client_reaches_a_streamable_http_server(http_server: str) -> None:
    registry = ToolRegistry()
    remote = RemoteServer("far", url=http_server, headers={"Authorization": "Bearer tok-a"})
    ctx = ToolContext(tenant_id="t")
    with anyio.fail_after(LIMIT):
        async with (
            connect_remote_servers(registry, {"far": remote}),
            open_runtime(registry, ops_defaults()) as rt,
        ):
            first = await rt.execute("far", "ci_get", {"ci_id": 3}, ctx)
            again = await rt.execute("far", "ci_get", {"ci_id": 3}, ctx)
            assert rt.tracer is not None
            hits = [r.cache_hit for r in await rt.tracer.records() if r.operation == "ci_get"]
    assert first == again
    assert first["record"]["ci_id"] == 3
    assert hits == [False, True]  # a reader upstream is read-only and idempotent: cached
    assert not registry.get("far", "ci_get").side_effects
    assert registry.get("far", "cep_simulate").side_effects
