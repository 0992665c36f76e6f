"""The cache store's pure core: a stateful test against a plain model, plus examples."""

from __future__ import annotations

import gc
import math
import weakref
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from runtime.cache import MISS, CacheCounters, CacheKey, CacheStore, freeze, make_key, thaw
from runtime.cache.store import POLICIES, Policy

TENANTS = ("A", "B")
TOOLS = ("CI", "METRIC")
OPERATIONS = ("search", "get")
KEYS = [
    make_key(tenant, tool, op, {"i": i})
    for tenant in TENANTS
    for tool in TOOLS
    for op in OPERATIONS
    for i in range(2)
]
TTLS = (1.0, 2.0, 5.0, math.inf)


def key(tenant: str = "A", tool: str = "CI", op: str = "search", i: int = 0) -> CacheKey:
    return make_key(tenant, tool, op, {"i": i})


# -- the model ---------------------------------------------------------------------------


class Model:
    """The obvious implementation: a dict, a recency list, explicit expiry, O(n) everything.

    Which expired entries a put or a sweep reclaims (and when) is the store's choice: the
    machine tells the model which ones the store reclaimed (``reclaim``), and the model
    checks that each was expired and that no live entry is evicted while an expired one
    is left.  Everything else -- placement, admission, eviction, counts -- the model
    decides itself, so the whole stored state (expired entries included) is compared.
    """

    def __init__(self, max_entries: int, max_bytes: int | None) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.entries: dict[bytes, tuple[CacheKey, object, int, float, float]] = {}
        self.recency: list[bytes] = []  # least recently used first
        self.counters: dict[tuple[str, str], dict[str, int]] = {}

    def count(self, k: CacheKey, name: str, n: int = 1) -> None:
        group = self.counters.setdefault((k.tool_type, k.operation), {})
        group[name] = group.get(name, 0) + n

    def remove(self, digest: bytes) -> tuple[CacheKey, object, int, float, float]:
        self.recency.remove(digest)
        return self.entries.pop(digest)

    # -- the policy's hooks (LRU here; W-TinyLFU in test_cache_tinylfu.py) --

    def order(self) -> list[bytes]:
        """Every stored digest in policy order (what live_entries reports)."""
        return list(self.recency)

    def lookup(self, digest: bytes) -> None:
        """Every get, hit or miss (W-TinyLFU counts it)."""

    def touch(self, digest: bytes) -> None:
        self.recency.remove(digest)
        self.recency.append(digest)

    def region_of(self, digest: bytes) -> str | None:
        return None

    def place(self, digest: bytes, region: str | None) -> None:
        self.recency.append(digest)

    def evict_one(self) -> None:
        victim_key, *_ = self.remove(self.recency[0])
        self.count(victim_key, "evictions")

    def bytes_used(self) -> int:
        return sum(size for _, _, size, _, _ in self.entries.values())

    def live(self, now: float) -> list[tuple[CacheKey, object, int, float]]:
        result = []
        for digest in self.order():
            k, value, size, expires, _ = self.entries[digest]
            if now < expires:
                result.append((k, value, size, expires))
        return result

    def expire_all(self, now: float) -> None:
        self.reclaim([d for d in self.order() if now >= self.entries[d][3]], now)

    def reclaim(self, digests: list[bytes], now: float) -> None:
        """Remove entries the store reclaimed as expired; each must be."""
        for digest in digests:
            k, _, _, expires, _ = self.remove(digest)
            assert now >= expires, f"a live entry was reclaimed as expired: {k}"
            self.count(k, "expirations")

    def get(self, k: CacheKey, now: float) -> object:
        self.lookup(k.digest)
        found = self.entries.get(k.digest)
        if found is None:
            self.count(k, "misses")
            return MISS
        if now >= found[3]:
            self.remove(k.digest)
            self.count(k, "expirations")
            self.count(k, "misses")
            return MISS
        self.touch(k.digest)
        self.count(k, "hits")
        return found[1]

    def put(
        self,
        k: CacheKey,
        value: object,
        size: int,
        ttl: float,
        now: float,
        reclaimed: list[bytes],
    ) -> bool:
        """A put whose in-passing and for-room reclaims of expired entries were
        ``reclaimed`` (all made before the new entry is placed)."""
        region = self.region_of(k.digest)
        if k.digest in self.entries:
            _, _, _, expires, _ = self.remove(k.digest)
            if now >= expires:
                self.count(k, "expirations")
        if self.max_bytes is not None and size > self.max_bytes:
            self.count(k, "rejected_oversize")
            return False

        def full() -> bool:
            return len(self.entries) >= self.max_entries or (
                self.max_bytes is not None and self.bytes_used() + size > self.max_bytes
            )

        self.reclaim(reclaimed, now)
        while full():
            assert not self.expired_count(now), "a live entry evicted while one had expired"
            self.evict_one()
        self.entries[k.digest] = (k, value, size, now + ttl, ttl)
        self.place(k.digest, region)
        self.count(k, "fills")
        return True

    def invalidate_where(self, doomed: Any, now: float) -> int:
        removed = 0
        for digest in [d for d in self.order() if doomed(self.entries[d][0])]:
            k, _, _, expires, _ = self.remove(digest)
            if now >= expires:
                self.count(k, "expirations")
            else:
                self.count(k, "invalidations")
                removed += 1
        return removed

    def expired_count(self, now: float) -> int:
        return sum(1 for *_, expires, _ in self.entries.values() if now >= expires)


