"""The CLI never overwrites or resizes a user's file, and refuses what would run forever
(issue 18, failures 6, 7, 9): seed-db refuses a file that is not a sample CMDB; demo uses an
existing database as it is or says why not; every size has an upper bound named by its
flag; database errors name the path; progress is plain lines when not on a terminal.
"""

from __future__ import annotations

import io
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.cli import main
from runtime.config import MAX_QUESTIONS
from runtime.demo.app import prepare_database
from runtime.demo.console import progress_bar
from runtime.ops import OpsDatabase, content_digest, ensure_database, existing_database
from runtime.ops.config import OpsConfig, OpsRuntimeConfig
from runtime.ops.generate import MAX_CIS

NOT_A_CMDB = "some: yaml\nthat: matters\n"


def test_seed_db_refuses_to_replace_a_file_that_is_not_a_sample_cmdb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    precious = tmp_path / "notes.yaml"
    precious.write_text(NOT_A_CMDB)
    status = main(["seed-db", "--plain", "--db", str(precious), "--cis", "8", "--days", "1"])
    err = capsys.readouterr().err
    assert status == 1
    assert precious.read_text() == NOT_A_CMDB
    assert f"{precious} exists and is not a sample CMDB; not replacing it" in err
    assert len(err.strip().splitlines()) == 1
    # The same message as the demo's.
    assert main(["demo", "--plain", "--db", str(precious)]) == 1
    assert "exists and is not a sample CMDB" in capsys.readouterr().err


def test_seed_db_replaces_an_earlier_sample_cmdb(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "cmdb.sqlite"
    ensure_database(db, cis=8, days=1, seed=1)
    assert main(["seed-db", "--plain", "--db", str(db), "--cis", "9", "--days", "1"]) == 0
    summary = existing_database(db)
    assert summary is not None
    assert summary.cis == 9


def small_db(tmp_path: Path) -> tuple[Path, tuple[int, str]]:
    db = tmp_path / "small.sqlite"
    ensure_database(db, cis=12, days=1, seed=3)
    return db, (db.stat().st_ino, content_digest(db))


def test_the_demo_uses_a_users_smaller_database_as_it_is(tmp_path: Path) -> None:
    db, before = small_db(tmp_path)
    config = OpsRuntimeConfig(ops=OpsConfig(database=str(db)))  # default sizes: 500 CIs
    summary = prepare_database(config)
    assert (summary.cis, summary.days, summary.seed, summary.built) == (12, 1, 3, False)
    assert (db.stat().st_ino, content_digest(db)) == before


@pytest.mark.parametrize(
    ("flags", "named"),
    [(["--cis", "500"], "--cis 12, not 500"), (["--seed", "4"], "--seed 3, not 4")],
)
def test_the_demo_says_why_not_when_asked_for_other_sizes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], named: str
) -> None:
    db, before = small_db(tmp_path)
    status = main(["demo", "--plain", "--db", str(db), *flags, "--questions", "0"])
    err = capsys.readouterr().err
    assert status == 1
    assert named in err
    assert "seed-db" in err
    assert len(err.strip().splitlines()) == 1
    assert (db.stat().st_ino, content_digest(db)) == before


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["seed-db", "--cis", "999999999999999999999"], f"--cis: must be between 8 and {MAX_CIS}"),
        (["demo", "--cis", str(MAX_CIS + 1)], "--cis"),
        (["demo", "--questions", "99999999999999999"], f"between 0 and {MAX_QUESTIONS}"),
        (["demo", "--callers", "1001"], "--callers"),
        (["seed-db", "--seed", str(1 << 64)], "--seed"),
    ],
)
def test_sizes_beyond_their_bound_are_usage_errors_naming_the_flag(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(argv)
    assert caught.value.code == 2
    assert named in capsys.readouterr().err


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc (an unwritable dir)")
def test_a_database_error_names_the_path(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["seed-db", "--plain", "--db", "/proc/x.sqlite", "--cis", "8", "--days", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 1
    assert err[-1] == "runtime: error: database error: /proc/x.sqlite: unable to open database file"


def test_opening_something_else_names_the_path(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).close()  # an empty SQLite file: no meta table
    with pytest.raises(sqlite3.OperationalError, match=f"^{other}: no such table: meta"):
        OpsDatabase(other)


def test_progress_is_plain_lines_off_a_terminal() -> None:
    stream = io.StringIO()
    with progress_bar("building", stream=stream) as progress:
        for done in range(0, 11):
            progress("estate", done, 10)
        progress("indexes", 1, 1)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 2  # one line per finished stage
    assert lines[0].endswith("10/10")


def test_a_long_build_reports_progress_through_the_cli(tmp_path: Path) -> None:
    db = tmp_path / "cmdb.sqlite"
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "seed-db", "--db", str(db), "--cis", "8", "--days", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "building the sample CMDB" in done.stderr
    assert "\r" not in done.stderr  # a pipe is not a terminal: plain lines
