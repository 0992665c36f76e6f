"""cache.redis: the section and the tier's settings are one set of values (RedisConfig.settings)."""

from __future__ import annotations

import attrs
import pytest

from runtime import ConfigError
from runtime.config import RedisConfig, config_from_dict


def test_every_key_reaches_the_tier_with_its_value() -> None:
    config = RedisConfig(
        url="redis://cache:6380/2",
        key_prefix="svc",
        op_timeout=0.2,
        connect_timeout=2.0,
        secret="s" * 32,
        failure_threshold=5,
        backoff_initial=1.0,
        backoff_max=60.0,
        generation_cache=0.5,
        max_connections=8,
        shared_flight=False,
        lease_ttl=20.0,
        lease_poll=0.05,
    )
    settings = config.settings()
    for field in attrs.fields(RedisConfig):
        name = field.name
        tier_name = name if hasattr(settings, name) else f"{name}_s"
        assert getattr(settings, tier_name) == getattr(config, name), name


def test_a_tier_check_names_the_sections_key() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"cache": {"redis": {"url": "redis://x", "lease_poll": "0"}}})
    assert caught.value.path.startswith("cache.redis.")
    assert not caught.value.path.endswith("_s")
