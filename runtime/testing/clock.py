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

A loop driven from another thread (a blocking portal, as the stateful base does) is idle
whenever that thread is busy; jumping then would move the clock between two calls, and
on trio an autojump threshold of 0 turns every idle moment into a busy spin that fights
the calling thread for the GIL.  :class:`PortalTime` lets virtual time run only while a
portal call is in progress and makes the loop wait for real in between.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["PortalTime", "VirtualTimeLoop", "virtual_time_backend_options"]


class _JumpingSelector(selectors.DefaultSelector):
    def __init__(self, loop: weakref.ReferenceType[VirtualTimeLoop]) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        loop = self._loop()
        if loop is not None and not loop.jumping:
            # Paused: wait for real (a portal call wakes the loop); time stands still.
            return super().select(timeout)
        ready = super().select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:
            # No timer is pending: only I/O or another thread can wake the loop.
            return super().select(None)
        if loop is not None:
            loop.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """An asyncio event loop on virtual time that jumps to the next timer when idle."""

    def __init__(self) -> None:
        self._virtual_now = 0.0
        self.jumping = True
        """Whether an idle loop jumps to its next timer (False: it waits for real)."""
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


class PortalTime:
    """Virtual time for a loop run by a blocking portal: it runs only during portal calls.

    Give :meth:`backend_options` to ``start_blocking_portal`` and wrap the body of every
    call made through the portal in :meth:`running` (in the loop's thread).  While at
    least one call runs, an idle loop jumps to its next timer (trio's ``MockClock`` with
    an autojump threshold of 0, :class:`VirtualTimeLoop` jumping); while none does, the
    loop sleeps until the portal wakes it, and the clock stands still.
    """

    def __init__(self, backend: str) -> None:
        if backend not in ("trio", "asyncio"):
            raise ValueError(f"unknown backend {backend!r}; expected 'trio' or 'asyncio'")
        self.backend = backend
        self._active = 0
        self._loop: VirtualTimeLoop | None = None
        self._clock: Any = None
        if backend == "trio":
            from trio.testing import MockClock

            self._clock = MockClock(autojump_threshold=math.inf)

    def backend_options(self) -> dict[str, Any]:
        """anyio ``backend_options`` for the portal (one portal per instance)."""
        if self._clock is not None:
            return {"clock": self._clock}
        return {"loop_factory": self._new_loop}

    def _new_loop(self) -> VirtualTimeLoop:
        self._loop = VirtualTimeLoop()
        self._loop.jumping = False
        return self._loop

    @contextmanager
    def running(self) -> Iterator[None]:
        """Let virtual time run for the duration of the block (nests and overlaps)."""
        self._active += 1
        if self._active == 1:
            self._jump(True)
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0:
                self._jump(False)

    def _jump(self, on: bool) -> None:
        if self._clock is not None:
            # The setter reaches the running trio loop (it must be called in its thread).
            self._clock.autojump_threshold = 0 if on else math.inf
        elif self._loop is not None:
            self._loop.jumping = on
