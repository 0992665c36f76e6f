"""docs/testing.md's example of a user's property test runs, and would catch a bug."""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from runtime import ToolContext

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "docs" / "examples" / "test_user_property.py"


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("user_property_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_guide_shows_the_example_file_verbatim() -> None:
    source = EXAMPLE.read_text(encoding="utf-8")
    guide = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    assert source in re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    code = [line for line in source.splitlines() if line.strip()]
    assert len(code) <= 24


def test_the_users_property_test_passes() -> None:
    load_example().test_top3()


def test_the_users_property_test_catches_a_bug_in_their_tool() -> None:
    example = load_example()

    async def off_by_one(ctx: ToolContext, params: Mapping[str, Any]) -> dict[str, Any]:
        return {"tenant": ctx.tenant_id, "top": sorted(params["values"], reverse=True)[:2]}

    vars(example)["top3"] = off_by_one
    with pytest.raises(AssertionError):
        example.test_top3()
