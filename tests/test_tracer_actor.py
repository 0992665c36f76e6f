"""TracerActor: reports by cast, never blocking; drops counted; stats, records, reset, export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from runtime.calls import CallObserver, CallReport, CallStart
from runtime.errors import ActorUnavailable
from runtime.tracer.actor import TracerActor
from runtime.tracer.export import records_from_json
from runtime.tracer.records import TraceRecord

pytestmark = pytest.mark.anyio


def make_report(n: int = 0, **overrides: Any) -> CallReport:
    values: dict[str, Any] = {
        "kind": "tool_call",
        "trace_id": "t-1",
        "span_id": f"s-{n}",
        "parent_span_id": None,
        "tool_type": "CI",
        "operation": "search",
        "tenant_id": "acme",
        "started_at": float(n),
        "started_wall": 1_700_000_000.0 + n,
        "duration_s": 0.002,
        "status": "ok",
    }
    values.update(overrides)
    return CallReport(**values)


def test_it_is_a_call_observer() -> None:
    observer: CallObserver = TracerActor()
    observer.call_started(CallStart("CI", "search", 0.0))  # a no-op, never raises
    observer.call_finished(make_report())  # not running: dropped and counted, never raises
    assert isinstance(observer, TracerActor)
    assert observer.stats().dropped == 1


async def test_reports_become_records_and_stats() -> None:
    tracer = TracerActor(max_records=5)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            for n in range(8):
                tracer.call_finished(make_report(n, status="error" if n % 2 else "ok"))
            records = await tracer.records()
            stats = await tracer.tracer_stats()
            tracer.stop()
    assert [r.span_id for r in records] == ["s-3", "s-4", "s-5", "s-6", "s-7"]
    ci = stats.tool("CI", "search")
    assert ci is not None
    assert (ci.count, ci.ok, ci.error) == (8, 4, 4)
    assert (stats.observed, stats.buffered, stats.dropped) == (8, 5, 0)


async def test_a_flood_never_blocks_and_drops_are_counted_in_stats() -> None:
    tracer = TracerActor(mailbox_size=16)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            # No checkpoint between casts: the tracer cannot run, its mailbox fills up.
            accepted = [tracer.cast(make_report(n)) for n in range(500)]
            stats = await tracer.tracer_stats()
            tracer.stop()
    # The mailbox holds 16; trio may hand one more straight to the waiting receiver.
    assert 16 <= accepted.count(True) <= 17
    assert stats.dropped == accepted.count(False)
    assert stats.observed == accepted.count(True)


async def test_reset_forgets_records_aggregates_and_drops() -> None:
    tracer = TracerActor(mailbox_size=4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            for n in range(10):
                tracer.call_finished(make_report(n))
            before_reset = await tracer.tracer_stats()
            await tracer.reset()
            after_reset = await tracer.tracer_stats()
            tracer.call_finished(make_report(99))
            after_one = await tracer.tracer_stats()
            tracer.stop()
    assert before_reset.dropped >= 5
    assert before_reset.dropped + before_reset.observed == 10
    assert (after_reset.observed, after_reset.dropped, after_reset.tools) == (0, 0, {})
    assert (after_one.observed, after_one.dropped) == (1, 0)


async def test_export_returns_text_and_writes_the_file(tmp_path: Path) -> None:
    tracer = TracerActor()
    target = tmp_path / "traces.json"
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            tracer.call_finished(make_report(1, params={"password": "hunter2"}))
            text = await tracer.export("json", target)
            csv_text = await tracer.export("csv")
            with pytest.raises(ValueError, match="jsonl"):
                await tracer.export("yaml")
            records = await tracer.records()
            tracer.stop()
    assert target.read_text(encoding="utf-8") == text
    assert records_from_json(text) == list(records)
    assert "hunter2" not in text
    assert "hunter2" not in csv_text
    assert json.loads(text)[0]["params"] == {"password": "***"}


@pytest.mark.virtual_time
async def test_durations_come_from_the_monotonic_clock() -> None:
    tracer = TracerActor()
    with anyio.fail_after(10):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            started = anyio.current_time()
            await anyio.sleep(2.5)
            tracer.call_finished(
                make_report(started_at=started, duration_s=anyio.current_time() - started)
            )
            (record,) = await tracer.records()
            tracer.stop()
    assert record.duration_ms == pytest.approx(2500.0, abs=1e-6)


async def test_sinks_get_every_record_and_their_failures_are_counted() -> None:
    seen: list[TraceRecord] = []

    def failing_sink(record: TraceRecord) -> None:
        raise RuntimeError("exporter down")

    tracer = TracerActor(sinks=[seen.append, failing_sink])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            for n in range(3):
                tracer.call_finished(make_report(n))
            stats = await tracer.tracer_stats()
            tracer.stop()
    assert [r.span_id for r in seen] == ["s-0", "s-1", "s-2"]
    assert stats.sink_errors == 3
    assert stats.observed == 3


async def test_calls_after_stop_fail_instead_of_hanging() -> None:
    tracer = TracerActor()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            tracer.stop()
        with pytest.raises(ActorUnavailable):
            await tracer.tracer_stats()
    assert tracer.cast(make_report()) is False


async def test_a_restart_starts_from_a_fresh_state() -> None:
    tracer = TracerActor()
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            tracer.call_finished(make_report(1))
            assert (await tracer.tracer_stats()).observed == 1
            tracer.stop()
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            stats = await tracer.tracer_stats()
            tracer.stop()
    assert stats.observed == 0


# -- caller-side batches (a batch window and no sinks) -------------------------------------


async def test_batched_reports_are_all_seen_by_every_read() -> None:
    tracer = TracerActor(max_records=100, batch_window=0.002, batch_size=8)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            for n in range(20):  # two full batches cast, four reports pending
                tracer.call_finished(make_report(n))
            waiting = tracer.stats().mailbox_used
            stats = await tracer.tracer_stats()
            tracer.call_finished(make_report(20))
            records = await tracer.records()
            tracer.call_finished(make_report(21))
            exported = json.loads(await tracer.export("json"))
            tracer.call_finished(make_report(22))
            await tracer.reset()
            after_reset = await tracer.tracer_stats()
            tracer.stop()
    assert waiting >= 4  # the pending reports count as waiting in the mailbox
    assert (stats.observed, stats.dropped) == (20, 0)
    assert [r.span_id for r in records] == [f"s-{n}" for n in range(21)]
    assert len(exported) == 22
    assert (after_reset.observed, after_reset.buffered) == (0, 0)  # 22 went before the reset


async def test_batches_bound_the_waiting_reports_and_count_each_drop() -> None:
    tracer = TracerActor(batch_window=0.002, mailbox_size=10, batch_size=4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            # No checkpoint: the tracer cannot run, so at most 10 reports may wait (the
            # mailbox bound counts reports, batched or not).  The base actor may count its
            # wake-up token as well.
            for n in range(30):
                tracer.call_finished(make_report(n))
            assert 10 <= tracer.stats().mailbox_used <= 10 + 1
            stats = await tracer.tracer_stats()
            tracer.call_finished(make_report(99))
            later = await tracer.tracer_stats()
            tracer.stop()
    assert (stats.observed, stats.dropped) == (10, 20)
    assert (later.observed, later.dropped) == (11, 20)


async def test_batched_reports_are_dropped_and_counted_when_the_tracer_is_down() -> None:
    tracer = TracerActor(batch_window=0.002, batch_size=4)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            tracer.stop()
        for n in range(9):  # the tracer is down: every one is dropped and counted
            tracer.call_finished(make_report(n))
        assert tracer.stats().dropped == 9
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)  # a restart starts from a fresh state
            tracer.call_finished(make_report(10))
            stats = await tracer.tracer_stats()
            tracer.stop()
    assert (stats.observed, stats.dropped) == (1, 0)  # the new one; drops since the restart


async def test_with_sinks_reports_are_not_batched() -> None:
    seen: list[TraceRecord] = []
    tracer = TracerActor(batch_window=0.002, sinks=[seen.append], batch_size=64)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            tracer.call_finished(make_report(1))
            # No read: the sink gets the record once the actor's pause is over.
            with anyio.move_on_after(1):
                while not seen:
                    await anyio.sleep(0.001)
            tracer.stop()
    assert [r.span_id for r in seen] == ["s-1"]


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        TracerActor(batch_size=0)


# -- the executor sizes results through the tracer; reports do not carry them -------------


async def test_executor_reports_counts_and_sizes_but_not_results() -> None:
    from runtime.executor import Executor
    from runtime.tools import ToolContext, ToolRegistry

    registry = ToolRegistry()

    @registry.tool("CI", "search")
    async def search(ctx: ToolContext, params: Any) -> Any:
        if params["n"] < 0:
            raise ValueError("negative")
        return {"records": [{"id": k} for k in range(params["n"])]}

    class Recorder:
        observes_starts = False
        reports: list[CallReport] = []  # noqa: RUF012 (one test, one recorder)

        def call_started(self, start: CallStart) -> None: ...

        def call_finished(self, report: CallReport) -> None:
            self.reports.append(report)

    tracer = TracerActor(batch_window=0.002, size_every=3)
    recorder = Recorder()
    executor = Executor(registry, observers=[tracer, recorder])
    context = ToolContext(tenant_id="acme")
    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            await group.start(tracer.serve)
            for n in (2, 2, 4, 3, -1):
                await executor.execute_result("CI", "search", {"n": n}, context)
            records = await tracer.records()
            tracer.stop()

    def size(n: int) -> int:
        return len(json.dumps({"records": [{"id": k} for k in range(n)]}, separators=(",", ":")))

    assert all(report.data is None for report in recorder.reports)
    assert [r.result_count for r in records] == [2, 2, 4, 3, None]
    assert [(r.result_size_bytes, r.result_size_estimated) for r in records] == [
        (size(2), False),  # the first result of the operation is measured
        (size(2), True),  # the same count: the measured size
        (size(2) * 2, True),  # scaled by count
        (size(3), False),  # one result in size_every=3 is measured again
        (None, False),  # a failure has no result
    ]
