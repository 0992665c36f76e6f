"""Result caching: canonical tenant-safe keys, copy-safe stored values, an LRU+TTL store."""

from runtime.cache.keys import CacheKey, Uncacheable, make_key, volatile_keys
from runtime.cache.store import MISS, CacheCounters, CacheEntry, CacheStats, CacheStore, Miss
from runtime.cache.values import StoredValue, freeze, thaw

__all__ = [
    "MISS",
    "CacheCounters",
    "CacheEntry",
    "CacheKey",
    "CacheStats",
    "CacheStore",
    "Miss",
    "StoredValue",
    "Uncacheable",
    "freeze",
    "make_key",
    "thaw",
    "volatile_keys",
]
