"""Cross-replica single-flight over the Redis tier: one execution per cold key, all replicas.

The I/O shell around :mod:`runtime.cache.flight`.  A replica's L1 leader *claims* a key
with one Lua script: the value if Redis has it, else a lease (``SET lease NX PX ttl`` with
a random token) if nobody holds one, else the holder's token and remaining TTL.  Without
the value or the lease it sleeps as :class:`~runtime.cache.flight.Waiter` says -- cut
short when the holder announces the flight's end on the flight channel
(:mod:`runtime.cache.signals`; the poll is the fallback) -- and claims again.  It ends
with the value (filling its L1), with the lease (the holder died or left nothing, and it
takes over: just as a dead holder's lease expires), or -- a lease outliving its TTL --
running the tool itself.

Contract (tests/test_cache_lease*.py, against a real redis-server):

- a lease is released only by its holder: release and write scripts check the token;
- the holder's write is one script that stores the value only if it still holds the lease,
  no generation token of the key changed and no single-key invalidation marked it since
  the claim -- an invalidation during a flight is never undone by the flight's write;
- failed results are never written: the holder releases the lease and a waiter takes over;
- Redis failing (down, slow: the tier's breaker and ``op_timeout``) ends every claim at
  once with "run it here" -- each replica falls back to its own single-flight;
- a dead holder's lease expires after ``lease_ttl``; no waiter waits on it longer.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import ExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, Literal

import anyio
import attrs

from runtime.cache import codec
from runtime.cache.flight import FlightPolicy, GiveUp, Held, Waiter
from runtime.cache.redis import (
    CacheKeyLike,
    Hit,
    RedisTier,
    data_key,
    generation_keys,
    key_generation_key,
)
from runtime.cache.signals import FlightSignals, flight_channel

if TYPE_CHECKING:
    import coredis

__all__ = ["FlightStats", "Lease", "Published", "SharedFlights", "lease_key"]

Published = Literal["written", "lease_lost", "invalidated", "unencodable", "failed"]

# KEYS: value, lease, key mark.  ARGV: token, lease TTL (ms).
_CLAIM: Final = """
local value = redis.call('GET', KEYS[1])
if value then return {1, value, redis.call('PTTL', KEYS[1])} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {2, redis.call('GET', KEYS[3]) or ''}
end
return {3, redis.call('GET', KEYS[2]) or '', redis.call('PTTL', KEYS[2])}
"""

# KEYS: value, lease, key mark, 4 generation keys.
# ARGV: token, sealed value, value TTL (ms), key mark at claim, 4 generation tokens, channel.
_PUBLISH: Final = """
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
local fresh = (redis.call('GET', KEYS[3]) or '') == ARGV[4]
for i = 1, 4 do
  if redis.call('GET', KEYS[3 + i]) ~= ARGV[4 + i] then fresh = false end
end
if fresh then redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[9], KEYS[2])
if fresh then return 1 end
return -1
"""

# KEYS: lease.  ARGV: token, channel.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('PUBLISH', ARGV[2], KEYS[1])
return 1
"""

_POLL_INITIAL_S: Final = 0.001


def lease_key(prefix: str, location: bytes) -> bytes:
    """The lease of the value at ``location`` (a :func:`~runtime.cache.redis.data_key`)."""
    return prefix.encode() + b":lease:" + location[len(prefix) + len(":val:") :]


@attrs.frozen(slots=True)
class Lease:
    """This replica holds the flight of ``location``: it runs the tool and publishes."""

    location: bytes
    token: str
    generations: tuple[str, ...]
    key_mark: bytes


@attrs.frozen(slots=True)
class FlightStats:
    """Counters of cross-replica flights.

    ``leases``: claims that won the lease (this replica ran the tool); ``waits``: claims
    that found another replica's lease; ``shared``: waits that ended with its value;
    ``takeovers``: waits that ended with the lease (the holder died or left nothing);
    ``notified``: pauses between claims cut short by the holder's announcement
    (:mod:`runtime.cache.signals`) rather than ended by the poll;
    ``fallbacks``: claims given up for a local run (Redis failed, a lease outlived its TTL,
    an unreadable value); ``written`` / ``refused``: values published / not written
    because an invalidation overtook the flight; ``lost``: leases that expired before
    their holder finished.
    """

    leases: int = 0
    waits: int = 0
    shared: int = 0
    takeovers: int = 0
    notified: int = 0
    fallbacks: int = 0
    written: int = 0
    refused: int = 0
    lost: int = 0


