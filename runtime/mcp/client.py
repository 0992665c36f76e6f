"""Remote MCP tools as tools of a registry: caching, selection, composition, tracing.

:func:`connect_remote_servers` connects to each server (a stdio command, a streamable-HTTP
URL, or in tests an SDK ``Server`` in process), lists its tools and registers each as
``(alias, remote tool name)``, keeping its JSON Schema.  Contract:

* each connection is owned by one task of a task group (:class:`RemoteConnection`): the
  SDK client is entered and left in that task; calls reach it through a mailbox and run
  as children of it, the caller waiting on a one-shot reply;
* a tool is cached only when the server annotates it read-only *and* idempotent (and the
  server's ``cache`` setting allows); any other is registered with side effects;
* a call's read timeout is what is left of the caller's deadline (the executor's per-call
  timeout) plus a 0.25 s margin, else the server's ``timeout``; a caller's cancellation
  (its deadline included) cancels the request, which the SDK tells the server with
  ``notifications/cancelled``;
* a remote ``isError`` result raises :class:`~runtime.ToolExecutionError` with the remote
  message; a lost connection fails every call in flight with :class:`RemoteConnectionLost`
  and the next call reconnects.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import anyio
import anyio.abc
import attrs
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError

from runtime.config import McpServerConfig
from runtime.errors import InvalidParams, ToolExecutionError, ToolTimeout
from runtime.tools import ToolContext, ToolRegistry

__all__ = [
    "RemoteConnection",
    "RemoteConnectionLost",
    "RemoteServer",
    "RemoteTool",
    "connect_remote_servers",
]

log = logging.getLogger("runtime.mcp")
_LOST_CODES = frozenset({types.CONNECTION_CLOSED})
_READ_TIMEOUT_MARGIN = 0.25  # seconds past the caller's deadline; see RemoteTool.execute
_LOST_ERRORS: tuple[type[BaseException], ...] = (
    anyio.ClosedResourceError,
    anyio.BrokenResourceError,
    anyio.EndOfStream,
    OSError,
)


class RemoteConnectionLost(ToolExecutionError):
    """The connection to a remote MCP server broke while the call was in flight."""

    def __init__(self, alias: str, operation: str, reason: str) -> None:
        super().__init__(
            alias,
            operation,
            "RemoteConnectionLost",
            f"the connection to MCP server {alias!r} was lost ({reason}); the next call reconnects",
        )


@attrs.frozen(slots=True)
class RemoteServer:
    """Where a remote MCP server is: ``command`` (stdio), ``url`` or ``server`` (an SDK
    ``Server`` object, in process: tests and embedding)."""

    alias: str
    command: tuple[str, ...] = ()
    url: str | None = None
    server: Any = None
    env: Mapping[str, str] = attrs.field(factory=dict)
    cwd: str | None = None
    headers: Mapping[str, str] = attrs.field(factory=dict)
    timeout: float = 30.0
    cache: bool = True

    @classmethod
    def from_config(cls, alias: str, config: McpServerConfig) -> RemoteServer:
        return cls(
            alias,
            command=config.command,
            url=config.url,
            env=config.env,
            cwd=config.cwd,
            headers=config.headers,
            timeout=config.timeout,
            cache=config.cache,
        )

    def client(self) -> AbstractAsyncContextManager[Client]:
        """A new SDK client for this server (entered by the connection's owner task)."""
        if self.server is not None:
            # The JSON-RPC path over memory streams, as stdio and HTTP speak it.
            return Client(self.server, mode="legacy")
        if self.command:
            command, *args = self.command
            params = StdioServerParameters(
                command=command, args=args, env=dict(self.env) or None, cwd=self.cwd
            )
            return Client(params)
        if self.url is None:
            raise ValueError(f"MCP server {self.alias!r} has neither command, url nor server")
        return _http_client(self.url, dict(self.headers))


@asynccontextmanager
async def _http_client(url: str, headers: dict[str, str]) -> AsyncIterator[Client]:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        yield client


class _Call:
    """One request in the mailbox, with its one-shot reply."""

    __slots__ = ("arguments", "done", "error", "name", "result", "scope", "timeout")

    def __init__(self, name: str, arguments: dict[str, Any], timeout: float) -> None:
        self.name = name
        self.arguments = arguments
        self.timeout = timeout
        self.done = anyio.Event()
        self.result: types.CallToolResult | None = None
        self.error: BaseException | None = None
        self.scope: anyio.CancelScope | None = None

    def finish(self, result: types.CallToolResult | None, error: BaseException | None) -> None:
        if not self.done.is_set():
            self.result, self.error = result, error
            self.done.set()

    def abandon(self) -> None:
        """The caller left: stop the request (the SDK sends notifications/cancelled)."""
        self.done.set()  # nobody reads the reply now; the owner skips it if not started
        if self.scope is not None:
            self.scope.cancel()


class RemoteConnection:
    """One remote server's connection, owned by the task running :meth:`run`."""

    def __init__(self, remote: RemoteServer, *, mailbox_size: int = 256) -> None:
        self.remote = remote
        send, receive = anyio.create_memory_object_stream[_Call](mailbox_size)
        self._send: MemoryObjectSendStream[_Call] = send
        self._receive: MemoryObjectReceiveStream[_Call] = receive
        self._in_flight: set[_Call] = set()
        self.connects = 0
        """How many times the connection was (re)established."""

    async def run(self, *, task_status: anyio.abc.TaskStatus[list[types.Tool]]) -> None:
        """Connect, list the tools (handed to ``task_status``), then serve calls until
        :meth:`close`; after a lost connection, reconnect when the next call arrives."""
        try:
            await self._run(task_status)
        finally:
            # Whatever ends the owner (close, cancellation, a crash), no caller waits on.
            self._fail_in_flight("the client was closed")

    async def _run(self, task_status: anyio.abc.TaskStatus[list[types.Tool]]) -> None:
        carried: _Call | None = None
        started = False
        while True:
            try:
                async with self.remote.client() as client:
                    self.connects += 1
                    if not started:
                        task_status.started(await _all_tools(client))
                        started = True
                    await self._serve(client, carried)
                    return
            except Exception as exc:
                if not started:
                    raise
                reason = _describe(exc)
                log.warning("MCP server %r: connection lost (%s)", self.remote.alias, reason)
                self._fail_in_flight(reason)
                if carried is not None:  # the call that asked to reconnect, and could not
                    failure = RemoteConnectionLost(self.remote.alias, carried.name, reason)
                    carried.finish(None, failure)
            carried = None
            try:
                carried = await self._receive.receive()
            except anyio.EndOfStream:
                return

    async def _serve(self, client: Client, carried: _Call | None) -> None:
        async with anyio.create_task_group() as group:
            if carried is not None:
                self._start(group, client, carried)
            async for call in self._receive:
                self._start(group, client, call)
            # Closed: the calls in flight finish (the owner's group may still cancel them).

    def _start(self, group: anyio.abc.TaskGroup, client: Client, call: _Call) -> None:
        if call.done.is_set():
            return  # its caller left before it was served
        call.scope = anyio.CancelScope()
        self._in_flight.add(call)
        group.start_soon(self._one, client, call)

    async def _one(self, client: Client, call: _Call) -> None:
        # A call that ends here leaves the in-flight set; one the connection's end
        # cancels stays in it, and the owner fails it with RemoteConnectionLost.
        assert call.scope is not None
        with call.scope:
            try:
                result = await client.call_tool(
                    call.name, call.arguments, read_timeout_seconds=call.timeout
                )
            except MCPError as exc:
                if exc.code in _LOST_CODES:
                    self._lost(call, exc)
                call.finish(None, exc)
            except _LOST_ERRORS as exc:
                self._lost(call, exc)
            else:
                call.finish(result, None)
        self._in_flight.discard(call)

    def _lost(self, call: _Call, exc: BaseException) -> None:
        reason = _describe(exc)
        call.finish(None, RemoteConnectionLost(self.remote.alias, call.name, reason))
        self._in_flight.discard(call)
        raise _Lost(reason) from exc

    def _fail_in_flight(self, reason: str) -> None:
        for call in list(self._in_flight):
            call.finish(None, RemoteConnectionLost(self.remote.alias, call.name, reason))
        self._in_flight.clear()

    async def call(
        self, name: str, arguments: Mapping[str, Any], timeout: float | None = None
    ) -> types.CallToolResult:
        """Call the remote tool ``name``; raises MCPError, RemoteConnectionLost."""
        read_timeout = self.remote.timeout if timeout is None else max(timeout, 0.001)
        call = _Call(name, dict(arguments), read_timeout)
        try:
            await self._send.send(call)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise RemoteConnectionLost(self.remote.alias, name, "the client is closed") from None
        try:
            await call.done.wait()
        except BaseException:
            call.abandon()
            raise
        if call.error is not None:
            raise call.error
        if call.result is None:  # finished without a reply: only a closing client does that
            raise RemoteConnectionLost(self.remote.alias, name, "the client is closed")
        return call.result

    def close(self) -> None:
        """No more calls: :meth:`run` returns once the ones in flight end."""
        self._send.close()


class _Lost(Exception):
    """Raised in a call's task: the transport broke; the owner drops the connection."""


def _describe(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    if isinstance(exc, _Lost):
        return str(exc)
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0] if text else type(exc).__name__


async def _all_tools(client: Client) -> list[types.Tool]:
    tools: list[types.Tool] = []
    cursor: str | None = None
    for _ in range(100):  # a paginator that never ends cannot hang the start
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


@attrs.frozen(slots=True)
class RemoteTool:
    """A remote MCP tool as a runtime tool; ``input_schema`` is the server's JSON Schema."""

    connection: RemoteConnection
    name: str
    input_schema: Mapping[str, Any]
    _checker: Any = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        from jsonschema import Draft202012Validator

        # Compiled once: compiling is most of the cost of a check.
        object.__setattr__(self, "_checker", Draft202012Validator(dict(self.input_schema)))

    async def execute(self, ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        alias = self.connection.remote.alias
        self.validate(params)  # a bad call costs no round trip, and names the param
        # What the caller's deadline (the executor's per-call timeout) leaves.
        deadline = anyio.current_effective_deadline()
        remaining = deadline - anyio.current_time() if deadline != math.inf else None
        # The read timeout trails the caller's deadline a little: when both fire together,
        # the SDK's timeout path writes its courtesy cancel unshielded and the caller's
        # cancellation can cut it off; ending by the caller's deadline shields that write.
        read_timeout = None if remaining is None else remaining + _READ_TIMEOUT_MARGIN
        try:
            result = await self.connection.call(self.name, params, read_timeout)
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                waited = remaining if remaining is not None else self.connection.remote.timeout
                raise ToolTimeout(alias, self.name, waited) from exc
            raise ToolExecutionError(alias, self.name, "MCPError", exc.message) from exc
        if result.is_error:
            text = " ".join(c.text for c in result.content if isinstance(c, types.TextContent))
            raise ToolExecutionError(alias, self.name, "RemoteToolError", text or "failed")
        if result.structured_content is not None:
            return result.structured_content
        texts = [c.text for c in result.content if isinstance(c, types.TextContent)]
        return (
            texts[0] if len(texts) == 1 else {"content": [c.model_dump() for c in result.content]}
        )

    def validate(self, params: Mapping[str, Any]) -> None:
        """Check ``params`` against the remote schema; raises InvalidParams with the path."""
        from jsonschema.exceptions import best_match

        error = best_match(self._checker.iter_errors(params))
        if error is not None:
            path = "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
            ).lstrip(".")
            raise InvalidParams(
                self.connection.remote.alias, self.name, path or "params", error.message
            )


def cacheable(tool: types.Tool) -> bool:
    """Whether the server says the tool is read-only and idempotent (both required)."""
    hints = tool.annotations
    return bool(hints is not None and hints.read_only_hint and hints.idempotent_hint)


def register_remote_tools(
    registry: ToolRegistry, connection: RemoteConnection, tools: list[types.Tool]
) -> None:
    remote = connection.remote
    for listed in tools:
        tool = RemoteTool(connection, listed.name, dict(listed.input_schema))
        registry.register(
            remote.alias,
            listed.name,
            tool,
            description=listed.description or f"{listed.name} on MCP server {remote.alias}",
            side_effects=not (remote.cache and cacheable(listed)),
            validator=tool.validate,
        )


@asynccontextmanager
async def connect_remote_servers(
    registry: ToolRegistry, servers: Mapping[str, McpServerConfig | RemoteServer]
) -> AsyncIterator[dict[str, RemoteConnection]]:
    """Connect to every server, register its tools into ``registry``, keep the
    connections until the block ends.  A server that cannot be reached fails the start."""
    connections: dict[str, RemoteConnection] = {}
    async with anyio.create_task_group() as group:
        try:
            for alias, server in servers.items():
                remote = (
                    server
                    if isinstance(server, RemoteServer)
                    else RemoteServer.from_config(alias, server)
                )
                connection = RemoteConnection(remote)
                tools = await group.start(connection.run)
                register_remote_tools(registry, connection, tools)
                connections[alias] = connection
            yield connections
        finally:
            for connection in connections.values():
                connection.close()
            group.cancel_scope.cancel()
