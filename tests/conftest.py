"""Shared test set-up: both backends for every async test, virtual time on request.

Every async test runs twice, on asyncio and on trio (anyio's pytest plugin).  A test
marked ``@pytest.mark.virtual_time`` runs on virtual time on both: trio's
``MockClock(autojump_threshold=0)`` and our ``VirtualTimeLoop`` for asyncio.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from runtime.testing.clock import virtual_time_backend_options

settings.register_profile(
    "dev", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "ci",
    max_examples=200,
    deadline=None,
    derandomize=False,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "virtual_time: run on MockClock (trio) / VirtualTimeLoop (asyncio)"
    )


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    name: str = request.param
    if request.node.get_closest_marker("virtual_time") is not None:
        return name, virtual_time_backend_options(name)
    return name, {}
