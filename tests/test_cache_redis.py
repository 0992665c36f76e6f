"""The shared Redis tier: pure parts by hypothesis, the tier against a real redis-server.

Every async test runs on asyncio and on trio, against its own redis-server on a unix
socket (tests/redis_server.py), bounded by ``fail_after``.
"""

from __future__ import annotations

import enum
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import coredis
import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis_server import RedisServer, find_redis_server, redis_server

from runtime.cache import codec
from runtime.cache.keys import CacheKey, make_key
from runtime.cache.redis import (
    Breaker,
    Hit,
    Miss,
    RedisSettings,
    RedisTier,
    data_key,
    generation_keys,
)
from runtime.errors import ConfigError

__all__ = ["redis_server"]  # the fixture, re-exported so pytest finds it here

pytestmark = pytest.mark.anyio

SECRET = "s3cret-s3cret-s3cret"
KEY_BYTES = b"runtime:val:t:CI:search:0000:abcd"
ROOT = Path(__file__).resolve().parent.parent
LIMIT = 10.0  # generous per-test bound; every test finishes in well under a second


def settings(server: RedisServer, **overrides: Any) -> RedisSettings:
    base: dict[str, Any] = {
        "url": server.url,
        "op_timeout_s": 1.0,  # generous: a loaded CI box must not trip the breaker
        "failure_threshold": 2,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "generation_cache_s": 1.0,
    }
    base.update(overrides)
    return RedisSettings(**base)


def key(tenant: str = "acme", tool: str = "CI", op: str = "search", q: Any = 1) -> CacheKey:
    return make_key(tenant, tool, op, {"q": q})


@asynccontextmanager
async def raw_client(server: RedisServer) -> AsyncIterator[coredis.Redis[bytes]]:
    client: coredis.Redis[bytes] = coredis.Redis.from_url(server.url)
    async with client:
        yield client


# -- settings ---------------------------------------------------------------------------


def test_settings_defaults_are_valid() -> None:
    s = RedisSettings(url="redis://127.0.0.1:6379/0")
    assert (s.key_prefix, s.failure_threshold, s.secret) == ("runtime", 3, None)
    signed = RedisSettings(url="unix:///run/redis.sock", secret="x" * 16)
    assert signed.secret == "x" * 16
    assert "x" * 16 not in repr(signed)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("url", "http://localhost"),
        ("url", "redis://"),
        ("url", "unix://"),
        ("key_prefix", ""),
        ("key_prefix", "has space"),
        ("op_timeout_s", 0),
        ("op_timeout_s", float("inf")),
        ("connect_timeout_s", -1.0),
        ("backoff_initial_s", float("nan")),
        ("backoff_max_s", 0.1),  # below backoff_initial_s (0.5)
        ("failure_threshold", 0),
        ("failure_threshold", True),
        ("max_connections", 0),
        ("generation_cache_s", -0.5),
        ("secret", "short"),
    ],
)
def test_settings_reject_bad_values_with_their_path(field: str, value: Any) -> None:
    fields: dict[str, Any] = {"url": "redis://localhost:6379/0", field: value}
    with pytest.raises(ConfigError) as caught:
        RedisSettings(**fields)
    assert caught.value.path == f"cache.redis.{field}"


# -- codec (pure) -----------------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
secrets_ = st.none() | st.binary(min_size=16, max_size=32)


@given(value=json_values, secret=secrets_)
def test_codec_round_trips_plain_json_values(value: Any, secret: bytes | None) -> None:
    stored = codec.encode(value, KEY_BYTES, secret)
    back = codec.decode(stored, KEY_BYTES, secret)
    assert json.dumps(back, sort_keys=True) == json.dumps(value, sort_keys=True)
    assert type(back) is type(value)


class Colour(enum.IntEnum):
    RED = 1


@pytest.mark.parametrize(
    "value",
    [(1, 2), {1: "a"}, {"a": {1, 2}}, float("nan"), [float("inf")], Colour.RED, b"x", object()],
)
def test_codec_refuses_values_json_would_change(value: Any) -> None:
    with pytest.raises(codec.NotJsonValue):
        codec.encode(value, KEY_BYTES, None)


