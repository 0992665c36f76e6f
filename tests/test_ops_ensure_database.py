"""ensure_database builds a sample CMDB where there is none; it never replaces a stranger.

``demo`` (and everything else that calls ensure_database) may rebuild an outdated sample
CMDB, but a file at the path that is not one -- a typo'd ``--db`` naming the config file,
someone else's database -- is the user's data and must be left alone.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from runtime.ops import build_database, ensure_database

CIS, DAYS = 8, 1


@pytest.mark.parametrize("content", [b"ops:\n  cis: 40\n", b""])
def test_a_file_that_is_not_a_sample_cmdb_is_not_replaced(tmp_path: Path, content: bytes) -> None:
    target = tmp_path / "my.yaml"
    target.write_bytes(content)
    with pytest.raises(FileExistsError, match="not a sample CMDB"):
        ensure_database(target, cis=CIS, days=DAYS)
    assert target.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my.yaml"]


def test_another_sqlite_database_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "theirs.sqlite"
    conn = sqlite3.connect(target)
    conn.execute("CREATE TABLE precious (x)")
    conn.execute("INSERT INTO precious VALUES (1)")
    conn.commit()
    conn.close()
    with pytest.raises(FileExistsError, match="not a sample CMDB"):
        ensure_database(target, cis=CIS, days=DAYS)
    conn = sqlite3.connect(target)
    assert conn.execute("SELECT x FROM precious").fetchall() == [(1,)]
    conn.close()


def test_a_sample_cmdb_of_other_sizes_is_still_rebuilt(tmp_path: Path) -> None:
    target = tmp_path / "cmdb.sqlite"
    build_database(target, seed=1, cis=CIS, days=DAYS)
    assert ensure_database(target, seed=2, cis=CIS, days=DAYS).built is True
    assert ensure_database(target, seed=2, cis=CIS, days=DAYS).built is False


def test_a_directory_as_the_database_path_is_refused_before_building(tmp_path: Path) -> None:
    target = tmp_path / "cmdb"
    target.mkdir()
    with pytest.raises(IsADirectoryError, match=str(target)):
        build_database(target, cis=8, days=1)
    assert list(tmp_path.iterdir()) == [target]  # no temporary file left behind
    assert list(target.iterdir()) == []
