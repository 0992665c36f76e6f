"""A mergeable relative-error quantile sketch for latency percentiles (DDSketch).

Values are counted in logarithmic buckets ``(gamma**(k-1), gamma**k]`` with
``gamma = (1 + alpha) / (1 - alpha)``; every quantile estimate is within ``alpha`` of the
true value (relative error), and two sketches with the same alpha merge by adding counts.

- Quantiles are *lower* quantiles: the element of rank ``floor(q * (n - 1))``; estimates
  are clamped to the exact ``[min, max]``.
- Values ``<= min_value`` (default 1e-9) are counted in a zero bucket and reported as 0.0.
- At most ``max_buckets`` buckets (default 2048): beyond it the lowest buckets collapse
  into one, so the high quantiles keep their guarantee; a collapse frees 1/8 of the bound.
- Pure and synchronous; memory bounded by ``max_buckets``.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from functools import reduce
from itertools import repeat
from operator import add as plus
from operator import mul

__all__ = ["QuantileSketch"]


class QuantileSketch:
    """Counts of values in logarithmic buckets: add, merge, quantile.

    Not thread-safe and not immutable: it is owned by one aggregate inside the tracer's
    state, which only the tracer actor's task touches.
    """

    __slots__ = (
        "_buckets",
        "_count",
        "_floor_key",
        "_gamma",
        "_inv_log_gamma",
        "_max",
        "_max_buckets",
        "_min",
        "_min_value",
        "_relative_accuracy",
        "_sum",
        "_zero_count",
    )

    def __init__(
        self,
        relative_accuracy: float = 0.01,
        *,
        max_buckets: int = 2048,
        min_value: float = 1e-9,
    ) -> None:
        if not 0.0 < relative_accuracy < 1.0:
            raise ValueError(f"relative_accuracy must be in (0, 1), got {relative_accuracy!r}")
        if max_buckets < 8:
            raise ValueError(f"max_buckets must be at least 8, got {max_buckets!r}")
        if not min_value > 0.0:
            raise ValueError(f"min_value must be positive, got {min_value!r}")
        self._relative_accuracy = relative_accuracy
        self._gamma = (1.0 + relative_accuracy) / (1.0 - relative_accuracy)
        self._inv_log_gamma = 1.0 / math.log(self._gamma)
        self._max_buckets = max_buckets
        self._min_value = min_value
        # A Counter so that add_all counts a whole batch of keys in one C call.
        self._buckets: Counter[int] = Counter()
        # Every key below the floor has been folded into the floor bucket (see _collapse).
        self._floor_key: int | None = None
        self._zero_count = 0
        self._count = 0
        self._sum = 0.0
        self._min = math.inf
        self._max = -math.inf

    # -- reading -------------------------------------------------------------------------

    @property
    def relative_accuracy(self) -> float:
        return self._relative_accuracy

    @property
    def max_buckets(self) -> int:
        return self._max_buckets

    @property
    def count(self) -> int:
        return self._count

    @property
    def sum(self) -> float:
        return self._sum

    @property
    def min(self) -> float | None:
        return self._min if self._count else None

    @property
    def max(self) -> float | None:
        return self._max if self._count else None

    @property
    def bucket_count(self) -> int:
        """Buckets in use, zero bucket included: the sketch's size, bounded by construction."""
        return len(self._buckets) + (1 if self._zero_count else 0)

    def quantile(self, q: float) -> float | None:
        """The lower ``q``-quantile within ``relative_accuracy``; ``None`` when empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Sequence[float]) -> tuple[float | None, ...]:
        """Several quantiles with one pass over the sorted buckets."""
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile must be in [0, 1], got {q!r}")
        if self._count == 0:
            return tuple(None for _ in qs)
        order = sorted(range(len(qs)), key=lambda i: qs[i])
        answers: list[float | None] = [None] * len(qs)
        keys = sorted(self._buckets)
        position = 0
        cumulative = self._zero_count
        for i in order:
            rank = math.floor(qs[i] * (self._count - 1))
            if rank < self._zero_count:
                answers[i] = 0.0
                continue
            # The bucket holding the element of this rank: the first whose running count
            # exceeds the rank.  Ranks are visited in ascending order, so `position` only
            # moves forward.
            while cumulative + self._buckets[keys[position]] <= rank:
                cumulative += self._buckets[keys[position]]
                position += 1
            estimate = 2.0 * self._gamma ** keys[position] / (self._gamma + 1.0)
            answers[i] = min(max(estimate, self._min), self._max)
        return tuple(answers)

    # -- writing -------------------------------------------------------------------------

    def add(self, value: float) -> None:
        """Count one value.  O(1); a new bucket past the bound triggers a collapse."""
        if not value < math.inf:  # NaN fails this comparison too
            raise ValueError(f"cannot add a non-finite value to a sketch: {value!r}")
        self._count += 1
        self._sum += value
        if value < self._min:
            self._min = value
        if value > self._max:
            self._max = value
        if value <= self._min_value:
            self._zero_count += 1
            return
        key = math.ceil(math.log(value) * self._inv_log_gamma)
        floor_key = self._floor_key
        if floor_key is not None and key < floor_key:
            key = floor_key
        buckets = self._buckets
        seen = buckets.get(key)
        if seen is None:
            buckets[key] = 1
            if len(buckets) > self._max_buckets:
                self._collapse()
        else:
            buckets[key] = seen + 1

    def add_all(self, values: Iterable[float]) -> None:
        """Add every value: the same buckets, count, sum, min and max as :meth:`add` one by
        one, in a few C-level passes over the
        batch -- about a quarter of the per-value cost for the tracer's batches.

        All or nothing: a non-finite value raises ``ValueError`` before anything is
        counted.  A batch that opens new buckets past the bound is collapsed once, at
        the end, rather than as each bucket opens.
        """
        batch = values if type(values) is list else list(values)
        if not batch:
            return
        # The sum is NaN or inf when a value is: one C pass screens them all, and only a
        # suspect batch (or a sum that overflowed) is searched value by value.
        # reduce, not sum: Python 3.12's sum() compensates its rounding, and the total
        # must be the one that adding one by one gives, on every version.
        total = reduce(plus, batch, self._sum)
        if not total < math.inf:
            bad = next((v for v in batch if not v < math.inf), None)
            if bad is not None:
                raise ValueError(f"cannot add a non-finite value to a sketch: {bad!r}")
        self._count += len(batch)
        self._sum = total
        low = min(batch)
        high = max(batch)
        if low < self._min:
            self._min = low
        if high > self._max:
            self._max = high
        min_value = self._min_value
        if low <= min_value:
            positive = [v for v in batch if v > min_value]
            self._zero_count += len(batch) - len(positive)
            batch = positive
        keys: Iterable[int] = map(
            math.ceil, map(mul, map(math.log, batch), repeat(self._inv_log_gamma))
        )
        if self._floor_key is not None:
            keys = map(max, keys, repeat(self._floor_key))
        self._buckets.update(keys)
        if len(self._buckets) > self._max_buckets:
            self._collapse()

    def merge(self, other: QuantileSketch) -> None:
        """Add ``other``'s counts into this sketch (same accuracy required)."""
        if other._gamma != self._gamma:
            raise ValueError(
                "cannot merge sketches of different accuracy: "
                f"{self._relative_accuracy!r} and {other._relative_accuracy!r}"
            )
        if other._count == 0:
            return
        floors = [f for f in (self._floor_key, other._floor_key) if f is not None]
        floor_key = max(floors) if floors else None
        merged: Counter[int] = Counter()
        for source in (self._buckets, other._buckets):
            for key, n in source.items():
                if floor_key is not None and key < floor_key:
                    key = floor_key
                merged[key] = merged.get(key, 0) + n
        self._buckets = merged
        self._floor_key = floor_key
        self._zero_count += other._zero_count
        self._count += other._count
        self._sum += other._sum
        self._min = min(self._min, other._min)
        self._max = max(self._max, other._max)
        if len(self._buckets) > self._max_buckets:
            self._collapse()

    def copy(self) -> QuantileSketch:
        clone = QuantileSketch(
            self._relative_accuracy, max_buckets=self._max_buckets, min_value=self._min_value
        )
        clone.merge(self)
        return clone

    def _collapse(self) -> None:
        # Fold the lowest buckets into one so that 1/8 of the bound is free again: the
        # next max_buckets/8 new buckets then cost O(1) each.
        keys = sorted(self._buckets)
        keep = self._max_buckets - max(1, self._max_buckets // 8)
        cut = len(keys) - keep
        floor_key = keys[cut]
        folded = sum(self._buckets.pop(key) for key in keys[:cut])
        self._buckets[floor_key] += folded
        self._floor_key = floor_key
