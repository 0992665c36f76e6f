"""Configuration: defaults agree with config/runtime.yaml, bad input names its key path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from runtime.config import (
    CacheConfig,
    RuntimeConfig,
    config_from_dict,
    config_to_dict,
    load_config,
    parse_duration,
)
from runtime.errors import ConfigError
from runtime.ops.config import load_ops_config, ops_config_from_dict, ops_defaults
from runtime.selector.scoring import FACTORS

ROOT = Path(__file__).resolve().parent.parent


def test_the_shipped_yaml_and_the_ops_defaults_in_code_agree() -> None:
    assert load_ops_config(ROOT / "config" / "runtime.yaml") == ops_defaults()


def test_the_core_has_no_ttl_table_every_operation_takes_the_default_ttl() -> None:
    cache = CacheConfig()
    assert cache.ttl == {}
    assert cache.ttl_for("CI", "search") == cache.ttl_for("ANY", "thing") == 300
    assert RuntimeConfig().compositions == {}


def test_the_original_ttl_table_is_the_ops_default_and_cep_is_never_cached() -> None:
    cache = ops_defaults().cache
    assert cache.ttl_for("CI", "search") == 300
    assert cache.ttl_for("CI", "get") == 600
    assert cache.ttl_for("METRIC", "series") == 120
    assert cache.ttl_for("HISTORY", "event_log") == 120
    assert cache.ttl_for("CEP", "simulate") == 0


def test_overriding_one_ttl_keeps_the_others() -> None:
    config = ops_config_from_dict({"cache": {"ttl": {"METRIC": {"series": "500ms"}}}})
    assert config.cache.ttl_for("METRIC", "series") == 0.5
    assert config.cache.ttl_for("METRIC", "aggregate") == 180
    assert config.cache.ttl_for("CEP", "simulate") == 0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600), ("0", 0), (0, 0), (2.5, 2.5)],
)
def test_durations(text: Any, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("document", "path", "problem"),
    [
        ({"cache": {"ttl": {"METRIC": {"series": "-5s"}}}}, "cache.ttl.METRIC.series", "negative"),
        ({"cache": {"ttl": {"METRIC": {"series": "soon"}}}}, "cache.ttl.METRIC.series", "500ms"),
        ({"cache": {"max_entries": -1}}, "cache.max_entries", "positive integer"),
        ({"cache": {"max_bytes": "big"}}, "cache.max_bytes", "integer"),
        ({"cache": {"policy": "fifo"}}, "cache.policy", "'tinylfu', 'lru'"),
        ({"cache": {"enabled": "yes"}}, "cache.enabled", "true or false"),
        ({"cache": {"colour": "red"}}, "cache.colour", "unknown key"),
        ({"chache": {}}, "chache", "unknown key"),
        ({"cache": {"redis": {"url": 5}}}, "cache.redis.url", "string"),
        ({"cache": {"volatile_params": "request_id"}}, "cache.volatile_params", "list"),
        ({"executor": {"default_timeout": True}}, "executor.default_timeout", "duration"),
        ({"tracer": {"max_records": 0}}, "tracer.max_records", "between 1 and"),
        ({"tracer": {"max_records": 2**63}}, "tracer.max_records", "between 1 and"),
        ({"tracer": {"redact_keys": ["token", "_-"]}}, "tracer.redact_keys", "letter or digit"),
        (
            {"selector": {"profiles": {"CI": {"search": {"accuracy": 1.5}}}}},
            "selector.profiles.CI.search.accuracy",
            "between 0 and 1",
        ),
        ({"selector": {"strategies": {"FASTEST": {"latency": -1}}}}, "selector.strategies", "non"),
        ({"cache": []}, "cache", "mapping"),
    ],
)
def test_bad_config_names_the_key_path(document: Any, path: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(document)
    assert caught.value.path.startswith(path)
    assert problem in str(caught.value)
    assert str(caught.value).startswith(caught.value.path)


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("cache: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)
    scalar = tmp_path / "scalar.yaml"
    scalar.write_text("just a string\n")
    with pytest.raises(ConfigError, match="mapping at the top"):
        load_config(scalar)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == RuntimeConfig()


durations = st.one_of(
    st.integers(0, 10_000).map(lambda n: f"{n}ms"),
    st.integers(0, 10_000).map(lambda n: f"{n}s"),
    st.integers(0, 600).map(lambda n: f"{n}m"),
    st.integers(0, 48).map(lambda n: f"{n}h"),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False),
)
names = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ_", min_size=1, max_size=8)
ops = st.text("abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10)
fragments = ops.filter(lambda text: text.strip("_") != "")

valid_documents = st.fixed_dictionaries(
    {},
    optional={
        "executor": st.fixed_dictionaries(
            {},
            optional={
                "default_timeout": durations,
                "timeouts": st.dictionaries(names, st.dictionaries(ops, durations, max_size=3)),
            },
        ),
        "cache": st.fixed_dictionaries(
            {},
            optional={
                "enabled": st.booleans(),
                "max_entries": st.integers(1, 10**7),
                "max_bytes": st.integers(1, 10**12),
                "default_ttl": durations,
                "ttl": st.dictionaries(names, st.dictionaries(ops, durations, max_size=3)),
                "volatile_params": st.lists(ops, max_size=4),
            },
        ),
        "tracer": st.fixed_dictionaries(
            {},
            optional={
                "max_records": st.integers(1, 10**7),
                "redact_keys": st.lists(fragments, max_size=4),
            },
        ),
        "selector": st.fixed_dictionaries(
            {},
            optional={
                "herd_margin": st.floats(0, 1),
                # What the runtime accepts at start (config_from_dict checks it too):
                # a positive decay, weights over known factors with one of them positive.
                "decay_time": durations.filter(lambda d: parse_duration(d) > 0),
                "strategies": st.dictionaries(
                    names,
                    st.dictionaries(st.sampled_from(FACTORS), st.floats(0, 10), max_size=5).filter(
                        lambda weights: any(w > 0 for w in weights.values())
                    ),
                    max_size=3,
                ),
            },
        ),
        "supervision": st.fixed_dictionaries(
            {}, optional={"max_restarts": st.integers(0, 100), "window": durations}
        ),
    },
)


@given(valid_documents)
def test_valid_configs_round_trip_through_plain_data_and_yaml(document: dict[str, Any]) -> None:
    config = config_from_dict(document)
    plain = config_to_dict(config)
    assert config_from_dict(plain) == config
    assert config_from_dict(yaml.safe_load(yaml.safe_dump(plain))) == config


def test_defaults_shared_with_other_modules_agree() -> None:
    from runtime.config import ProfileConfig, TracerConfig
    from runtime.selector.profiles import DEFAULT_PROFILE
    from runtime.tracer.redact import DEFAULT_REDACT_KEYS

    assert TracerConfig().redact_keys == DEFAULT_REDACT_KEYS
    profile = ProfileConfig()
    assert (profile.accuracy, profile.completeness, profile.latency) == (
        DEFAULT_PROFILE.accuracy,
        DEFAULT_PROFILE.completeness,
        DEFAULT_PROFILE.latency_prior_s,
    )
