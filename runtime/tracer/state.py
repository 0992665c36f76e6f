"""The tracer's functional core: a bounded ring of calls plus aggregates over all calls.

:class:`TracerState` is pure and synchronous — no I/O, no clock reads, no locks.  The
tracer actor owns one and is the only task that touches it; everything it hands out
(records, reports, snapshots) is immutable, so readers never see it change under them.

Lazy records (the default).  Building a :class:`TraceRecord` is the expensive part of
tracing: redacting params, and above all JSON-encoding the result to size it
(``benchmarks/tracer_bench.py``, CPU per call: ~0.7 us to count a call in the aggregates
and keep it, ~3 us to build a record without data, ~23 us for a 20-row result, most of it
JSON-encoding the result to size it).  Every call must be
*counted*, but only the records somebody reads — ``records()``, an export, a sink — need
to be *built*.  So by default the ring keeps the :class:`~runtime.calls.CallReport` as it
came (immutable, built by the caller anyway) and :meth:`TracerState.to_record` builds the
record on the way out; the tracer actor does that in the *reader's* task, so neither the
tool path nor the actor pays for it.  The price: until a report leaves the ring, its raw
params and result data stay referenced, so the ring's memory is ``capacity`` times the
typical result size (raw params never leave through any read: every read redacts).  With
``lazy_records=False`` records are built at observation and the data is let go at once —
pick it when results are large and the ring is long.  Both modes produce identical
records and statistics.

Memory is bounded whatever the traffic: the ring holds at most ``capacity`` entries
(``collections.deque(maxlen=capacity)`` drops the oldest), each aggregate is a handful of
counters and a sketch of at most ``max_buckets`` buckets, and there is one aggregate per
distinct (kind, tool_type, operation) — a set fixed by the tool registry and the pipeline
library, not by the number of calls.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from runtime.calls import CallReport
from runtime.tracer.records import TraceRecord, duration_ms_of, record_from_report
from runtime.tracer.redact import DEFAULT_REDACT_KEYS, Redactor
from runtime.tracer.stats import Aggregate, OperationKey, TracerStats

__all__ = ["DEFAULT_CAPACITY", "Entry", "TracerState"]

DEFAULT_CAPACITY = 1000

Entry = TraceRecord | CallReport
"""What the ring holds: a record, or a report whose record is built when read."""


class TracerState:
    """Observe reports; answer with records and stats snapshots."""

    __slots__ = (
        "_capacity",
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
        """Count ``report`` in its aggregate and keep it (or its record) in the ring."""
        self._ring.append(report if self._lazy else self.to_record(report))
        self._count(report, duration_ms_of(report))

    def observe_record(self, record: TraceRecord) -> None:
        """Keep and count an already built record (also used to replay exported ones)."""
        self._ring.append(record)
        self._count(record, record.duration_ms)

    def _count(self, call: Entry, duration_ms: float) -> None:
        self._observed += 1
        table = self._tables.get(call.kind)
        if table is None:  # an unknown kind is still counted; with the tools
            table = self._tables["tool_call"]
        key = (str(call.tool_type), call.operation)  # a ToolType enum counts as its name
        aggregate = table.get(key)
        if aggregate is None:
            aggregate = table[key] = Aggregate(
                relative_accuracy=self._relative_accuracy, max_buckets=self._max_buckets
            )
        aggregate.add(call, duration_ms)

    def note_dropped(self, count: int = 1) -> None:
        self.dropped += count

    def reset(self) -> None:
        """Forget every record, aggregate and drop count."""
        self._ring.clear()
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
