"""A mergeable relative-error quantile sketch for latency percentiles.

Engineers read percentiles, not averages, and the tracer keeps them over *all* calls, so
it needs a summary whose size does not grow with the number of calls and whose error is
bounded where it matters: in the tail.  Rank-error sketches (KLL, t-digest) are cheap but
can be badly off in *value* at a multimodal tail (prior-art notes: KLL +105% at a bimodal
p99).  A relative-error sketch guarantees ``|estimate - x| <= alpha * x`` for every
quantile, which is what "p99 is 212 ms, give or take 1%" needs.

This is the DDSketch construction (Masson et al., VLDB 2019) in about a hundred lines:
values are counted in logarithmic buckets ``(gamma**(k-1), gamma**k]`` with
``gamma = (1 + alpha) / (1 - alpha)``; a bucket's representative ``2 * gamma**k /
(gamma + 1)`` is within ``alpha`` of every value in it.  Two sketches with the same alpha
merge by adding bucket counts.

Quantile definition: the *lower* quantile, the element of rank ``floor(q * (n - 1))`` in
sorted order (the rank convention of the ``ddsketch`` package).  The estimate is clamped to
the exact ``[min, max]``, which can only move it closer to the true value.

Zero and tiny values: anything ``<= min_value`` (default 1e-9, i.e. a picosecond when the
unit is ms; negative durations cannot come from a monotonic clock but are treated the same)
is counted in a separate zero bucket and reported as ``0.0``.

Bounded size: at most ``max_buckets`` buckets (default 2048).  When a new bucket would
exceed the bound, the *lowest* buckets are collapsed into one (as ``ddsketch``'s
``LogCollapsingLowestDenseDDSketch`` does), so the high quantiles keep their guarantee and
only the lowest ones lose accuracy.  With alpha = 1% the 2048 buckets span a dynamic range
of ``gamma**2048 ~ 6e17`` — a picosecond to a week in ms — so real latencies never collapse;
the bound is there so a pathological stream cannot grow memory.  Collapsing frees 1/8 of
the bound at once, so a stream that keeps opening new buckets pays the O(n log n) collapse
once per ``max_buckets / 8`` new buckets, not on every add.

Why our own rather than the ``ddsketch`` package — measured in one run of
``benchmarks/tracer_bench.py`` (2-core shared VM, Python 3.11.7, ddsketch 3.0.1, alpha = 1%
for both, 200,000 latencies; "lognormal": median 20 ms, sigma 1; "bimodal": 99% around
20 ms and 1% around 500 ms, so p99 sits on the boundary between the modes):

=====================  ==========  ========================  ========================  =======
sketch                 add (CPU)   lognormal p50/p95/p99     bimodal p50/p95/p99       size
=====================  ==========  ========================  ========================  =======
this module            0.26 us     -0.60% / +0.94% / +0.06%  +1.00% / -0.81% / -0.32%  29 KB
``ddsketch.DDSketch``  0.51 us     identical                 identical                 13 KB
=====================  ==========  ========================  ========================  =======

Accuracy is identical (same logarithmic mapping, same rank convention, 393 buckets each),
both within the 1% guarantee.  Ours adds ~1.9x faster (one ``math.log`` and one dict
update, where ``ddsketch`` goes through a mapping object, a store object and a dense-array
range check, all pure Python), and its size is bounded by construction whereas the
default ``DDSketch`` store is unbounded (its collapsing variants add more per-add work).
It needs no third-party package, is typed for ``mypy --strict``, and clamps estimates to
the exact min/max.  The price is memory: a dict bucket costs ~70 bytes against ~8 for
``ddsketch``'s dense float list — about 30 KB per (kind, tool, operation), bounded by
``max_buckets``, which we accept for the cheaper add on the tracer's per-call path.
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
