"""What the running event loop offers on the per-call path, looked up once.

``anyio.current_time()`` and ``anyio.lowlevel.checkpoint_if_cancelled()`` find the backend
anew on each call (through sniffio): about half a microsecond each, several times per
tool call.  What they end up calling is fixed for the life of an event loop, so the parts
that live inside one loop (a runtime's executor, an actor) bind it when they start.

Virtual clocks are honoured: trio's ``MockClock`` is the clock ``current_clock()`` returns,
and a virtual asyncio loop overrides ``loop.time``.
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
    """``checkpoint_if_cancelled`` of the backend running this task, bound.

    On trio that is trio's own.  On asyncio only anyio knows its cancel scopes, and it
    offers no public handle on its backend: the private one is used when it is there (it
    halves the cost), and the public, slower function otherwise.
    """
    if _on_asyncio() is None:
        return trio.lowlevel.checkpoint_if_cancelled
    try:
        from anyio._core._eventloop import get_async_backend

        check: CancelCheck = get_async_backend().checkpoint_if_cancelled
    except (ImportError, AttributeError):  # pragma: no cover - a future anyio
        return anyio.lowlevel.checkpoint_if_cancelled
    return check
