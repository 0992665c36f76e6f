"""A lone surrogate in a trace record (found by a torture run) leaves every export valid
UTF-8.

JSON lets a client send ``"\\ud800"`` (a lone UTF-16 surrogate) in any string, and the
runtime keeps such a tenant, or the param of a tool that does not validate it, as sent.
The ``json`` and ``csv`` exports used to build text with no UTF-8 encoding: the traces
endpoint failed for every caller until the record left the buffer, and
``export(..., path)`` raised ``UnicodeEncodeError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from test_apps_servers import Server, running_servers, server, tiny_db

from runtime import ToolContext, ToolRegistry, open_runtime

__all__ = ["running_servers", "server", "tiny_db"]  # fixtures, shared

pytestmark = pytest.mark.anyio

# Raw JSON text: the \ud800 escape must reach the server as such.
SURROGATE_TENANT = b'{"tool":"CI","operation":"get","params":{"ci_id":1},"tenant":"\\ud800"}'
SURROGATE_TAG = (
    b'{"tool":"DEMO","operation":"sleep","params":{"seconds":0,"tag":"\\udfff"},"tenant":"t"}'
)


@pytest.mark.parametrize("body", [SURROGATE_TENANT, SURROGATE_TAG], ids=["tenant", "param"])
async def test_trace_exports_survive_a_lone_surrogate_sent_over_http(
    server: Server, body: bytes
) -> None:
    headers = {"content-type": "application/json"}
    with anyio.fail_after(20):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            answered = await client.post("/execute", content=body, headers=headers)
            assert answered.status_code == 200, answered.text  # accepted and traced
            exports = {
                fmt: await client.get("/traces", params={"format": fmt})
                for fmt in ("json", "jsonl", "csv")
            }
    statuses = {fmt: (r.status_code, r.text[:200]) for fmt, r in exports.items()}
    assert all(status == 200 for status, _ in statuses.values()), statuses


async def test_export_to_a_path_writes_a_record_with_a_lone_surrogate(tmp_path: Path) -> None:
    registry = ToolRegistry()

    @registry.tool("ECHO", "get")
    async def echo(ctx: ToolContext, params: Any) -> dict[str, Any]:
        return {"ok": True}

    with anyio.fail_after(10):
        async with open_runtime(registry) as rt:
            await rt.execute("ECHO", "get", {"tag": "\udfff"}, ToolContext(tenant_id="\ud800"))
            assert rt.tracer is not None
            for fmt in ("json", "jsonl", "csv"):
                path = tmp_path / f"traces.{fmt}"
                await rt.tracer.export(fmt, path)  # raises UnicodeEncodeError for json/csv
                assert path.read_bytes().decode("utf-8")
