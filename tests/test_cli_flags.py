"""CLI flags the parser must refuse (exit 2, naming the flag) and files it must not touch."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.cli import main
from runtime.errors import ConfigError


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["demo", "--tenant", ""], "--tenant"),
        (["demo", "--tenant", "   "], "--tenant"),
        (["demo", "--db", ""], "--db"),
        (["seed-db", "--db", ""], "--db"),
    ],
)
def test_empty_names_are_usage_errors_naming_the_flag(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert f"argument {named}: must not be empty" in capsys.readouterr().err


def test_the_demo_does_not_overwrite_a_file_that_is_not_a_sample_cmdb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "my.yaml"
    config.write_text("ops: {demo_questions: 5}\n")
    # The classic slip: --db given the config file instead of --config.
    status = main(["demo", "--plain", "--db", str(config), "--cis", "8", "--days", "1"])
    err = capsys.readouterr().err
    assert status == 1
    assert config.read_text() == "ops: {demo_questions: 5}\n"
    assert "not a sample CMDB" in err
    assert len(err.strip().splitlines()) == 1


def test_traceback_is_accepted_after_the_command_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = str(tmp_path / "missing.yaml")
    # Where the one-line error invites it: appended to the command that just failed.
    assert main(["config", "--config", missing]) == 1
    assert "cannot read config file" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="cannot read config file"):
        main(["config", "--config", missing, "--traceback"])
    # Before the command, as before; and absent after it, it still means what it said.
    with pytest.raises(ConfigError, match="cannot read config file"):
        main(["--traceback", "config", "--config", missing])
