"""The MCP server over streamable HTTP: one ASGI endpoint, mountable in any Starlette app.

:class:`McpEndpoint` is an ASGI app that serves once its :meth:`~McpEndpoint.running`
context is entered -- in the host application's lifespan, after the runtime started --
and answers 503 before and after.  Stateless by default (a fresh transport per request,
no session to keep: replicas behind a balancer need nothing shared), as the SDK allows.

Authentication: with bearer tokens configured (:class:`~runtime.mcp.ServerSettings`
``tokens``), a request without a known ``Authorization: Bearer`` token is refused with
401 before it reaches MCP, and the token's tenant is the tenant of every call it makes.
On loopback hosts the SDK's DNS-rebinding protection is on (Host/Origin must be local).

:func:`create_http_app` is the standalone app ``python -m runtime mcp --http`` serves.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from runtime.mcp.naming import tenant_for_authorization
from runtime.mcp.server import ServerSettings, create_server
from runtime.runtime import Runtime

__all__ = ["LOOPBACK_HOSTS", "McpEndpoint", "loopback_security"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def loopback_security() -> TransportSecuritySettings:
    """DNS-rebinding protection for a server bound to loopback (what the SDK itself uses)."""
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
        allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
    )


async def _refuse(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = json.dumps({"error": message}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class McpEndpoint:
    """An ASGI app serving the runtime's MCP server over streamable HTTP."""

    def __init__(
        self,
        settings: ServerSettings | None = None,
        *,
        stateless: bool = True,
        json_response: bool = False,
        security: TransportSecuritySettings | None = None,
    ) -> None:
        self.settings = settings if settings is not None else ServerSettings()
        self.stateless = stateless
        self.json_response = json_response
        self.security = security
        self._app: StreamableHTTPASGIApp | None = None

    @asynccontextmanager
    async def running(
        self, runtime: Runtime, settings: ServerSettings | None = None
    ) -> AsyncIterator[McpEndpoint]:
        """Serve ``runtime`` until the block ends (enter it in the host app's lifespan);
        ``settings``, when given, replace the endpoint's from now on."""
        if self._app is not None:
            raise RuntimeError("this MCP endpoint is already running")
        if settings is not None:
            self.settings = settings
        manager = StreamableHTTPSessionManager(
            app=create_server(runtime, self.settings),
            json_response=self.json_response,
            stateless=self.stateless,
            security_settings=self.security,
        )
        async with manager.run():
            self._app = StreamableHTTPASGIApp(manager)
            try:
                yield self
            finally:
                self._app = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan belongs to the host app; websockets are not MCP
        app = self._app
        if app is None:
            await _refuse(send, 503, "the MCP endpoint is not running", [])
            return
        if self.settings.tokens:
            header = _header(scope, b"authorization")
            if tenant_for_authorization(header, self.settings.tokens) is None:
                challenge = [(b"www-authenticate", b'Bearer realm="runtime"')]
                await _refuse(send, 401, "a known bearer token is required", challenge)
                return
        await app(scope, receive, send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return None


def create_http_app(
    open_runtime_for_app: Callable[[], Any],
    endpoint: McpEndpoint,
    *,
    path: str = "/mcp",
) -> Any:
    """A Starlette app serving ``endpoint`` at ``path``; its lifespan enters
    ``open_runtime_for_app()`` (an async context manager yielding a started Runtime)."""
    from starlette.applications import Starlette
    from starlette.routing import Route

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with open_runtime_for_app() as runtime, endpoint.running(runtime):
            yield

    return Starlette(routes=[Route(path, endpoint=endpoint)], lifespan=lifespan)
