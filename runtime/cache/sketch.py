"""A count-min frequency sketch with periodic aging: W-TinyLFU's popularity estimate.

Pure and synchronous.  :meth:`FrequencySketch.increment` records one access to a key's
digest; :meth:`FrequencySketch.frequency` estimates how often it was accessed recently.

Invariants:

- Four rows of ``4 * capacity`` one-byte counters (16 counters, 16 bytes, per entry the
  cache can hold; at least 64 per row).  A key maps to one counter per row; its estimate
  is the smallest of the four, so it **never underestimates** the accesses recorded since
  the last aging, except where a counter saturated at :data:`MAX_COUNT`.
- **Aging**: after ``SAMPLE_FACTOR * capacity`` increments every counter is halved (one
  C-level ``translate``), so old popularity fades and a key that stopped being asked for
  loses its place.
- Row indices come from ``hash(digest)``: CPython's keyed SipHash of the key's bytes,
  seeded per process, so nobody outside the process can aim keys at chosen counters to
  inflate a victim's estimate (Caffeine needs random admission for that; we do not).
  Within a process the sketch is deterministic.

docs/cache.md explains the choice of sizes and of a long memory (TTL bounds staleness).
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_COUNT", "SAMPLE_FACTOR", "FrequencySketch"]

MAX_COUNT: Final = 255  # a counter saturates here
SAMPLE_FACTOR: Final = 128  # increments per entry of capacity between two agings
_DEPTH: Final = 4
_MIN_WIDTH: Final = 64
_HALVE: Final = bytes(count >> 1 for count in range(256))


class FrequencySketch:
    """Estimates recent access counts of digests for a cache of ``capacity`` entries."""

    __slots__ = ("_increments", "_table", "_width", "capacity", "sample_size")

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self.capacity: Final = capacity
        self._width = max(_MIN_WIDTH, 4 * capacity)
        self._table = bytearray(_DEPTH * self._width)
        self.sample_size: Final = SAMPLE_FACTOR * capacity
        self._increments = 0

    def _indices(self, digest: bytes) -> tuple[int, int, int, int]:
        # Double hashing (Kirsch-Mitzenmacher): four rows from one 64-bit hash.
        h = hash(digest)
        width = self._width
        low, high = h & 0xFFFFFFFF, ((h >> 32) & 0xFFFFFFFF) | 1
        return (
            low % width,
            width + (low + high) % width,
            2 * width + (low + 2 * high) % width,
            3 * width + (low + 3 * high) % width,
        )

    def increment(self, digest: bytes) -> None:
        """Record one access to ``digest``; ages the sketch when the sample is full."""
        table = self._table
        a, b, c, d = self._indices(digest)
        if table[a] < MAX_COUNT:
            table[a] += 1
        if table[b] < MAX_COUNT:
            table[b] += 1
        if table[c] < MAX_COUNT:
            table[c] += 1
        if table[d] < MAX_COUNT:
            table[d] += 1
        self._increments += 1
        if self._increments >= self.sample_size:
            self.age()

    def frequency(self, digest: bytes) -> int:
        """The estimated recent access count of ``digest`` (never below the true count
        since the last aging, unless saturated)."""
        table = self._table
        a, b, c, d = self._indices(digest)
        return min(table[a], table[b], table[c], table[d])

    def age(self) -> None:
        """Halve every counter (and the sample count): popularity decays."""
        self._table = bytearray(self._table.translate(_HALVE))
        self._increments //= 2

    @property
    def nbytes(self) -> int:
        return len(self._table)
