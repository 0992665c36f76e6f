"""OpsDatabase's own worker threads: bounded, long-lived, loop-agnostic, cancellable."""

from __future__ import annotations

import contextvars
import shutil
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from ops_fixtures import fixture_ops_db, fixture_ops_db_path  # noqa: F401

from runtime.ops import OpsDatabase
from runtime.ops.db import Session

pytestmark = pytest.mark.anyio

COUNT_CIS = "SELECT COUNT(*) FROM cis"
PROBE: contextvars.ContextVar[str] = contextvars.ContextVar("PROBE", default="unset")


def _count(session: Session) -> tuple[Any, ...] | None:
    return session.one(COUNT_CIS)


async def test_many_concurrent_reads_share_a_few_long_lived_threads(ops_db_path: Path) -> None:
    seen: set[threading.Thread] = set()
    lock = threading.Lock()

    def where(session: Session) -> int:
        with lock:
            seen.add(threading.current_thread())
        time.sleep(0.002)  # overlap the calls, so a pool that grew would show it
        return int(session.one(COUNT_CIS)[0])  # type: ignore[index]

    with OpsDatabase(ops_db_path, readers=3) as db, anyio.fail_after(20):
        for _round in range(2):
            answers: list[int] = []

            async def one(answers: list[int] = answers) -> None:
                answers.append(await db.read("where", where))

            async with anyio.create_task_group() as tg:
                for _ in range(40):
                    tg.start_soon(one)
            assert answers == [60] * 40
        threads = db.threads()
        assert seen <= set(threads)
        assert len(threads) == 3
        assert all(t.name.startswith("ops-db-read-") and t.is_alive() for t in threads)
        assert db.query_count == 80


async def test_reads_and_writes_use_separate_connections(ops_db_path: Path) -> None:
    with OpsDatabase(ops_db_path, readers=1) as db, anyio.fail_after(10):
        read_conn = await db.read("r", lambda s: s.conn)
        write_conn = await db.write("w", lambda s: s.conn)
        assert read_conn is not write_conn
        assert await db.read("r", lambda s: s.conn) is read_conn
        assert sorted(t.name for t in db.threads()) == ["ops-db-read-0", "ops-db-write-0"]
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            await db.read("r", lambda s: s.conn.execute("DELETE FROM cis"))


async def test_errors_reach_the_caller_and_the_thread_keeps_serving(
    ops_db: OpsDatabase,
) -> None:
    def broken(session: Session) -> None:
        raise ValueError("bad work")

    with anyio.fail_after(10):
        with pytest.raises(ValueError, match="bad work"):
            await ops_db.read("broken", broken)
        with pytest.raises(ValueError, match="bad work"):
            await ops_db.write("broken", broken)
        assert await ops_db.read("after", _count) == (60,)


async def test_the_work_runs_in_the_callers_context(ops_db: OpsDatabase) -> None:
    token = PROBE.set("caller's value")
    try:
        with anyio.fail_after(10):
            assert await ops_db.read("ctx", lambda s: PROBE.get()) == "caller's value"
            assert await ops_db.write("ctx", lambda s: PROBE.get()) == "caller's value"
    finally:
        PROBE.reset(token)


async def test_a_read_cancelled_while_queued_never_runs(ops_db_path: Path) -> None:
    started, release = threading.Event(), threading.Event()
    ran: list[str] = []

    def blocker(session: Session) -> str:
        started.set()
        release.wait(10)
        ran.append("blocker")
        return "blocker done"

    def queued(session: Session) -> str:
        ran.append("queued")
        return "queued done"

    with OpsDatabase(ops_db_path, readers=1) as db, anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            results: list[str] = []

            async def first() -> None:
                results.append(await db.read("blocker", blocker))

            tg.start_soon(first)
            while not started.is_set():  # the only reader is now busy
                await anyio.sleep(0.005)
            with anyio.move_on_after(0.1) as scope:
                await db.read("queued", queued)
            assert scope.cancelled_caught
            release.set()
        assert results == ["blocker done"]
        # FIFO: anything queued after the cancelled job runs after the worker skipped it.
        assert await db.read("after", _count) == (60,)
        assert ran == ["blocker"]


