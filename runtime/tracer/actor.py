"""TracerActor: the task that owns the tracer state and is fed call reports by cast.

The executor and the pipeline tell the tracer about every call through
:meth:`TracerActor.call_finished` (the :class:`~runtime.calls.CallObserver` protocol),
which is a ``cast``: it never blocks the tool call.  When the mailbox is full the report
is dropped and counted by the base :class:`~runtime.actor.Actor`; :meth:`tracer_stats`
reports those drops next to the aggregates.  All the work — redaction, sizing, the ring
buffer, the sketches, and any record *sinks* such as the
:class:`~runtime.tracer.otel.OtelBridge` — happens in the actor's task, off the caller's
path.

Reading goes through ``call`` (the state is only ever touched by the actor task):
:meth:`tracer_stats`, :meth:`records`, :meth:`reset`, and :meth:`export`.  A records call
takes the ring as it is (cheap) and the *reader's* task builds the redacted records from
it (see "lazy records" in :mod:`runtime.tracer.state`), then formats them and, for a file,
writes in a worker thread: a large export never stalls the actor.  With sinks configured
each record is built in the actor task as it arrives, since the sinks need it then.
Bound a read with ``anyio.fail_after`` if needed.

The base class's :meth:`~runtime.actor.Actor.stats` stays the actor's own introspection
(mailbox, processed, dropped); the tracer's figures are :meth:`tracer_stats`.

A restart (the runtime's supervisor serving the actor again after a crash) starts from a
fresh state: a state whose handler crashed is not trusted.
"""

from __future__ import annotations

import functools
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
    ) -> None:
        super().__init__(name, mailbox_size=mailbox_size, linger=linger)
        self._state = TracerState(
            capacity,
            redact_keys=redact_keys,
            relative_accuracy=relative_accuracy,
            lazy_records=lazy_records,
        )
        # Records are built in the reader's task; the redactor is a pure function (plus a
        # memo of verdicts), shared rather than part of the state only the actor touches.
        self._redactor = self._state.redactor
        self._sinks = tuple(sinks)
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

    def call_started(self, start: CallStart) -> None:
        """Not traced: a record is made when the call finishes."""

    def call_finished(self, report: CallReport) -> None:
        self.cast(report)

    # -- the actor task ---------------------------------------------------------------

    def on_start(self) -> None:
        if self.stats().starts > 1:
            self._reset()

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
        self._sink_errors = 0
        self._dropped_before_reset = self.stats().dropped

    # -- the API, for any task --------------------------------------------------------

    async def tracer_stats(self) -> TracerStats:
        """Aggregates per (tool, operation), buffer fill, and reports dropped."""
        result: TracerStats = await self.call(_GetStats())
        return result

    async def records(self, limit: int | None = None) -> tuple[TraceRecord, ...]:
        """The buffered records, oldest first (the newest ``limit`` when given)."""
        entries: tuple[Entry, ...] = await self.call(_GetRecords(limit))
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
    ) -> str:
        """The buffered records as ``json`` / ``jsonl`` / ``csv`` text, also written to
        ``path`` when given (in a worker thread).  See :mod:`runtime.tracer.export`."""
        check_format(format)  # fail before touching the actor
        records = await self.records()
        if path is None:
            return export(records, format)
        text: str = await anyio.to_thread.run_sync(functools.partial(export, records, format, path))
        return text
