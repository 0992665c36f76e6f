"""Everything the runtime would reject at start is rejected when the configuration loads
(issue 18, failures 7-9), with its key path: strategies, intents, compositions, Redis URLs,
sizes and durations beyond their upper bound; a YAML mistake names its line and column.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from runtime import open_runtime
from runtime.cli import main
from runtime.config import (
    MAX_CALLERS,
    MAX_DURATION_S,
    MAX_ENTRIES,
    MAX_QUESTIONS,
    RuntimeConfig,
    config_from_dict,
    load_config,
    parse_duration,
)
from runtime.errors import ConfigError
from runtime.ops.config import OpsRuntimeConfig
from runtime.tools import ToolRegistry

pytestmark = pytest.mark.anyio

REJECTED_AT_START: list[tuple[dict[str, Any], str, str]] = [
    ({"selector": {"default_strategy": "FASTEST_PLEASE"}}, "selector.default_strategy", "BALANCED"),
    ({"selector": {"intents": {"FOO": ["nodot"]}}}, "selector.intents.FOO[0]", "TOOL.operation"),
    ({"selector": {"intents": {"FOO": []}}}, "selector.intents.FOO", "at least one"),
    (
        {"selector": {"strategies": {"MINE": {"speed": 1}}}},
        "selector.strategies.MINE.speed",
        "unknown factor",
    ),
    ({"compositions": {"triage": {"steps": []}}}, "compositions.triage.steps", "non-empty"),
    ({"cache": {"redis": {"url": "http://127.0.0.1:6379"}}}, "cache.redis.url", "redis"),
    (
        {"executor": {"default_timeout": "99999999999999999999999h"}},
        "executor.default_timeout",
        "365 days",
    ),
    ({"cache": {"max_entries": MAX_ENTRIES + 1}}, "cache.max_entries", "at most"),
    ({"ops": {"cis": 999999999999999999999}}, "ops.cis", "at most 50,000"),
    ({"ops": {"demo_questions": MAX_QUESTIONS + 1}}, "ops.demo_questions", "at most"),
    ({"ops": {"demo_callers": MAX_CALLERS + 1}}, "ops.demo_callers", "at most"),
    ({"tracer": {"mailbox_size": 10**12}}, "tracer.mailbox_size", "at most"),
]


@pytest.mark.parametrize(("document", "path", "problem"), REJECTED_AT_START)
def test_config_from_dict_rejects_what_the_runtime_would(
    document: dict[str, Any], path: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(document, OpsRuntimeConfig)  # the ops: section is the ops schema's
    assert caught.value.path == path
    assert problem in str(caught.value)


@pytest.mark.parametrize(("document", "path", "problem"), REJECTED_AT_START[:5])
def test_load_config_and_the_config_command_say_the_same(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    document: dict[str, Any],
    path: str,
    problem: str,
) -> None:
    file = tmp_path / "runtime.yaml"
    file.write_text(yaml.safe_dump(document))
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert caught.value.path == path
    assert main(["config", "--config", str(file)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"runtime: error: {path}: ")


async def test_what_loads_starts(tmp_path: Path) -> None:
    # The other side of the contract: a configuration that loads, starts.
    config = config_from_dict(
        {
            "selector": {
                "default_strategy": "MINE",
                "strategies": {"MINE": {"latency": 1}},
                "intents": {"FOO": ["CI.get", "CI.search"]},
            }
        }
    )
    async with open_runtime(ToolRegistry(), config) as rt:
        assert rt.health().ok


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("a: [1\nb: 2\n", 2, 2),
        ("cache:\n  max_entries: 1\n   bad: 2\n", 3, 7),
        ("x: 'open\n", 2, 1),
    ],
)
def test_a_yaml_mistake_names_its_line_and_column(
    tmp_path: Path, text: str, line: int, column: int
) -> None:
    file = tmp_path / "runtime.yaml"
    file.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(file)
    assert str(caught.value).startswith(f"{file}:{line}:{column}: not valid YAML: ")
    assert "\n" not in str(caught.value)


@given(st.floats(0, 2 * MAX_DURATION_S, allow_nan=False))
def test_durations_are_bounded_at_a_year(seconds: float) -> None:
    if seconds <= MAX_DURATION_S:
        assert parse_duration(seconds) == seconds
    else:
        with pytest.raises(ConfigError, match="at most 365 days"):
            parse_duration(seconds, "x")


def test_the_defaults_pass_the_start_checks() -> None:
    assert config_from_dict({}) == RuntimeConfig()
