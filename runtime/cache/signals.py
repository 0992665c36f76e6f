"""Wake-ups for cross-replica flights: one Redis pub/sub subscription per replica.

A holder that ends its flight (value written, or lease released) publishes the lease's
name on ``{prefix}:flights`` from inside the same script (:mod:`runtime.cache.lease`).
Each replica's :class:`FlightSignals` listens on that channel and rings the *bells* its
waiting claims armed for that lease, so they claim again at once instead of a poll later.

Contract:

- a message only makes a waiter claim again sooner: losing one (a reconnect, pub/sub
  refused by an ACL, a Redis down) costs at most one ``lease_poll``, never correctness;
  a forged one costs one extra claim.  Values are never carried on the channel;
- the listener owns its own connection (a subscribed connection serves nothing else)
  and never blocks start-up: it dials in the background and redials after a doubling
  backoff (``backoff_initial_s`` .. ``backoff_max_s``) whenever the subscription fails;
- ``live`` is True only while the subscription is acknowledged; waiters poll as a
  fallback at ``lease_poll`` while it is, and from a 1 ms doubling pause while it is not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Final

import anyio

if TYPE_CHECKING:
    from runtime.cache.redis import RedisSettings

_log = logging.getLogger("runtime")

__all__ = ["FlightSignals", "flight_channel"]

_KEEPALIVE_S: Final = 1.0


def flight_channel(prefix: str) -> str:
    """The channel on which holders announce the end of a flight under ``prefix``."""
    return f"{prefix}:flights"


class FlightSignals:
    """This replica's subscription to the flight channel, and the bells waiting on it."""

    def __init__(self) -> None:
        self._bells: dict[bytes, set[anyio.Event]] = {}
        self.live = False
        self.live_since_dial = False
        self.messages = 0
        self.subscriptions = 0

    @contextmanager
    def bell(self, lease: bytes) -> Iterator[anyio.Event]:
        """An event set when a holder announces the end of ``lease``'s flight."""
        event = anyio.Event()
        self._bells.setdefault(lease, set()).add(event)
        try:
            yield event
        finally:
            bells = self._bells.get(lease)
            if bells is not None:
                bells.discard(event)
                if not bells:
                    del self._bells[lease]

    def ring(self, lease: bytes) -> None:
        """Wake every claim waiting on ``lease`` (a message arrived for it)."""
        self.messages += 1
        for event in self._bells.pop(lease, ()):
            event.set()

    @property
    def armed(self) -> int:
        """Bells armed now (claims waiting on another replica's flight)."""
        return sum(len(bells) for bells in self._bells.values())

    async def listen(self, settings: RedisSettings) -> None:
        """Subscribe and ring bells until cancelled, redialling after any failure."""
        backoff = settings.backoff_initial_s
        while True:
            try:
                await self._subscribe(settings)
            except* Exception as failures:  # any failure ends the subscription: redial
                # (on cancellation coredis' clean-up may fail on a closed connection too:
                # swallowed here, while the cancellation itself goes on)
                _log.debug("flight channel subscription failed: %r", failures.exceptions)
            finally:
                self.live = False
            if self.live_since_dial:
                backoff = settings.backoff_initial_s
            await anyio.sleep(backoff)
            backoff = min(backoff * 2, settings.backoff_max_s)

    async def _subscribe(self, settings: RedisSettings) -> None:
        """One dial: a fresh client (a broken connection must not hold its one slot)."""
        import coredis  # lazily, as the tier does: pure parts import without coredis

        self.live_since_dial = False
        client: coredis.Redis[bytes] = coredis.Redis.from_url(
            settings.url,
            connect_timeout=settings.connect_timeout_s,
            max_connections=1,
            client_name=f"{settings.key_prefix}-flights",
        )
        async with (
            client,
            client.pubsub(
                channels=[flight_channel(settings.key_prefix)],
                ignore_subscribe_messages=True,
                retry_policy=None,  # a failure ends the block: we redial, and know it
                subscription_timeout=max(settings.connect_timeout_s, 1.0),
                # A PING after a quiet second: a dropped connection fails it, and ends
                # the block, within a second or two.
                max_idle_seconds=_KEEPALIVE_S,
            ) as pubsub,
        ):
            self.live = self.live_since_dial = True
            self.subscriptions += 1
            while True:
                message = await pubsub.get_message()
                if message is not None and message["type"] == "message":
                    data = message["data"]
                    self.ring(data if isinstance(data, bytes) else str(data).encode())
