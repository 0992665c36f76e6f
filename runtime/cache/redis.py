"""The shared second cache tier: Redis through coredis (anyio, so trio and asyncio alike).

The in-process ``CacheActor`` stays the first tier and decides when to consult and fill
this one.  Values live under ``{prefix}:val:{tenant}:{tool}:{op}:{gen}:{digest}``, ``gen``
hashing four random *generation tokens* (whole cache, tenant, tool type, operation).

- Invalidating a tenant, tool, operation or everything is one ``SET`` of a fresh token; a
  single key is a ``DEL``.  Tokens are cached locally for ``generation_cache_s``: another
  process's invalidation is seen at most that late, this process's at once.  A lost token
  is re-created with a new random value, which invalidates its namespace.
- An invalidation Redis cannot take now is kept pending (at most 1024, then one
  whole-cache invalidation) and replayed before any other operation once Redis answers.
- No public method raises (cancellation aside) or takes longer than ``op_timeout_s``:
  failures are counted and answered :class:`Miss` / ``False``.  A circuit breaker opens
  after ``failure_threshold`` consecutive failures and probes after a doubling backoff.
- Values are JSON in a versioned, optionally HMAC-signed envelope
  (:mod:`runtime.cache.codec`), never pickle; a value that fails verification or decoding
  is a counted :class:`Miss`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar
from urllib.parse import urlsplit

import anyio
import attrs

from runtime.cache import codec
from runtime.cache.breaker import Breaker, CircuitState
from runtime.cache.keyspace import (
    CacheKeyLike,
    GenerationCache,
    data_key,
    generation_keys,
    global_generation_key,
    key_generation_key,
    new_token,
    tenant_generation_key,
    tool_generation_key,
)
from runtime.errors import ConfigError

if TYPE_CHECKING:
    import coredis

_log = logging.getLogger("runtime")

__all__ = [
    "Breaker",
    "CacheKeyLike",
    "CircuitState",
    "GenerationCache",
    "Hit",
    "Miss",
    "MissReason",
    "RedisSettings",
    "RedisTier",
    "RedisTierStats",
    "data_key",
    "generation_keys",
    "key_generation_key",
]

T = TypeVar("T")

MissReason = Literal["absent", "error", "timeout", "decode", "signature", "circuit_open", "closed"]

_SECTION: Final = "cache.redis"
_MIN_SECRET_LEN: Final = 16
_MAX_PENDING: Final = 1024
_URL_SCHEMES: Final = frozenset({"redis", "rediss", "unix"})


# -- settings -------------------------------------------------------------------------


def _finite_positive(value: float) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value > 0
        and (math.isfinite(value))
    )


@attrs.frozen(slots=True)
class RedisSettings:
    """The ``cache.redis`` configuration section.

    ``url``: ``redis://host:port/db``, ``rediss://...`` or ``unix:///path/to/redis.sock``.
    ``secret``: when set, values are HMAC-SHA256 signed and unsigned ones refused; every
    process sharing the Redis must use the same secret.  ``generation_cache_s``: how long
    invalidation tokens are reused locally -- the window in which another process's
    invalidation is not yet seen here (see the module doc).  ``max_connections``: coredis
    multiplexes concurrent commands over a connection, so a few suffice; a small pool also
    keeps a burst of callers from dialling a storm of connections at once.
    ``shared_flight``: one execution per cold key across replicas (a lease, see
    :mod:`runtime.cache.lease`); ``lease_ttl_s``: how long a lease lives, so the longest a
    waiter waits on a dead holder; ``lease_poll_s``: the longest pause between claims.
    """

    url: str
    key_prefix: str = "runtime"
    op_timeout_s: float = 0.05
    connect_timeout_s: float = 0.5
    secret: str | None = attrs.field(default=None, repr=False)  # never in a log line
    failure_threshold: int = 3
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    generation_cache_s: float = 1.0
    max_connections: int = 4
    shared_flight: bool = True
    lease_ttl_s: float = 10.0
    lease_poll_s: float = 0.02

    def __attrs_post_init__(self) -> None:
        def fail(field: str, problem: str) -> ConfigError:
            return ConfigError(f"{_SECTION}.{field}", problem)

        if not isinstance(self.url, str):
            raise fail("url", f"expected a string, got {type(self.url).__name__}")
        parts = urlsplit(self.url)
        if parts.scheme not in _URL_SCHEMES:
            raise fail(
                "url",
                f"scheme must be redis://, rediss:// or unix://, got {self.url!r}",
            )
        if parts.scheme == "unix" and not parts.path:
            raise fail("url", f"a unix:// url needs a socket path, got {self.url!r}")
        if parts.scheme != "unix" and not parts.hostname:
            raise fail("url", f"a {parts.scheme}:// url needs a host, got {self.url!r}")
        if (
            not isinstance(self.key_prefix, str)
            or not self.key_prefix
            or any(ch.isspace() or not ch.isprintable() for ch in self.key_prefix)
        ):
            raise fail(
                "key_prefix", f"expected a non-empty printable word, got {self.key_prefix!r}"
            )
        for name in (
            "op_timeout_s",
            "connect_timeout_s",
            "backoff_initial_s",
            "backoff_max_s",
            "lease_ttl_s",
            "lease_poll_s",
        ):
            value = getattr(self, name)
            if not _finite_positive(value):
                raise fail(name, f"expected a positive finite number of seconds, got {value!r}")
        if self.backoff_max_s < self.backoff_initial_s:
            raise fail(
                "backoff_max_s",
                f"must not be below the initial backoff ({self.backoff_initial_s:g}s), "
                f"got {self.backoff_max_s:g}s",
            )
        if not isinstance(self.shared_flight, bool):
            raise fail("shared_flight", f"expected true or false, got {self.shared_flight!r}")
        if self.lease_poll_s > self.lease_ttl_s:
            raise fail(
                "lease_poll_s",
                f"must not exceed the lease TTL ({self.lease_ttl_s:g}s), "
                f"got {self.lease_poll_s:g}s",
            )
        gen = self.generation_cache_s
        if (
            isinstance(gen, bool)
            or not isinstance(gen, int | float)
            or not (math.isfinite(gen) and gen >= 0)
        ):
            raise fail("generation_cache_s", f"expected a non-negative number, got {gen!r}")
        for name in ("failure_threshold", "max_connections"):
            count = getattr(self, name)
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise fail(name, f"expected a positive integer, got {count!r}")
        if self.secret is not None and (
            not isinstance(self.secret, str) or len(self.secret) < _MIN_SECRET_LEN
        ):
            raise fail(
                "secret", f"must be a string of at least {_MIN_SECRET_LEN} characters when set"
            )


# -- results and statistics -----------------------------------------------------------


@attrs.frozen(slots=True)
class Hit:
    """The shared tier had a valid value; ``value`` is a fresh object, never shared.

    ``ttl_s`` is how long Redis will keep the value still (``PTTL``), so a tier above can
    keep its copy no longer than the shared one lives; None when Redis did not say.  It is
    left out of equality: two hits of the same value are the same answer.
    """

    value: Any
    ttl_s: float | None = attrs.field(default=None, eq=False)


@attrs.frozen(slots=True)
class Miss:
    """No usable value; ``reason`` says why (``absent`` is the only healthy reason)."""

    reason: MissReason = "absent"


@attrs.frozen(slots=True)
class RedisTierStats:
    """A snapshot of the tier's counters.

    ``misses`` counts lookups Redis answered with nothing; failed lookups are counted under
    ``errors``, ``timeouts``, ``decode_failures``, ``signature_failures`` or
    ``short_circuits`` (calls refused at once by the open circuit) instead.
    ``unencodable`` counts values not written because JSON would not return them intact.
    """

    hits: int
    misses: int
    sets: int
    unencodable: int
    invalidations: int
    errors: int
    timeouts: int
    decode_failures: int
    signature_failures: int
    short_circuits: int
    reconnects: int
    circuit: CircuitState
    pending_invalidations: int
    last_error: str | None


# -- the tier (I/O shell) -------------------------------------------------------------


class _Failed:
    """Marker: the guarded Redis operation did not complete (already counted)."""

    __slots__ = ("reason",)

    def __init__(self, reason: MissReason) -> None:
        self.reason: MissReason = reason


class RedisTier:
    """The shared cache tier.  Build it with ``async with RedisTier.open(settings) as tier``.

    Every method is safe to call concurrently from any task and never raises (except
    cancellation of the caller): failures are counted in :meth:`stats` and answered with
    :class:`Miss` or ``False``.
    """

    def __init__(self, settings: RedisSettings, client: coredis.Redis[bytes]) -> None:
        self.settings = settings
        self._client = client
        self._prefix = settings.key_prefix
        self._secret = settings.secret.encode() if settings.secret is not None else None
        self._breaker = Breaker(
            threshold=settings.failure_threshold,
            backoff_initial=settings.backoff_initial_s,
            backoff_max=settings.backoff_max_s,
            probe_timeout=2 * settings.op_timeout_s,
        )
        self._generations = GenerationCache(settings.generation_cache_s)
        self._pending_bumps: dict[str, str] = {}
        self._pending_deletes: set[CacheKeyLike] = set()
        self._open = True
        self._counts: dict[str, int] = dict.fromkeys(
            (
                "hits",
                "misses",
                "sets",
                "unencodable",
                "invalidations",
                "errors",
                "timeouts",
                "decode_failures",
                "signature_failures",
                "short_circuits",
                "reconnects",
            ),
            0,
        )
        self._last_error: str | None = None

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: RedisSettings) -> AsyncIterator[RedisTier]:
        """Own a coredis client for the duration of the block.

        No connection is made here: the first operation dials, so entering never fails or
        waits because Redis is down.  coredis runs its connection tasks in a task group it
        opens in this block; leaving the block closes them all.
        """
        import coredis  # lazily: the settings and pure parts must import without coredis
        from coredis.retry import NoRetryPolicy

        client: coredis.Redis[bytes] = coredis.Redis.from_url(
            settings.url,
            stream_timeout=settings.op_timeout_s,
            connect_timeout=settings.connect_timeout_s,
            retry_policy=NoRetryPolicy(),
            max_connections=settings.max_connections,
            client_name=f"{settings.key_prefix}-cache",
        )
        async with client:
            tier = cls(settings, client)
            try:
                yield tier
            finally:
                await tier._last_replay()
                tier._open = False

    async def _last_replay(self) -> None:
        """One bounded try at the invalidations still pending, as the tier closes.

        They live in this process's memory: if it stops with some still pending, a Redis
        that comes back serves what they meant to remove.  So closing tries them once,
        whatever the breaker says (shielded, within the op timeout: a shutdown must not
        wait on a dead Redis), and logs what is lost if that fails too.
        """
        pending = len(self._pending_bumps) + len(self._pending_deletes)
        if not pending:
            return
        with anyio.CancelScope(shield=True):
            with anyio.move_on_after(self.settings.op_timeout_s):
                try:
                    await self._flush_pending(self._client)
                except Exception as exc:
                    self._last_error = f"{type(exc).__name__}: {exc}"
        left = len(self._pending_bumps) + len(self._pending_deletes)
        if left:
            _log.warning(
                "Redis tier closing with %d invalidation(s) that never reached Redis; "
                "other replicas may serve what they meant to remove until it expires "
                "(last error: %s)",
                left,
                self._last_error,
            )

    # -- public operations ------------------------------------------------------------

    async def get(self, key: CacheKeyLike) -> Hit | Miss:
        """The value stored for ``key``, or a :class:`Miss` saying why not."""

        async def lookup(client: coredis.Redis[bytes]) -> tuple[bytes, bytes | None, int]:
            location = data_key(self._prefix, key, await self._tokens(client, key))
            # One round trip for the value and its remaining life.
            async with client.pipeline(transaction=False) as pipe:
                value_request = pipe.get(location)
                pttl_request = pipe.pttl(location)
            return location, await value_request, await pttl_request

        outcome = await self._guarded(lookup)
        if isinstance(outcome, _Failed):
            return Miss(outcome.reason)
        location, stored, pttl_ms = outcome
        if stored is None:
            self._counts["misses"] += 1
            return Miss("absent")
        try:
            value = codec.decode(stored, location, self._secret)
        except codec.DecodeFailure as failure:
            self._counts[f"{failure.kind}_failures"] += 1
            return Miss(failure.kind)
        self._counts["hits"] += 1
        # PTTL: -1 no expiry (not written by us), -2 expired between GET and PTTL.
        return Hit(value, None if pttl_ms == -1 else max(pttl_ms, 0) / 1000)

    async def set(self, key: CacheKeyLike, value: Any, ttl_s: float) -> bool:
        """Store ``value`` for ``ttl_s`` seconds (``SET ... PX``); True when it was written.

        A TTL of 0 (or less) means "do not cache": nothing is written.  A value JSON would
        not return intact is not written either (counted as ``unencodable``).
        """
        if not (isinstance(ttl_s, int | float) and math.isfinite(ttl_s) and ttl_s > 0):
            return False
        try:
            payload = codec.serialise(value)
        except (codec.NotJsonValue, ValueError, TypeError, RecursionError):
            self._counts["unencodable"] += 1
            return False
        ttl_ms = max(1, round(ttl_s * 1000))

        async def store(client: coredis.Redis[bytes]) -> bool:
            location = data_key(self._prefix, key, await self._tokens(client, key))
            sealed = codec.seal(payload, location, self._secret)
            return bool(await client.set(location, sealed, px=ttl_ms))

        outcome = await self._guarded(store)
        if isinstance(outcome, _Failed):
            return False
        self._counts["sets"] += 1
        return outcome

    async def invalidate_key(self, key: CacheKeyLike) -> bool:
        """Forget ``key``'s value; True when Redis confirmed it (else it is kept pending)."""

        async def delete(client: coredis.Redis[bytes]) -> bool:
            await self._delete_value(client, key)
            return True

        self._counts["invalidations"] += 1
        outcome = await self._guarded(delete)
        if isinstance(outcome, _Failed):
            self._add_pending(delete_key=key)
            return False
        return True

    async def invalidate_tool(self, tool_type: str, operation: str | None = None) -> bool:
        """Forget every value of ``tool_type`` (only ``operation``'s, if given), all tenants."""
        return await self._bump(tool_generation_key(self._prefix, tool_type, operation))

    async def invalidate_tenant(self, tenant: str) -> bool:
        """Forget every value of ``tenant``."""
        return await self._bump(tenant_generation_key(self._prefix, tenant))

    async def clear(self) -> bool:
        """Forget every value under this key prefix."""
        return await self._bump(global_generation_key(self._prefix))

    async def redis_key_for(self, key: CacheKeyLike) -> bytes | None:
        """The Redis key ``key``'s value lives under now (diagnostics, tests); None on failure."""

        async def locate(client: coredis.Redis[bytes]) -> bytes:
            return data_key(self._prefix, key, await self._tokens(client, key, fresh=True))

        outcome = await self._guarded(locate)
        return None if isinstance(outcome, _Failed) else outcome

    # -- seams for the cross-replica flight shell (runtime.cache.lease) ----------------

    @property
    def client(self) -> coredis.Redis[bytes]:
        return self._client

    async def attempt(
        self, operation: Callable[[coredis.Redis[bytes]], Awaitable[T]]
    ) -> T | MissReason:
        """Run ``operation`` as every tier operation runs (breaker, op timeout, counts):
        its result, or why it did not complete."""
        outcome = await self._guarded(operation)
        return outcome.reason if isinstance(outcome, _Failed) else outcome

    async def tokens(self, client: coredis.Redis[bytes], key: CacheKeyLike) -> tuple[str, ...]:
        """``key``'s generation tokens (locally cached for ``generation_cache_s``)."""
        return await self._tokens(client, key)

    def seal(self, payload: bytes, location: bytes) -> bytes:
        return codec.seal(payload, location, self._secret)

    def unseal(self, stored: bytes, location: bytes, pttl_ms: int) -> Hit | Miss:
        """A value read at ``location`` as :meth:`get` would answer it (and count it)."""
        try:
            value = codec.decode(stored, location, self._secret)
        except codec.DecodeFailure as failure:
            self._counts[f"{failure.kind}_failures"] += 1
            return Miss(failure.kind)
        self._counts["hits"] += 1
        return Hit(value, None if pttl_ms == -1 else max(pttl_ms, 0) / 1000)

    def count(self, name: str) -> None:
        """Count one ``misses`` / ``sets`` / ``unencodable`` done through a seam."""
        self._counts[name] += 1

    def stats(self) -> RedisTierStats:
        return RedisTierStats(
            **self._counts,
            circuit=self._breaker.state,
            pending_invalidations=len(self._pending_bumps) + len(self._pending_deletes),
            last_error=self._last_error,
        )

    # -- machinery --------------------------------------------------------------------

    async def _bump(self, name: str) -> bool:
        token = new_token()

        async def publish(client: coredis.Redis[bytes]) -> bool:
            await client.set(name, token)
            return True

        self._counts["invalidations"] += 1
        outcome = await self._guarded(publish)
        if isinstance(outcome, _Failed):
            self._add_pending(bump=(name, token))
            return False
        self._generations.bump(name, token, anyio.current_time())
        return True

    def _add_pending(
        self, bump: tuple[str, str] | None = None, delete_key: CacheKeyLike | None = None
    ) -> None:
        if bump is not None:
            self._pending_bumps[bump[0]] = bump[1]
        if delete_key is not None:
            self._pending_deletes.add(delete_key)
        # Whatever is pending must not be served from the local tokens either.
        self._generations.clear()
        if len(self._pending_bumps) + len(self._pending_deletes) > _MAX_PENDING:
            # Too much to remember: one whole-cache invalidation covers all of it.
            self._pending_deletes.clear()
            self._pending_bumps = {global_generation_key(self._prefix): new_token()}

    async def _flush_pending(self, client: coredis.Redis[bytes]) -> None:
        """Replay invalidations that could not reach Redis, before anything else runs."""
        if self._pending_bumps:
            bumps = dict(self._pending_bumps)
            async with client.pipeline(transaction=False) as pipe:
                for name, token in bumps.items():
                    pipe.set(name, token)
            now = anyio.current_time()
            for name, token in bumps.items():
                if self._pending_bumps.get(name) == token:
                    del self._pending_bumps[name]
                self._generations.bump(name, token, now)
        for key in list(self._pending_deletes):
            await self._delete_value(client, key)
            self._pending_deletes.discard(key)

    async def _delete_value(self, client: coredis.Redis[bytes], key: CacheKeyLike) -> None:
        """DEL the value, and mark the key so that a flight already under way will not
        write its (older) value back (:mod:`runtime.cache.lease`)."""
        location = data_key(self._prefix, key, await self._tokens(client, key, fresh=True))
        if not self.settings.shared_flight:
            await client.delete([location])
            return
        mark = key_generation_key(self._prefix, location)
        ttl_ms = max(1, round(self.settings.lease_ttl_s * 1000))
        async with client.pipeline(transaction=True) as pipe:
            pipe.delete([location])
            pipe.set(mark, new_token(), px=ttl_ms)

    async def _tokens(
        self, client: coredis.Redis[bytes], key: CacheKeyLike, *, fresh: bool = False
    ) -> tuple[str, ...]:
        """The generation tokens of ``key``'s namespaces: local if recent, else one MGET."""
        names = generation_keys(self._prefix, key)
        if not fresh:
            cached = self._generations.lookup(names, anyio.current_time())
            if cached is not None:
                return cached
        epoch = self._generations.epoch
        values = await client.mget(names)
        if any(value is None for value in values):
            # A namespace never invalidated (or whose token was evicted): give it a random
            # token, first writer wins, and read back whatever won.
            from coredis import PureToken

            async with client.pipeline(transaction=False) as pipe:
                for name, value in zip(names, values, strict=True):
                    if value is None:
                        pipe.set(name, new_token(), condition=PureToken.NX)
                reread = pipe.mget(names)
            values = await reread
            if any(value is None for value in values):
                raise RuntimeError("generation keys vanished while being created")
        tokens = tuple(bytes(value or b"").decode("ascii", "replace") for value in values)
        self._generations.store(names, tokens, anyio.current_time(), epoch)
        return tokens

    async def _guarded(
        self, operation: Callable[[coredis.Redis[bytes]], Awaitable[T]]
    ) -> T | _Failed:
        """Run ``operation`` under the breaker and the op timeout; count whatever goes wrong."""
        if not self._open:
            return _Failed("closed")
        admitted, self._breaker = self._breaker.admit(anyio.current_time())
        if not admitted:
            self._counts["short_circuits"] += 1
            return _Failed("circuit_open")
        reason: MissReason
        try:
            with anyio.move_on_after(self.settings.op_timeout_s) as scope:
                if self._pending_bumps or self._pending_deletes:
                    await self._flush_pending(self._client)
                result = await operation(self._client)
            if not scope.cancelled_caught:
                self._record_success()
                return result
            self._counts["timeouts"] += 1
            self._last_error = f"timed out after {self.settings.op_timeout_s:g}s"
            reason = "timeout"
        except Exception as exc:  # any failure of the tier is a miss, never the caller's
            self._counts["errors"] += 1
            self._last_error = f"{type(exc).__name__}: {exc}"
            reason = "error"
        self._record_failure()
        return _Failed(reason)

    def _record_success(self) -> None:
        before = self._breaker.state
        self._breaker = self._breaker.succeeded()
        if before != "closed":
            self._counts["reconnects"] += 1

    def _record_failure(self) -> None:
        before = self._breaker.state
        self._breaker = self._breaker.failed(anyio.current_time())
        if before != "open" and self._breaker.state == "open":
            # Drop every pooled connection: the probe should dial afresh rather than queue
            # behind requests on a connection that may be wedged.
            try:
                pool = self._client.connection_pool
                pool.disconnect()
                _refill_pool_slots(pool)
            except Exception as exc:
                self._last_error = f"disconnect failed: {type(exc).__name__}: {exc}"


def _refill_pool_slots(pool: Any) -> None:
    """Give the connection pool back the slots that cancelled dials took with them.

    coredis (6.x) takes a pool slot before dialing and does not return it when the dial
    is cancelled -- which our op timeout does to every probe while Redis hangs (it is
    shorter than the connect timeout).  After ``max_connections`` such probes no slot
    is left, every later operation waits for one until it times out, and the circuit
    never closes again even once Redis answers.  Just after ``disconnect()`` every
    connection is invalid, so nothing will be handed back over the bound: the free
    slots are topped up to it.  This reaches into the pool's private queue; should
    coredis change it, nothing is done (and the stuck circuit is back).
    """
    slots = getattr(pool, "_available_connections", None)
    if slots is None or not callable(getattr(slots, "full", None)):
        return
    while not slots.full():
        slots.append_nowait(None)
