"""The running event loop's clock, looked up once rather than on every read.

``anyio.current_time()`` finds the backend anew on each call (through sniffio): about half
a microsecond, several times per tool call on the hot path.  The clock it ends up reading
is fixed for the life of an event loop -- ``loop.time`` on asyncio, ``trio.current_time``
on trio -- so components that live inside one loop (the executor of a runtime, an actor)
bind it when they start.  Virtual clocks are honoured: trio's ``MockClock`` is what
``trio.current_time`` reads, and a virtual asyncio loop overrides ``loop.time``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import trio

__all__ = ["Clock", "loop_clock"]

Clock = Callable[[], float]


def loop_clock() -> Clock:
    """The clock of the event loop running this task; call it inside that loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        # No asyncio loop: anyio's only other backend is trio.
        return trio.current_time
    return loop.time
