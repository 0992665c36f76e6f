"""A trace export builds and formats its records off the event loop (issue 18: a full
ring took ~1 s of the loop, stalling every other request of a service meanwhile)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.tracer import actor as tracer_actor
from runtime.tracer.export import records_from_jsonl

pytestmark = pytest.mark.anyio


async def test_an_export_builds_and_formats_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: dict[str, threading.Thread] = {}
    real_export, real_build = tracer_actor.export, tracer_actor.record_from_report

    def spying_export(*args: Any, **kwargs: Any) -> str:
        seen["format"] = threading.current_thread()
        return real_export(*args, **kwargs)

    def spying_build(*args: Any, **kwargs: Any) -> Any:
        seen["build"] = threading.current_thread()
        return real_build(*args, **kwargs)

    monkeypatch.setattr(tracer_actor, "export", spying_export)
    monkeypatch.setattr(tracer_actor, "record_from_report", spying_build)
    registry = ToolRegistry()

    @registry.tool("X", "echo")
    async def echo(ctx: ToolContext, params: Any) -> Any:
        return dict(params)

    async with open_runtime(registry) as rt:
        assert rt.tracer is not None
        for i in range(5):
            await rt.execute("X", "echo", {"i": i}, ToolContext("t"))
        loop_thread = threading.current_thread()
        text = await rt.tracer.export("jsonl")
        newest = await rt.tracer.export("jsonl", limit=2)
    assert seen["format"] is not loop_thread
    assert seen["build"] is not loop_thread
    assert [r.params for r in records_from_jsonl(text)] == [{"i": i} for i in range(5)]
    assert [r.params for r in records_from_jsonl(newest)] == [{"i": 3}, {"i": 4}]
