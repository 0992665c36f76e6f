"""What the running event loop offers on the per-call path, looked up once.

:func:`loop_clock` and :func:`loop_cancel_check` return the clock and the cancellation
check of the backend running the calling task, bound once; call them inside that loop
and use the result only there.  Virtual clocks are honoured: trio's ``MockClock`` is the
clock ``current_clock()`` returns, and a virtual asyncio loop overrides ``loop.time``.
Only public API of trio, anyio and asyncio is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import anyio.lowlevel
import trio
import trio.lowlevel

__all__ = ["CancelCheck", "Clock", "loop_cancel_check", "loop_clock"]

Clock = Callable[[], float]
CancelCheck = Callable[[], Awaitable[None]]


def _on_asyncio() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None  # anyio's only other backend is trio


def loop_clock() -> Clock:
    """The clock of the event loop running this task; call it inside that loop.

    On trio, the run's own clock object's method: ``trio.current_time()`` looks the
    clock up through the run context on every read, half of what a read costs
    (~1,000 instructions, counted under valgrind).
    """
    loop = _on_asyncio()
    return trio.lowlevel.current_clock().current_time if loop is None else loop.time


def loop_cancel_check() -> CancelCheck:
    """The cancellation check of the backend running this task: trio's own on trio,
    anyio's public ``checkpoint_if_cancelled`` on asyncio."""
    if _on_asyncio() is None:
        return trio.lowlevel.checkpoint_if_cancelled
    return anyio.lowlevel.checkpoint_if_cancelled
