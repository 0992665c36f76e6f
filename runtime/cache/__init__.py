"""Result caching: canonical tenant-safe keys, copy-safe stored values, an LRU+TTL store."""

from runtime.cache.keys import CacheKey, Uncacheable, make_key, volatile_keys
from runtime.cache.store import MISS, Absent, CacheCounters, CacheEntry, CacheStats, CacheStore
from runtime.cache.values import StoredValue, freeze, thaw

__all__ = [
    "MISS",
    "Absent",
    "CacheCounters",
    "CacheEntry",
    "CacheKey",
    "CacheStats",
    "CacheStore",
    "StoredValue",
    "Uncacheable",
    "freeze",
    "make_key",
    "thaw",
    "volatile_keys",
]
