"""One-for-one supervision of the runtime's actors, as in OTP.

An actor that crashes has already failed its waiting callers (see :mod:`runtime.actor`).
Its supervisor logs the crash and serves it again -- the actor's ``on_start`` resets its
state, since state a handler crashed on is not trusted -- up to ``max_restarts`` times
within ``window`` seconds.  Past that the actor stays down and the runtime degrades
instead of dying: callers of a dead cache bypass it, reports to a dead tracer are
dropped and counted.  The host application keeps serving either way; :attr:`crashes`
and :attr:`down` say what happened.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from runtime.actor import Actor
from runtime.config import SupervisionConfig

__all__ = ["Supervisor"]

log = logging.getLogger("runtime")


class Supervisor:
    """Serves actors in a task group, restarting crashed ones within an intensity limit."""

    def __init__(self, config: SupervisionConfig) -> None:
        self.config = config
        self.crashes: dict[str, int] = {}
        """Crashes per actor name since the runtime started."""
        self.down: dict[str, str] = {}
        """Actors left down, with the crash that took them past the limit."""

    async def start(self, group: TaskGroup, actors: tuple[Actor[Any], ...]) -> None:
        """Start every actor under supervision; returns once each is serving."""
        for actor in actors:
            self.crashes.setdefault(actor.name, 0)
            await group.start(self._supervise, actor)

    async def _supervise(
        self, actor: Actor[Any], *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        recent: deque[float] = deque()
        # Handed to each start until one gets as far as serving: an actor whose first
        # start fails is restarted like any crash, and ``start`` still returns.
        status = _Started(task_status)
        while True:
            try:
                if not status.called:
                    await actor.serve(task_status=status)
                else:
                    await actor.serve()
                return
            except Exception as exc:
                self.crashes[actor.name] += 1
                now = anyio.current_time()
                recent.append(now)
                while recent and now - recent[0] > self.config.window:
                    recent.popleft()
                if len(recent) > self.config.max_restarts:
                    self.down[actor.name] = f"{type(exc).__name__}: {exc}"
                    log.error(
                        "actor %s crashed %d times within %gs; leaving it down",
                        actor.name,
                        len(recent),
                        self.config.window,
                        exc_info=exc,
                    )
                    if not status.called:
                        status.started()  # the runtime opens without it, degraded
                    return
                log.warning("actor %s crashed; restarting it", actor.name, exc_info=exc)


class _Started:
    """Passes ``started()`` on to the task status it wraps and remembers that it did."""

    __slots__ = ("called", "status")

    def __init__(self, status: TaskStatus[None]) -> None:
        self.status = status
        self.called = False

    def started(self, value: None = None) -> None:
        self.called = True
        self.status.started(value)
