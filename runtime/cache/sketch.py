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
- Row indices are the digest's four 32-bit words, modulo the row width.  A digest is 16
  bytes of BLAKE2b over the tenant and the params, so the rows are independent; the
  sketch is deterministic (the same lookups give the same estimates in any process).
- Digests must be at least 16 bytes long.

docs/cache.md explains the choice of sizes and of a long memory (TTL bounds staleness).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

__all__ = ["MAX_COUNT", "SAMPLE_FACTOR", "FrequencySketch"]

MAX_COUNT: Final = 255  # a counter saturates here
SAMPLE_FACTOR: Final = 128  # increments per entry of capacity between two agings
_DEPTH: Final = 4
_MIN_WIDTH: Final = 64
_HALVE: Final = bytes(count >> 1 for count in range(256))
# A key's digest is 16 bytes of BLAKE2b output: four independent 32-bit row hashes, read in
# one C call (cheaper than deriving four from hash(): no big-int arithmetic).
_ROWS: Final[Callable[[bytes], tuple[int, int, int, int]]] = struct.Struct("<4I").unpack_from


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

    def increment(self, digest: bytes) -> None:
        """Record one access to ``digest``; ages the sketch when the sample is full."""
        # Inlined row indices (see _rows): this runs on every cache lookup.
        a, b, c, d = _ROWS(digest)
        width = self._width
        table = self._table
        a %= width
        if table[a] < MAX_COUNT:
            table[a] += 1
        b = width + b % width
        if table[b] < MAX_COUNT:
            table[b] += 1
        c = 2 * width + c % width
        if table[c] < MAX_COUNT:
            table[c] += 1
        d = 3 * width + d % width
        if table[d] < MAX_COUNT:
            table[d] += 1
        self._increments += 1
        if self._increments >= self.sample_size:
            self.age()

    def frequency(self, digest: bytes) -> int:
        """The estimated recent access count of ``digest`` (never below the true count
        since the last aging, unless saturated)."""
        a, b, c, d = _ROWS(digest)
        width = self._width
        table = self._table
        return min(
            table[a % width],
            table[width + b % width],
            table[2 * width + c % width],
            table[3 * width + d % width],
        )

    def more_frequent(self, candidate: bytes, victim: bytes) -> bool:
        """Whether ``candidate`` is estimated strictly more frequent than ``victim`` (one
        call for W-TinyLFU's admission test, which runs on every eviction)."""
        width = self._width
        table = self._table
        a, b, c, d = _ROWS(candidate)
        mine = min(
            table[a % width],
            table[width + b % width],
            table[2 * width + c % width],
            table[3 * width + d % width],
        )
        if mine == 0:
            return False  # nothing is less frequent than never
        a, b, c, d = _ROWS(victim)
        return mine > min(
            table[a % width],
            table[width + b % width],
            table[2 * width + c % width],
            table[3 * width + d % width],
        )

    def age(self) -> None:
        """Halve every counter (and the sample count): popularity decays."""
        self._table = bytearray(self._table.translate(_HALVE))
        self._increments //= 2

    @property
    def nbytes(self) -> int:
        return len(self._table)
