"""The hit-ratio curve: the runtime's CacheStore on a Zipf(0.99) trace, next to the optimum."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from typing import Any


def hit_ratio_curve(quick: bool, seed: int = 42) -> dict[str, Any]:
    """Hit ratio of the runtime's store (W-TinyLFU, the default, and LRU) against the
    analytic optimum, per cache size.

    Independent-reference Zipf(0.99) trace.  For such a trace the best any cache can do
    in the long run is to hold the C most popular keys, so the optimum at capacity C is
    their probability mass.  Hits are counted over the second half of the trace only,
    after a warm-up half, so that both figures describe the steady state.
    """
    from runtime.cache.keys import make_key
    from runtime.cache.store import MISS, CacheStore

    keys_total = 100_000
    calls = 400_000 if quick else 2_000_000
    skew = 0.99
    fractions = (0.001, 0.005, 0.01, 0.05, 0.10)
    weights = [1.0 / rank**skew for rank in range(1, keys_total + 1)]
    total = math.fsum(weights)
    cumulative = list(itertools.accumulate(weights))
    rng = random.Random(seed)
    top = cumulative[-1]
    trace = [bisect.bisect_left(cumulative, rng.random() * top) for _ in range(calls)]
    keys = [make_key("bench", "CI", "get", {"ci_id": index}) for index in range(keys_total)]
    warm = calls // 2
    points = []
    for fraction in fractions:
        capacity = max(1, round(keys_total * fraction))
        ratios = {}
        for policy in ("tinylfu", "lru"):
            store: CacheStore[bytes] = CacheStore(capacity, policy=policy)  # type: ignore[arg-type]
            get, put = store.get, store.put
            hits = 0
            for now, index in enumerate(trace):
                key = keys[index]
                if get(key, now) is MISS:
                    put(key, b"v", size=1, ttl=math.inf, now=now)
                elif now >= warm:
                    hits += 1
            ratios[policy] = hits / (calls - warm)
        lru, tinylfu = ratios["lru"], ratios["tinylfu"]
        optimum = math.fsum(weights[:capacity]) / total
        points.append(
            {
                "fraction": fraction,
                "capacity": capacity,
                "hit_ratio_lru": round(lru, 4),
                "hit_ratio_tinylfu": round(tinylfu, 4),
                "hit_ratio_opt": round(optimum, 4),
                "lru_vs_opt": round(lru / optimum, 4),
                "tinylfu_vs_opt": round(tinylfu / optimum, 4),
            }
        )
    return {
        "keys": keys_total,
        "calls": calls,
        "warm_up_calls": warm,
        "skew": skew,
        "seed": seed,
        "points": points,
    }


# -- machine ---------------------------------------------------------------------------------