@given(value=json_values, secret=st.binary(min_size=16, max_size=32), data=st.data())
def test_codec_detects_any_tampering_of_a_signed_value(
    value: Any, secret: bytes, data: st.DataObject
) -> None:
    stored = bytearray(codec.encode(value, KEY_BYTES, secret))
    index = data.draw(st.integers(0, len(stored) - 1))
    flip = data.draw(st.integers(1, 255))
    stored[index] ^= flip
    with pytest.raises(codec.DecodeFailure):
        codec.decode(bytes(stored), KEY_BYTES, secret)


@given(value=json_values, secret=st.binary(min_size=16, max_size=32))
def test_codec_signature_binds_the_redis_key(value: Any, secret: bytes) -> None:
    stored = codec.encode(value, KEY_BYTES, secret)
    with pytest.raises(codec.DecodeFailure) as caught:
        codec.decode(stored, KEY_BYTES + b"-other-tenant", secret)
    assert caught.value.kind == "signature"


@given(stored=st.binary(max_size=200), secret=secrets_)
def test_codec_decode_of_arbitrary_bytes_only_raises_decode_failure(
    stored: bytes, secret: bytes | None
) -> None:
    try:
        codec.decode(stored, KEY_BYTES, secret)
    except codec.DecodeFailure as failure:
        kind = failure.kind
    else:
        kind = "accepted"
    assert kind in {"decode", "signature", "accepted"}


def test_codec_unsigned_value_is_a_signature_failure_when_signing_is_on() -> None:
    stored = codec.encode({"a": 1}, KEY_BYTES, None)
    with pytest.raises(codec.DecodeFailure) as caught:
        codec.decode(stored, KEY_BYTES, b"k" * 16)
    assert caught.value.kind == "signature"
    # A reader without a secret accepts signed values (rolling a secret out writers-first).
    signed = codec.encode({"a": 1}, KEY_BYTES, b"k" * 16)
    assert codec.decode(signed, KEY_BYTES, None) == {"a": 1}


# -- breaker (pure) ---------------------------------------------------------------------

events = st.lists(
    st.tuples(st.sampled_from(["admit", "ok", "fail"]), st.floats(0, 1.0)), max_size=60
)


@given(
    threshold=st.integers(1, 5),
    initial=st.floats(0.01, 1.0),
    factor=st.floats(1.0, 20.0),
    script=events,
)
def test_breaker_follows_its_state_machine(
    threshold: int, initial: float, factor: float, script: list[tuple[str, float]]
) -> None:
    breaker = Breaker(threshold, initial, initial * factor, probe_timeout=0.5)
    now = 0.0
    consecutive = 0
    for event, elapsed in script:
        now += elapsed
        before = breaker
        if event == "admit":
            admitted, breaker = breaker.admit(now)
            if before.state == "closed":
                assert admitted
                assert breaker == before
            elif before.state == "open":
                assert admitted == (now >= before.retry_at)
                assert breaker.state == ("half_open" if admitted else "open")
            else:
                assert admitted == (now >= before.probe_deadline)
        elif event == "ok":
            breaker = breaker.succeeded()
            consecutive = 0
            assert breaker.state == "closed"
            assert breaker.backoff == initial
        else:
            breaker = breaker.failed(now)
            consecutive += 1
            if before.state == "closed":
                assert (breaker.state == "open") == (consecutive >= threshold)
            if before.state == "half_open":
                assert breaker.state == "open"
                assert breaker.backoff == min(before.backoff * 2, before.backoff_max)
                assert breaker.retry_at == now + breaker.backoff
        assert initial <= breaker.backoff <= initial * factor


def test_breaker_never_admits_while_open_before_backoff() -> None:
    breaker = Breaker(2, 1.0, 8.0, probe_timeout=0.1).failed(0.0).failed(0.0)
    assert breaker.state == "open"
    assert breaker.admit(0.999)[0] is False
    admitted, probing = breaker.admit(1.0)
    assert admitted
    assert probing.state == "half_open"
    assert probing.admit(1.05)[0] is False  # one probe at a time
    assert probing.admit(1.1)[0] is True  # a lost probe is replaced
    reopened = probing.failed(1.1)
    assert (reopened.state, reopened.backoff, reopened.retry_at) == ("open", 2.0, 3.1)


# -- key layout (pure) ------------------------------------------------------------------


names = st.tuples(st.text(max_size=6), st.text(max_size=6), st.text(max_size=6))


