"""Two malformed requests the example service answers without a logged 500 (found by a
torture run): a body nested deeper than the JSON decoder's recursion limit is a 400
(docs/examples/README.md: a malformed request is a 400), and a client that disconnects
while its body is read is not logged as an unexpected error (routine under load).
"""

from __future__ import annotations

import socket
import time

import anyio
import anyio.to_thread
import httpx
import pytest
from test_apps_servers import Server, running_servers, server, tiny_db

__all__ = ["running_servers", "server", "tiny_db"]  # fixtures, shared

pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("path", ["/ask", "/execute", "/compose"])
async def test_deeply_nested_json_is_a_bad_request(server: Server, path: str) -> None:
    with anyio.fail_after(10):
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as client:
            response = await client.post(
                path, content=b"[" * 100_000, headers={"content-type": "application/json"}
            )
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "BadRequest"


def disconnect_mid_body(port: int) -> None:
    """Send the headers and part of the body, then close the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(
            b"POST /execute HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 100\r\n\r\n{"tool": '
        )
        time.sleep(0.2)  # the handler is now waiting for the rest of the body


async def test_a_client_gone_mid_body_is_not_an_unexpected_error(server: Server) -> None:
    before = server.log().count("unexpected error")
    with anyio.fail_after(15):
        for _ in range(3):
            await anyio.to_thread.run_sync(disconnect_mid_body, server.port)
        # The service still answers; give the handlers time to see the disconnects.
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
            assert (await client.get("/healthz")).status_code == 200
        await anyio.sleep(1.0)
    log = server.log()
    assert log.count("unexpected error") == before, log[-3000:]
    assert "ClientDisconnect" not in log, log[-3000:]
