"""A remote MCP server written with the SDK's low-level ``Server``, for the client tests.

Run as a script it serves over stdio (``python tests/mcp_remote_server.py``); imported,
:func:`build` gives the server object for in-process use.  It records every message it
receives (method names, including ``notifications/cancelled``) in ``Recorder.methods``.

Tools:

* ``lookup`` -- read-only and idempotent (cacheable): ``{"key", "calls"}``;
* ``write`` -- read-only but not idempotent (so never cached): ``{"written": key}``;
* ``fail`` -- an ``isError`` result, ``"remote says no"``;
* ``hang`` -- waits until cancelled;
* ``text`` -- plain text content, no structured content;
* ``crash`` -- (stdio only) exits the process: the connection is lost.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server
from mcp.server.context import ServerRequestContext

READ_ONLY = types.ToolAnnotations(read_only_hint=True, idempotent_hint=True)
KEY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"key": {"type": "string", "maxLength": 10}},
    "required": ["key"],
    "additionalProperties": False,
}


class Recorder:
    def __init__(self) -> None:
        self.methods: list[str] = []
        self.calls = 0
        self.hanging = anyio.Event()

    async def middleware(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        self.methods.append(ctx.method)
        return await call_next(ctx)


def build(recorder: Recorder | None = None) -> tuple[Server[Any], Recorder]:
    recorder = recorder if recorder is not None else Recorder()

    async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(
            tools=[
                types.Tool(name="lookup", input_schema=KEY_SCHEMA, annotations=READ_ONLY),
                types.Tool(
                    name="write",
                    input_schema=KEY_SCHEMA,
                    annotations=types.ToolAnnotations(read_only_hint=True),
                ),
                types.Tool(name="fail", input_schema={"type": "object"}),
                types.Tool(name="hang", input_schema={"type": "object"}),
                types.Tool(name="text", input_schema={"type": "object"}),
                types.Tool(name="crash", input_schema={"type": "object"}),
            ]
        )

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        args = params.arguments or {}
        recorder.calls += 1
        if params.name == "lookup":
            data = {"key": args["key"], "calls": recorder.calls}
            return types.CallToolResult(content=[], structured_content=data)
        if params.name == "write":
            return types.CallToolResult(content=[], structured_content={"written": args["key"]})
        if params.name == "fail":
            return types.CallToolResult(
                content=[types.TextContent(text="remote says no")], is_error=True
            )
        if params.name == "hang":
            recorder.hanging.set()
            await anyio.sleep_forever()
        if params.name == "crash":
            os._exit(3)
        return types.CallToolResult(content=[types.TextContent(text="just text")])

    server: Server[Any] = Server("remote", on_list_tools=list_tools, on_call_tool=call_tool)
    server.middleware.append(recorder.middleware)
    return server, recorder


async def _main() -> None:
    from mcp.server.stdio import stdio_server

    server, _ = build()
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(_main, backend=sys.argv[1] if len(sys.argv) > 1 else "asyncio")
