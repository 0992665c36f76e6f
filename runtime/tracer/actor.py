"""TracerActor: the task that owns the tracer state and is fed call reports by cast.

- :meth:`TracerActor.call_finished` (the :class:`~runtime.calls.CallObserver` protocol)
  never blocks the tool call; a report that finds the mailbox full is dropped and counted.
- Results are sized in the caller's task (:attr:`TracerActor.size_result`); reports carry
  the figures, never the result.
- With a batch window and no sinks, reports wake the tracer only ``batch_size`` at a time
  (the base actor's ``cast_batch``) and are observed as one batch; the mailbox bound
  counts reports.  With sinks (e.g. :class:`~runtime.tracer.otel.OtelBridge`) the batch
  window batches wake-ups instead (the base actor's ``linger``).
- Reads (:meth:`tracer_stats`, :meth:`records`, :meth:`export`) and :meth:`reset` are
  calls, served after every report cast before them, so nothing read is stale.  Records are built
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

from runtime.actor import Actor, ReplySlot
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


TracerMessage = CallReport | _GetStats | _GetRecords | _Reset

_ONLY_REPORTS = frozenset({CallReport})

DEFAULT_BATCH_SIZE = 256
THREAD_RECORDS = 512
"""Reads of at least this many records build (and export) them in a worker thread."""


class TracerActor(Actor[TracerMessage]):
    """Owns a :class:`TracerState`; a :class:`~runtime.calls.CallObserver`."""

    def __init__(
        self,
        max_records: int = DEFAULT_CAPACITY,
        *,
        mailbox_size: int = 8192,
        redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS,
        relative_accuracy: float = 0.01,
        lazy_records: bool = True,
        sinks: Iterable[RecordSink] = (),
        name: str = "tracer",
        batch_window: float = 0.0,
        size_every: int = DEFAULT_SIZE_EVERY,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        """``batch_window`` > 0 batches reports; without sinks
        they wake the tracer ``batch_size`` at a time (the module docstring).
        ``size_every``: measure one result in this many per operation, estimate the
        others (see :mod:`runtime.tracer.sizing`); 1 measures every result."""
        sinks = tuple(sinks)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        batching = batch_window > 0 and not sinks
        super().__init__(
            name,
            mailbox_size=mailbox_size,
            linger=0.0 if batching else batch_window,
            cast_batch=min(batch_size, mailbox_size) if batching else 1,
        )
        # Used in the callers' tasks (size_result), never by the actor task but for clear().
        self._sizer = ResultSizer(size_every)
        # One call frame less on every traced call than the method below.
        self.size_result = self._sizer.size
        self._state = TracerState(
            max_records,
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
            batch_window=config.batch_window,
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
        self.cast(report)

    # -- the actor task ---------------------------------------------------------------

    def on_start(self) -> None:
        if self.stats().starts > 1:
            self._reset()

    def handle_casts(self, messages: list[TracerMessage]) -> None:
        if self._sinks or not _ONLY_REPORTS.issuperset(map(type, messages)):
            for message in messages:
                self.handle_cast(message)
        else:
            self._state.observe_many(messages)  # type: ignore[arg-type]

    def handle_cast(self, message: TracerMessage) -> None:
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

    # -- the API, for any task --------------------------------------------------------

    async def tracer_stats(self) -> TracerStats:
        """Aggregates per (tool, operation), buffer fill, and reports dropped."""
        result: TracerStats = await self.call(_GetStats())
        return result

    async def records(self, limit: int | None = None) -> tuple[TraceRecord, ...]:
        """The buffered records, oldest first (the newest ``limit`` when given).

        Built in the reader's task; from :data:`THREAD_RECORDS` entries on, in a worker
        thread, so reading a full ring does not stall the event loop."""
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
        entries: tuple[Entry, ...] = await self.call(_GetRecords(limit))

        def build_and_format() -> str:
            return export(self._build(entries), format, path)

        text: str = await anyio.to_thread.run_sync(build_and_format)
        return text
