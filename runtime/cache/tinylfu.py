"""W-TinyLFU's regions: which entry the store evicts, and which it admits (Caffeine's design).

Pure and synchronous; the store (:mod:`runtime.cache.store`) owns the entries, their TTLs,
sizes and statistics, and asks this class where an entry lives and who leaves.

- **Window** (1% of ``max_entries``, at least 1): every new entry enters here, most
  recent last.  When it overflows, its oldest entry moves to probation (``admitted``).
- **Main** = **probation** + **protected** (80% of main).  A hit in probation promotes
  the entry to protected; when protected overflows, its oldest entry is demoted to
  probation's most recent end.  Hits in window or protected refresh recency there.
- **Eviction** (the store reclaims expired entries first): the window's oldest entry (the
  *candidate*) meets main's *victim* (probation's oldest, else protected's oldest).  The
  one with the lower estimated frequency (:class:`FrequencySketch`) leaves; on a tie the
  victim stays (``rejected_by_frequency`` for the candidate); a winning candidate moves to
  probation (``admitted``).  With one side empty, the other's oldest leaves.
- Invariants: ``len(window) <= window_max``, ``len(probation) + len(protected) <=
  main_max``, ``len(protected) <= protected_max``; each stored entry is in exactly one
  region.  The entry being put is never a candidate in its own put.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any, Final, Generic, Protocol, TypeVar

from runtime.cache.sketch import FrequencySketch

__all__ = ["TinyLfuRegions"]

WINDOW_SHARE: Final = 0.01
PROTECTED_SHARE: Final = 0.8


class _Counted(Protocol):
    admitted: int
    rejected_by_frequency: int


class _Placed(Protocol):
    digest: bytes
    group: Any  # the entry's counters (_Counted)


E = TypeVar("E", bound=_Placed)


class TinyLfuRegions(Generic[E]):
    """The window / probation / protected regions of a store of ``max_entries``.

    The regions are the store's only map of its entries (digest to entry): an entry is
    found by asking protected, probation and the window in turn (most hits are in
    protected), and it needs no back-reference to its region."""

    __slots__ = (
        "_max_entries",
        "main_max",
        "probation",
        "protected",
        "protected_max",
        "sketch",
        "window",
        "window_max",
    )

    def __init__(self, max_entries: int) -> None:
        self._max_entries = max_entries
        self.window_max: Final = max(1, int(max_entries * WINDOW_SHARE))
        self.main_max: Final = max_entries - self.window_max
        self.protected_max: Final = int(self.main_max * PROTECTED_SHARE)
        self.window: OrderedDict[bytes, E] = OrderedDict()
        self.probation: OrderedDict[bytes, E] = OrderedDict()
        self.protected: OrderedDict[bytes, E] = OrderedDict()
        # Sized for what the store holds, grown up to max_entries (see grow_sketch).
        self.sketch = FrequencySketch(min(max_entries, 1024))

    def __iter__(self) -> Iterator[E]:
        """Every entry: window, then probation, then protected, each oldest first."""
        yield from self.window.values()
        yield from self.probation.values()
        yield from self.protected.values()

    def __len__(self) -> int:
        return len(self.window) + len(self.probation) + len(self.protected)

    def get(self, digest: bytes) -> E | None:
        """The entry stored under ``digest``, whichever region holds it."""
        # Entries are always truthy; protected first: it holds most of a big working set.
        return self.protected.get(digest) or self.probation.get(digest) or self.window.get(digest)

    def region_of(self, digest: bytes) -> OrderedDict[bytes, E] | None:
        """The region holding ``digest``'s entry, if any."""
        for region in (self.protected, self.probation, self.window):
            if digest in region:
                return region
        return None

    def grow_sketch(self, entries: int) -> None:
        """Resize the sketch once the store holds more entries than it was sized for
        (as Caffeine does: a sketch for 10M entries is not allocated for 10 stored ones).
        Resizing starts the counts afresh."""
        if entries > self.sketch.capacity < self._max_entries:
            self.sketch = FrequencySketch(min(self._max_entries, 2 * self.sketch.capacity))

    def touch(self, digest: bytes) -> None:
        """A hit on a stored entry: promote it from probation, else refresh its recency."""
        protected = self.protected
        if digest in protected:
            protected.move_to_end(digest)
            return
        entry = self.probation.get(digest)
        if entry is None:
            self.window.move_to_end(digest)
            return
        self.promote(digest, entry)

    def promote(self, digest: bytes, entry: E) -> None:
        """A hit on ``entry``, in probation: it moves to protected, whose oldest entry
        goes back to probation if protected is over its share."""
        del self.probation[digest]
        protected = self.protected
        protected[digest] = entry
        if len(protected) > self.protected_max:
            demoted_digest, demoted = protected.popitem(False)
            self.probation[demoted_digest] = demoted

    def insert(self, entry: E, region: OrderedDict[bytes, E] | None = None) -> None:
        """Place a new ``entry`` (in ``region``, else the window), most recent last.

        The caller made room first, so an overflowing window's oldest entry finds room in
        main.  A re-put passes its predecessor's region: count never grows there."""
        if region is not None:
            region[entry.digest] = entry
            return
        window = self.window
        window[entry.digest] = entry
        if len(window) > self.window_max:
            moved_digest, moved = window.popitem(False)
            self.probation[moved_digest] = moved
            moved.group.admitted += 1

    def remove(self, digest: bytes) -> None:
        """Remove a stored entry from its region."""
        if self.protected.pop(digest, None) is None and self.probation.pop(digest, None) is None:
            del self.window[digest]

    def evict(self) -> E:
        """Choose and remove the entry that leaves to make room (the store is not empty)."""
        window = self.window
        main = self.probation or self.protected
        if not main:
            return window.popitem(False)[1]
        if not window:
            return main.popitem(False)[1]
        # The admission duel; a candidate never asked for (the common case under churn)
        # loses without the victim's estimate being read.
        frequency = self.sketch.frequency
        wanted = frequency(next(iter(window)))
        if wanted and wanted > frequency(next(iter(main))):
            leaving = main.popitem(False)[1]
            candidate_digest, candidate = window.popitem(False)
            self.probation[candidate_digest] = candidate
            candidate.group.admitted += 1
            return leaving
        leaving = window.popitem(False)[1]
        leaving.group.rejected_by_frequency += 1
        return leaving
