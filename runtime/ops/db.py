"""Access to the sample CMDB from async code: a few long-lived threads, one connection each.

- Every query runs on a thread the database owns: ``readers`` (default 4) with read-only
  connections (a read tool *cannot* write) and one writer; WAL mode, so readers never
  wait for the writer.  The threads, connections and caches live as long as the database.
- A caller is woken through its own event loop's token, never by blocking on the loop, so
  one database serves any number of loops, trio or asyncio, in turn or at once.
- A cancelled read returns at once and interrupts only its own query; writes are never
  abandoned.
- Every query a tool issues goes through a :class:`Session` counted by a
  :class:`QueryCounter`.

Why not ``anyio.to_thread``: docs/architecture.md, "Decisions and why".
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import attrs

__all__ = ["OpsDatabase", "QueryCounter", "Session", "naming_path"]

T = TypeVar("T")

DEFAULT_READERS = 4
# close() waits this long for each thread to finish its last job and close its connection.
_JOIN_TIMEOUT_S = 5.0


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


class _Job(Generic[T]):
    """One call: its work, its outcome, and the way back to its caller's event loop.

    ``state`` goes pending -> running -> finished, or to cancelled from pending or running;
    its lock makes "interrupt my query" and "my query is over, the connection is free"
    exclusive, so a cancellation can never interrupt the next job on the connection.
    """

    def __init__(self, label: str, work: Callable[[Session], T]) -> None:
        self.label = label
        self.done = anyio.Event()
        self._work = work
        # Run the work in the caller's context, as anyio.to_thread would.
        self._context = contextvars.copy_context()
        self._token = anyio.lowlevel.current_token()
        self._lock = threading.Lock()
        self._state = "pending"
        self._conn: sqlite3.Connection | None = None
        self._value: T | None = None
        self._error: BaseException | None = None

    def run(self, conn: sqlite3.Connection, session: Session) -> None:
        """On the worker thread: do the work unless cancelled first, then wake the caller."""
        with self._lock:
            if self._state == "cancelled":
                return
            self._conn, self._state = conn, "running"
        try:
            self._value = self._context.run(self._work, session)
        except BaseException as exc:  # handed to the caller, whatever it is
            self._error = exc
        self._finish()

    def fail(self, error: BaseException) -> None:
        """On the worker thread: the job cannot run (no connection); tell the caller."""
        self._error = error
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            abandoned = self._state == "cancelled"
            self._state, self._conn = "finished", None
        if abandoned:
            self._error = None  # nobody will read it; don't keep its traceback alive
            return
        # If the caller's event loop is gone, so is the caller: nobody to wake.
        with contextlib.suppress(anyio.RunFinishedError):
            self._token.backend_class.run_sync_soon(self.done.set, (), self._token.native_token)

    def cancel(self) -> None:
        """On the caller's loop, when the caller gives up: interrupt the query if running."""
        with self._lock:
            if self._state == "running" and self._conn is not None:
                self._conn.interrupt()
            if self._state != "finished":
                self._state = "cancelled"

    def outcome(self) -> T:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # T may itself allow None


@contextlib.contextmanager
def naming_path(path: str | os.PathLike[str]) -> Iterator[None]:
    """Re-raise a ``sqlite3.Error`` (same class) with ``path`` in front of its message:
    SQLite's own ("unable to open database file") never says which file."""
    try:
        yield
    except sqlite3.Error as exc:
        if str(path) in str(exc):
            raise
        raise type(exc)(f"{path}: {exc}") from exc