class SharedFlights:
    """Claims, publishes and releases cross-replica flights through one :class:`RedisTier`."""

    def __init__(self, tier: RedisTier, signals: FlightSignals | None = None) -> None:
        settings = tier.settings
        self.tier = tier
        self.signals = signals
        self.policy = FlightPolicy(
            lease_ttl=settings.lease_ttl_s,
            poll_initial=min(_POLL_INITIAL_S, settings.lease_poll_s),
            poll_max=settings.lease_poll_s,
        )
        # With the channel live a holder's announcement wakes waiters: the poll is only
        # the fallback for a lost message, so it need not start fast.
        self.announced_policy = attrs.evolve(self.policy, poll_initial=settings.lease_poll_s)
        self._prefix = settings.key_prefix
        self._channel = flight_channel(settings.key_prefix)
        self._lease_ms = max(1, round(settings.lease_ttl_s * 1000))
        client = tier.client
        self._claim = client.register_script(_CLAIM)
        self._publish = client.register_script(_PUBLISH)
        self._release = client.register_script(_RELEASE)
        self._counts = attrs.asdict(FlightStats())

    @classmethod
    @asynccontextmanager
    async def open(cls, tier: RedisTier) -> AsyncIterator[SharedFlights]:
        """Flights whose waiters are woken by the flight channel, listened to in the
        background for the duration of the block (start-up never waits on Redis)."""
        signals = FlightSignals()
        async with anyio.create_task_group() as tg:
            tg.start_soon(signals.listen, tier.settings)
            try:
                yield cls(tier, signals)
            finally:
                tg.cancel_scope.cancel()

    def stats(self) -> FlightStats:
        return FlightStats(**self._counts)

    async def claim(self, key: CacheKeyLike) -> Hit | Lease | None:
        """The shared value, the lease, or None: run the tool here without sharing."""
        token = secrets.token_hex(16)
        live = self.signals is not None and self.signals.live
        waiter = Waiter.start(self.announced_policy if live else self.policy)
        waited = False
        while True:
            with ExitStack() as bells:
                # The bell is armed before the claim's script runs: an announcement
                # between the claim's reply and the pause cannot be missed.
                rung: list[anyio.Event] = []
                seen = await self.tier.attempt(self._claim_once(key, token, bells, rung))
                if isinstance(seen, Hit | Lease):
                    if isinstance(seen, Lease):
                        self._count("takeovers" if waited else "leases")
                    elif waited:
                        self._count("shared")
                    return seen
                if not isinstance(seen, Held):  # Redis failed, or the value was unreadable
                    self._count("fallbacks")
                    return None
                if not waited:
                    waited = True
                    self._count("waits")
                step, waiter = waiter.observe(seen, anyio.current_time())
                if isinstance(step, GiveUp):
                    self._count("fallbacks")
                    return None
                await self._pause(step.delay, rung)

    async def _pause(self, delay: float, rung: list[anyio.Event]) -> None:
        """Sleep ``delay`` -- less if the holder announces the end of its flight."""
        if not rung:
            await anyio.sleep(delay)
            return
        with anyio.move_on_after(delay):
            await rung[0].wait()
            self._count("notified")

    def _claim_once(
        self, key: CacheKeyLike, token: str, bells: ExitStack, rung: list[anyio.Event]
    ) -> Callable[[coredis.Redis[bytes]], Awaitable[Hit | Lease | Held | None]]:
        async def claim(client: coredis.Redis[bytes]) -> Hit | Lease | Held | None:
            generations = await self.tier.tokens(client, key)
            location = data_key(self._prefix, key, generations)
            mark = key_generation_key(self._prefix, location)
            lease = lease_key(self._prefix, location)
            keys = [location, lease, mark]
            if self.signals is not None and self.signals.live:
                rung.append(bells.enter_context(self.signals.bell(lease)))
            reply: Any = await self._claim(keys=keys, args=[token, self._lease_ms])
            kind = int(reply[0])
            if kind == 1:
                found = self.tier.unseal(bytes(reply[1]), location, int(reply[2]))
                return found if isinstance(found, Hit) else None
            if kind == 2:
                self.tier.count("misses")
                return Lease(location, token, generations, bytes(reply[1]))
            ttl_ms = int(reply[2])
            holder = bytes(reply[1]).decode("ascii", "replace")
            return Held(holder, None if ttl_ms < 0 else ttl_ms / 1000)

        return claim

    async def publish(self, key: CacheKeyLike, lease: Lease, value: Any, ttl_s: float) -> Published:
        """Write the flight's value (if still ours and not invalidated) and end the lease;
        runs to its end (at most ``op_timeout``) even in a cancelled task."""
        try:
            payload = codec.serialise(value)
        except (codec.NotJsonValue, ValueError, TypeError, RecursionError):
            self.tier.count("unencodable")
            await self.release(lease)
            return "unencodable"
        sealed = self.tier.seal(payload, lease.location)
        keys: list[str | bytes] = [
            lease.location,
            lease_key(self._prefix, lease.location),
            key_generation_key(self._prefix, lease.location),
            *generation_keys(self._prefix, key),
        ]
        args: list[str | bytes | int] = [
            lease.token,
            sealed,
            max(1, round(ttl_s * 1000)),
            lease.key_mark,
            *lease.generations,
            self._channel,
        ]

        async def write(client: coredis.Redis[bytes]) -> int:
            return int(await self._publish(keys=keys, args=args))

        # Shielded (and bounded by op_timeout): a caller cancelled now must not leave
        # the lease held and every other replica waiting out its TTL.
        with anyio.CancelScope(shield=True):
            outcome = await self.tier.attempt(write)
        if outcome == 1:
            self.tier.count("sets")
            self._count("written")
            return "written"
        if outcome == -1:
            self._count("refused")
            return "invalidated"
        if outcome == 0:
            self._count("lost")
            return "lease_lost"
        return "failed"

    async def release(self, lease: Lease) -> None:
        """End the lease without a value (the tool failed or was cancelled); never blocks
        past ``op_timeout`` and runs even in a cancelled task."""
        keys = [lease_key(self._prefix, lease.location)]

        async def release(client: coredis.Redis[bytes]) -> int:
            return int(await self._release(keys=keys, args=[lease.token, self._channel]))

        with anyio.CancelScope(shield=True):
            await self.tier.attempt(release)

    def _count(self, name: str) -> None:
        self._counts[name] += 1