@given(a=names, b=names)
def test_namespaces_never_collide(a: tuple[str, str, str], b: tuple[str, str, str]) -> None:
    ka, kb = CacheKey(*a, digest=b"\x01" * 16), CacheKey(*b, digest=b"\x01" * 16)
    gens = ("g",) * 4
    assert (data_key("p", ka, gens) == data_key("p", kb, gens)) == (a == b)
    ga, gb = generation_keys("p", ka), generation_keys("p", kb)
    assert ga[0] == gb[0]
    assert (ga[1] == gb[1]) == (a[0] == b[0])
    assert (ga[2] == gb[2]) == (a[1] == b[1])
    assert (ga[3] == gb[3]) == (a[1:] == b[1:])


# -- the tier against a real redis-server -----------------------------------------------


async def test_round_trip_honours_ttl(redis_server: RedisServer) -> None:
    with anyio.fail_after(LIMIT):
        async with RedisTier.open(settings(redis_server)) as tier, raw_client(redis_server) as raw:
            k = key()
            assert await tier.get(k) == Miss("absent")
            assert await tier.set(k, {"records": [{"id": 1}], "total": 1}, ttl_s=30)
            first, second = await tier.get(k), await tier.get(k)
            assert first == Hit({"records": [{"id": 1}], "total": 1})
            assert isinstance(first, Hit)
            assert isinstance(second, Hit)
            assert first.value is not second.value  # each hit is a fresh object
            location = await tier.redis_key_for(k)
            assert location is not None
            assert 29_000 < await raw.pttl(location) <= 30_000

            k2 = key(q=2)
            assert await tier.set(k2, "short", ttl_s=0.05)
            assert 0 < await raw.pttl(await tier.redis_key_for(k2) or b"") <= 50
            await anyio.sleep(0.12)
            assert await tier.get(k2) == Miss("absent")  # expired in Redis

            assert not await tier.set(key(q=3), "never", ttl_s=0)
            assert await tier.get(key(q=3)) == Miss("absent")
            stats = tier.stats()
            assert (stats.hits, stats.misses, stats.sets) == (2, 3, 2)
            assert stats.errors == stats.timeouts == 0


async def test_unencodable_values_are_not_written(redis_server: RedisServer) -> None:
    with anyio.fail_after(LIMIT):
        async with RedisTier.open(settings(redis_server)) as tier:
            assert not await tier.set(key(), {"pair": (1, 2)}, ttl_s=30)
            assert not await tier.set(key(q=2), {1: "int key"}, ttl_s=30)
            assert await tier.get(key()) == Miss("absent")
            assert tier.stats().unencodable == 2
            assert tier.stats().sets == 0


async def test_invalidation_by_key_tool_operation_tenant_and_all(
    redis_server: RedisServer,
) -> None:
    cases = {
        "a_search": key("a", "CI", "search"),
        "a_get": key("a", "CI", "get"),
        "a_metric": key("a", "METRIC", "series"),
        "b_search": key("b", "CI", "search"),
        "b_metric": key("b", "METRIC", "series"),
    }

    async def present(tier: RedisTier) -> set[str]:
        return {name for name, k in cases.items() if isinstance(await tier.get(k), Hit)}

    async def fill(tier: RedisTier) -> None:
        for name, k in cases.items():
            assert await tier.set(k, name, ttl_s=30)
        assert await present(tier) == set(cases)

    with anyio.fail_after(LIMIT):
        async with RedisTier.open(settings(redis_server)) as tier:
            await fill(tier)
            assert await tier.invalidate_key(cases["a_search"])
            assert await present(tier) == set(cases) - {"a_search"}

            await fill(tier)
            assert await tier.invalidate_tool("CI", "search")
            assert await present(tier) == {"a_get", "a_metric", "b_metric"}

            await fill(tier)
            assert await tier.invalidate_tool("CI")
            assert await present(tier) == {"a_metric", "b_metric"}

            await fill(tier)
            assert await tier.invalidate_tenant("a")
            assert await present(tier) == {"b_search", "b_metric"}

            await fill(tier)
            assert await tier.clear()
            assert await present(tier) == set()
            assert tier.stats().invalidations == 5


