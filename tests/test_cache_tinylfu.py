"""W-TinyLFU in the cache store: an exact model of its regions, the sketch, and examples.

The model keeps the regions as plain lists and does everything in O(n).  It shares only
the frequency sketch's class with the store (a separate instance, fed the same lookups),
whose own properties are tested below.  The model run uses the finite TTLs of
test_cache_store.py under a virtual clock: an expired entry still sitting in a region
counts towards that region's size (so it shapes window overflow, admission and
demotion) until a lookup, a re-put, an invalidation or a sweep reclaims it; which expired
entries a put reclaims is the store's choice, and the model follows it (see ``Model``).
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import invariant
from test_cache_store import Model, StoreMachine, key

from runtime.cache import MISS, CacheStore, make_key
from runtime.cache.sketch import MAX_COUNT, FrequencySketch
from runtime.cache.store import Policy
from runtime.cache.tinylfu import PROTECTED_SHARE, WINDOW_SHARE

# -- the model -----------------------------------------------------------------------------


class TinyLfuModel(Model):
    """Window / probation / protected as lists, oldest first; Caffeine's rules, spelled out."""

    def __init__(self, max_entries: int, max_bytes: int | None) -> None:
        super().__init__(max_entries, max_bytes)
        self.window_max = max(1, int(max_entries * WINDOW_SHARE))
        self.main_max = max_entries - self.window_max
        self.protected_max = int(self.main_max * PROTECTED_SHARE)
        self.regions: dict[str, list[bytes]] = {"window": [], "probation": [], "protected": []}
        self.sketch = FrequencySketch(min(max_entries, 1024))

    def order(self) -> list[bytes]:
        return [*self.regions["window"], *self.regions["probation"], *self.regions["protected"]]

    def remove(self, digest: bytes) -> tuple[object, ...]:  # type: ignore[override]
        self.regions[self.region_of(digest) or ""].remove(digest)
        return self.entries.pop(digest)

    def lookup(self, digest: bytes) -> None:
        self.sketch.increment(digest)

    def region_of(self, digest: bytes) -> str | None:
        for name, members in self.regions.items():
            if digest in members:
                return name
        return None

    def touch(self, digest: bytes) -> None:
        region = self.region_of(digest)
        assert region is not None
        self.regions[region].remove(digest)
        if region != "probation":
            self.regions[region].append(digest)
            return
        self.regions["protected"].append(digest)
        if len(self.regions["protected"]) > self.protected_max:
            self.regions["probation"].append(self.regions["protected"].pop(0))

    def place(self, digest: bytes, region: str | None) -> None:
        self.regions[region or "window"].append(digest)
        if len(self.regions["window"]) > self.window_max:
            moved = self.regions["window"].pop(0)
            self.regions["probation"].append(moved)
            self.count(self.entries[moved][0], "admitted")  # type: ignore[arg-type]

    def evict_one(self) -> None:
        window = self.regions["window"]
        main = self.regions["probation"] or self.regions["protected"]
        if window and main:
            candidate, victim = window[0], main[0]
            if self.sketch.frequency(candidate) > self.sketch.frequency(victim):
                self._evict(victim)
                window.remove(candidate)
                self.regions["probation"].append(candidate)
                self.count(self.entries[candidate][0], "admitted")  # type: ignore[arg-type]
                return
            self.count(self.entries[candidate][0], "rejected_by_frequency")  # type: ignore[arg-type]
            self._evict(candidate)
            return
        self._evict((window or main)[0])

    def _evict(self, digest: bytes) -> None:
        victim_key, *_ = self.remove(digest)
        self.count(victim_key, "evictions")  # type: ignore[arg-type]


class TinyLfuStoreMachine(StoreMachine):
    POLICY: Policy = "tinylfu"

    def make_model(self, max_entries: int, max_bytes: int | None) -> Model:
        return TinyLfuModel(max_entries, max_bytes)

    @invariant()
    def each_entry_is_in_the_models_region(self) -> None:
        regions = self.store._lfu
        model = self.model
        assert regions is not None
        assert isinstance(model, TinyLfuModel)
        assert list(regions.window) == model.regions["window"]
        assert list(regions.probation) == model.regions["probation"]
        assert list(regions.protected) == model.regions["protected"]
        assert len(regions.window) <= regions.window_max
        assert len(regions.protected) <= regions.protected_max
        assert len(regions.probation) + len(regions.protected) <= regions.main_max


TinyLfuStoreMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60)
TestTinyLfuStoreAgainstModel = TinyLfuStoreMachine.TestCase


# -- the sketch ------------------------------------------------------------------------------


