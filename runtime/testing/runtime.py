"""``open_test_runtime()``: a runtime whose ids and timers make runs replayable.

* Span and trace ids come from ``IdGenerator(seed=f"seed{seed}")``; retry jitter and the
  selector's tie-breaks draw from ``random.Random(seed)``: the same seed and the same
  calls give the same trace.
* Every ``batch_window`` is 0 unless ``keep_batch_window=True``, so virtual time moves
  only when the code under test sleeps and a quiescence check finds nothing queued.

Virtual time is the event loop's business: run on trio's
``MockClock(autojump_threshold=0)`` or :class:`~runtime.testing.clock.VirtualTimeLoop`
(``virtual_time_backend_options(backend)``).  Both jump as soon as every task is blocked,
also while a worker thread is busy: keep thread-backed tools on real time.  Tasks that
become ready together may run in any order on trio, so parallel steps may draw ids in a
different order (the same set).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import attrs

from runtime.calls import CallObserver, IdGenerator
from runtime.config import RuntimeConfig
from runtime.runtime import Runtime, open_runtime
from runtime.testing.quiescence import assert_quiescent
from runtime.tools import ToolRegistry

__all__ = ["deterministic_config", "open_test_runtime", "seeded_ids"]


def seeded_ids(seed: int | str) -> IdGenerator:
    """The id generator a test runtime with ``seed`` uses."""
    return IdGenerator(seed=f"seed{seed}")


def deterministic_config(
    config: RuntimeConfig | None = None, *, keep_batch_window: bool = False
) -> RuntimeConfig:
    """``config`` (default: the defaults) adjusted for deterministic tests.

    Every section with a ``batch_window`` (the tracer's, the selector's: actors that pause
    after each batch) gets 0, unless ``keep_batch_window``.
    """
    config = config if config is not None else RuntimeConfig()
    if keep_batch_window:
        return config
    changes: dict[str, Any] = {}
    for field in attrs.fields(type(config)):
        section = getattr(config, field.name)
        window: float = getattr(section, "batch_window", 0.0)
        if attrs.has(type(section)) and window:
            changes[field.name] = attrs.evolve(section, batch_window=0.0)
    return attrs.evolve(config, **changes) if changes else config


@asynccontextmanager
async def open_test_runtime(
    registry: ToolRegistry,
    config: RuntimeConfig | None = None,
    *,
    seed: int | str = 0,
    observers: tuple[CallObserver, ...] = (),
    keep_batch_window: bool = False,
    check_quiescent: bool = True,
) -> AsyncIterator[Runtime]:
    """Start a runtime for tests: deterministic ids from ``seed``, no self-timers.

    On a clean exit from the block it runs :func:`assert_quiescent` (turn that off with
    ``check_quiescent=False``), so a test that leaves a waiter or a running pipeline
    behind fails where the leak happened.  An exception leaving the block is propagated
    untouched, without the check.
    """
    async with open_runtime(
        registry,
        deterministic_config(config, keep_batch_window=keep_batch_window),
        observers=observers,
        ids=seeded_ids(seed),
        rng=random.Random(seed),
    ) as runtime:
        yield runtime
        if check_quiescent:
            await assert_quiescent(runtime)