async def test_a_cancelled_write_still_finishes_before_its_caller_moves_on(
    ops_db: OpsDatabase,
) -> None:
    finished = threading.Event()
    seen_on_return: list[bool] = []

    def slow(session: Session) -> None:
        time.sleep(0.3)
        finished.set()

    with anyio.fail_after(10):
        with anyio.move_on_after(0.05) as scope:
            await ops_db.write("slow", slow)
            seen_on_return.append(finished.is_set())
            await anyio.lowlevel.checkpoint()  # where the cancellation arrives
        assert scope.cancelled_caught
        assert seen_on_return == [True]


async def test_a_caller_cancelled_before_the_call_starts_nothing(ops_db: OpsDatabase) -> None:
    ran: list[str] = []
    with anyio.fail_after(10):
        for method in (ops_db.read, ops_db.write):
            with anyio.CancelScope() as scope:
                scope.cancel()
                await method("never", lambda s: ran.append("ran"))
            assert scope.cancelled_caught
        assert await ops_db.read("after", _count) == (60,)
    assert ran == []


def test_one_database_serves_event_loops_of_both_backends_in_turn(ops_db_path: Path) -> None:
    with OpsDatabase(ops_db_path, readers=2) as db:
        threads: list[list[threading.Thread]] = []

        async def use() -> None:
            with anyio.fail_after(10):
                assert await db.read("loop", _count) == (60,)
                assert await db.write("loop", _count) == (60,)
            threads.append(db.threads())

        for backend in ("trio", "asyncio", "trio", "asyncio"):
            anyio.run(use, backend=backend)
        assert all(batch == threads[0] for batch in threads)
        assert len(threads[0]) == 3


def test_a_worker_outlives_a_loop_that_ended_while_it_was_busy(ops_db_path: Path) -> None:
    release = threading.Event()
    finished = threading.Event()

    def stuck(session: Session) -> str:
        release.wait(10)  # pure Python: an interrupt cannot stop it
        finished.set()
        return "late"

    async def give_up() -> None:
        with anyio.move_on_after(0.05):
            await db.read("stuck", stuck)

    async def read_again() -> tuple[Any, ...] | None:
        with anyio.fail_after(10):
            return await db.read("again", _count)

    with OpsDatabase(ops_db_path, readers=1) as db:
        anyio.run(give_up, backend="asyncio")
        release.set()  # the job ends after its loop closed: nobody to wake, no hang
        assert finished.wait(10)
        assert anyio.run(read_again, backend="trio") == (60,)
        assert len(db.threads()) == 1


async def test_close_stops_the_threads_and_closes_their_connections(ops_db_path: Path) -> None:
    db = await OpsDatabase.open(ops_db_path, readers=2)
    with anyio.fail_after(10):
        read_conn = await db.read("r", lambda s: s.conn)
        write_conn = await db.write("w", lambda s: s.conn)
    threads = db.threads()
    assert len(threads) == 3
    db.close()
    assert not any(t.is_alive() for t in threads)
    for conn in (read_conn, write_conn):
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            conn.execute("SELECT 1")
    with pytest.raises(RuntimeError, match="closed"):
        await db.read("r", _count)
    db.close()  # idempotent


async def test_a_connection_that_cannot_open_fails_only_its_job(
    ops_db_path: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "copy.db"
    shutil.copyfile(ops_db_path, copy)
    with OpsDatabase(copy, readers=1) as db, anyio.fail_after(10):
        copy.unlink()
        with pytest.raises(sqlite3.OperationalError, match="unable to open"):
            await db.read("gone", _count)
        shutil.copyfile(ops_db_path, copy)
        assert await db.read("back", _count) == (60,)
        assert len(db.threads()) == 1


def test_at_least_one_reader_is_required(ops_db_path: Path) -> None:
    with pytest.raises(ValueError, match="readers"):
        OpsDatabase(ops_db_path, readers=0)
