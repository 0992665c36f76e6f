"""Is the runtime at rest?  :func:`assert_quiescent` lists everything still in motion.

After a test's work has finished, a correct runtime holds nothing for anyone: no tool
call has started and not finished (cached or not, side effects or not, from a user task
or a pipeline step -- the executor keeps a registry of them), no caller waits on a
deferred reply, no message sits in a mailbox, no single-flight entry waits for a leader
that will never report, no pipeline run is in progress.  A leftover here is a leak that
only shows up later as a hang, so tests check it explicitly.

It is **async** on purpose.  Two facts need the actors' cooperation: the single-flight
table lives inside the cache actor (only a call can read it), and casts sent just before
the check (a leader's ``Fill``, a tracer report) may still be queued.  So the check first
makes a round trip to each actor it knows how to ask -- a mailbox is FIFO, so when the
reply arrives everything queued before it has been handled -- then lets other actors
drain for a few scheduler turns (checkpoints, which never advance virtual time; an actor
that pauses between batches gets up to ``settle`` seconds), and only then samples
:meth:`Runtime.health` and the cache statistics.

A dead actor is not a quiescence violation (``health().down`` reports it); an actor that
is down cannot be asked, so its part is skipped.
"""

from __future__ import annotations

import contextlib

import anyio.lowlevel

from runtime.errors import ActorUnavailable
from runtime.runtime import Runtime

__all__ = ["assert_quiescent", "quiescence_violations"]

_SETTLE_TURNS = 50


def _mailboxes_empty(runtime: Runtime) -> bool:
    return all(stats.mailbox_used == 0 for stats in runtime.health().actors.values())


async def quiescence_violations(runtime: Runtime, *, settle: float = 0.05) -> list[str]:
    """Everything that keeps ``runtime`` from being at rest (empty when it is); awaited.

    ``settle`` bounds how long (in the loop's time) to wait for mailboxes of actors with
    a batch window to drain; with :func:`~runtime.testing.runtime.open_test_runtime`
    there are none, and the check never sleeps.
    """
    problems: list[str] = []
    in_flight = waiting = 0
    if runtime.cache is not None:
        try:
            report = await runtime.cache.stats()
        except ActorUnavailable:
            pass
        else:
            in_flight = report.snapshot.in_flight
            waiting = report.snapshot.waiting_followers
    if runtime.tracer is not None:
        with contextlib.suppress(ActorUnavailable):
            await runtime.tracer.tracer_stats()
    for _ in range(_SETTLE_TURNS):
        if _mailboxes_empty(runtime):
            break
        await anyio.lowlevel.checkpoint()
    else:
        # An actor pausing between batches (a batch window) drains only when it wakes.
        with anyio.move_on_after(settle):
            while not _mailboxes_empty(runtime):  # noqa: ASYNC110 (no event to wait on)
                await anyio.sleep(settle / 50)
    for name, stats in runtime.health().actors.items():
        if stats.deferred_replies:
            problems.append(f"actor {name!r} holds {stats.deferred_replies} deferred replies")
        if stats.mailbox_used:
            problems.append(f"actor {name!r} has {stats.mailbox_used} messages in its mailbox")
    if in_flight:
        problems.append(f"cache single-flight table holds {in_flight} in-flight keys")
    if waiting:
        problems.append(f"cache has {waiting} followers waiting on a leader")
    calls = runtime.calls_in_flight()
    if calls:
        named = ", ".join(f"{t}.{o} x{n}" for (t, o), n in sorted(calls.items()))
        count = sum(calls.values())
        problems.append(f"{count} tool calls started and have not finished: {named}")
    if runtime.running_pipelines:
        problems.append(f"{runtime.running_pipelines} pipeline runs are in progress")
    return problems


async def assert_quiescent(runtime: Runtime, *, settle: float = 0.05) -> None:
    """Raise ``AssertionError`` listing every violation if ``runtime`` is not at rest.

    Checks: no tool call started and not finished, no deferred replies and empty
    mailboxes in every running actor, no in-flight single-flight entry and no waiting
    follower in the cache, no pipeline run in progress.  It must be awaited; call it
    from the task that owns the runtime, after the work under test has ended.
    """
    problems = await quiescence_violations(runtime, settle=settle)
    if problems:
        listed = "\n  - ".join(problems)
        raise AssertionError(f"runtime is not quiescent:\n  - {listed}")
