"""Pins for the private attributes of other libraries the runtime still reads.

Each is kept only because ``benchmarks/private_api_bench.py`` shows it saves more than
5 % of a hot path (docs/architecture.md, "Private attributes of other libraries"); each
test here fails if the private version stops agreeing with its public replacement.  The
C JSON encoder's pin is in tests/test_cache_keys.py.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

import runtime.actor as actor_module
from runtime.actor import Actor, ReplySlot

pytestmark = pytest.mark.anyio


class Echo(Actor[int]):
    def handle_call(self, message: int, slot: ReplySlot) -> int:
        return message * 2


@given(queued=st.integers(min_value=0, max_value=20), taken=st.integers(min_value=0, max_value=20))
def test_the_mailbox_buffer_counts_what_the_public_statistics_count(
    queued: int, taken: int
) -> None:
    send, receive = anyio.create_memory_object_stream[int](64)
    with send, receive:
        for item in range(queued):
            send.send_nowait(item)
        for _ in range(min(taken, queued)):
            receive.receive_nowait()
        buffer = actor_module._mailbox_buffer(receive)
        assert buffer is not None, "anyio moved its stream state: the public path is in use"
        assert len(buffer) == receive.statistics().current_buffer_used


async def _serve_many(callers: int) -> list[Any]:
    actor = Echo("echo")
    results: list[Any] = [None] * callers
    async with anyio.create_task_group() as tg:
        await tg.start(actor.serve)

        async def one(index: int) -> None:
            results[index] = await actor.call(index)

        async with anyio.create_task_group() as callers_group:
            for index in range(callers):
                callers_group.start_soon(one, index)
        actor.stop()
    return results


@pytest.mark.parametrize("path", ["private", "public"])
async def test_the_actor_serves_alike_with_and_without_the_buffer_peek(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "public":
        monkeypatch.setattr(actor_module, "_peek_buffer", lambda receive: None)
    assert await _serve_many(50) == [index * 2 for index in range(50)]
