"""A trace export as an async stream of text pieces, the event loop given back between them.

:func:`stream_export` yields the pieces of :func:`~runtime.tracer.export.export_chunks`
(their concatenation is the text :func:`~runtime.tracer.export.export` returns) with a
checkpoint after each, so other tasks run between pieces: a full ring formatted at once is
~1 s of CPU, which would stall every other request of a service (an HTTP response can send
each piece as it comes).  The ``chrome`` timeline is laid out in a worker thread first (it
needs every record); the pieces are formatted on the loop, a few ms each.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Iterable

import anyio.lowlevel
import anyio.to_thread

from runtime.tracer.export import CHUNK_RECORDS, check_format, export_chunks
from runtime.tracer.records import TraceRecord

__all__ = ["stream_export"]


async def stream_export(
    records: Iterable[TraceRecord], format: str, *, chunk_records: int = CHUNK_RECORDS
) -> AsyncIterator[str]:
    """``records`` as ``format`` text, a piece of at most ``chunk_records`` records at a
    time; an unknown format or a bad ``chunk_records`` raises ``ValueError`` at the first
    iteration, before any piece."""
    fmt = check_format(format)
    start = functools.partial(export_chunks, records, fmt, chunk_records=chunk_records)
    pieces = await anyio.to_thread.run_sync(start) if fmt == "chrome" else start()
    for piece in pieces:
        yield piece
        await anyio.lowlevel.checkpoint()
