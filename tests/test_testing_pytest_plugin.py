"""The pytest plugin shipped with runtime.testing, run as a user's project would run it."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

USER_TESTS = """
import time

import anyio
import pytest
from hypothesis import given, settings, strategies as st

from runtime import ToolContext, ToolRegistry
from runtime.testing import ScriptedTool

CTX = ToolContext("t")


@pytest.fixture
def runtime_registry():
    registry = ToolRegistry()
    ScriptedTool("KV", "get").register(registry)
    return registry


@pytest.mark.virtual_time
async def test_an_hour_passes_instantly(runtime_under_test):
    real, start = time.monotonic(), anyio.current_time()
    await runtime_under_test.execute("KV", "get", {"k": 1}, CTX)
    await anyio.sleep(3600)
    assert anyio.current_time() - start >= 3600
    assert time.monotonic() - real < 5


@pytest.mark.virtual_time
@settings(max_examples=5)
@given(k=st.integers(0, 3))
async def test_given_runs_in_the_loop(runtime_factory, k):
    registry = ToolRegistry()
    tool = ScriptedTool("KV", "get")
    tool.register(registry)
    async with runtime_factory(registry) as rt:
        first = await rt.execute("KV", "get", {"k": k}, CTX)
        await anyio.sleep(60)
        assert await rt.execute("KV", "get", {"k": k}, CTX) == first
    assert tool.call_count == 1


def test_a_plain_test_is_untouched(request):
    assert "anyio_backend" not in request.fixturenames
"""


def test_marked_tests_run_on_both_backends_on_virtual_time(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USER_TESTS)
    result = pytester.runpytest_subprocess("-v", "-p", "no:randomly", "--strict-markers")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [
            "*test_an_hour_passes_instantly?asyncio? PASSED*",
            "*test_an_hour_passes_instantly?trio? PASSED*",
            "*test_given_runs_in_the_loop?asyncio? PASSED*",
            "*test_given_runs_in_the_loop?trio? PASSED*",
        ]
    )


def test_a_missing_registry_is_explained(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_user=textwrap.dedent(
            """
            import pytest

            @pytest.mark.virtual_time
            async def test_needs_tools(runtime_under_test):
                pass
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.stdout.fnmatch_lines(["*define a fixture named runtime_registry*"])
    assert result.ret != 0


def test_a_projects_own_anyio_backend_fixture_still_rules_unmarked_tests(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeconftest(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def anyio_backend():
                return "asyncio"
            """
        )
    )
    pytester.makepyfile(
        test_user=textwrap.dedent(
            """
            import time

            import anyio
            import pytest

            @pytest.mark.anyio
            async def test_real_time_on_asyncio(anyio_backend):
                assert anyio_backend == "asyncio"
                start = time.monotonic()
                await anyio.sleep(0.01)
                assert time.monotonic() - start >= 0.005

            @pytest.mark.virtual_time
            async def test_virtual(anyio_backend):
                start = anyio.current_time()
                await anyio.sleep(86_400)
                assert anyio.current_time() - start >= 86_400
            """
        )
    )
    result = pytester.runpytest_subprocess("-v", "-p", "no:randomly")
    result.assert_outcomes(passed=3)


def test_the_plugin_can_be_turned_off(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user="def test_plain():\n    assert True\n")
    result = pytester.runpytest_subprocess("-p", "no:runtime", "--trace-config")
    result.assert_outcomes(passed=1)
    assert "runtime.testing.pytest_plugin" not in result.stdout.str()
