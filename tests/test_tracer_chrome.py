"""The Chrome trace-event export: the format's fields, children inside their parents,
tracks that never overlap but by nesting -- over hand-made and generated record sets,
and over the records of a real composition run."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime import Parallel, Pipeline, Step, ToolContext, ToolRegistry, open_runtime
from runtime.ops.config import ops_defaults
from runtime.tracer import export
from runtime.tracer.chrome import QUANTUM_US, chrome_trace
from runtime.tracer.records import TraceRecord

STATUSES = ("ok", "error", "timeout", "cancelled")


def record(
    span: str,
    parent: str | None,
    start: float,
    ms: float,
    *,
    kind: str = "tool_call",
    status: str = "ok",
    prefix: str = "p1",
    **extra: Any,
) -> TraceRecord:
    return TraceRecord(
        trace_id="t1",
        span_id=f"{prefix}-{span}",
        parent_span_id=None if parent is None else f"{prefix}-{parent}",
        kind=kind,  # type: ignore[arg-type]
        tool_type="CI",
        operation=f"op{span}",
        tenant="acme",
        started_at=start,
        started_wall=1_700_000_000.0 + start,
        duration_ms=ms,
        status=status,  # type: ignore[arg-type]
        **extra,
    )


def complete_events(document: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in document["traceEvents"] if e["ph"] == "X"]


def check_format(document: dict[str, Any], records: list[TraceRecord]) -> None:
    """Every record is one complete event with the format's fields; children lie in their
    parent's interval; on one track, events are disjoint or nested."""
    events = complete_events(document)
    assert len(events) == len(records)
    by_span = {e["args"]["span_id"]: e for e in events}
    for event in events:
        for key in ("ph", "ts", "dur", "pid", "tid", "name"):
            assert key in event, (key, event)
        assert event["ts"] >= 0
        assert event["dur"] >= 0
        parent = by_span.get(event["args"].get("parent_span_id"))
        if parent is not None:
            assert parent["ts"] <= event["ts"], (parent, event)
            assert event["ts"] + event["dur"] <= parent["ts"] + parent["dur"], (parent, event)
    tracks: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        tracks[(event["pid"], event["tid"])].append(event)
    for track in tracks.values():
        open_ends: list[float] = []
        for event in sorted(track, key=lambda e: (e["ts"], -e["dur"])):
            while open_ends and open_ends[-1] <= event["ts"]:
                open_ends.pop()
            end = event["ts"] + event["dur"]
            assert not open_ends or end <= open_ends[-1], "overlap on a track without nesting"
            open_ends.append(end)


def test_a_run_its_parallel_steps_and_their_calls() -> None:
    records = [
        record("1", None, 10.0, 100.0, kind="pipeline"),
        record("2", "1", 10.001, 50.0, kind="step"),
        record("3", "2", 10.002, 40.0),
        record("4", "1", 10.001, 80.0, kind="step", status="error"),
        record("5", "4", 10.003, 70.0, status="error", error_type="KeyError"),
    ]
    document = chrome_trace(records)
    check_format(document, records)
    events = {e["name"]: e for e in complete_events(document)}
    assert events["pipeline op1"]["ts"] == 0
    assert events["pipeline op1"]["dur"] == 100_000
    assert events["step op2"]["cat"] == "step"
    # Parallel steps side by side: two tracks; each call on its step's track.
    assert events["step op2"]["tid"] != events["step op4"]["tid"]
    assert events["CI.op3"]["tid"] == events["step op2"]["tid"]
    assert events["CI.op5"]["tid"] == events["step op4"]["tid"]
    assert events["CI.op5"]["cname"] == "terrible"
    assert events["CI.op5"]["args"]["error"].startswith("KeyError")
    names = [e["args"]["name"] for e in document["traceEvents"] if e["ph"] == "M"]
    assert "runtime p1" in names


def test_sequential_steps_stack_under_their_run_on_one_track() -> None:
    records = [
        record("1", None, 0.0, 30.0, kind="pipeline"),
        record("2", "1", 0.001, 10.0, kind="step"),
        record("3", "1", 0.012, 10.0, kind="step"),
    ]
    document = chrome_trace(records)
    check_format(document, records)
    assert len({e["tid"] for e in complete_events(document)}) == 1


