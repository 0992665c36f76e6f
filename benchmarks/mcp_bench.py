"""The runtime's MCP server against FastMCP with its response cache, over streamable HTTP.

    python benchmarks/mcp_bench.py [--quick]

The same tool on every server -- a read that takes 5 ms (``read(key)``), plus an uncached
``count()`` of how often ``read`` ran -- served over streamable HTTP (stateless, SSE
responses) on loopback by uvicorn in its own process, and driven by the same ``mcp``
client from this process (asyncio):

* ``ours`` -- ``runtime.mcp.http.McpEndpoint`` over a runtime (cache, tracer, selector on);
* ``fastmcp`` -- FastMCP 4.x with ``ResponseCachingMiddleware`` (``count`` excluded), its
  tools declared without an output schema as ours are, so the client does the same work
  for both;
* ``floor`` -- the SDK's bare low-level ``Server`` answering at once with a result of the
  same shape (``structuredContent`` and its text), no tool work and no cache: what one
  MCP request costs through this transport and client.  A cache-hit
  figure cannot beat it, so it is printed beside the goals as their floor.

Figures: ``throughput_vs_fastmcp`` (calls/s at 32 concurrent clients, keys Zipf s=1.1
over 2,000 keys, ours / FastMCP's; goal >= 1.2), ``executions_stampede`` (200 concurrent
identical cold calls -> executions; goal 1) with ``executions_stampede_fastmcp``,
``hit_p50_vs_fastmcp`` (p50 of a cache-hit round trip; goal <= 1.0) and
``mcp_overhead_us`` (a hit through the in-memory MCP transport minus a hit through
``rt.execute``, in process, on asyncio; report only).  Report only too:
``server_capacity_vs_fastmcp``, FastMCP's server CPU time per call over ours in the
throughput windows (``server_cpu_ms_per_call_*``, from /proc): what the servers cost,
which the calls/s ratio hides once the one client process is the bottleneck.  Needs the
``mcp`` and ``bench`` extras.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio

HERE = Path(__file__).resolve().parent

from _common import emit  # noqa: E402

KEYS = 2_000
SKEW = 1.1
CLIENTS = 32
STAMPEDE = 200
READ_S = 0.005


# -- the servers (each in its own process: python mcp_bench.py --serve NAME --port N) --------


def _ours_app() -> Any:
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.routing import Route

    from runtime import ToolRegistry, open_runtime
    from runtime.mcp.http import McpEndpoint, loopback_security

    executions = 0
    registry = ToolRegistry()

    async def read(ctx: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        nonlocal executions
        executions += 1
        await anyio.sleep(READ_S)
        return {"key": params["key"], "value": len(params["key"])}

    async def count(ctx: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"executions": executions}

    key = {"type": "object", "fields": {"key": {"type": "str", "required": True}}}
    registry.register("BENCH", "read", read, params_schema=key, description="a 5 ms read")
    registry.register("BENCH", "count", count, side_effects=True, description="reads so far")
    endpoint = McpEndpoint(security=loopback_security())

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        async with open_runtime(registry) as rt, endpoint.running(rt):
            yield

    return Starlette(routes=[Route("/mcp", endpoint=endpoint)], lifespan=lifespan)


def _fastmcp_app() -> Any:
    from fastmcp import FastMCP
    from fastmcp.server.middleware.caching import ResponseCachingMiddleware

    executions = 0
    server = FastMCP("bench")

    @server.tool(name="bench_read", output_schema=None)
    async def read(key: str) -> dict[str, Any]:
        nonlocal executions
        executions += 1
        await anyio.sleep(READ_S)
        return {"key": key, "value": len(key)}

    @server.tool(name="bench_count", output_schema=None)
    async def count() -> dict[str, Any]:
        return {"executions": executions}

    server.add_middleware(
        ResponseCachingMiddleware(call_tool_settings={"excluded_tools": ["bench_count"]})
    )
    return server.http_app(path="/mcp", stateless_http=True)


def _floor_app() -> Any:
    import mcp_types as types
    from mcp.server import Server

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        schema = {"type": "object"}
        names = ("bench_read", "bench_count")
        return types.ListToolsResult(tools=[types.Tool(name=n, input_schema=schema) for n in names])

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        # The result shape ours and FastMCP send: the mapping and its text rendering.
        data = {"key": (params.arguments or {}).get("key"), "executions": 0}
        text = types.TextContent(text=json.dumps(data, separators=(",", ":")))
        return types.CallToolResult(content=[text], structured_content=data)

    server: Server[Any] = Server(
        "floor",
        on_list_tools=list_tools,
        on_call_tool=call_tool,
        # As ours and FastMCP do: the SDK's Mcp-Param check looks the schema up here
        # instead of running tools/list on every call.
        get_tool_input_schema=lambda name: {"type": "object"},
    )
    return server.streamable_http_app(stateless_http=True)


def serve(name: str, port: int) -> None:
    import logging

    import uvicorn

    logging.disable(logging.WARNING)
    app = {"ours": _ours_app, "fastmcp": _fastmcp_app, "floor": _floor_app}[name]()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    uvicorn.Server(config).run()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Served:
    """One server subprocess, stopped on exit."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/mcp"
        command = [sys.executable, __file__, "--serve", name, "--port", str(self.port)]
        self.process = subprocess.Popen(command, cwd=HERE.parent)

    def __enter__(self) -> Served:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        raise TimeoutError(f"{self.name} server did not listen within 60 s")

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- the client side --------------------------------------------------------------------


