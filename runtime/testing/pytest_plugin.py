"""The pytest plugin of ``runtime.testing`` (entry point ``pytest11``: ``runtime``).

Installed with the package; it does nothing to a test that does not ask for it:

* ``@pytest.mark.virtual_time`` on an ``async def`` test (or a class or module) runs it on
  asyncio and on trio, both on virtual time (``VirtualTimeLoop``; ``MockClock`` with an
  autojump threshold of 0): sleeps, timeouts and TTLs take no real time.  Hypothesis
  ``@given`` tests work as they are -- anyio's plugin runs each example in the loop.
* fixtures: ``runtime_registry`` (override it: your tools), ``runtime_config`` (default
  None: the defaults), ``runtime_under_test`` (a runtime from ``open_test_runtime``,
  quiescence checked when the test ends) and ``runtime_factory`` (session-scoped, so
  usable from ``@given`` tests: ``async with runtime_factory(registry) as rt``).

Nothing heavy is imported at start-up (not even hypothesis), so a project that has the
package without the test extra keeps working; ``-p no:runtime`` turns the plugin off.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

MARKER = "virtual_time"
BACKENDS = ("asyncio", "trio")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}: run this async test on asyncio and trio, both on virtual time "
        "(runtime.testing's plugin)",
    )


def virtual_backends() -> list[Any]:
    """``anyio_backend`` values for both backends on virtual time (fresh clocks)."""
    from runtime.testing.clock import virtual_time_backend_options

    return [pytest.param((name, virtual_time_backend_options(name)), id=name) for name in BACKENDS]


def _is_async_test(obj: object) -> bool:
    inner = getattr(getattr(obj, "hypothesis", None), "inner_test", obj)
    return inspect.iscoroutinefunction(inner)


@pytest.hookimpl(tryfirst=True)
def pytest_pycollect_makeitem(
    collector: pytest.Module | pytest.Class, name: str, obj: object
) -> None:
    if not collector.istestfunction(obj, name) or not _is_async_test(obj):
        return
    own = [mark.name for mark in getattr(obj, "pytestmark", ())]
    if MARKER not in own and collector.get_closest_marker(MARKER) is None:
        return
    if "parametrize" in own and _parametrizes_backend(obj):
        return  # the test chose its own backends
    # A parametrize *mark*, so it takes precedence over any anyio_backend fixture
    # (anyio's, or a conftest's), for this test only.
    for mark in (
        pytest.mark.anyio,
        pytest.mark.usefixtures("anyio_backend"),
        pytest.mark.parametrize("anyio_backend", virtual_backends()),
    ):
        mark(obj)


def _parametrizes_backend(obj: object) -> bool:
    for mark in getattr(obj, "pytestmark", ()):
        if mark.name == "parametrize" and "anyio_backend" in str(mark.args[0]):
            return True
    return False


@pytest.fixture
def runtime_registry() -> Any:
    """The tools of ``runtime_under_test``: override this fixture with your registry."""
    raise pytest.UsageError(
        "runtime_under_test needs your tools: define a fixture named runtime_registry "
        "that returns a ToolRegistry (in your conftest.py or test module)"
    )


@pytest.fixture
def runtime_config() -> Any:
    """The configuration of ``runtime_under_test`` (None: the defaults); override it."""
    return None


@pytest.fixture
async def runtime_under_test(runtime_registry: Any, runtime_config: Any) -> AsyncIterator[Any]:
    """A runtime from ``open_test_runtime(runtime_registry, runtime_config)``.

    Seeded ids, no timers of its own, and :func:`assert_quiescent` when the test ends.
    """
    from runtime.testing.runtime import open_test_runtime

    async with open_test_runtime(runtime_registry, runtime_config) as runtime:
        yield runtime


@pytest.fixture(scope="session")
def runtime_factory() -> Callable[..., AbstractAsyncContextManager[Any]]:
    """``open_test_runtime`` as a fixture: one fresh runtime per call (per example)."""
    from runtime.testing.runtime import open_test_runtime

    return open_test_runtime