@given(st.lists(st.integers(0, 40), max_size=300), st.sampled_from([64, 20_000]))
@settings(max_examples=60)
def test_sketch_never_underestimates_before_aging(accesses: list[int], capacity: int) -> None:
    # 20_000 entries need rows wider than 2**16: the sketch reads 32-bit row hashes then.
    sketch = FrequencySketch(capacity)  # sample capacity * 128: no aging within 300 steps
    digests = [make_key("A", "CI", "get", {"i": i}).digest for i in range(41)]
    for i in accesses:
        sketch.increment(digests[i])
    for i in set(accesses):
        assert sketch.frequency(digests[i]) >= accesses.count(i)


def test_sketch_saturates_and_ages_by_halving() -> None:
    sketch = FrequencySketch(4)  # ages after 512 increments
    hot = key(i=1).digest
    for _ in range(MAX_COUNT + 10):
        sketch.increment(hot)
    assert sketch.frequency(hot) == MAX_COUNT
    sketch.age()
    assert sketch.frequency(hot) == MAX_COUNT // 2


def test_sketch_ages_on_its_own_after_a_sample() -> None:
    sketch = FrequencySketch(1)
    hot = key(i=1).digest
    for _ in range(sketch.sample_size - 1):
        sketch.increment(hot)
    assert sketch.frequency(hot) == sketch.sample_size - 1  # 127: not saturated, not aged
    sketch.increment(hot)  # the sample is full: every counter halves
    assert sketch.frequency(hot) == sketch.sample_size // 2


@pytest.mark.parametrize(
    ("capacity", "width"), [(1, 64), (16, 64), (17, 128), (1000, 4096), (20_000, 131_072)]
)
def test_sketch_rows_are_a_power_of_two_of_at_least_four_counters_an_entry(
    capacity: int, width: int
) -> None:
    sketch = FrequencySketch(capacity)
    assert sketch.width == width
    assert sketch.nbytes == 4 * width


@pytest.mark.parametrize("capacity", [0, -1, 1.5])
def test_sketch_refuses_a_bad_capacity(capacity: object) -> None:
    with pytest.raises(ValueError, match="capacity"):
        FrequencySketch(capacity)  # type: ignore[arg-type]


# -- examples ------------------------------------------------------------------------------


def test_a_frequent_entry_survives_a_scan_that_flushes_lru() -> None:
    hot = [key(i=i) for i in range(5)]
    scan = [make_key("A", "CI", "search", {"scan": i}) for i in range(200)]
    survivors = {}
    for policy in ("tinylfu", "lru"):
        store: CacheStore[int] = CacheStore(max_entries=10, policy=policy)  # type: ignore[arg-type]
        for round_ in range(5):
            for k in hot:
                if store.get(k, now=round_) is MISS:
                    store.put(k, 1, size=1, ttl=100, now=round_)
        for k in scan:  # each asked for once, then never again
            if store.get(k, now=6) is MISS:
                store.put(k, 0, size=1, ttl=100, now=6)
        survivors[policy] = sum(store.peek(k, now=7) for k in hot)
    assert survivors == {"tinylfu": 5, "lru": 0}


def test_admission_counts_are_per_operation() -> None:
    store: CacheStore[int] = CacheStore(max_entries=3)  # window 1, probation/protected 2
    hot, cold = make_key("A", "CI", "get", {"hot": 1}), key(tool="METRIC", op="series")
    for now in range(3):
        for k in (hot, key(i=7), key(i=8)):
            if store.get(k, now=now) is MISS:
                store.put(k, 1, size=1, ttl=100, now=now)
    for i in range(4):  # cold candidates, asked for once: lose to main's victim
        k = make_key("A", "METRIC", "series", {"cold": i})
        store.get(k, now=5)
        store.put(k, 0, size=1, ttl=100, now=5)
    stats = store.stats()
    assert stats.policy == "tinylfu"
    assert stats.by_operation[("CI", "get")].admitted >= 1
    series = stats.by_operation[(cold.tool_type, cold.operation)]
    assert series.rejected_by_frequency == 3  # the fourth is still in the window
    assert series.evictions == 3
    assert store.peek(hot, now=6)


def test_the_sketch_grows_with_the_store_up_to_max_entries() -> None:
    store: CacheStore[int] = CacheStore(max_entries=5000)
    for i in range(3000):
        store.put(make_key("A", "CI", "get", {"i": i}), i, size=1, ttl=100, now=0)
    assert len(store) == 3000
    assert store._lfu is not None
    assert 3000 <= store._lfu.sketch.capacity <= 5000  # grown from 1024, never past the max


def test_policy_is_validated() -> None:
    with pytest.raises(ValueError, match="policy must be one of tinylfu, lru"):
        CacheStore(4, policy="fifo")  # type: ignore[arg-type]
