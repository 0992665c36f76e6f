"""TracerActor: the task that owns the tracer state and is fed call reports by cast.

- :meth:`TracerActor.call_finished` (the :class:`~runtime.calls.CallObserver` protocol)
  never blocks the tool call; a report that finds the mailbox full is dropped and counted.
- Results are sized in the caller's task (:attr:`TracerActor.size_result`); reports carry
  the figures, never the result.
- With a batch window and no sinks, reports are batched in the callers' tasks and cast as
  one message per ``batch_size``; the mailbox bound counts reports, not batches.  With
  sinks (e.g. :class:`~runtime.tracer.otel.OtelBridge`) reports are cast one by one.
- Reads (:meth:`tracer_stats`, :meth:`records`, :meth:`export`) and :meth:`reset` are
  calls and hand pending reports over first, so nothing read is stale.  Records are built
  in the reader's task (many of them in a worker thread); an export is built, formatted
  and written in a worker thread, so a large read never stalls the loop.
- Reports not handled when the actor stops are lost and counted; a restart begins from a
  fresh state.  :meth:`~runtime.actor.Actor.stats` stays the actor's own introspection.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from runtime.actor import Actor, ActorStats, ReplySlot
from runtime.calls import CallReport, CallStart
from runtime.tracer.export import check_format, export
from runtime.tracer.records import TraceRecord, record_from_report
from runtime.tracer.redact import DEFAULT_REDACT_KEYS
from runtime.tracer.sizing import DEFAULT_SIZE_EVERY, ResultSizer, Sizing
from runtime.tracer.state import DEFAULT_CAPACITY, Entry, TracerState
from runtime.tracer.stats import TracerStats

if TYPE_CHECKING:
    from runtime.config import TracerConfig

__all__ = ["RecordSink", "TracerActor"]

RecordSink = Callable[[TraceRecord], None]
"""Called with every new record in the actor task (e.g. an ``OtelBridge``)."""


@attrs.frozen(slots=True)
class _GetStats:
    pass


@attrs.frozen(slots=True)
class _GetRecords:
    limit: int | None


@attrs.frozen(slots=True)
class _Reset:
    pass


TracerMessage = CallReport | list[CallReport] | _GetStats | _GetRecords | _Reset

DEFAULT_BATCH_SIZE = 256
THREAD_RECORDS = 512
"""Reads of at least this many records build (and export) them in a worker thread."""


class TracerActor(Actor[TracerMessage]):
    """Owns a :class:`TracerState`; a :class:`~runtime.calls.CallObserver`."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        mailbox_size: int = 8192,
        redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS,
        relative_accuracy: float = 0.01,
        lazy_records: bool = True,
        sinks: Iterable[RecordSink] = (),
        name: str = "tracer",
        linger: float = 0.0,
        size_every: int = DEFAULT_SIZE_EVERY,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        """``linger`` > 0 (the configured ``batch_window``) batches reports; without sinks
        they are batched in the callers' tasks, ``batch_size`` at a time (see "Batches"
        in the module docstring).  ``size_every``: measure one result in this many per
        operation, estimate the others (see :mod:`runtime.tracer.sizing`); 1 measures
        every result."""
        sinks = tuple(sinks)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        self._batching = linger > 0 and not sinks
        super().__init__(name, mailbox_size=mailbox_size, linger=0.0 if self._batching else linger)
        # Caller-side batching: reports wait here, then go to the actor as one cast.
        self._pending: list[CallReport] = []
        self._batch_limit = min(batch_size, mailbox_size)
        self._mailbox_limit = mailbox_size
        self._queued = 0  # reports cast in batches and not handled yet
        self._queued_batches = 0  # ... and the casts that carry them
        # Reports lost that the base did not count: dropped whole by the batching, or
        # beyond the first of each batch lost at a stop (the base counts a cast as one).
        self._batch_drops = 0
        # Used in the callers' tasks (size_result), never by the actor task but for clear().
        self._sizer = ResultSizer(size_every)
        # One call frame less on every traced call than the method below.
        self.size_result = self._sizer.size
        self._state = TracerState(
            capacity,
            redact_keys=redact_keys,
            relative_accuracy=relative_accuracy,
            lazy_records=lazy_records,
        )
        # Records are built in the reader's task; the redactor is a pure function (plus a
        # memo of verdicts), shared rather than part of the state only the actor touches.
        self._redactor = self._state.redactor
        self._sinks = sinks
        self._sink_errors = 0
        # Base-actor drops counted before the last reset, so stats show drops since then.
        self._dropped_before_reset = 0

    @classmethod
    def from_config(cls, config: TracerConfig, *, sinks: Iterable[RecordSink] = ()) -> TracerActor:
        """Build from a :class:`runtime.config.TracerConfig` (``max_records``,
        ``mailbox_size``, ``redact_keys``)."""
        return cls(
            config.max_records,
            mailbox_size=config.mailbox_size,
            redact_keys=config.redact_keys,
            sinks=sinks,
            linger=config.batch_window,
        )

    # -- CallObserver: never blocks, never raises -------------------------------------

    observes_starts = False
    """The executor need not build a CallStart for us (see CallObserver)."""

    size_result: Callable[[str, str, Any], Sizing]
    """``size_result(tool_type, operation, data) -> (result_count, result_size_bytes,
    result_size_estimated)``: the executor calls it (when an observer has it) while it
    builds a report, so the report need not carry the result.  Runs in the caller's task;
    synchronous, never raises.  The bound :meth:`ResultSizer.size` itself, for speed."""

    def call_started(self, start: CallStart) -> None:
        """Not traced: a record is made when the call finishes."""

    def call_finished(self, report: CallReport) -> None:
        if not self._batching:
            self.cast(report)
            return
        pending = self._pending
        pending.append(report)
        if len(pending) >= self._batch_limit:
            self._flush()

    def _flush(self) -> None:
        """Hand the pending reports to the actor as one cast (in the caller's task)."""
        batch = self._pending
        if not batch:
            return
        self._pending = []
        # The mailbox bound counts reports, not batches: at most mailbox_size reports wait.
        room = self._mailbox_limit - self._queued if self.running else 0
        if room < len(batch):
            kept = max(room, 0)
            self._batch_drops += len(batch) - kept
            del batch[kept:]
            if not batch:
                return
        if self.cast(batch):
            self._queued += len(batch)
            self._queued_batches += 1
        else:  # the base counted one drop for the whole batch
            self._batch_drops += len(batch) - 1

    # -- the actor task ---------------------------------------------------------------

    def on_start(self) -> None:
        if self.stats().starts > 1:
            self._reset()

    def handle_cast(self, message: TracerMessage) -> None:
        if type(message) is list:
            self._queued -= len(message)
            self._queued_batches -= 1
            if not self._sinks:
                self._state.observe_many(message)
            else:
                for report in message:
                    self.handle_cast(report)
            return
        if not isinstance(message, CallReport):
            raise TypeError(f"the tracer only accepts CallReport casts, got {message!r}")
        if not self._sinks:
            self._state.observe(message)
            return
        # Sinks need the record now: build it once and keep it in the ring.
        record = record_from_report(message, redact_keys=self._redactor)
        self._state.observe_record(record)
        for sink in self._sinks:
            try:
                sink(record)
            except Exception:  # an exporter's failure must not take the tracer down
                self._sink_errors += 1

    def handle_call(self, message: TracerMessage, slot: ReplySlot) -> Any:
        if isinstance(message, _GetStats):
            dropped = self.stats().dropped - self._dropped_before_reset
            return attrs.evolve(self._state.stats(dropped=dropped), sink_errors=self._sink_errors)
        if isinstance(message, _GetRecords):
            return self._state.entries(message.limit)
        if isinstance(message, _Reset):
            self._reset()
            return None
        raise TypeError(f"the tracer does not answer {message!r}")

    def _reset(self) -> None:
        self._state.reset()
        self._sizer.clear()
        self._sink_errors = 0
        self._dropped_before_reset = self.stats().dropped

    def on_stop(self, reason: BaseException | str) -> None:
        # The base dropped the queued batches and counted one drop for each: every report
        # in them is lost, and so are those still pending, which nobody will hand over.
        self._batch_drops += self._queued - self._queued_batches + len(self._pending)
        self._queued = self._queued_batches = 0
        self._pending = []

    def stats(self) -> ActorStats:
        """The base actor's figures counted in reports, not casts: ``mailbox_used`` has
        every report waiting, in a queued batch or still pending in the callers' tasks,
        and ``dropped`` every report lost, whole batches included."""
        stats = super().stats()
        if not (self._batch_drops or self._queued or self._pending):
            return stats
        return attrs.evolve(
            stats,
            mailbox_used=stats.mailbox_used
            - self._queued_batches
            + self._queued
            + len(self._pending),
            dropped=stats.dropped + self._batch_drops,
        )

    def stop(self) -> None:
        self._flush()
        super().stop()

    # -- the API, for any task --------------------------------------------------------

    async def tracer_stats(self) -> TracerStats:
        """Aggregates per (tool, operation), buffer fill, and reports dropped."""
        self._flush()
        result: TracerStats = await self.call(_GetStats())
        return result

    async def records(self, limit: int | None = None) -> tuple[TraceRecord, ...]:
        """The buffered records, oldest first (the newest ``limit`` when given).

        Built in the reader's task; from :data:`THREAD_RECORDS` entries on, in a worker
        thread, so reading a full ring does not stall the event loop."""
        self._flush()
        entries: tuple[Entry, ...] = await self.call(_GetRecords(limit))
        if len(entries) < THREAD_RECORDS:
            return self._build(entries)
        built: tuple[TraceRecord, ...] = await anyio.to_thread.run_sync(self._build, entries)
        return built

    def _build(self, entries: tuple[Entry, ...]) -> tuple[TraceRecord, ...]:
        redactor = self._redactor
        return tuple(
            entry
            if isinstance(entry, TraceRecord)
            else record_from_report(entry, redact_keys=redactor)
            for entry in entries
        )

    async def reset(self) -> None:
        """Forget records, aggregates and drop counts."""
        self._flush()
        await self.call(_Reset())

    async def export(
        self,
        format: str,
        path: str | os.PathLike[str] | None = None,
        *,
        limit: int | None = None,
    ) -> str:
        """The buffered records (the newest ``limit`` when given) as ``json`` / ``jsonl`` /
        ``csv`` / ``chrome`` text, also written to ``path`` when given.  Building the records
        and the text happens in a worker thread: a full ring is ~1 s of CPU, which must not
        stall the event loop.  See :mod:`runtime.tracer.export`."""
        check_format(format)  # fail before touching the actor
        self._flush()
        entries: tuple[Entry, ...] = await self.call(_GetRecords(limit))

        def build_and_format() -> str:
            return export(self._build(entries), format, path)

        text: str = await anyio.to_thread.run_sync(build_and_format)
        return text
