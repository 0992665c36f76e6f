"""Our MCP client against a real server written with the SDK: in process (JSON-RPC over
memory streams) and over stdio (a subprocess), on both backends.

What is checked: remote tools become registry tools keeping their schema; only
read-only *and* idempotent tools are cached; ``isError`` becomes ToolExecutionError with
the remote message; the caller's cancellation reaches the server as
``notifications/cancelled`` (the server records what it received); the per-call timeout
is the read timeout; a lost connection fails the calls in flight and the next reconnects.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_remote_server import KEY_SCHEMA, Recorder, build

from runtime import (
    InvalidParams,
    ToolContext,
    ToolExecutionError,
    ToolRegistry,
    ToolTimeout,
    config_from_dict,
    open_runtime,
)
from runtime.mcp import create_server
from runtime.mcp.client import RemoteConnectionLost, RemoteServer, connect_remote_servers

pytestmark = pytest.mark.anyio
LIMIT = 30
CTX = ToolContext(tenant_id="t")
SCRIPT = Path(__file__).resolve().parent / "mcp_remote_server.py"


def in_process() -> tuple[RemoteServer, Recorder]:
    server, recorder = build()
    return RemoteServer("remote", server=server), recorder


async def test_remote_tools_join_the_registry_with_their_schema() -> None:
    remote, _ = in_process()
    registry = ToolRegistry()
    with anyio.fail_after(LIMIT):
        async with connect_remote_servers(registry, {"remote": remote}) as connections:
            assert set(registry.operations("remote")) == {
                "lookup",
                "write",
                "fail",
                "hang",
                "text",
                "crash",
            }
            lookup = registry.get("remote", "lookup")
            assert lookup.tool.input_schema == KEY_SCHEMA  # type: ignore[attr-defined]
            assert not lookup.side_effects
            assert registry.get("remote", "write").side_effects  # not idempotent
            assert registry.get("remote", "fail").side_effects  # no annotations
            assert isinstance(lookup.rejects({"key": "x" * 11}), InvalidParams)
            assert lookup.rejects({"key": "ok"}) is None
            assert connections["remote"].connects == 1


async def test_remote_tools_are_served_again_with_their_schema() -> None:
    remote, _ = in_process()
    registry = ToolRegistry()
    with anyio.fail_after(LIMIT):
        async with (
            connect_remote_servers(registry, {"remote": remote}),
            open_runtime(registry) as rt,
            Client(create_server(rt)) as client,
        ):
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            answer = await client.call_tool("remote_lookup", {"key": "k"})
    assert tools["remote_lookup"].input_schema == KEY_SCHEMA
    hints = tools["remote_lookup"].annotations
    assert hints is not None
    assert hints.read_only_hint
    assert answer.structured_content == {"key": "k", "calls": 1}


async def test_only_read_only_idempotent_tools_are_cached() -> None:
    remote, recorder = in_process()
    registry = ToolRegistry()
    with anyio.fail_after(LIMIT):
        async with (
            connect_remote_servers(registry, {"remote": remote}),
            open_runtime(registry) as rt,
        ):
            first = await rt.execute("remote", "lookup", {"key": "a"}, CTX)
            again = await rt.execute("remote", "lookup", {"key": "a"}, CTX)
            writes = [await rt.execute("remote", "write", {"key": "a"}, CTX) for _ in range(2)]
            text = await rt.execute("remote", "text", {}, CTX)
    assert first == again == {"key": "a", "calls": 1}
    assert writes == [{"written": "a"}] * 2
    assert text == "just text"
    assert recorder.calls == 4  # lookup once, write twice, text once


async def test_a_remote_error_result_is_a_tool_execution_error() -> None:
    remote, _ = in_process()
    registry = ToolRegistry()
    with anyio.fail_after(LIMIT):
        async with (
            connect_remote_servers(registry, {"remote": remote}),
            open_runtime(registry) as rt,
        ):
            with pytest.raises(ToolExecutionError, match="remote says no") as raised:
                await rt.execute("remote", "fail", {}, CTX)
            with pytest.raises(InvalidParams, match="'key'"):
                await rt.execute("remote", "lookup", {"key": 5}, CTX)
    assert raised.value.error_type == "RemoteToolError"
    assert (raised.value.tool_type, raised.value.operation) == ("remote", "fail")


async def test_caller_cancellation_sends_notifications_cancelled() -> None:
    remote, recorder = in_process()
    registry = ToolRegistry()
    with anyio.fail_after(LIMIT):
        async with (
            connect_remote_servers(registry, {"remote": remote}),
            open_runtime(registry) as rt,
        ):
            async with anyio.create_task_group() as group:
                group.start_soon(rt.execute, "remote", "hang", {}, CTX)
                await recorder.hanging.wait()
                group.cancel_scope.cancel()
            while "notifications/cancelled" not in recorder.methods:
                await anyio.sleep(0.01)
            # The connection is still good after a cancelled call.
            assert await rt.execute("remote", "lookup", {"key": "b"}, CTX) == {
                "key": "b",
                "calls": 2,
            }
            assert rt.tracer is not None
            statuses = [r.status for r in await rt.tracer.records() if r.operation == "hang"]
    assert statuses == ["cancelled"]


async def test_the_per_call_timeout_is_the_read_timeout() -> None:
    remote, recorder = in_process()
    registry = ToolRegistry()
    with anyio.fail_after(LIMIT):
        async with (
            connect_remote_servers(registry, {"remote": remote}),
            open_runtime(registry) as rt,
        ):
            with pytest.raises(ToolTimeout):
                await rt.execute("remote", "hang", {}, CTX, timeout=1.0)
            # A request that reached the server before the deadline is cancelled there (on
            # a starved machine it may not have been sent at all: then nothing is owed).
            while recorder.hanging.is_set() and "notifications/cancelled" not in recorder.methods:
                await anyio.sleep(0.01)
            assert rt.tracer is not None
            statuses = [r.status for r in await rt.tracer.records() if r.operation == "hang"]
    assert statuses == ["timeout"]


async def test_closing_fails_calls_still_waiting() -> None:
    remote, recorder = in_process()
    registry = ToolRegistry()
    failures: list[BaseException] = []

    async def call() -> None:
        try:
            await registry.get("remote", "hang").tool.execute(CTX, {})
        except RemoteConnectionLost as exc:
            failures.append(exc)

    with anyio.fail_after(LIMIT):
        async with (
            anyio.create_task_group() as group,
            connect_remote_servers(registry, {"remote": remote}),
        ):
            group.start_soon(call)
            await recorder.hanging.wait()
    assert len(failures) == 1
    assert "client was closed" in str(failures[0])


def stdio_remote(backend: str) -> RemoteServer:
    return RemoteServer("remote", command=(sys.executable, str(SCRIPT), backend))


@pytest.mark.slow
async def test_stdio_server_lost_connection_fails_in_flight_and_reconnects(
    anyio_backend_name: str,
) -> None:
    registry = ToolRegistry()
    remote = stdio_remote(anyio_backend_name)
    with anyio.fail_after(LIMIT):
        async with (
            connect_remote_servers(registry, {"remote": remote}) as connections,
            open_runtime(registry) as rt,
        ):
            assert await rt.execute("remote", "lookup", {"key": "a"}, CTX) == {
                "key": "a",
                "calls": 1,
            }
            with pytest.raises(ToolExecutionError, match="lost") as lost:
                await rt.execute("remote", "crash", {}, CTX)
            # A fresh process: its own call counter starts again.
            again = await rt.execute("remote", "lookup", {"key": "z"}, CTX)
            assert connections["remote"].connects == 2
    assert lost.value.error_type == "RemoteConnectionLost"
    assert again == {"key": "z", "calls": 1}


@pytest.mark.slow
async def test_a_failed_reconnect_fails_the_call_and_the_next_one_retries(
    anyio_backend_name: str, tmp_path: Path
) -> None:
    script = tmp_path / "remote.py"
    script.write_text(SCRIPT.read_text())
    remote = RemoteServer("remote", command=(sys.executable, str(script), anyio_backend_name))
    registry = ToolRegistry()
    with anyio.fail_after(LIMIT):
        async with (
            connect_remote_servers(registry, {"remote": remote}),
            open_runtime(registry) as rt,
        ):
            with pytest.raises(RemoteConnectionLost):
                await rt.execute("remote", "crash", {}, CTX)
            hidden = script.rename(tmp_path / "away.py")
            # The reconnect runs a script that is gone: the server exits at once.
            with pytest.raises(RemoteConnectionLost, match="lost"):
                await rt.execute("remote", "lookup", {"key": "a"}, CTX)
            hidden.rename(script)
            answer = await rt.execute("remote", "lookup", {"key": "a"}, CTX)
    assert answer == {"key": "a", "calls": 1}


@pytest.mark.slow
async def test_mcp_servers_config_section_connects(tmp_path: Path) -> None:
    config = config_from_dict(
        {"mcp_servers": {"far": {"command": [sys.executable, str(SCRIPT)], "timeout": "5s"}}}
    )
    registry = ToolRegistry()
    with anyio.fail_after(LIMIT):
        async with (
            connect_remote_servers(registry, config.mcp_servers),
            open_runtime(registry) as rt,
        ):
            answer: Any = await rt.execute("far", "lookup", {"key": "q"}, CTX)
    assert answer == {"key": "q", "calls": 1}


async def test_an_unreachable_server_fails_the_start(tmp_path: Path) -> None:
    registry = ToolRegistry()
    missing = RemoteServer("gone", command=(str(tmp_path / "no-such-binary"),))
    with anyio.fail_after(LIMIT), pytest.raises(Exception) as raised:  # noqa: PT011
        async with connect_remote_servers(registry, {"gone": missing}):
            pass
    assert "gone" not in registry.tool_types()
    assert raised.value is not None
