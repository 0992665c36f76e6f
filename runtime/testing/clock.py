"""Virtual time for tests, on both backends.

On trio, ``trio.testing.MockClock(autojump_threshold=0)`` passed through anyio's backend
options makes every sleep and timeout instant and exact.  asyncio has no such clock, so
this module provides :class:`VirtualTimeLoop`: a selector event loop whose ``time()`` is
virtual and whose selector, when nothing is ready, jumps the clock to the next timer
instead of blocking.  Together they let one test body pin timing behaviour on both
backends without a single real sleep.

The limit they share: the clock jumps as soon as every task is blocked, including while a
worker thread is still busy.  Tests that wait on threads (``anyio.to_thread``) with a
timeout around them should use real time.
"""

from __future__ import annotations

import asyncio
import selectors
import weakref
from typing import Any

__all__ = ["VirtualTimeLoop", "virtual_time_backend_options"]


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: weakref.ReferenceType[VirtualTimeLoop]) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # No timer is pending: only I/O or another thread can wake the loop.
            return super().select(None)
        loop = self._loop()
        if loop is not None:
            loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on virtual time that jumps to the next timer when idle."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        super().__init__(_JumpingSelector(weakref.ref(self)))

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        """Move the clock forward; used by the selector, handy in tests."""
        if seconds < 0:
            raise ValueError(f"time cannot go backwards (advance by {seconds})")
        self._virtual_now += seconds


def virtual_time_backend_options(backend: str) -> dict[str, Any]:
    """anyio ``backend_options`` that put ``backend`` on virtual time."""
    if backend == "trio":
        from trio.testing import MockClock

        return {"clock": MockClock(autojump_threshold=0)}
    if backend == "asyncio":
        return {"loop_factory": VirtualTimeLoop}
    raise ValueError(f"unknown backend {backend!r}; expected 'trio' or 'asyncio'")
