"""The tracer's functional core: a bounded ring of calls plus aggregates over all calls.

:class:`TracerState` is pure and synchronous -- no I/O, no clock reads, no locks.  The
tracer actor owns one and is the only task that touches it.

- Everything it hands out (records, snapshots, reports) is never changed afterwards.
- Every call is counted; records are built lazily by :meth:`TracerState.to_record` when
  read (``lazy_records=False`` builds them at observation).  Both modes give identical
  records and statistics.  Unredacted params never leave through a read.
- Results are never kept: reports carry their count and size; a report that carries
  ``data`` has its record built at once.
- Memory is bounded: at most ``capacity`` ring entries, and one aggregate (counters and a
  bounded sketch) per (kind, tool_type, operation).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from itertools import repeat
from operator import attrgetter, is_not

from runtime.calls import CallReport
from runtime.tracer.records import TraceRecord, record_from_report
from runtime.tracer.redact import DEFAULT_REDACT_KEYS, Redactor
from runtime.tracer.stats import Aggregate, OperationKey, TracerStats

__all__ = ["DEFAULT_CAPACITY", "Entry", "TracerState"]

DEFAULT_CAPACITY = 1000

_DATA = attrgetter("data")
_GROUP = attrgetter("kind", "tool_type", "operation")

Entry = TraceRecord | CallReport
"""What the ring holds: a record, or a report whose record is built when read."""


class TracerState:
    """Observe reports; answer with records and stats snapshots."""

    __slots__ = (
        "_capacity",
        "_index",
        "_lazy",
        "_max_buckets",
        "_observed",
        "_redactor",
        "_relative_accuracy",
        "_ring",
        "_tables",
        "dropped",
    )

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        *,
        redact_keys: Iterable[str] = DEFAULT_REDACT_KEYS,
        relative_accuracy: float = 0.01,
        max_buckets: int = 2048,
        lazy_records: bool = True,
    ) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity!r}")
        self._capacity = capacity
        self._redactor = Redactor(redact_keys)
        self._relative_accuracy = relative_accuracy
        self._max_buckets = max_buckets
        self._lazy = lazy_records
        self._ring: deque[Entry] = deque(maxlen=capacity)
        self._tables: dict[str, dict[OperationKey, Aggregate]] = {
            "tool_call": {},
            "step": {},
            "pipeline": {},
        }
        # (kind, tool_type, operation) as reports carry them -> the aggregate in _tables.
        self._index: dict[tuple[str, str, str], Aggregate] = {}
        self._observed = 0
        # Incremented by the shell: reports lost before they reached this state.
        self.dropped = 0

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def redactor(self) -> Redactor:
        return self._redactor

    @property
    def lazy_records(self) -> bool:
        return self._lazy

    @property
    def observed(self) -> int:
        return self._observed

    # -- writing -------------------------------------------------------------------------

    def observe(self, report: CallReport) -> None:
        """Count ``report`` in its aggregate and keep it (or its record) in the ring.

        A report that carries its result ``data`` (a pipeline step's) has its record built
        at once even when records are lazy, so that the data is let go now.
        """
        self.observe_many((report,))

    def observe_many(self, reports: Iterable[CallReport]) -> None:
        """:meth:`observe` each report, in order (the tracer actor's batches).

        This runs for every traced call, so it is written for speed: the batch is kept
        and sorted into its (kind, tool_type, operation) groups in C-level passes where
        it can be, and each group is counted by its aggregate in more of them
        (:meth:`Aggregate.add_reports`).
        """
        batch = reports if type(reports) is list else list(reports)
        if not batch:
            return
        if self._lazy and not any(map(is_not, map(_DATA, batch), repeat(None))):
            self._ring.extend(batch)  # the common case: one C call for the whole batch
        else:
            lazy = self._lazy
            self._ring.extend(
                report if lazy and report.data is None else self.to_record(report)
                for report in batch
            )
        # The reports of each (kind, tool_type, operation), counted a batch at a time; a
        # batch of one tool's calls (the common case) is told in one C-level pass.
        keys = list(map(_GROUP, batch))
        groups: dict[tuple[str, str, str], list[CallReport]]
        if keys.count(keys[0]) == len(keys):
            groups = {keys[0]: batch}
        else:
            groups = {}
            for key, report in zip(keys, batch, strict=True):
                group = groups.get(key)
                if group is None:
                    groups[key] = [report]
                else:
                    group.append(report)
        index = self._index
        for key, group in groups.items():
            aggregate = index.get(key)
            if aggregate is None:
                aggregate = self._aggregate_of(group[0])
            aggregate.add_reports(group)
        self._observed += len(batch)

    def observe_record(self, record: TraceRecord) -> None:
        """Keep and count an already built record (also used to replay exported ones)."""
        self._ring.append(record)
        self._observed += 1
        aggregate = self._index.get((record.kind, record.tool_type, record.operation))
        if aggregate is None:
            aggregate = self._aggregate_of(record)
        aggregate.add(record, record.duration_ms)

    def _aggregate_of(self, call: Entry) -> Aggregate:
        """The aggregate a call counts in, created on first use and indexed by the call's
        own (kind, tool_type, operation) values for the next lookups."""
        table = self._tables.get(call.kind)
        if table is None:  # an unknown kind is still counted; with the tools
            table = self._tables["tool_call"]
        key = (str(call.tool_type), call.operation)  # a ToolType enum counts as its name
        aggregate = table.get(key)
        if aggregate is None:
            aggregate = table[key] = Aggregate(
                relative_accuracy=self._relative_accuracy, max_buckets=self._max_buckets
            )
        self._index[(call.kind, call.tool_type, call.operation)] = aggregate
        return aggregate

    def note_dropped(self, count: int = 1) -> None:
        self.dropped += count

    def reset(self) -> None:
        """Forget every record, aggregate and drop count."""
        self._ring.clear()
        self._index.clear()
        for table in self._tables.values():
            table.clear()
        self._observed = 0
        self.dropped = 0

    # -- reading -------------------------------------------------------------------------

    def entries(self, limit: int | None = None) -> tuple[Entry, ...]:
        """The ring as it is, oldest first (newest ``limit`` when given): cheap to take;
        turn each entry into a record with :meth:`to_record`, possibly elsewhere."""
        if limit is None or limit >= len(self._ring):
            return tuple(self._ring)
        if limit <= 0:
            return ()
        return tuple(self._ring)[-limit:]

    def to_record(self, entry: Entry) -> TraceRecord:
        """The (redacted) record of a ring entry."""
        if isinstance(entry, TraceRecord):
            return entry
        return record_from_report(entry, redact_keys=self._redactor)

    def records(self, limit: int | None = None) -> tuple[TraceRecord, ...]:
        """The buffered records, oldest first; only the newest ``limit`` when given."""
        return tuple(self.to_record(entry) for entry in self.entries(limit))

    def aggregate(self, tool_type: str, operation: str, kind: str = "tool_call") -> Aggregate:
        """The live aggregate (for tests and diagnostics); raises ``KeyError`` if unseen."""
        return self._tables[kind][(tool_type, operation)]

    def stats(self, *, dropped: int | None = None) -> TracerStats:
        """A frozen snapshot; ``dropped`` overrides the state's own drop counter."""
        tables = {
            kind: {key: agg.snapshot() for key, agg in table.items()}
            for kind, table in self._tables.items()
        }
        return TracerStats(
            tools=tables["tool_call"],
            steps=tables["step"],
            pipelines=tables["pipeline"],
            observed=self._observed,
            buffered=len(self._ring),
            capacity=self._capacity,
            dropped=self.dropped if dropped is None else dropped,
        )