def zipf_keys(count: int, seed: int) -> list[str]:
    weights = [1.0 / (rank**SKEW) for rank in range(1, KEYS + 1)]
    cumulative = list(itertools.accumulate(weights))
    rng = random.Random(seed)
    total = cumulative[-1]
    return [f"k{bisect.bisect_left(cumulative, rng.random() * total)}" for _ in range(count)]


class _Clients:
    def __init__(self, url: str, count: int) -> None:
        self.url = url
        self.count = count
        self.clients: list[Any] = []

    async def __aenter__(self) -> list[Any]:
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        self._stack = __import__("contextlib").AsyncExitStack()
        await self._stack.__aenter__()
        for _ in range(self.count):
            http = await self._stack.enter_async_context(httpx2.AsyncClient(timeout=60))
            client = Client(streamable_http_client(self.url, http_client=http))
            self.clients.append(await self._stack.enter_async_context(client))
        return self.clients

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.__aexit__(None, None, None)


async def _read(client: Any, key: str) -> Any:
    result = await client.call_tool("bench_read", {"key": key})
    if result.is_error:
        raise RuntimeError(f"read failed: {result.content}")
    return result


async def _count(client: Any) -> int:
    counted = await client.call_tool("bench_count", {})
    executions: int = counted.structured_content["executions"]
    return executions


async def hit_p50_ms(clients: dict[str, Any], calls: int) -> dict[str, float]:
    """p50 of a hit round trip per server; servers take turns call by call, so a load
    swing on this shared machine falls on all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in clients}
    for client in clients.values():
        await _read(client, "hot")
    for _ in range(calls):
        for name, client in clients.items():
            started = time.perf_counter()
            await _read(client, "hot")
            samples[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) * 1000 for name, values in samples.items()}


async def stampede(clients: list[Any]) -> int:
    """Tool executions caused by STAMPEDE concurrent identical cold calls."""
    before = await _count(clients[0])
    async with anyio.create_task_group() as group:
        for i in range(STAMPEDE):
            group.start_soon(_read, clients[i % len(clients)], "cold-stampede")
    return await _count(clients[0]) - before


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (Linux /proc; 0.0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def throughput(
    clients: dict[str, list[Any]], rounds: int, seconds: float, pids: Mapping[str, int]
) -> tuple[dict[str, float], dict[str, float]]:
    """Calls/s with every client of a server calling at once; servers take turns in
    ``rounds`` rounds of ``seconds`` each, every client walking its own Zipf key list.
    Also each server process's CPU time per call (ms) over its windows."""
    done = dict.fromkeys(clients, 0)
    busy = dict.fromkeys(clients, 0.0)
    keys = [zipf_keys(20_000, seed=index) for index in range(CLIENTS)]
    positions = {name: [0] * CLIENTS for name in clients}

    async def worker(name: str, index: int, client: Any) -> None:
        mine, at = keys[index], positions[name]
        while True:
            await _read(client, mine[at[index] % len(mine)])
            at[index] += 1
            done[name] += 1

    for _ in range(rounds):
        for name, pool in clients.items():
            before = cpu_seconds(pids[name])
            with anyio.move_on_after(seconds):
                async with anyio.create_task_group() as group:
                    for index, client in enumerate(pool):
                        group.start_soon(worker, name, index, client)
            busy[name] += cpu_seconds(pids[name]) - before
    rates = {name: count / (rounds * seconds) for name, count in done.items()}
    cpu_ms = {name: 1000 * busy[name] / max(count, 1) for name, count in done.items()}
    return rates, cpu_ms


