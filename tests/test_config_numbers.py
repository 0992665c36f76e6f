"""Numbers too large for a float are config errors naming their key, not a crash.

YAML reads ``999...9`` (any number of digits) as a Python int; converting it to the float
a number or duration setting holds overflows.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from runtime.cli import main
from runtime.config import config_from_dict, parse_duration
from runtime.errors import ConfigError
from runtime.ops.config import OpsRuntimeConfig

HUGE = 10**400


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"executor": {"default_timeout": HUGE}}, "executor.default_timeout"),
        ({"cache": {"ttl": {"CI": {"get": HUGE}}}}, "cache.ttl.CI.get"),
        ({"selector": {"failure_penalty": HUGE}}, "selector.failure_penalty"),
        ({"selector": {"herd_margin": -HUGE}}, "selector.herd_margin"),
        ({"ops": {"demo_skew": HUGE}}, "ops.demo_skew"),
    ],
)
def test_a_huge_integer_is_a_config_error_naming_the_key(document: Any, path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(document, OpsRuntimeConfig)  # the ops: section is the ops schema's
    assert caught.value.path == path
    assert "finite" in caught.value.problem


def test_parse_duration_rejects_a_huge_integer() -> None:
    with pytest.raises(ConfigError, match="finite"):
        parse_duration(HUGE, "x")


def test_the_cli_reports_a_huge_number_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "runtime.yaml"
    config.write_text("selector:\n  failure_penalty: " + "9" * 400 + "\n")
    assert main(["config", "--config", str(config)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("runtime: error: selector.failure_penalty: ")
    assert len(err.strip().splitlines()) == 1
