"""The ``mcp`` and ``mcp_servers`` config sections: defaults, round trip, key paths."""

from __future__ import annotations

from typing import Any

import pytest

from runtime import ConfigError, config_from_dict, config_to_dict
from runtime.mcp.client import RemoteServer


@pytest.mark.parametrize(
    ("data", "path", "problem"),
    [
        ({"mcp_servers": {"w": {}}}, "mcp_servers.w", "exactly one of command"),
        (
            {"mcp_servers": {"w": {"command": ["x"], "url": "http://h/mcp"}}},
            "mcp_servers.w",
            "exactly one of command",
        ),
        ({"mcp_servers": {"w": {"url": "ftp://h"}}}, "mcp_servers.w", "http:// or https://"),
        ({"mcp_servers": {"w": {"command": [""]}}}, "mcp_servers.w.command[0]", "non-empty"),
        (
            {"mcp_servers": {"w": {"url": "http://h", "timeout": "-1s"}}},
            "mcp_servers.w.timeout",
            "negative",
        ),
        (
            {"mcp_servers": {"w": {"url": "http://h", "bogus": 1}}},
            "mcp_servers.w.bogus",
            "unknown key",
        ),
        ({"mcp": {"port": 0}}, "mcp.port", "TCP port"),
        ({"mcp": {"tokens": {"abc": " "}}}, "mcp.tokens.abc", "non-empty"),
        ({"mcp": {"tenant": ""}}, "mcp.tenant", "non-empty"),
    ],
)
def test_bad_mcp_config_names_its_key_path(data: Any, path: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem) as raised:
        config_from_dict(data)
    assert raised.value.path == path


def test_mcp_sections_round_trip_and_build_remote_servers() -> None:
    data = {
        "mcp": {"tenant": "acme", "tokens": {"t1": "acme"}, "port": 9000, "stateless": False},
        "mcp_servers": {
            "weather": {"command": ["python", "-m", "w"], "env": {"K": "v"}, "timeout": "5s"},
            "search": {"url": "https://s/mcp", "headers": {"X": "y"}, "cache": False},
        },
    }
    config = config_from_dict(data)
    assert config_from_dict(config_to_dict(config)) == config
    assert config.mcp.port == 9000
    weather = RemoteServer.from_config("weather", config.mcp_servers["weather"])
    assert weather.command == ("python", "-m", "w")
    assert weather.timeout == 5.0
    search = RemoteServer.from_config("search", config.mcp_servers["search"])
    assert search.url == "https://s/mcp"
    assert search.cache is False


def test_printed_config_hides_tokens_and_headers(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.cli import main

    path = tmp_path / "c.yaml"
    path.write_text(
        "mcp:\n  tokens: {sekrit-token: acme}\n"
        "mcp_servers:\n  s:\n    url: http://h/mcp\n    headers: {Authorization: Bearer zzz}\n"
    )
    assert main(["config", "--config", str(path)]) == 0
    printed = capsys.readouterr().out
    assert "sekrit-token" not in printed
    assert "zzz" not in printed
    assert "acme" in printed
