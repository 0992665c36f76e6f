"""Presets: the core knows no domain; the ops preset is laid under a config by one function.

Also the layering rule itself: no core module imports the ops suite, the demo or the CLI
(walked with ``ast`` over runtime/, the faces and the ops package excepted).
"""

from __future__ import annotations

import ast
from pathlib import Path

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import Preset, RuntimeConfig, apply_preset, config_from_dict
from runtime.config import CacheConfig, ProfileConfig, SelectorConfig
from runtime.ops.compositions import OPS_COMPOSITIONS
from runtime.ops.config import OpsRuntimeConfig, ops_defaults
from runtime.ops.preset import OPS_OPERATIONS, OPS_PRESET, OPS_TTLS
from runtime.selector.intents import unreachable_operations
from runtime.selector.settings import SelectorSettings, parse_candidate

RUNTIME = Path(__file__).resolve().parent.parent / "runtime"
# The faces and the domain: they may import the ops suite; nothing else may.
NOT_CORE = ("ops/", "demo/", "cli.py", "__main__.py", "mcp/command.py")
FORBIDDEN = ("runtime.ops", "runtime.demo", "runtime.cli")


def _imports(tree: ast.AST) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            found.extend((node.lineno, f"{node.module}.{a.name}") for a in node.names)
    return found


def _forbidden(name: str) -> bool:
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN)


def test_no_core_module_imports_the_ops_suite_the_demo_or_the_cli() -> None:
    offenders = []
    core = [
        path
        for path in sorted(RUNTIME.rglob("*.py"))
        if not path.relative_to(RUNTIME).as_posix().startswith(NOT_CORE)
    ]
    assert len(core) > 50  # the walk does see the core
    for path in core:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, name in _imports(tree):
            if _forbidden(name):
                offenders.append(f"{path.relative_to(RUNTIME)}:{line} imports {name}")
    assert offenders == []


def test_the_import_walk_catches_every_spelling() -> None:
    source = "import runtime.ops\nfrom runtime.demo import app\nfrom runtime import cli\n"
    lines = {line for line, name in _imports(ast.parse(source)) if _forbidden(name)}
    assert lines == {1, 2, 3}
    assert not _forbidden("runtime.opsx")
    assert not _forbidden("runtime.config")


def test_the_core_defaults_are_generic() -> None:
    config = RuntimeConfig()
    assert (config.cache.ttl, config.compositions) == ({}, {})
    assert (config.selector.intents, config.selector.profiles) == ({}, {})


def test_the_ops_preset_carries_the_original_tables() -> None:
    config = ops_defaults()
    assert config.cache.ttl == {tool: dict(ops) for tool, ops in OPS_TTLS.items()}
    assert config.cache.ttl_for("CEP", "simulate") == 0  # a side effect is never cached
    assert set(config.compositions) == {"search_with_context", "impact_analysis"}
    settings = SelectorSettings.from_config(config.selector)
    assert unreachable_operations(settings.candidates, OPS_OPERATIONS) == frozenset()
    assert all(pair in settings.profiles for pair in OPS_OPERATIONS)
    for pairs in OPS_PRESET.intents.values():
        assert all(parse_candidate(text, "x") in OPS_OPERATIONS for text in pairs)


def test_the_configuration_wins_entry_by_entry() -> None:
    given_config = config_from_dict(
        {
            "cache": {"ttl": {"METRIC": {"series": "1s"}, "MINE": {"op": "2s"}}},
            "selector": {
                "intents": {"SEARCH": ["CI.get"]},
                "profiles": {"CI": {"get": {"latency": "1s"}}},
            },
            "compositions": {
                "impact_analysis": {"steps": [{"name": "a", "tool": "CI", "operation": "get"}]}
            },
        }
    )
    config = apply_preset(given_config, OPS_PRESET)
    assert config.cache.ttl["METRIC"] == {"aggregate": 180.0, "series": 1.0}
    assert config.cache.ttl["MINE"] == {"op": 2.0}
    assert config.selector.intents["SEARCH"] == ("CI.get",)
    assert config.selector.intents["LOOKUP"] == OPS_PRESET.intents["LOOKUP"]
    assert config.selector.profiles["CI"]["get"] == ProfileConfig(latency=1.0)
    assert config.selector.profiles["CI"]["search"] == OPS_PRESET.profiles["CI"]["search"]
    assert config.compositions["impact_analysis"] == given_config.compositions["impact_analysis"]
    assert config.compositions["search_with_context"] == OPS_COMPOSITIONS["search_with_context"]


def test_a_subclass_with_its_own_sections_stays_that_subclass() -> None:
    config = apply_preset(OpsRuntimeConfig(), OPS_PRESET)
    assert type(config) is OpsRuntimeConfig
    assert config.ops == OpsRuntimeConfig().ops


_names = st.sampled_from(["A", "B", "CI", "METRIC"])
_seconds = st.sampled_from([0.0, 1.0, 60.0])
_ttl_tables = st.dictionaries(_names, st.dictionaries(_names, _seconds, max_size=3), max_size=3)
_intents = st.dictionaries(_names, st.just(("A.b",)), max_size=3)


@given(preset_ttls=_ttl_tables, given_ttls=_ttl_tables, preset_intents=_intents, mine=_intents)
def test_apply_is_idempotent_and_the_configuration_always_wins(
    preset_ttls: dict[str, dict[str, float]],
    given_ttls: dict[str, dict[str, float]],
    preset_intents: dict[str, tuple[str, ...]],
    mine: dict[str, tuple[str, ...]],
) -> None:
    preset = Preset("p", ttls=preset_ttls, intents=preset_intents)
    base = RuntimeConfig(cache=CacheConfig(ttl=given_ttls), selector=SelectorConfig(intents=mine))
    once = apply_preset(base, preset)
    assert apply_preset(once, preset) == once
    for tool, ops in given_ttls.items():
        for op, seconds in ops.items():
            assert once.cache.ttl_for(tool, op) == seconds
    for tool, ops in preset_ttls.items():
        for op, seconds in ops.items():
            expected = given_ttls.get(tool, {}).get(op, seconds)
            assert once.cache.ttl_for(tool, op) == expected
    assert once.selector.intents == {**preset_intents, **mine}


def test_apply_leaves_its_inputs_alone() -> None:
    base = RuntimeConfig()
    before = attrs.asdict(base)
    apply_preset(base, OPS_PRESET)
    assert attrs.asdict(base) == before
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        OPS_PRESET.name = "other"  # type: ignore[misc]