async def test_tenants_never_cross_hit(redis_server: RedisServer) -> None:
    with anyio.fail_after(LIMIT):
        async with RedisTier.open(settings(redis_server)) as tier:
            # The same digest under two tenants (as if the hash collided): still apart.
            mine = CacheKey("alpha", "CI", "search", b"\x07" * 16)
            theirs = CacheKey("beta", "CI", "search", b"\x07" * 16)
            assert await tier.set(mine, "alpha's secret", ttl_s=30)
            assert await tier.get(theirs) == Miss("absent")
            assert await tier.set(theirs, "beta's", ttl_s=30)
            assert await tier.get(mine) == Hit("alpha's secret")
            assert await tier.redis_key_for(mine) != await tier.redis_key_for(theirs)
            assert b":alpha:" in (await tier.redis_key_for(mine) or b"")
            await tier.invalidate_tenant("beta")
            assert await tier.get(mine) == Hit("alpha's secret")


async def test_tampered_and_foreign_values_are_counted_misses(
    redis_server: RedisServer,
) -> None:
    with anyio.fail_after(LIMIT):
        async with (
            RedisTier.open(settings(redis_server, secret=SECRET)) as tier,
            raw_client(redis_server) as raw,
        ):
            k, other = key(q="victim"), key(tenant="other", q="victim")
            assert await tier.set(other, {"owner": "other"}, ttl_s=30)
            location = await tier.redis_key_for(k)
            other_location = await tier.redis_key_for(other)
            assert location is not None
            assert other_location is not None
            signed = codec.encode({"x": 1}, location, SECRET.encode())
            forged = bytearray(signed)
            forged[-2] ^= 1
            planted = [
                (b"\x80\x04garbage-pickle\x94.", "decode"),
                (b"", "decode"),
                (b"rtc2:u:{}", "decode"),  # an envelope version we do not know
                (codec.encode({"x": 1}, location, None), "signature"),  # unsigned
                (codec.encode({"x": 1}, location, b"wrong-secret-1234"), "signature"),
                (bytes(forged), "signature"),
                (await raw.get(other_location) or b"", "signature"),  # replayed from a tenant
                (signed[: len(signed) - 1] + b"\xff", "signature"),
            ]
            for value, kind in planted:
                await raw.set(location, value)
                assert await tier.get(k) == Miss(kind)
            await raw.set(location, signed)
            assert await tier.get(k) == Hit({"x": 1})  # the genuine article still works
            stats = tier.stats()
            assert stats.decode_failures == 3
            assert stats.signature_failures == 5
            assert stats.errors == 0
            assert stats.circuit == "closed"


async def test_killed_redis_costs_nothing_and_use_resumes_after_restart(
    redis_server: RedisServer,
) -> None:
    patient = settings(redis_server, backoff_initial_s=0.3, backoff_max_s=0.6)
    with anyio.fail_after(LIMIT):
        async with RedisTier.open(patient) as tier:
            k = key()
            assert await tier.set(k, "warm", ttl_s=30)
            redis_server.kill()

            for _ in range(50):
                assert isinstance(await tier.get(k), Miss)
                assert not await tier.set(k, "lost", ttl_s=30)
            stats = tier.stats()
            assert stats.circuit == "open"
            assert stats.errors == 2  # failure_threshold, then the circuit refuses at once
            assert stats.short_circuits == 98  # answered without touching the network
            assert await tier.get(k) == Miss("circuit_open")

            redis_server.start()  # a fresh, empty server on the same socket
            while tier.stats().circuit != "closed":
                await tier.get(k)
                await anyio.sleep(0.02)
            assert tier.stats().reconnects == 1
            assert await tier.set(k, "again", ttl_s=30)
            assert await tier.get(k) == Hit("again")


async def test_slow_redis_times_out_and_invalidations_are_replayed(
    redis_server: RedisServer,
) -> None:
    # A paused Redis never answers: each call made during the pause ends by its timeout,
    # whatever the timeout is -- no race.  So the timeout is the suite's generous one, not a
    # short one that a call outside the pause, on a loaded machine, could also hit.
    patient = settings(redis_server, generation_cache_s=0)
    with anyio.fail_after(LIMIT):
        async with RedisTier.open(patient) as tier, RedisTier.open(patient) as peer:
            k = key()
            assert await tier.set(k, "stale soon", ttl_s=30)
            redis_server.pause()
            try:
                assert await tier.get(k) == Miss("timeout")
                assert not await tier.invalidate_tenant("acme")  # cannot reach Redis
                assert tier.stats().pending_invalidations == 1
                assert tier.stats().circuit == "open"
                assert tier.stats().timeouts == 2
            finally:
                redis_server.resume()
            # Redis kept the data (it was only paused): the replayed invalidation must win.
            while tier.stats().circuit != "closed":
                result = await tier.get(k)
                assert not isinstance(result, Hit)
                await anyio.sleep(0.02)
            assert tier.stats().pending_invalidations == 0
            assert await tier.get(k) == Miss("absent")
            assert await peer.get(k) == Miss("absent")