def _read_meta(path: Path) -> dict[str, str]:
    with naming_path(path):
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
    :meth:`open`).  The worker threads start on first use (``readers`` of them for reads,
    one for writes) and live until :meth:`close`, which stops them; each closes its
    connection as it stops.  Call it when no tool call is running any more.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 5.0,
        readers: int = DEFAULT_READERS,
    ) -> None:
        if readers < 1:
            raise ValueError(f"readers must be at least 1, not {readers}")
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"no ops database at {self.path}")
        self.meta: Mapping[str, str] = _read_meta(self.path)
        self.now = int(self.meta["now"])
        self.step = int(self.meta["resolution_s"])
        self.counter = QueryCounter()
        self.readers = readers
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.Lock()
        self._reads: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._writes: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._read_threads: list[threading.Thread] = []
        self._write_threads: list[threading.Thread] = []
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

    def threads(self) -> list[threading.Thread]:
        """The worker threads started so far (for tests and diagnostics)."""
        with self._lock:
            return [*self._read_threads, *self._write_threads]

    async def read(self, label: str, work: Callable[[Session], T]) -> T:
        """Run ``work`` on a reader thread with that thread's read-only connection.

        If the caller is cancelled, it returns at once and the query is interrupted.
        """
        await anyio.lowlevel.checkpoint()  # as anyio.to_thread: cancelled callers don't start
        job = self._submit(label, work, writable=False)
        try:
            await job.done.wait()
        except anyio.get_cancelled_exc_class():
            job.cancel()
            raise
        return job.outcome()

    async def write(self, label: str, work: Callable[[Session], T]) -> T:
        """Run ``work`` on the writer thread with the read-write connection.

        A cancelled caller still waits for the write to finish; the cancellation reaches
        it at its next checkpoint.
        """
        await anyio.lowlevel.checkpoint()
        job = self._submit(label, work, writable=True)
        with anyio.CancelScope(shield=True):
            await job.done.wait()
        return job.outcome()

    def _submit(self, label: str, work: Callable[[Session], T], *, writable: bool) -> _Job[T]:
        job = _Job(label, work)
        with self._lock:
            # Under the lock, so a job can never be queued behind close()'s stop markers.
            if self._closed:
                raise RuntimeError(f"ops database {self.path} is closed")
            if writable:
                self._start(self._write_threads, self._writes, 1, "write")
                self._writes.put(job)
            else:
                self._start(self._read_threads, self._reads, self.readers, "read")
                self._reads.put(job)
        return job

    def _start(
        self,
        threads: list[threading.Thread],
        jobs: queue.SimpleQueue[_Job[Any] | None],
        count: int,
        kind: str,
    ) -> None:
        while len(threads) < count:
            thread = threading.Thread(
                target=self._serve,
                args=(jobs, kind == "write"),
                name=f"ops-db-{kind}-{len(threads)}",
                daemon=True,
            )
            thread.start()
            threads.append(thread)

    def _serve(self, jobs: queue.SimpleQueue[_Job[Any] | None], writable: bool) -> None:
        """A worker thread's life: one connection, opened here on first use, and a loop."""
        conn: sqlite3.Connection | None = None
        try:
            while (job := jobs.get()) is not None:
                if conn is None:
                    try:
                        conn = self._connect(writable)
                    except Exception as exc:  # the file vanished, say: fail this job only
                        job.fail(exc)
                        continue
                job.run(conn, Session(conn, self.counter, job.label, self.now, self.step))
                del job  # don't keep the last job's value alive while idle
        finally:
            if conn is not None:
                conn.close()

    def _connect(self, writable: bool) -> sqlite3.Connection:
        # check_same_thread=False only so a cancelled caller may interrupt() from its loop.
        with naming_path(self.path):
            if writable:
                return sqlite3.connect(
                    self.path, timeout=self._busy_timeout_s, check_same_thread=False
                )
            return sqlite3.connect(
                _ro_uri(self.path), uri=True, timeout=self._busy_timeout_s, check_same_thread=False
            )

    def close(self) -> None:
        """Stop the worker threads (after the jobs already queued) and wait for them."""
        with self._lock:
            already, self._closed = self._closed, True
            threads = [*self._read_threads, *self._write_threads]
            if not already:
                for _ in self._read_threads:
                    self._reads.put(None)
                for _ in self._write_threads:
                    self._writes.put(None)
        current = threading.current_thread()
        for thread in threads:
            if thread is not current:
                thread.join(_JOIN_TIMEOUT_S)

    def __enter__(self) -> OpsDatabase:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
