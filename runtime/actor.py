"""The generic actor: a task that owns some state and serves messages from a mailbox.

The contract is Erlang's gen_server, restated for structured concurrency:

* ``call`` is request/reply.  It ends with the reply, with :class:`ActorUnavailable` (the
  actor died or stopped; its crash is chained as ``__cause__``), or with the caller's own
  timeout -- never with a hang.
* ``cast`` is fire-and-forget: it never blocks; when the mailbox is full the message is
  dropped and counted.  Every cast is handled before any call sent after it.
* When the actor stops -- crash, cancellation or :meth:`Actor.stop` -- it fails every
  deferred reply, drains its mailbox failing each waiting caller, and closes the mailbox
  so later calls fail at once.

Subclasses implement the synchronous hooks :meth:`Actor.handle_call` and
:meth:`Actor.handle_cast` over state only the actor task touches; handlers must not await,
and one that raises crashes the actor.  A handler may return :data:`DEFER` and answer
later with :meth:`Actor.reply` / :meth:`Actor.reply_error`.  Each :meth:`Actor.serve`
(a restart included) opens a fresh mailbox and calls :meth:`Actor.on_start`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sized
from typing import Any, Final, Generic, TypeVar

import anyio
import attrs
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from runtime.errors import ActorUnavailable, CallTimeout

__all__ = ["DEFER", "Actor", "ActorStats", "ReplySlot"]

M = TypeVar("M")


class _Defer:
    __slots__ = ()

    def __repr__(self) -> str:
        return "DEFER"


DEFER: Final = _Defer()
"""Returned by :meth:`Actor.handle_call` to answer later through :meth:`Actor.reply`."""


class ReplySlot:
    """A one-shot reply: set once, by the actor; read once, by the caller.

    ``abandoned`` is set by a caller that stopped waiting (cancelled or timed out), so
    the actor can skip work nobody will read and never hand a duty (such as cache
    leadership) to a caller that has gone.
    """

    __slots__ = ("_event", "abandoned", "error", "value")

    def __init__(self) -> None:
        self._event = anyio.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.abandoned = False

    @property
    def done(self) -> bool:
        return self._event.is_set()

    def set_result(self, value: Any) -> bool:
        """Deliver ``value``; returns False (and changes nothing) if already answered."""
        if self._event.is_set():
            return False
        self.value = value
        self._event.set()
        return True

    def set_error(self, error: BaseException) -> bool:
        """Deliver ``error``, raised in the caller; False if already answered."""
        if self._event.is_set():
            return False
        self.error = error
        self._event.set()
        return True


def _abandon(slot: ReplySlot, on_late_reply: Callable[[Any], None] | None) -> None:
    """A caller stops waiting: mark its slot, and hand back a reply that came anyway."""
    slot.abandoned = True
    if slot.done and slot.error is None and on_late_reply is not None:
        on_late_reply(slot.value)


@attrs.frozen(slots=True)
class ActorStats:
    """A snapshot of an actor's counters.

    ``mailbox_high_water`` is the largest batch drained at once, i.e. the deepest the
    mailbox was seen; ``dropped`` counts casts refused because the mailbox was full or
    the actor was not running.
    """

    name: str
    running: bool
    processed: int
    dropped: int
    mailbox_size: int
    mailbox_used: int
    mailbox_high_water: int
    deferred_replies: int
    starts: int
    death_reason: str | None


def _mailbox_buffer(receive: MemoryObjectReceiveStream[Any]) -> Sized | None:
    """The stream's queued items, read without a raised WouldBlock per empty check.

    anyio's private state (``_state.buffer``): kept because it measured above the 5 %
    bar on the actor round trip (docs/architecture.md, "Private attributes of other
    libraries"); None -- the public path -- when anyio moves it.
    """
    return getattr(getattr(receive, "_state", None), "buffer", None)


_peek_buffer: Callable[[MemoryObjectReceiveStream[Any]], Sized | None] = _mailbox_buffer


_Envelope = tuple[Any, ReplySlot | None]
_WAKE: Final[_Envelope] = (DEFER, None)
"""Sent into the mailbox by the first cast of a batch, to wake an idle actor."""


class Actor(Generic[M]):
    """Base class of the runtime's actors; see the module docstring for the contract."""

    def __init__(
        self, name: str, *, mailbox_size: float = 1024, linger: float = 0.0, cast_batch: int = 1
    ) -> None:
        """``mailbox_size`` bounds the mailbox; ``math.inf`` only where drops are unsafe.

        ``linger`` (seconds): when woken by casts, the actor waits this long for more
        before handling them, so one wake-up serves many (the tracer and the selector
        observe every tool call).  A call ends the wait at once and is served after the
        casts sent before it, so calls are never delayed by ``linger``.

        ``cast_batch``: casts wake the actor only once this many are queued, so a cast
        costs its sender an append and no task switch at all.  Nothing waits for ever: a
        call (a read) is served after every cast queued before it, and a stop drains
        them.  The queued casts count in ``mailbox_used`` and against ``mailbox_size``,
        one by one; an actor that overrides :meth:`handle_casts` gets them as one list.
        """
        if not mailbox_size >= 1:
            raise ValueError(f"mailbox_size must be >= 1, got {mailbox_size}")
        if not linger >= 0:
            raise ValueError(f"linger must be >= 0 seconds, got {linger}")
        if not (isinstance(cast_batch, int) and cast_batch >= 1):
            raise ValueError(f"cast_batch must be an integer >= 1, got {cast_batch!r}")
        self.name = name
        self._mailbox_size = mailbox_size
        self._linger = linger
        self._cast_batch = cast_batch
        self._handles_batches = type(self).handle_casts is not Actor.handle_casts
        self._send: MemoryObjectSendStream[_Envelope] | None = None
        self._receive: MemoryObjectReceiveStream[_Envelope] | None = None
        self._running = False
        self._death: BaseException | str | None = "has not been started"
        self._deferred: set[ReplySlot] = set()
        self._casts: deque[Any] = deque()
        self._wake_sent = False
        self._current: ReplySlot | None = None
        self._processed = 0
        self._dropped = 0
        self._high_water = 0
        self._starts = 0

    # -- hooks for subclasses -------------------------------------------------------

    def handle_call(self, message: M, slot: ReplySlot) -> Any:
        """Answer ``message``: return the reply, or :data:`DEFER` and reply later."""
        raise NotImplementedError(f"{type(self).__name__} does not accept calls")

    def handle_cast(self, message: M) -> None:
        """Act on a fire-and-forget ``message``."""
        raise NotImplementedError(f"{type(self).__name__} does not accept casts")

    def handle_casts(self, messages: list[M]) -> None:
        """Act on the casts queued since the last drain, in order (override to batch)."""
        for message in messages:
            self.handle_cast(message)

    def on_start(self) -> None:
        """Called in the actor task before the first message of each (re)start."""

    def on_stop(self, reason: BaseException | str) -> None:
        """Called once the actor has stopped and failed every waiting caller."""

    # -- the actor task -------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run the actor until it is stopped, cancelled or crashes.

        Start it with ``await task_group.start(actor.serve)``: that returns once the
        mailbox is open, so no call made afterwards can find the actor "not started".
        A crash is re-raised after every caller has been failed, so whoever owns the
        task decides what a crash means (the runtime restarts, a test fails).
        """
        if self._running:
            raise RuntimeError(f"actor {self.name!r} is already running")
        send, receive = anyio.create_memory_object_stream[_Envelope](self._mailbox_size)
        self._send, self._receive = send, receive
        self._deferred = set()
        self._casts.clear()
        self._wake_sent = False
        self._death = None
        self._starts += 1
        reason: BaseException | str = "was stopped"
        try:
            # Inside the try: a start that fails is a crash, so the fresh mailbox is
            # closed and later calls fail at once instead of waiting on nobody.
            self.on_start()
            self._running = True
            task_status.started()
            await self._loop(receive)
        except anyio.get_cancelled_exc_class():
            reason = "was shut down"
            raise
        except BaseException as exc:
            reason = exc
            raise
        finally:
            self._shutdown(reason)

    async def _loop(self, receive: MemoryObjectReceiveStream[_Envelope]) -> None:
        take = self._take
        buffer = _peek_buffer(receive)  # None: take until WouldBlock (the public path)
        while True:
            try:
                envelope = await receive.receive()
                if envelope is _WAKE and self._linger:
                    # Casts are waiting: give more of them time to arrive, so one wake-up
                    # serves many -- but a call ends the pause at once.
                    with anyio.move_on_after(self._linger):
                        envelope = await receive.receive()
            except anyio.EndOfStream:
                self._drain_casts()
                return
            drained = take(envelope)
            while buffer is None or buffer:
                try:
                    envelope = receive.receive_nowait()
                except anyio.WouldBlock:
                    break
                except anyio.EndOfStream:
                    self._drain_casts()
                    return
                drained += take(envelope)
            drained += self._drain_casts()
            if drained > self._high_water:
                self._high_water = drained

    def _take(self, envelope: _Envelope) -> int:
        if envelope is _WAKE:
            return 0
        message, slot = envelope
        # Held as current before any handler runs, so a crash in one fails this caller.
        self._current = slot
        if self._casts:
            self._drain_casts()  # casts sent before this call are handled before it
        self._processed += 1
        if slot is None or slot.abandoned:
            self._current = None
            return 1
        reply = self.handle_call(message, slot)
        self._current = None
        if reply is DEFER:
            self._deferred.add(slot)
        else:
            slot.set_result(reply)
        return 1

    def _drain_casts(self) -> int:
        casts = self._casts
        self._wake_sent = False
        if self._handles_batches:
            if not casts:
                return 0
            batch = list(casts)
            casts.clear()
            self._processed += len(batch)
            try:
                self.handle_casts(batch)
            except BaseException:
                self._dropped += len(batch)  # a crash loses the batch: count each cast
                raise
            return len(batch)
        handled = 0
        while casts:
            message = casts.popleft()
            self._processed += 1
            handled += 1
            self.handle_cast(message)
        return handled

    def _shutdown(self, reason: BaseException | str) -> None:
        self._running = False
        self._death = reason
        self._dropped += len(self._casts)  # nobody waits on a cast; count what is lost
        self._casts.clear()
        self._wake_sent = False
        if self._send is not None:
            self._send.close()
        waiting: list[ReplySlot] = []
        if self._current is not None:
            waiting.append(self._current)
            self._current = None
        waiting.extend(self._deferred)
        self._deferred = set()
        if self._receive is not None:
            while True:
                try:
                    _, slot = self._receive.receive_nowait()
                except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
                    break
                if slot is not None:
                    waiting.append(slot)
            self._receive.close()
        for slot in waiting:
            slot.set_error(self._unavailable())
        self.on_stop(reason)

    def stop(self) -> None:
        """Stop gracefully: messages already queued are served, later ones fail at once."""
        if self._send is not None:
            self._send.close()

    # -- talking to the actor -------------------------------------------------------

    def _unavailable(self) -> ActorUnavailable:
        error = ActorUnavailable(self.name, self._death)
        # The cause is the actor's death, not the closed stream the caller tripped over.
        error.__cause__ = self._death if isinstance(self._death, BaseException) else None
        error.__suppress_context__ = True
        return error

    async def call(
        self,
        message: M,
        *,
        timeout: float | None = None,
        on_late_reply: Callable[[Any], None] | None = None,
    ) -> Any:
        """Send ``message`` and wait for the reply.

        ``on_late_reply`` runs (synchronously) when this caller is cancelled or times out
        after the actor had already answered: it lets a caller give back a duty the
        reply handed it -- a cache leader's lease -- instead of dropping it.
        """
        if timeout is None:
            return await self._call(message, on_late_reply)
        # move_on_after rather than fail_after: a reply may itself be a TimeoutError (a
        # follower receiving its leader's ToolTimeout) and must not be mistaken for ours.
        with anyio.move_on_after(timeout):
            return await self._call(message, on_late_reply)
        raise CallTimeout(self.name, timeout)

    async def _call(self, message: M, on_late_reply: Callable[[Any], None] | None) -> Any:
        send = self._send
        if send is None:
            raise self._unavailable()
        slot = ReplySlot()
        try:
            send.send_nowait((message, slot))
        except anyio.WouldBlock:
            try:
                await send.send((message, slot))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                raise self._unavailable()  # noqa: B904 (cause set inside)
            except BaseException:
                # Cancelled while waiting for room: the actor may already have taken the
                # message (and answered it) before this task ran again.
                _abandon(slot, on_late_reply)
                raise
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            raise self._unavailable()  # noqa: B904 (cause set inside)
        try:
            await slot._event.wait()
        except BaseException:
            _abandon(slot, on_late_reply)
            raise
        if slot.error is not None:
            raise slot.error
        return slot.value

    def cast(self, message: M, *, bounded: bool = True) -> bool:
        """Deliver ``message`` without waiting; False (and counted) if it was dropped.

        Casts queue beside the mailbox rather than in it, and only the first cast of a
        batch wakes the actor: a cast costs an append, not a task switch.  They are
        handled in order, and always before any call that was sent after them.

        ``bounded=False`` skips the mailbox bound, for a message that settles one the
        actor already accepted (a call's end after its start): dropping it would leave
        the first unsettled for ever, and there are never more of them than of those.
        A stopped actor still drops it.
        """
        if not self._running or (bounded and len(self._casts) >= self._mailbox_size):
            self._dropped += 1
            return False
        self._casts.append(message)
        if (
            not self._wake_sent
            and self._send is not None
            and (self._cast_batch == 1 or len(self._casts) >= self._cast_batch)
        ):
            try:
                self._send.send_nowait(_WAKE)
                self._wake_sent = True
            except anyio.WouldBlock:
                pass  # a full mailbox means a busy actor: it drains casts after its batch
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                pass  # stopping: the loop drains the casts on its way out
        return True

    # -- for subclasses answering deferred calls ------------------------------------

    def reply(self, slot: ReplySlot, value: Any) -> None:
        """Answer a call that :meth:`handle_call` deferred."""
        self._deferred.discard(slot)
        slot.set_result(value)

    def reply_error(self, slot: ReplySlot, error: BaseException) -> None:
        """Fail a call that :meth:`handle_call` deferred; ``error`` is raised in the caller."""
        self._deferred.discard(slot)
        slot.set_error(error)

    # -- introspection ----------------------------------------------------------------

    def stats(self) -> ActorStats:
        used = len(self._casts)
        if self._receive is not None and self._running:
            used += self._receive.statistics().current_buffer_used
        death = self._death
        return ActorStats(
            name=self.name,
            running=self._running,
            processed=self._processed,
            dropped=self._dropped,
            mailbox_size=int(self._mailbox_size) if not math.isinf(self._mailbox_size) else -1,
            mailbox_used=used,
            mailbox_high_water=self._high_water,
            deferred_replies=len(self._deferred),
            starts=self._starts,
            death_reason=(
                None
                if death is None
                else f"{type(death).__name__}: {death}"
                if isinstance(death, BaseException)
                else death
            ),
        )
