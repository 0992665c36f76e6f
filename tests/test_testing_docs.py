"""docs/testing.md's example of a user's property test runs under the plugin, and would
catch a bug."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "test_user_property.py"
CORRECT = 'sorted(params["values"], reverse=True)[:3]}'


def test_the_guide_shows_the_example_file_verbatim() -> None:
    source = EXAMPLE.read_text(encoding="utf-8")
    guide = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    assert source in re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    code = [line for line in source.splitlines() if line.strip()]
    assert len(code) <= 24


def test_the_users_property_test_passes_on_both_backends(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user_property=EXAMPLE.read_text(encoding="utf-8"))
    result = pytester.runpytest_subprocess("-v", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_top3?asyncio? PASSED*", "*test_top3?trio? PASSED*"])


def test_the_users_property_test_catches_a_bug_in_their_tool(pytester: pytest.Pytester) -> None:
    source = EXAMPLE.read_text(encoding="utf-8")
    assert source.count(CORRECT) == 1
    off_by_one = source.replace(CORRECT, CORRECT.replace("[:3]", "[:2]"))
    pytester.makepyfile(test_user_property=off_by_one)
    result = pytester.runpytest_subprocess("-p", "no:randomly")
    result.assert_outcomes(failed=2)


def test_the_guides_fixture_example_passes_on_both_backends(pytester: pytest.Pytester) -> None:
    guide = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    [block] = [
        code
        for code in re.findall(r"```python\n(.*?)```", guide, flags=re.S)
        if "def runtime_registry" in code
    ]
    pytester.makepyfile(test_fixture_example=block)
    result = pytester.runpytest_subprocess("-v", "-p", "no:randomly")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*[[]asyncio[]] PASSED*", "*[[]trio[]] PASSED*"])