def nonzero(
    counters: dict[tuple[str, str], CacheCounters],
) -> dict[tuple[str, str], dict[str, int]]:
    result = {}
    for group, snapshot in counters.items():
        fields = {
            name: getattr(snapshot, name)
            for name in (
                "hits",
                "misses",
                "fills",
                "evictions",
                "invalidations",
                "expirations",
                "bypasses",
                "coalesced",
                "rejected_oversize",
                "admitted",
                "rejected_by_frequency",
            )
            if getattr(snapshot, name)
        }
        if fields:
            result[group] = fields
    return result


def model_nonzero(model: Model) -> dict[tuple[str, str], dict[str, int]]:
    result = {}
    for group, fields in model.counters.items():
        kept = {name: n for name, n in fields.items() if n}
        if kept:
            result[group] = kept
    return result


class StoreMachine(RuleBasedStateMachine):
    """Random get / put / time / invalidate / clear sequences: the store agrees with Model.

    Subclasses run the same rules on another policy (``POLICY``, ``make_model``)."""

    POLICY: Policy = "lru"

    def make_model(self, max_entries: int, max_bytes: int | None) -> Model:
        return Model(max_entries, max_bytes)

    def ttl(self, drawn: float) -> float:
        return drawn

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.next_value = 0

    @initialize(
        max_entries=st.integers(1, 6),
        max_bytes=st.none() | st.integers(1, 60),
        sweep_batch=st.integers(0, 3),
    )
    def setup(self, max_entries: int, max_bytes: int | None, sweep_batch: int) -> None:
        self.store: CacheStore[object] = CacheStore(
            max_entries, max_bytes, sweep_batch=sweep_batch, policy=self.POLICY
        )
        self.model = self.make_model(max_entries, max_bytes)

    @rule(k=st.sampled_from(KEYS))
    def get(self, k: CacheKey) -> None:
        assert self.store.get(k, self.now) == self.model.get(k, self.now)

    @precondition(lambda self: self.model.entries)
    @rule(data=st.data())
    def get_stored(self, data: st.DataObject) -> None:
        """Look up a stored key (live or expired): random keys alone rarely hit."""
        digest = data.draw(st.sampled_from(sorted(self.model.entries)))
        k = self.model.entries[digest][0]
        assert self.store.get(k, self.now) == self.model.get(k, self.now)

    def stored_digests(self) -> set[bytes]:
        """Every entry the store holds, expired or not."""
        return {entry.key.digest for entry in self.store.live_entries(-math.inf)}

    def reclaimed_by_store(self, exclude: bytes | None = None) -> list[bytes]:
        """Expired entries the model holds and the store no longer does, in model order.

        A live entry gone from the store is not listed: the model decides evictions."""
        stored = self.stored_digests()
        entries = self.model.entries
        return [
            digest
            for digest in self.model.order()
            if digest not in stored and digest != exclude and self.now >= entries[digest][3]
        ]

    def _put(self, k: CacheKey, size: int, ttl: float) -> None:
        self.next_value += 1
        value = ("v", self.next_value)
        ttl = self.ttl(ttl)
        stored = self.store.put(k, value, size=size, ttl=ttl, now=self.now)
        reclaimed = self.reclaimed_by_store(exclude=k.digest)
        assert stored == self.model.put(k, value, size, ttl, self.now, reclaimed)

    @rule(k=st.sampled_from(KEYS), size=st.integers(0, 30), ttl=st.sampled_from(TTLS))
    def put(self, k: CacheKey, size: int, ttl: float) -> None:
        self._put(k, size, ttl)

    # Rules are drawn uniformly; a second put rule (small values) makes fills -- and so
    # hits, evictions and expirations -- common even in short runs.
    @rule(k=st.sampled_from(KEYS), size=st.integers(0, 8), ttl=st.sampled_from(TTLS))
    def put_small(self, k: CacheKey, size: int, ttl: float) -> None:
        self._put(k, size, ttl)

    @rule(k=st.sampled_from(KEYS))
    def get_live(self, k: CacheKey) -> None:
        """The hit path: a live entry is a hit like get's; anything else changes nothing."""
        live = {entry[0].digest for entry in self.model.live(self.now)}
        found = self.store.get_live(k.digest, self.now)
        if k.digest in live:
            assert found == self.model.get(k, self.now)
        else:
            assert found is MISS

    @rule(k=st.sampled_from(KEYS))
    def peek(self, k: CacheKey) -> None:
        live = {entry[0].digest for entry in self.model.live(self.now)}
        assert self.store.peek(k, self.now) == (k.digest in live)

    @rule(dt=st.sampled_from([0.5, 1.0, 2.0, 3.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(k=st.sampled_from(KEYS))
    def invalidate_key(self, k: CacheKey) -> None:
        removed = self.model.invalidate_where(lambda m: m.digest == k.digest, self.now)
        assert self.store.invalidate(k, self.now) == bool(removed)

    @rule(tool=st.sampled_from(TOOLS), op=st.none() | st.sampled_from(OPERATIONS))
    def invalidate_tool(self, tool: str, op: str | None) -> None:
        removed = self.model.invalidate_where(
            lambda m: m.tool_type == tool and (op is None or m.operation == op), self.now
        )
        assert self.store.invalidate_tool(tool, self.now, operation=op) == removed

    @rule(tenant=st.sampled_from(TENANTS))
    def invalidate_tenant(self, tenant: str) -> None:
        removed = self.model.invalidate_where(lambda m: m.tenant == tenant, self.now)
        assert self.store.invalidate_tenant(tenant, self.now) == removed

    @precondition(lambda self: self.next_value % 7 == 0)  # now and then, not every other step
    @rule()
    def clear(self) -> None:
        removed = self.model.invalidate_where(lambda m: True, self.now)
        assert self.store.clear(self.now) == removed
        assert len(self.store) == 0
        assert self.store.bytes_used == 0

    @rule(limit=st.none() | st.integers(1, 3))
    def sweep(self, limit: int | None) -> None:
        expired_before = len(self.store) - len(self.store.live_entries(self.now))
        reclaimed = self.store.sweep(self.now, limit)
        assert reclaimed == (expired_before if limit is None else min(limit, expired_before))
        gone = self.reclaimed_by_store()
        assert len(gone) == reclaimed
        self.model.reclaim(gone, self.now)
        if limit is None:
            assert self.model.expired_count(self.now) == 0
            assert len(self.store) == len(self.model.entries)
            assert self.store.bytes_used == self.model.bytes_used()
            total = self.store.stats().total
            model_expirations = sum(g.get("expirations", 0) for g in self.model.counters.values())
            assert total.expirations == model_expirations

    @rule(k=st.sampled_from(KEYS), n=st.integers(1, 3), coalesced=st.booleans())
    def record(self, k: CacheKey, n: int, coalesced: bool) -> None:
        if coalesced:
            self.store.record_coalesced(k.tool_type, k.operation, n)
            self.model.count(k, "coalesced", n)
        else:
            self.store.record_bypass(k.tool_type, k.operation, n)
            self.model.count(k, "bypasses", n)

    @invariant()
    def live_contents_and_lru_order_agree(self) -> None:
        ours = [(e.key, e.value, e.size, e.expires) for e in self.store.live_entries(self.now)]
        assert ours == self.model.live(self.now)

    @invariant()
    def stored_entries_and_order_agree_expired_ones_included(self) -> None:
        ours = [(e.key.digest, e.ttl) for e in self.store.live_entries(-math.inf)]
        assert ours == [(digest, self.model.entries[digest][4]) for digest in self.model.order()]
        assert len(self.store) == len(self.model.entries)
        assert self.store.bytes_used == self.model.bytes_used()

    @invariant()
    def capacity_is_respected(self) -> None:
        assert len(self.store) <= self.store.max_entries
        if self.store.max_bytes is not None:
            assert self.store.bytes_used <= self.store.max_bytes
        assert self.store.bytes_used == sum(
            e.size
            for e in self.store.live_entries(-math.inf)  # every stored entry
        )

    @invariant()
    def statistics_agree(self) -> None:
        stats = self.store.stats()
        assert nonzero(dict(stats.by_operation)) == model_nonzero(self.model)
        # An expired entry is counted when it leaves the store, whichever path removes it.
        model_expirations = sum(g.get("expirations", 0) for g in self.model.counters.values())
        assert stats.total.expirations == model_expirations
        assert stats.entries == len(self.store)


StoreMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=60)
TestStoreAgainstModel = StoreMachine.TestCase


# -- examples ----------------------------------------------------------------------------


def test_eviction_is_least_recently_used_not_first_created() -> None:
    store: CacheStore[str] = CacheStore(max_entries=2, policy="lru")
    a, b, c = key(i=0), key(i=1), key(i=2)
    store.put(a, "a", size=1, ttl=60, now=0)
    store.put(b, "b", size=1, ttl=60, now=1)
    assert store.get(a, now=2) == "a"  # a is now the most recently used
    store.put(c, "c", size=1, ttl=60, now=3)
    # FIFO-by-creation would have evicted a (created first); LRU evicts b.
    assert store.peek(a, now=3)
    assert not store.peek(b, now=3)
    assert store.peek(c, now=3)
    assert store.stats().total.evictions == 1


@pytest.mark.parametrize("policy", POLICIES)
def test_expired_entry_is_reclaimed_before_a_live_one_is_evicted(policy: Policy) -> None:
    store: CacheStore[str] = CacheStore(max_entries=2, sweep_batch=0, policy=policy)
    short, long_, new = key(i=0), key(i=1), key(i=2)
    store.put(short, "short", size=1, ttl=1, now=0)
    store.put(long_, "long", size=1, ttl=100, now=0)
    assert store.get(long_, now=0.5) == "long"  # short is now the LRU one, but...
    store.put(new, "new", size=1, ttl=100, now=5)  # ...it has expired by now
    assert sorted(e.value for e in store.live_entries(now=5)) == ["long", "new"]
    stats = store.stats().total
    assert (stats.evictions, stats.expirations) == (0, 1)


@pytest.mark.parametrize("policy", POLICIES)
def test_expired_entries_do_not_hold_byte_capacity(policy: Policy) -> None:
    store: CacheStore[str] = CacheStore(max_entries=100, max_bytes=10, sweep_batch=0, policy=policy)
    store.put(key(i=0), "x", size=6, ttl=1, now=0)
    store.put(key(i=1), "live", size=3, ttl=100, now=0)
    store.put(key(i=2), "y", size=6, ttl=100, now=2)
    assert store.peek(key(i=1), now=2)
    assert store.peek(key(i=2), now=2)
    assert store.stats().total.evictions == 0
    assert store.bytes_used == 9


@pytest.mark.parametrize("policy", POLICIES)
def test_reput_of_an_existing_key_never_evicts_another_entry(policy: Policy) -> None:
    store: CacheStore[str] = CacheStore(max_entries=2, max_bytes=10, policy=policy)
    a, b = key(i=0), key(i=1)
    store.put(a, "a1", size=5, ttl=60, now=0)
    store.put(b, "b1", size=5, ttl=60, now=0)
    store.put(a, "a2", size=5, ttl=60, now=1)  # full in count and in bytes
    assert store.get(a, now=1) == "a2"
    assert store.get(b, now=1) == "b1"
    assert len(store) == 2
    assert store.stats().total.evictions == 0


def test_reput_refreshes_value_ttl_and_recency() -> None:
    store: CacheStore[str] = CacheStore(max_entries=2, policy="lru")
    a, b, c = key(i=0), key(i=1), key(i=2)
    store.put(a, "a1", size=1, ttl=2, now=0)
    store.put(b, "b", size=1, ttl=60, now=0)
    store.put(a, "a2", size=1, ttl=10, now=1)  # a becomes most recent, expires at 11
    store.put(c, "c", size=1, ttl=60, now=3)  # evicts b, the least recently used
    assert store.get(a, now=5) == "a2"
    assert store.get(b, now=5) is MISS
    assert store.get(a, now=11) is MISS


@pytest.mark.parametrize("empty", [[], {}, "", 0, None, ()])
@pytest.mark.parametrize("policy", POLICIES)
def test_empty_results_are_stored_and_hit(empty: object, policy: Policy) -> None:
    store: CacheStore[Any] = CacheStore(max_entries=4, policy=policy)
    k = key()
    stored = freeze(empty)
    assert store.put(k, stored, size=len(stored), ttl=60, now=0)
    found = store.get(k, now=1)
    assert found is not MISS
    assert thaw(found) == empty
    assert store.stats().total.hits == 1


@pytest.mark.parametrize("policy", POLICIES)
def test_a_value_larger_than_max_bytes_is_not_stored_and_supersedes_the_old_one(
    policy: Policy,
) -> None:
    store: CacheStore[str] = CacheStore(max_entries=4, max_bytes=10, policy=policy)
    k, other = key(i=0), key(i=1)
    store.put(other, "other", size=4, ttl=60, now=0)
    store.put(k, "small", size=4, ttl=60, now=0)
    assert not store.put(k, "huge", size=11, ttl=60, now=1)
    assert store.get(k, now=1) is MISS
    assert store.get(other, now=1) == "other"
    assert store.stats().total.rejected_oversize == 1


@pytest.mark.parametrize("policy", POLICIES)
def test_a_growing_replacement_evicts_only_as_much_as_max_bytes_needs(policy: Policy) -> None:
    store: CacheStore[str] = CacheStore(max_entries=4, max_bytes=10, policy=policy)
    a, b, c = key(i=0), key(i=1), key(i=2)
    store.put(a, "a", size=3, ttl=60, now=0)
    store.put(b, "b", size=3, ttl=60, now=0)
    store.put(c, "c", size=3, ttl=60, now=0)
    store.put(c, "C", size=6, ttl=60, now=1)  # needs 2 more bytes than free: evict a only
    assert sorted(e.value for e in store.live_entries(now=1)) == ["C", "b"]
    assert store.bytes_used == 9


@pytest.mark.parametrize("ttl", [0, -1, math.nan])
@pytest.mark.parametrize("policy", POLICIES)
def test_put_refuses_a_non_positive_ttl(ttl: float, policy: Policy) -> None:
    store: CacheStore[str] = CacheStore(max_entries=4, policy=policy)
    with pytest.raises(ValueError, match="ttl"):
        store.put(key(), "v", size=1, ttl=ttl, now=0)


@pytest.mark.parametrize(
    ("max_entries", "max_bytes"), [(0, None), (-1, None), (True, None), (1, 0), (1, 1.5)]
)
@pytest.mark.parametrize("policy", POLICIES)
def test_limits_are_validated(max_entries: Any, max_bytes: Any, policy: Policy) -> None:
    with pytest.raises(ValueError, match="max_"):
        CacheStore(max_entries, max_bytes, policy=policy)


@pytest.mark.parametrize("policy", POLICIES)
def test_ttl_boundary_is_exclusive(policy: Policy) -> None:
    store: CacheStore[str] = CacheStore(max_entries=4, policy=policy)
    store.put(key(), "v", size=1, ttl=10, now=0)
    assert store.get(key(), now=9.999) == "v"
    assert store.get(key(), now=10) is MISS
    totals = store.stats().total
    assert (totals.hits, totals.misses, totals.expirations) == (1, 1, 1)


@pytest.mark.parametrize("policy", POLICIES)
def test_tenants_are_separate_entries_and_invalidate_separately(policy: Policy) -> None:
    store: CacheStore[str] = CacheStore(max_entries=8, policy=policy)
    params = {"q": "web"}
    ka, kb = make_key("A", "CI", "search", params), make_key("B", "CI", "search", params)
    store.put(ka, "for A", size=1, ttl=60, now=0)
    assert store.get(kb, now=0) is MISS
    store.put(kb, "for B", size=1, ttl=60, now=0)
    assert store.invalidate_tenant("A", now=1) == 1
    assert store.get(ka, now=1) is MISS
    assert store.get(kb, now=1) == "for B"


@pytest.mark.parametrize("policy", POLICIES)
def test_statistics_are_per_operation_and_total_and_immutable(policy: Policy) -> None:
    store: CacheStore[str] = CacheStore(max_entries=8, policy=policy)
    ci, metric = key(tool="CI", op="search"), key(tool="METRIC", op="get")
    store.put(ci, "v", size=1, ttl=60, now=0)
    store.get(ci, now=0)
    store.get(metric, now=0)
    store.record_coalesced("METRIC", "get", 3)
    store.record_bypass("CI", "search")
    snapshot = store.stats()
    assert snapshot.by_operation[("CI", "search")] == CacheCounters(hits=1, fills=1, bypasses=1)
    assert snapshot.by_operation[("METRIC", "get")] == CacheCounters(misses=1, coalesced=3)
    assert snapshot.total == CacheCounters(hits=1, misses=1, fills=1, bypasses=1, coalesced=3)
    assert snapshot.hit_rate == 0.5
    with pytest.raises(TypeError):
        snapshot.by_operation[("X", "y")] = CacheCounters()  # type: ignore[index]
    store.get(ci, now=1)
    assert snapshot.total.hits == 1  # a snapshot does not move
    assert store.stats().total.hits == 2
    assert CacheCounters().hit_rate == 0.0


def test_peek_touches_neither_recency_nor_statistics() -> None:
    store: CacheStore[str] = CacheStore(max_entries=2, policy="lru")
    a, b, c = key(i=0), key(i=1), key(i=2)
    store.put(a, "a", size=1, ttl=60, now=0)
    store.put(b, "b", size=1, ttl=60, now=0)
    assert store.peek(a, now=1)
    assert not store.peek(c, now=1)
    store.put(c, "c", size=1, ttl=60, now=1)  # a is still the LRU entry
    assert not store.peek(a, now=1)
    totals = store.stats().total
    assert (totals.hits, totals.misses) == (0, 0)


@pytest.mark.parametrize("policy", POLICIES)
def test_puts_sweep_a_bounded_number_of_expired_entries_in_passing(policy: Policy) -> None:
    store: CacheStore[str] = CacheStore(max_entries=100, sweep_batch=2, policy=policy)
    for i in range(10):
        store.put(make_key("A", "CI", "search", {"i": i}), "v", size=1, ttl=1, now=0)
    stored = len(store)
    store.put(key(tenant="B"), "fresh", size=1, ttl=60, now=5)
    assert len(store) == stored + 1 - 2  # two reclaimed in passing, no more
    assert store.sweep(now=5) == stored - 2
    assert len(store) == 1


class _Payload:
    pass


@pytest.mark.parametrize("policy", POLICIES)
def test_removed_entries_release_their_values_at_once(policy: Policy) -> None:
    store: CacheStore[_Payload] = CacheStore(max_entries=1, sweep_batch=0, policy=policy)
    payload = _Payload()
    ref = weakref.ref(payload)
    store.put(key(i=0), payload, size=1, ttl=1000, now=0)
    del payload
    store.put(key(i=1), _Payload(), size=1, ttl=1000, now=0)  # evicts the first
    gc.collect()
    assert ref() is None  # not kept alive by the expiry index


@pytest.mark.parametrize("policy", POLICIES)
def test_expiry_index_stays_proportional_to_live_entries(policy: Policy) -> None:
    store: CacheStore[int] = CacheStore(max_entries=10, policy=policy)
    for i in range(5000):
        store.put(make_key("A", "CI", "search", {"i": i}), i, size=1, ttl=1e9, now=i)
    indexed = sum(len(queue) for queue in store._queues.values())
    assert indexed <= 2 * len(store) + 1025


@pytest.mark.parametrize("policy", POLICIES)
def test_time_going_backwards_on_put_is_clamped(policy: Policy) -> None:
    store: CacheStore[str] = CacheStore(max_entries=4, policy=policy)
    store.put(key(i=0), "a", size=1, ttl=10, now=100)
    store.put(key(i=1), "b", size=1, ttl=10, now=50)  # treated as now=100
    assert [e.expires for e in store.live_entries(now=100)] == [110, 110]


@given(st.lists(st.tuples(st.integers(0, 30), st.integers(1, 20)), max_size=60))
@settings(max_examples=60)
def test_lru_order_matches_a_recency_list(ops: list[tuple[int, int]]) -> None:
    store: CacheStore[int] = CacheStore(max_entries=8, policy="lru")
    recency: list[int] = []
    for i, action in ops:
        k = make_key("A", "CI", "get", {"i": i})
        if action % 2:
            store.put(k, i, size=1, ttl=60, now=0)
            if i in recency:
                recency.remove(i)
            recency.append(i)
            del recency[:-8]
        else:
            hit = store.get(k, now=0)
            assert (hit is not MISS) == (i in recency)
            if i in recency:
                recency.remove(i)
                recency.append(i)
    assert [e.value for e in store.live_entries(now=0)] == recency
