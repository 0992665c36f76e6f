"""``python -m runtime mcp``: the ops tools (and remote MCP tools) served over MCP.

Two transports:

* stdio (the default) -- what an MCP client configuration starts as a subprocess; stdout
  carries only the protocol (the SDK points fd 1 at stderr while serving), logs go to
  stderr.  It ends when the client closes stdin;
* ``--http`` -- streamable HTTP at ``http://HOST:PORT/PATH`` (config section ``mcp``),
  stateless unless ``--stateful``; on trio under hypercorn, or with ``--asyncio`` on
  asyncio under uvicorn.  It ends on SIGINT/SIGTERM after the requests in flight.

The ops tools run over the CMDB at ``--db`` (built first, as ``demo`` does, when absent);
the servers of the ``mcp_servers`` config section join the registry as remote tools.
This module imports ``mcp`` only when the command runs, so the CLI loads without it.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
import attrs

from runtime.ops.config import OpsRuntimeConfig
from runtime.runtime import Runtime, open_runtime
from runtime.tools import ToolRegistry

if TYPE_CHECKING:
    from runtime.mcp.server import ServerSettings

__all__ = ["add_parser", "ops_runtime", "run"]

log = logging.getLogger("runtime.mcp")

DESCRIPTION = """\
Serve the runtime's tools over the Model Context Protocol: the nine ops tools over a
sample CMDB (built at --db first when absent), every composition (compose_*), every
selector intent (intent_*), and the tools of the servers in the config's mcp_servers
section -- all through the cache, the selector and the tracer.

transports:
  stdio (default)   for an MCP client that starts this command as a subprocess
                    (a desktop assistant's mcpServers entry; see docs/mcp.md)
  --http            streamable HTTP at http://HOST:PORT/PATH, stateless unless
                    --stateful; trio under hypercorn, or --asyncio under uvicorn

The tenant is the config's mcp.tenant (or --tenant); over HTTP, bearer tokens in
mcp.tokens map each client to its tenant. Tool arguments never choose it."""


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text!r}") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 1 and 65535, got {value}")
    return value


def add_parser(
    commands: Any,
    parents: list[argparse.ArgumentParser],
    add_database_flags: Callable[[argparse.ArgumentParser], None],
    non_empty: Callable[[str], str],
) -> None:
    """Add the ``mcp`` command to the CLI's subparsers."""
    parser = commands.add_parser(
        "mcp",
        parents=parents,
        help="serve the tools over MCP (stdio, or streamable HTTP with --http)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    http = parser.add_argument_group("transport")
    http.add_argument("--http", action="store_true", help="serve streamable HTTP, not stdio")
    http.add_argument("--host", type=non_empty, metavar="HOST", help="bind address (mcp.host)")
    http.add_argument("--port", type=_port, metavar="N", help="TCP port (mcp.port)")
    http.add_argument("--path", type=non_empty, metavar="PATH", help="URL path (mcp.path)")
    http.add_argument(
        "--stateful", action="store_true", help="keep MCP sessions (default: stateless)"
    )
    http.add_argument(
        "--asyncio",
        action="store_true",
        help="run on asyncio (HTTP: under uvicorn); default trio (HTTP: hypercorn)",
    )
    parser.add_argument(
        "--tenant", type=non_empty, metavar="NAME", help="tenant of every call (mcp.tenant)"
    )
    add_database_flags(parser)


def run(args: argparse.Namespace, config: OpsRuntimeConfig) -> int:
    """Serve until the client leaves (stdio) or a signal arrives (HTTP)."""
    from runtime.mcp.server import ServerSettings

    logging.basicConfig(
        stream=sys.stderr, level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    section = config.mcp
    section = attrs.evolve(
        section,
        tenant=args.tenant or section.tenant,
        host=args.host or section.host,
        port=args.port or section.port,
        path=args.path or section.path,
        stateless=section.stateless and not args.stateful,
    )
    settings = ServerSettings(tenant=section.tenant, tokens=section.tokens)
    backend = "asyncio" if args.asyncio else "trio"
    if not args.http:
        anyio.run(_serve_stdio, config, settings, backend=backend)
        return 0
    from runtime.mcp.http import LOOPBACK_HOSTS, McpEndpoint, create_http_app, loopback_security

    endpoint = McpEndpoint(
        settings,
        stateless=section.stateless,
        security=loopback_security() if section.host in LOOPBACK_HOSTS else None,
    )
    app = create_http_app(partial(ops_runtime, config), endpoint, path=section.path)
    where = f"http://{section.host}:{section.port}{section.path}"
    print(f"runtime: serving MCP (streamable HTTP) at {where}", file=sys.stderr, flush=True)
    if args.asyncio:
        _serve_uvicorn(app, section.host, section.port)
    else:
        anyio.run(_serve_hypercorn, app, section.host, section.port, backend="trio")
    return 0


@asynccontextmanager
async def ops_runtime(config: OpsRuntimeConfig) -> AsyncIterator[Runtime]:
    """A runtime with the ops tools over the configured CMDB (built when absent) and the
    tools of the ``mcp_servers`` section."""
    from runtime.ops import OpsDatabase, ensure_database, register_ops_tools

    ops = config.ops
    build = partial(ensure_database, ops.database, cis=ops.cis, days=ops.days, seed=ops.seed)
    summary = await anyio.to_thread.run_sync(build)
    db = await OpsDatabase.open(summary.path)
    try:
        registry = ToolRegistry()
        register_ops_tools(registry, db)
        async with AsyncExitStack() as stack:
            if config.mcp_servers:
                from runtime.mcp.client import connect_remote_servers

                await stack.enter_async_context(
                    connect_remote_servers(registry, config.mcp_servers)
                )
            yield await stack.enter_async_context(open_runtime(registry, config))
    finally:
        db.close()


async def _serve_stdio(config: OpsRuntimeConfig, settings: ServerSettings) -> None:
    from mcp.server.stdio import stdio_server

    from runtime.mcp.server import create_server

    async with ops_runtime(config) as runtime:
        server = create_server(runtime, settings)
        async with stdio_server() as (read, write):
            await server.run(read, write, server.create_initialization_options())


def _serve_uvicorn(app: Any, host: str, port: int) -> None:
    import uvicorn

    server_config = uvicorn.Config(app, host=host, port=port, lifespan="on", access_log=False)
    uvicorn.Server(server_config).run()


async def _serve_hypercorn(app: Any, host: str, port: int) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    server_config = Config()
    server_config.bind = [f"{host}:{port}"]
    server_config.accesslog = None

    async def shutdown_on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for _ in signals:
                return

    await serve(app, server_config, shutdown_trigger=shutdown_on_signal)
