"""``GET /traces`` on a real server (uvicorn on asyncio, hypercorn on trio) is streamed
(chunked, a few records a piece, the loop free between pieces: issue 18), and what a client
reads whole is the same document as the single-shot export of the records it holds.
"""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from test_apps_servers import Server, running_servers, server, tiny_db

from runtime.tracer.export import CHUNK_RECORDS, FORMATS, export, records_from_json

__all__ = ["running_servers", "server", "tiny_db"]  # fixtures, shared

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

CALLS = 6 * CHUNK_RECORDS + 3  # several pieces, the last one short


async def traced_calls(client: httpx.AsyncClient, tenant: str) -> None:
    for i in range(CALLS):
        body: dict[str, Any] = {
            "tool": "CI",
            "operation": "get",
            "params": {"ci_id": i % 40 + 1},
            "tenant": tenant,
        }
        assert (await client.post("/execute", json=body)).status_code == 200


async def test_every_format_streams_the_single_shot_document(server: Server) -> None:
    tenant = f"stream-{server.backend}"
    with anyio.fail_after(60):
        async with httpx.AsyncClient(base_url=server.url, timeout=20) as client:
            await traced_calls(client, tenant)
            answers = {fmt: await client.get("/traces", params={"format": fmt}) for fmt in FORMATS}
            newest = await client.get("/traces", params={"format": "json", "limit": "5"})
    for fmt, answer in answers.items():
        assert answer.status_code == 200, answer.text
        assert answer.headers.get("transfer-encoding") == "chunked", fmt
        assert "content-length" not in answer.headers
    text = answers["json"].text
    records = records_from_json(text)
    mine = [record for record in records if record.tenant == tenant]
    assert len(mine) == CALLS
    assert answers["json"].headers["content-type"].startswith("application/json")
    # Byte for byte what one export of these records makes, whatever the format.
    for fmt, answer in answers.items():
        assert answer.text == export(records, fmt), fmt
    assert records_from_json(newest.text) == records[-5:]


async def test_a_bad_format_or_limit_is_still_a_400_before_any_byte(server: Server) -> None:
    with anyio.fail_after(20):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            bad_format = await client.get("/traces", params={"format": "xml"})
            bad_limit = await client.get("/traces", params={"limit": "0"})
    for answer, named in ((bad_format, "format"), (bad_limit, "limit")):
        assert answer.status_code == 400
        assert answer.json()["error"] == "BadRequest"
        assert named in answer.json()["message"]
