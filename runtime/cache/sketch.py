"""A count-min frequency sketch with periodic aging: W-TinyLFU's popularity estimate.

Pure and synchronous.  :meth:`FrequencySketch.increment` records one access to a key's
digest; :meth:`FrequencySketch.frequency` estimates how often it was accessed recently.

Invariants:

- Four rows of ``width`` one-byte counters, ``width`` the power of two at or above
  ``COUNTERS_PER_ENTRY * capacity`` (at least 64).  A key maps to one counter per row;
  its estimate is the smallest of the four, so it **never underestimates** the accesses
  recorded since the last aging, except where a counter saturated at :data:`MAX_COUNT`.
- **Aging**: after ``SAMPLE_FACTOR * capacity`` increments every counter is halved (one
  C-level ``translate`` per row), so old popularity fades.
- Row indices are four independent words of the digest (16 bytes of BLAKE2b over the
  tenant and the params) masked to the row width: 16-bit words while a row has at most
  2**16 counters (small ints: the index arithmetic is cheapest), else 32-bit words.  The
  sketch is deterministic (the same lookups give the same estimates in any process).
- Digests must be at least 16 bytes long.

docs/cache.md explains the choice of sizes and of a long memory (TTL bounds staleness).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Final

__all__ = ["COUNTERS_PER_ENTRY", "MAX_COUNT", "SAMPLE_FACTOR", "FrequencySketch"]

MAX_COUNT: Final = 255  # a counter saturates here
SAMPLE_FACTOR: Final = 128  # increments per entry of capacity between two agings
COUNTERS_PER_ENTRY: Final = 4  # per row, rounded up to a power of two (2 lost scan hits)
_MIN_WIDTH: Final = 64
_HALVE: Final = bytes(count >> 1 for count in range(256))
_PLUS_ONE: Final = bytes(min(count + 1, MAX_COUNT) for count in range(256))  # saturating
_Rows = Callable[[bytes], tuple[int, int, int, int]]
# Four row hashes read from the digest in one C call.  16-bit words are single-digit ints,
# whose masking costs a third of a 32-bit word's (which CPython stores in two digits).
_ROWS_16: Final[_Rows] = struct.Struct("<4H").unpack_from
_ROWS_32: Final[_Rows] = struct.Struct("<4I").unpack_from


class FrequencySketch:
    """Estimates recent access counts of digests for a cache of ``capacity`` entries."""

    __slots__ = ("_increments", "_mask", "_rows", "_table", "capacity", "sample_size")

    def __init__(self, capacity: int) -> None:
        if not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"capacity must be a positive int, got {capacity!r}")
        self.capacity: Final = capacity
        width = _MIN_WIDTH
        while width < COUNTERS_PER_ENTRY * capacity:
            width *= 2
        self._mask = width - 1
        self._rows: _Rows = _ROWS_16 if width <= 1 << 16 else _ROWS_32
        self._table = tuple(bytearray(width) for _ in range(4))
        self.sample_size: Final = SAMPLE_FACTOR * capacity
        self._increments = 0

    def increment(self, digest: bytes) -> None:
        """Record one access to ``digest``; ages the sketch when the sample is full."""
        a, b, c, d = self._rows(digest)
        mask = self._mask
        row_a, row_b, row_c, row_d = self._table
        plus_one = _PLUS_ONE
        a &= mask
        row_a[a] = plus_one[row_a[a]]
        b &= mask
        row_b[b] = plus_one[row_b[b]]
        c &= mask
        row_c[c] = plus_one[row_c[c]]
        d &= mask
        row_d[d] = plus_one[row_d[d]]
        self._increments += 1
        if self._increments >= self.sample_size:
            self.age()

    def frequency(self, digest: bytes) -> int:
        """The estimated recent access count of ``digest`` (never below the true count
        since the last aging, unless saturated)."""
        # The smallest of the four counters, compared by hand: builtins.min's argument
        # parsing costs more than the four reads.
        a, b, c, d = self._rows(digest)
        mask = self._mask
        row_a, row_b, row_c, row_d = self._table
        least = row_a[a & mask]
        if least:  # a zero decides at once: never asked for since the last aging
            count = row_b[b & mask]
            if count < least:
                least = count
            count = row_c[c & mask]
            if count < least:
                least = count
            count = row_d[d & mask]
            if count < least:
                least = count
        return least

    def age(self) -> None:
        """Halve every counter (and the sample count): popularity decays."""
        self._table = tuple(bytearray(row.translate(_HALVE)) for row in self._table)
        self._increments //= 2

    @property
    def width(self) -> int:
        """Counters per row."""
        return self._mask + 1

    @property
    def nbytes(self) -> int:
        return 4 * (self._mask + 1)
