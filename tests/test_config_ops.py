"""The ops section: values the generator or the demo would refuse are refused at load time.

A config that loads must be one the CLI can run; otherwise the mistake surfaces later, as
the generator's or ToolContext's message, without the key path that names it.
"""

from __future__ import annotations

from typing import Any

import pytest

from runtime.config import config_from_dict
from runtime.errors import ConfigError
from runtime.ops.config import OpsConfig, ops_config_from_dict
from runtime.ops.generate import MAX_DAYS, MIN_CIS


@pytest.mark.parametrize(
    ("ops", "path", "problem"),
    [
        ({"cis": MIN_CIS - 1}, "ops.cis", f"at least {MIN_CIS}"),
        ({"cis": 1}, "ops.cis", f"at least {MIN_CIS}"),
        ({"cis": -4}, "ops.cis", "positive integer"),
        ({"days": MAX_DAYS + 1}, "ops.days", f"at most {MAX_DAYS}"),
        ({"days": 0}, "ops.days", "positive integer"),
        ({"demo_tenant": ""}, "ops.demo_tenant", "non-empty"),
        ({"demo_tenant": "  "}, "ops.demo_tenant", "non-empty"),
        ({"database": ""}, "ops.database", "non-empty"),
    ],
)
def test_ops_values_the_cli_would_refuse_are_config_errors_naming_the_key(
    ops: dict[str, Any], path: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        ops_config_from_dict({"ops": ops})
    assert caught.value.path == path
    assert problem in caught.value.problem


def test_the_ops_bounds_are_the_generators() -> None:
    at_the_bounds = ops_config_from_dict({"ops": {"cis": MIN_CIS, "days": MAX_DAYS}})
    assert (at_the_bounds.ops.cis, at_the_bounds.ops.days) == (MIN_CIS, MAX_DAYS)
    assert ops_config_from_dict({"ops": {"days": 1}}).ops == OpsConfig(days=1)


def test_the_core_schema_has_no_ops_section() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"ops": {"days": 1}})
    assert caught.value.path == "ops"
    assert "unknown key" in caught.value.problem
