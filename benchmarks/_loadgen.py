"""The fallback HTTP load generator of scaleout_bench, when ``wrk`` is not installed.

Closed loop: ``connections`` keep-alive connections over raw asyncio streams, each sending
the next ``POST`` as soon as the last answer is read, for ``seconds``.  Runs in a process
of its own, so that its CPU is measured apart from the service's; prints the requests
answered per second.

    python benchmarks/_loadgen.py HOST PORT PATH BODY SECONDS CONNECTIONS
"""

from __future__ import annotations

import asyncio
import sys
import time


async def client(host: str, port: int, request: bytes, deadline: float) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    done = 0
    try:
        while time.monotonic() < deadline:
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            done += 1
    finally:
        writer.close()
    return done


async def main(argv: list[str]) -> None:
    host, port, path, body, seconds, connections = argv
    payload = body.encode()
    request = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    ).encode() + payload
    started = time.monotonic()
    deadline = started + float(seconds)
    counts = await asyncio.gather(
        *(client(host, int(port), request, deadline) for _ in range(int(connections)))
    )
    print(sum(counts) / (time.monotonic() - started))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
