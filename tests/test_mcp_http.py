"""The MCP endpoint over streamable HTTP, in process (httpx's ASGI transport): bearer
tokens choose the tenant, strangers get 401, a stopped endpoint 503; stateless and
stateful, SSE and JSON responses."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_helpers import Gate, add_probe_tools
from ops_fixtures import fixture_ops_db, fixture_ops_db_path, fixture_registry  # noqa: F401

from runtime import ToolRegistry, open_runtime
from runtime.mcp import ServerSettings, create_server
from runtime.mcp.http import McpEndpoint
from runtime.ops.config import ops_defaults

pytestmark = pytest.mark.anyio
LIMIT = 30
URL = "http://127.0.0.1/mcp"
TOKENS = {"tok-a": "tenant-a", "tok-b": "tenant-b"}


@asynccontextmanager
async def connect(endpoint: McpEndpoint, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    transport = httpx2.ASGITransport(app=endpoint)
    async with (
        httpx2.AsyncClient(transport=transport, headers=headers, timeout=LIMIT) as http,
        Client(streamable_http_client(URL, http_client=http)) as client,
    ):
        yield client


@pytest.mark.parametrize(
    ("stateless", "json_response"), [(True, False), (True, True), (False, True)]
)
async def test_bearer_tokens_choose_the_tenant_and_tenants_share_nothing(
    registry: ToolRegistry, stateless: bool, json_response: bool
) -> None:
    gate = Gate()
    gate.release.set()
    add_probe_tools(registry, gate)
    endpoint = McpEndpoint(
        ServerSettings(tenant="never-used", tokens=TOKENS),
        stateless=stateless,
        json_response=json_response,
    )
    with anyio.fail_after(LIMIT):
        async with (
            open_runtime(registry, ops_defaults()) as rt,
            endpoint.running(rt),
            connect(endpoint, "tok-a") as a,
            connect(endpoint, "tok-b") as b,
        ):
            first = await a.call_tool("probe_wait", {"key": "k"})
            second = await b.call_tool("probe_wait", {"key": "k"})
            again = await a.call_tool("probe_wait", {"key": "k"})
    assert first.structured_content == {"key": "k", "tenant": "tenant-a"}
    assert second.structured_content == {"key": "k", "tenant": "tenant-b"}
    assert again.structured_content == first.structured_content
    assert gate.tenants == ["tenant-a", "tenant-b"]


async def test_strangers_get_401_and_a_stopped_endpoint_503(registry: ToolRegistry) -> None:
    endpoint = McpEndpoint(ServerSettings(tokens=TOKENS))
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}
    accept = {"Accept": "application/json, text/event-stream"}
    transport = httpx2.ASGITransport(app=endpoint)
    with anyio.fail_after(LIMIT):
        async with httpx2.AsyncClient(transport=transport) as http:
            stopped = await http.post(URL, json=body, headers=accept)
            async with open_runtime(registry, ops_defaults()) as rt, endpoint.running(rt):
                missing = await http.post(URL, json=body, headers=accept)
                wrong = await http.post(
                    URL, json=body, headers={**accept, "Authorization": "Bearer tok-c"}
                )
                with pytest.raises(RuntimeError, match="already running"):
                    async with endpoint.running(rt):
                        pass
    assert stopped.status_code == 503
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")
    assert wrong.status_code == 401


async def test_without_tokens_every_call_is_the_server_tenant(registry: ToolRegistry) -> None:
    gate = Gate()
    gate.release.set()
    add_probe_tools(registry, gate)
    endpoint = McpEndpoint(ServerSettings(tenant="house"))
    with anyio.fail_after(LIMIT):
        async with (
            open_runtime(registry, ops_defaults()) as rt,
            endpoint.running(rt),
            connect(endpoint, "anything") as client,
        ):
            result = await client.call_tool("probe_wait", {"key": "z"})
    assert result.structured_content == {"key": "z", "tenant": "house"}


async def test_the_handler_checks_the_token_even_without_our_gate(registry: ToolRegistry) -> None:
    # Served through the SDK's own Starlette app (no McpEndpoint in front), the server
    # still maps the bearer token to the tenant, and refuses a call without one.
    gate = Gate()
    gate.release.set()
    add_probe_tools(registry, gate)
    with anyio.fail_after(LIMIT):
        async with open_runtime(registry, ops_defaults()) as rt:
            server = create_server(rt, ServerSettings(tokens=TOKENS))
            app = server.streamable_http_app(
                stateless_http=True, json_response=True, host="0.0.0.0"
            )
            async with server.session_manager.run():
                for token, expected in (("tok-b", "tenant-b"), (None, None)):
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    transport = httpx2.ASGITransport(app=app)
                    async with (
                        httpx2.AsyncClient(transport=transport, headers=headers) as http,
                        Client(streamable_http_client(URL, http_client=http)) as client,
                    ):
                        if expected is None:
                            with pytest.raises(MCPError, match="bearer token"):
                                await client.call_tool("probe_wait", {"key": "k"})
                        else:
                            done = await client.call_tool("probe_wait", {"key": "k"})
                            assert done.structured_content == {"key": "k", "tenant": expected}
    assert gate.tenants == ["tenant-b"]


async def test_a_call_over_http_does_not_run_tools_list(
    registry: ToolRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The SDK checks Mcp-Param headers against the called tool's schema; without the
    # server's schema lookup it would run (and serialize) tools/list on every call.
    from runtime.mcp import server as server_module

    listed = 0
    list_tools = server_module._Face.list_tools

    async def counting(self: object, ctx: object, params: object) -> object:
        nonlocal listed
        listed += 1
        return await list_tools(self, ctx, params)  # type: ignore[arg-type]

    monkeypatch.setattr(server_module._Face, "list_tools", counting)
    gate = Gate()
    gate.release.set()
    add_probe_tools(registry, gate)
    endpoint = McpEndpoint()
    with anyio.fail_after(LIMIT):
        async with open_runtime(registry) as rt, endpoint.running(rt):
            async with connect(endpoint, None) as client:
                # The client itself lists once, on its first call (for output schemas).
                await client.call_tool("probe_wait", {"key": "first"})
                before = listed
                for key in ("a", "b", "a"):
                    done = await client.call_tool("probe_wait", {"key": key})
                    assert done.structured_content == {"key": key, "tenant": "default"}
                after = listed
                tools = (await client.list_tools()).tools
            server = create_server(rt)
    assert before <= 1
    assert after == before
    assert listed == after + 1
    lookup = server.get_tool_input_schema
    assert lookup is not None
    assert all(lookup(tool.name) == tool.input_schema for tool in tools)
    assert lookup("no_such_tool") is None