async def test_two_tiers_share_values_and_invalidations(redis_server: RedisServer) -> None:
    with anyio.fail_after(LIMIT):
        windowed = settings(redis_server, generation_cache_s=0.2)
        async with RedisTier.open(windowed) as one, RedisTier.open(windowed) as two:
            k = key()
            assert await two.get(k) == Miss("absent")  # caches two's generation tokens
            assert await one.set(k, {"from": "one"}, ttl_s=30)
            assert await two.get(k) == Hit({"from": "one"})
            assert await one.invalidate_tool("CI")
            assert await one.get(k) == Miss("absent")  # own invalidation: seen at once
            await anyio.sleep(0.25)  # the other process's window, generation_cache_s
            assert await two.get(k) == Miss("absent")


async def test_concurrent_use_is_consistent(redis_server: RedisServer) -> None:
    with anyio.fail_after(LIMIT):
        async with RedisTier.open(settings(redis_server)) as tier:
            results: dict[int, Hit | Miss] = {}

            async def worker(n: int) -> None:
                assert await tier.set(key(q=n), {"n": n}, ttl_s=30)
                results[n] = await tier.get(key(q=n))

            async with anyio.create_task_group() as tg:
                for n in range(40):
                    tg.start_soon(worker, n)
            assert results == {n: Hit({"n": n}) for n in range(40)}


async def test_closed_tier_answers_miss_without_raising(redis_server: RedisServer) -> None:
    with anyio.fail_after(LIMIT):
        async with RedisTier.open(settings(redis_server)) as tier:
            assert await tier.set(key(), 1, ttl_s=30)
        assert await tier.get(key()) == Miss("closed")
        assert not await tier.set(key(), 2, ttl_s=30)


async def test_unreachable_redis_at_open_is_not_an_error(tmp_path: Path) -> None:
    nowhere = RedisSettings(url=f"unix://{tmp_path}/absent.sock", op_timeout_s=0.2)
    with anyio.fail_after(LIMIT):
        async with RedisTier.open(nowhere) as tier:
            assert await tier.get(key()) == Miss("error")
            assert not await tier.invalidate_key(key())
            assert tier.stats().pending_invalidations == 1


_CHILD = textwrap.dedent(
    """
    import sys, anyio
    from runtime.cache.keys import make_key
    from runtime.cache.redis import RedisSettings, RedisTier

    async def main():
        settings = RedisSettings(url=sys.argv[1], secret=sys.argv[2])
        async with RedisTier.open(settings) as tier:
            ok = await tier.set(make_key("acme", "CI", "search", {"q": 1}), {"pid": 1}, 30)
            print("stored" if ok else "failed")

    anyio.run(main, backend=sys.argv[3])
    """
)


async def test_another_process_value_is_a_hit_here(
    redis_server: RedisServer, anyio_backend: tuple[str, dict[str, Any]]
) -> None:
    backend = anyio_backend[0] if isinstance(anyio_backend, tuple) else str(anyio_backend)
    other = "trio" if backend == "asyncio" else "asyncio"  # and across backends
    with anyio.fail_after(30):
        done = await anyio.run_process(
            [sys.executable, "-c", _CHILD, redis_server.url, SECRET, other],
            check=False,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        assert done.stdout.decode().strip() == "stored", done.stdout.decode()
        async with RedisTier.open(settings(redis_server, secret=SECRET)) as tier:
            assert await tier.get(key()) == Hit({"pid": 1})


def test_fixture_server_really_stops(redis_server: RedisServer) -> None:
    assert redis_server.ping()
    redis_server.kill()
    deadline = time.monotonic() + 5
    while redis_server.ping() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not redis_server.ping()


def test_missing_redis_server_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no redis-server
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="apt-get install redis-server"):
        find_redis_server()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="apt-get install redis-server"):
        find_redis_server()
