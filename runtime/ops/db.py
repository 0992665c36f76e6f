"""Access to the sample CMDB from async code: worker threads, one connection each.

``sqlite3`` blocks, so every query runs in a worker thread (``anyio.to_thread``) and the
event loop never waits on the disk.  A connection may only be used by one thread at a
time, and opening one per call costs more than most queries, so each worker thread keeps
its own connections (``threading.local``): a read-only one (``mode=ro`` URI — a read tool
*cannot* write, whatever SQL it builds) and, on first use by a writing tool, a read-write
one.  The database is in WAL mode, so readers never wait for the CEP log writer.

A cancelled read (a tool timeout, say) must not keep its caller waiting for a slow query:
reads run with ``abandon_on_cancel`` and the cancelled caller interrupts *its own* query
(``sqlite3.Connection.interrupt``, guarded so it can never hit a later call that reuses
the same worker thread).  Writes are not abandoned: a CEP simulation finishes, or fails,
before its caller moves on.

Every query a tool issues goes through a :class:`Session` that counts it in a
:class:`QueryCounter`; the demo and the benchmarks compare that count with the number of
tool calls to show what caching saves.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
import attrs

__all__ = ["OpsDatabase", "QueryCounter", "Session"]

T = TypeVar("T")


class QueryCounter:
    """A thread-safe count of database queries, in total and per label (``CI.search``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._total = 0
        self._by_label: dict[str, int] = {}

    def add(self, label: str, count: int = 1) -> None:
        with self._lock:
            self._total += count
            self._by_label[label] = self._by_label.get(label, 0) + count

    @property
    def total(self) -> int:
        with self._lock:
            return self._total

    def by_label(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_label)

    def reset(self) -> None:
        with self._lock:
            self._total = 0
            self._by_label.clear()


@attrs.frozen(slots=True)
class Session:
    """One tool call's view of the database, on the worker thread running it.

    ``now`` is the dataset's reference time and ``step`` its sampling interval, both
    read once from the ``meta`` table when the database was opened.
    """

    conn: sqlite3.Connection
    counter: QueryCounter
    label: str
    now: int
    step: int

    def all(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        self.counter.add(self.label)
        return self.conn.execute(sql, tuple(args)).fetchall()

    def one(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self.counter.add(self.label)
        row: tuple[Any, ...] | None = self.conn.execute(sql, tuple(args)).fetchone()
        return row

    def insert(self, sql: str, args: Sequence[Any]) -> int:
        """Run an INSERT in its own committed transaction; the new row's id."""
        self.counter.add(self.label)
        with self.conn:
            cursor = self.conn.execute(sql, tuple(args))
        rowid = cursor.lastrowid
        assert rowid is not None
        return rowid


class _Job:
    """One call's claim on its worker thread's connection, for a guarded interrupt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._state = "pending"  # -> running -> finished, or -> cancelled

    def start(self, conn: sqlite3.Connection) -> bool:
        with self._lock:
            if self._state == "cancelled":
                return False
            self._conn, self._state = conn, "running"
            return True

    def finish(self) -> None:
        with self._lock:
            self._state = "finished"

    def cancel(self) -> None:
        with self._lock:
            if self._state == "running" and self._conn is not None:
                self._conn.interrupt()
            if self._state != "finished":
                self._state = "cancelled"


def _read_meta(path: Path) -> dict[str, str]:
    conn = sqlite3.connect(_ro_uri(path), uri=True)
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    finally:
        conn.close()


def _ro_uri(path: Path) -> str:
    return f"{path.resolve().as_uri()}?mode=ro"


class OpsDatabase:
    """The sample CMDB, opened for the ops tools.

    Constructing one reads the ``meta`` table (a quick blocking read; from async code use
    :meth:`open`).  :meth:`close` closes every connection any worker thread opened; call
    it when no tool call is running any more.
    """

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no ops database at {self.path}")
        self.meta: Mapping[str, str] = _read_meta(self.path)
        self.now = int(self.meta["now"])
        self.step = int(self.meta["resolution_s"])
        self.counter = QueryCounter()
        self._busy_timeout_s = busy_timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[tuple[threading.Thread, sqlite3.Connection]] = []
        self._closed = False

    @classmethod
    async def open(cls, path: str | os.PathLike[str], **kwargs: Any) -> OpsDatabase:
        return await anyio.to_thread.run_sync(partial(cls, path, **kwargs))

    @property
    def query_count(self) -> int:
        """Queries issued by tools since opening (or the last :meth:`reset_query_count`)."""
        return self.counter.total

    def queries_by_tool(self) -> dict[str, int]:
        return self.counter.by_label()

    def reset_query_count(self) -> None:
        self.counter.reset()

    async def read(self, label: str, work: Callable[[Session], T]) -> T:
        """Run ``work`` on a worker thread with that thread's read-only connection.

        If the caller is cancelled, it returns at once and the query is interrupted.
        """
        job = _Job()
        try:
            return await anyio.to_thread.run_sync(
                self._run, label, work, False, job, abandon_on_cancel=True
            )
        except anyio.get_cancelled_exc_class():
            job.cancel()
            raise

    async def write(self, label: str, work: Callable[[Session], T]) -> T:
        """Run ``work`` on a worker thread with that thread's read-write connection."""
        return await anyio.to_thread.run_sync(self._run, label, work, True, _Job())

    def _run(self, label: str, work: Callable[[Session], T], writable: bool, job: _Job) -> T:
        if self._closed:
            raise RuntimeError(f"ops database {self.path} is closed")
        conn = self._connection(writable)
        if not job.start(conn):
            raise RuntimeError("cancelled before it started")
        try:
            return work(Session(conn, self.counter, label, self.now, self.step))
        finally:
            job.finish()

    def _connection(self, writable: bool) -> sqlite3.Connection:
        attr = "rw" if writable else "ro"
        conn: sqlite3.Connection | None = getattr(self._local, attr, None)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise RuntimeError(f"ops database {self.path} is closed")
            # Worker threads come and go; close what the dead ones left behind.
            alive = []
            for thread, old in self._connections:
                if thread.is_alive():
                    alive.append((thread, old))
                else:
                    old.close()
            if writable:
                conn = sqlite3.connect(
                    self.path, timeout=self._busy_timeout_s, check_same_thread=False
                )
            else:
                conn = sqlite3.connect(
                    _ro_uri(self.path),
                    uri=True,
                    timeout=self._busy_timeout_s,
                    check_same_thread=False,
                )
            alive.append((threading.current_thread(), conn))
            self._connections = alive
        setattr(self._local, attr, conn)
        return conn

    def close(self) -> None:
        with self._lock:
            self._closed = True
            connections, self._connections = self._connections, []
        for _, conn in connections:
            conn.close()

    def __enter__(self) -> OpsDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