async def overhead_us(calls: int) -> dict[str, float]:
    """A hit via the in-memory MCP transport minus a hit via rt.execute (in process)."""
    from mcp import Client

    from runtime import ToolContext, ToolRegistry, open_runtime
    from runtime.mcp import create_server

    registry = ToolRegistry()

    async def read(ctx: Any, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"key": params["key"]}

    registry.register("BENCH", "read", read)
    ctx = ToolContext(tenant_id="default")
    figures: dict[str, float] = {}
    async with open_runtime(registry) as rt:
        await rt.execute("BENCH", "read", {"key": "hot"}, ctx)
        started = time.perf_counter()
        for _ in range(calls):
            await rt.execute("BENCH", "read", {"key": "hot"}, ctx)
        direct = (time.perf_counter() - started) / calls
        for mode in ("auto", "legacy"):
            async with Client(create_server(rt), mode=mode) as client:
                await client.call_tool("bench_read", {"key": "hot"})
                started = time.perf_counter()
                for _ in range(calls):
                    await client.call_tool("bench_read", {"key": "hot"})
                figures[mode] = (time.perf_counter() - started) / calls
    return {
        "execute_hit_us": direct * 1e6,
        "mcp_memory_hit_us": figures["auto"] * 1e6,
        "mcp_overhead_us": (figures["auto"] - direct) * 1e6,
        "mcp_overhead_us_jsonrpc": (figures["legacy"] - direct) * 1e6,
    }


async def run(quick: bool) -> dict[str, Any]:
    names = ("ours", "fastmcp", "floor")
    with Served("ours") as a, Served("fastmcp") as b, Served("floor") as c:
        async with (
            _Clients(a.url, CLIENTS) as ours,
            _Clients(b.url, CLIENTS) as peer,
            _Clients(c.url, CLIENTS) as floor,
        ):
            pools = dict(zip(names, (ours, peer, floor), strict=True))
            firsts = {name: pool[0] for name, pool in pools.items()}
            p50 = await hit_p50_ms(firsts, 100 if quick else 400)
            executions = {name: await stampede(pools[name][:8]) for name in names[:2]}
            # Windows long enough that calls cut off at a window's end are few.
            pids = {"ours": a.process.pid, "fastmcp": b.process.pid, "floor": c.process.pid}
            rates, cpu_ms = await throughput(pools, 2 if quick else 5, 4.0 if quick else 6.0, pids)
    figures: dict[str, Any] = {
        "throughput_vs_fastmcp": rates["ours"] / rates["fastmcp"],
        "throughput_floor_vs_fastmcp": rates["floor"] / rates["fastmcp"],
        "executions_stampede": executions["ours"],
        "executions_stampede_fastmcp": executions["fastmcp"],
        "hit_p50_vs_fastmcp": p50["ours"] / p50["fastmcp"],
        "hit_p50_floor_vs_fastmcp": p50["floor"] / p50["fastmcp"],
        # Calls one CPU-second of each server process serves: what the servers cost,
        # whatever the (shared, single-process) client lets through.
        "server_capacity_vs_fastmcp": cpu_ms["fastmcp"] / cpu_ms["ours"] if cpu_ms["ours"] else 0.0,
        "server_cpu_ms_per_call_ours": cpu_ms["ours"],
        "server_cpu_ms_per_call_fastmcp": cpu_ms["fastmcp"],
        "server_cpu_ms_per_call_floor": cpu_ms["floor"],
        "calls_per_s_ours": rates["ours"],
        "calls_per_s_fastmcp": rates["fastmcp"],
        "calls_per_s_floor": rates["floor"],
        "hit_p50_ms_ours": p50["ours"],
        "hit_p50_ms_fastmcp": p50["fastmcp"],
        "hit_p50_ms_floor": p50["floor"],
        "clients": CLIENTS,
        "keys": KEYS,
        "zipf_skew": SKEW,
        "read_ms": READ_S * 1000,
        "cpus": os.cpu_count(),
        "load_average_1m": os.getloadavg()[0],
    }
    figures.update(await overhead_us(500 if quick else 3000))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run (CI-sized)")
    parser.add_argument("--serve", choices=("ours", "fastmcp", "floor"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return
    figures = anyio.run(run, args.quick, backend="asyncio")
    emit(
        "mcp_bench",
        {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()},
        quick=args.quick,
    )


if __name__ == "__main__":
    main()
