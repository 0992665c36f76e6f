"""The example service's front door: an ASGI middleware that bounds what a client can cost.

Per HTTP request, in this order: admission (beyond ``max_in_flight`` requests in flight the
answer is 503 with ``Retry-After``), the body limit (a declared or streamed body over
``max_body_bytes`` is 413 -- chunked or not -- raised as :class:`BodyTooLarge` into the
endpoint, which answers it; the rest of the body is read and dropped first, bounded, so
the client still sending reads the answer instead of a reset), the deadline (a request
still running after ``deadline_s`` is cancelled and answered 504), and draining (once
:meth:`ServiceGuard.begin_draining` was called, every answer carries ``Connection: close``).
Every answer it makes itself is JSON ``{"error", "message"}``; an optional access log
writes one line per request.

Invariants: ``in_flight`` counts the requests admitted and not yet finished, whatever way
they finish (answered, cancelled, failed); a request refused at the door never runs the
app; the guard never answers twice (it answers only when the app has not started a reply).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio
import attrs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger("runtime.example.access")

MAX_IN_FLIGHT_LIMIT = 100_000
MAX_DEADLINE_S = 3600.0
# An oversized body is read and dropped (up to this much, for this long) before the 413:
# a server that closes a connection with unread data resets it, and the client, still
# sending, then never reads the answer.
DISCARD_MAX_BYTES = 16 << 20
DISCARD_MAX_S = 5.0


class BodyTooLarge(Exception):
    """The request body is over the service's limit (413)."""


@attrs.frozen(slots=True)
class GuardSettings:
    """The admission settings; each has an upper bound (the constants above)."""

    max_in_flight: int = attrs.field(default=512)
    deadline_s: float = attrs.field(default=60.0)
    max_body_bytes: int = attrs.field(default=1 << 20)
    access_log: bool = False
    drain_quiet_s: float = 0.2
    drain_max_s: float = 0.5

    @max_in_flight.validator
    def _check_in_flight(self, _: Any, value: int) -> None:
        if not 1 <= value <= MAX_IN_FLIGHT_LIMIT:
            raise ValueError(f"max_in_flight must be in [1, {MAX_IN_FLIGHT_LIMIT}], got {value}")

    @deadline_s.validator
    def _check_deadline(self, _: Any, value: float) -> None:
        if not (math.isfinite(value) and 0 < value <= MAX_DEADLINE_S):
            raise ValueError(f"deadline_s must be in (0, {MAX_DEADLINE_S:g}] s, got {value}")


def json_bytes(error: str, message: str) -> bytes:
    return json.dumps({"error": error, "message": message}, separators=(",", ":")).encode()


class ServiceGuard:
    """The middleware state shared by every request of one server (see the module doc)."""

    def __init__(self, settings: GuardSettings | None = None) -> None:
        self.settings = settings or GuardSettings()
        self.in_flight = 0
        self.refused = 0
        self.draining = False
        # Request state for a server whose lifespan this process runs itself (merged
        # into each request's ``scope["state"]``).
        self.state: dict[str, Any] | None = None
        self._last_start = time.monotonic()
        self._drain_began = 0.0

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """``app`` behind the guard."""

        async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            if self.state is not None:
                scope.setdefault("state", {}).update(self.state)
            await self._serve(app, scope, receive, send)

        return guarded

    def begin_draining(self) -> None:
        """From now on every answer asks the client to close its connection."""
        self.draining = True
        self._drain_began = time.monotonic()

    def is_drained(self, now: float) -> bool:
        """Nothing in flight and no request for ``drain_quiet_s`` -- or draining for
        ``drain_max_s`` already."""
        if now - self._drain_began >= self.settings.drain_max_s:
            return True
        quiet_since = max(self._last_start, self._drain_began)
        return not self.in_flight and now - quiet_since >= self.settings.drain_quiet_s

    async def drained(self) -> None:
        """Return once :meth:`is_drained` (polled: the loop stays free meanwhile)."""
        while not self.is_drained(time.monotonic()):  # noqa: ASYNC110 -- a time condition
            await anyio.sleep(0.02)

    def wait_drained(self) -> None:
        """:meth:`drained` for a thread outside the event loop (uvicorn's signal path)."""
        while not self.is_drained(time.monotonic()):
            time.sleep(0.02)

    async def idle(self) -> None:
        """Return once no request is in flight."""
        while self.in_flight:  # noqa: ASYNC110 -- a counter, no event to wait on
            await anyio.sleep(0.02)

    async def _serve(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        settings = self.settings
        self._last_start = time.monotonic()
        started = [False, 0]  # response started, status

        async def guarded_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                started[0], started[1] = True, message["status"]
                if self.draining:
                    headers = [(k, v) for k, v in message.get("headers", []) if k != b"connection"]
                    message = {**message, "headers": [*headers, (b"connection", b"close")]}
            await send(message)

        async def answer(status: int, error: str, text: str, *extra: tuple[bytes, bytes]) -> None:
            body = json_bytes(error, text)
            headers = [(b"content-type", b"application/json"), *extra]
            headers.append((b"content-length", str(len(body)).encode()))
            await guarded_send(
                {"type": "http.response.start", "status": status, "headers": headers}
            )
            await send({"type": "http.response.body", "body": body})

        begun = time.monotonic()
        try:
            if self.in_flight >= settings.max_in_flight:
                self.refused += 1
                limit = settings.max_in_flight
                message = f"{limit} requests in flight already (the service's limit); retry"
                await answer(503, "Overloaded", message, (b"retry-after", b"1"))
                return
            declared = _content_length(scope)
            if declared is not None and declared > settings.max_body_bytes:
                await discard_body(receive)
                await answer(413, "BodyTooLarge", _too_large(settings.max_body_bytes))
                return
            self.in_flight += 1
            try:
                await self._run(
                    app, scope, _limited(receive, settings.max_body_bytes), guarded_send
                )
            finally:
                self.in_flight -= 1
            if not started[0]:
                await answer(504, "DeadlineExceeded", f"no answer within {settings.deadline_s:g} s")
        finally:
            if settings.access_log:
                took = (time.monotonic() - begun) * 1000
                access_log.info(
                    '%s "%s %s" %s %.1fms',
                    _client(scope),
                    scope.get("method"),
                    scope.get("path"),
                    started[1] or "-",
                    took,
                )

    async def _run(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        with anyio.move_on_after(self.settings.deadline_s):
            await app(scope, receive, send)


def _limited(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises :class:`BodyTooLarge` once the body passes ``limit`` bytes
    (a chunked body declares no length: it is counted as it arrives)."""
    seen = 0

    async def counted() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                if message.get("more_body", False):
                    await discard_body(receive)
                raise BodyTooLarge(_too_large(limit))
        return message

    return counted


async def discard_body(receive: Receive) -> None:
    """Read the rest of a request body and drop it (bounded: ``DISCARD_MAX_*``)."""
    dropped = 0
    with anyio.move_on_after(DISCARD_MAX_S):
        while dropped <= DISCARD_MAX_BYTES:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            dropped += len(message.get("body", b""))


def _too_large(limit: int) -> str:
    return f"the request body is over the service's limit of {limit} bytes"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _client(scope: Scope) -> str:
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "-"


class GuardMiddleware:
    """Starlette's middleware shape around :meth:`ServiceGuard.wrap`."""

    def __init__(self, app: ASGIApp, guard: ServiceGuard) -> None:
        self._app = guard.wrap(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)