def test_a_child_running_past_its_parent_is_cut_to_the_parent() -> None:
    records = [record("1", None, 0.0, 10.0), record("2", "1", 0.005, 10.0)]
    document = chrome_trace(records)
    check_format(document, records)
    child = next(e for e in complete_events(document) if e["name"] == "CI.op2")
    assert child["dur"] == 5000
    assert child["args"]["duration_ms"] == 10.0  # the recorded figure is kept


def test_processes_are_told_apart_by_their_span_id_prefix() -> None:
    records = [record("1", None, 5.0, 1.0, prefix="a"), record("1", None, 900.0, 1.0, prefix="b")]
    # Different monotonic clocks, aligned by the wall clock (both start at wall + 0 s).
    records[1] = TraceRecord(**{**_fields(records[1]), "started_wall": records[0].started_wall})
    events = complete_events(chrome_trace(records))
    assert {e["pid"] for e in events} == {1, 2}
    assert [e["ts"] for e in events] == [0, 0]


def _fields(rec: TraceRecord) -> dict[str, Any]:
    return {name: getattr(rec, name) for name in rec.__slots__ if not name.startswith("__")}


def test_the_export_is_json_text_with_trace_events(tmp_path: Any) -> None:
    records = [record("1", None, 0.0, 1.0, params={"password": "***", "q": "x"})]
    text = export(records, "chrome", tmp_path / "trace.json")
    assert (tmp_path / "trace.json").read_text() == text
    document = json.loads(text)
    assert document["displayTimeUnit"] == "ms"
    (event,) = complete_events(document)
    assert event["args"]["params"] == {"password": "***", "q": "x"}
    assert export([], "chrome").strip() == json.dumps(
        {"traceEvents": [], "displayTimeUnit": "ms", "otherData": {"records": 0}}
    )


@st.composite
def record_sets(draw: st.DrawFn) -> list[TraceRecord]:
    """Span trees of a few processes: children start inside their parent, but may end
    past it (clock jitter), with any status and durations down to zero."""
    count = draw(st.integers(1, 40))
    records: list[TraceRecord] = []
    for n in range(count):
        prefix = draw(st.sampled_from(["a", "b"]))
        mine = [r for r in records if r.span_id.startswith(prefix + "-")]
        parent = draw(st.none() | st.sampled_from(mine)) if mine else None
        if parent is None:
            start = draw(st.floats(0, 10, allow_nan=False))
        else:
            start = parent.started_at + draw(st.floats(0, 1.0)) * parent.duration_ms / 1000
        records.append(
            record(
                str(n),
                None if parent is None else parent.span_id.split("-", 1)[1],
                start,
                draw(st.floats(0, 2000, allow_nan=False)),
                kind=draw(st.sampled_from(["tool_call", "step", "pipeline"])),
                status=draw(st.sampled_from(STATUSES)),
                prefix=prefix,
            )
        )
    return draw(st.permutations(records))


@given(record_sets())
def test_generated_record_sets_keep_the_format_and_the_nesting(records: list[TraceRecord]) -> None:
    document = json.loads(export(records, "chrome"))
    check_format(document, records)
    for event in complete_events(document):
        assert (event["ts"] / QUANTUM_US).is_integer()
        assert (event["dur"] / QUANTUM_US).is_integer()


@pytest.mark.anyio
async def test_a_real_fan_out_run_exports_nested_and_side_by_side() -> None:
    registry = ToolRegistry()

    @registry.tool("CI", "get")
    async def get(ctx: ToolContext, params: dict[str, Any]) -> Any:
        await anyio.sleep(0.01)
        return {"ci_id": params["ci_id"]}

    pipeline = Pipeline(
        "fan_out",
        [
            Step("first", "CI", "get", params={"ci_id": 0}),
            Parallel(
                Step("left", "CI", "get", params={"ci_id": 1}),
                Step("right", "CI", "get", params={"ci_id": 2}),
            ),
        ],
    )
    with anyio.fail_after(10):
        async with open_runtime(registry, ops_defaults()) as rt:
            assert rt.tracer is not None
            await rt.compose(pipeline, {}, ToolContext(tenant_id="acme"))
            records = list(await rt.tracer.records())
            document = json.loads(await rt.tracer.export("chrome"))
    check_format(document, records)
    events = {e["name"]: e for e in complete_events(document)}
    assert events["step left"]["tid"] != events["step right"]["tid"]
    assert {e["pid"] for e in events.values()} == {1}
