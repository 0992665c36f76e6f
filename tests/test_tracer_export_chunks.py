"""A trace export in pieces (issue 18: a full ring formatted in one go held the GIL, or the
loop, for ~1 s and stalled /healthz).

``export_chunks`` pieces join to exactly the text the single-shot formatting made before,
for every format and any piece size; ``stream_export`` yields the same pieces with the
event loop given back between them (a concurrent task runs between any two pieces).
"""

from __future__ import annotations

import json
import threading
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_tracer_export import make_report, sample_records

from runtime.calls import CallReport
from runtime.tracer import stream as tracer_stream
from runtime.tracer.chrome import chrome_trace
from runtime.tracer.export import (
    FORMATS,
    _csv_rows,
    _dumps,
    _escape_surrogates,
    _rows,
    export,
    export_chunks,
    records_from_json,
)
from runtime.tracer.records import TraceRecord, record_from_report
from runtime.tracer.stream import stream_export


def single_shot(records: list[TraceRecord], fmt: str) -> str:
    """The export as it was made before pieces: one dumps / one writer for the lot."""
    if fmt == "chrome":
        return _dumps(chrome_trace(records), ascii_only=True) + "\n"
    if fmt == "json":
        return _escape_surrogates(_dumps(_rows(records), indent=2) + "\n")
    if fmt == "jsonl":
        return "".join(_dumps(row, ascii_only=True) + "\n" for row in _rows(records))
    return _escape_surrogates(_csv_rows(_rows(records), header=True))


def many_records(count: int) -> list[TraceRecord]:
    return [
        record_from_report(make_report(n, params={"n": n}, parent_span_id=None))
        for n in range(count)
    ]


# Text with lone surrogates too: each piece must escape them as the whole text did.
texts = st.text(st.characters(codec=None) | st.sampled_from('\ud800\udfff,"\n'), max_size=6)
reports = st.builds(
    make_report,
    st.integers(0, 1000),
    status=st.sampled_from(["ok", "error", "timeout", "cancelled"]),
    kind=st.sampled_from(["tool_call", "step", "pipeline"]),
    tenant_id=texts,
    started_at=st.floats(-1e6, 1e6),
    duration_s=st.floats(0, 1e3),
    error_message=st.none() | texts,
    params=st.dictionaries(texts, texts | st.integers() | st.none(), max_size=3),
)


@given(st.lists(reports, max_size=12), st.integers(1, 5), st.sampled_from(FORMATS))
def test_pieces_join_to_the_single_shot_text(
    generated: list[CallReport], chunk_records: int, fmt: str
) -> None:
    records = [record_from_report(report) for report in generated]
    pieces = list(export_chunks(records, fmt, chunk_records=chunk_records))
    assert "".join(pieces) == single_shot(records, fmt)
    assert export(records, fmt) == single_shot(records, fmt)
    for piece in pieces:
        piece.encode("utf-8")  # every piece is valid UTF-8 on its own (sent as it comes)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_a_piece_holds_at_most_chunk_records_records(fmt: str) -> None:
    records = many_records(23)
    pieces = list(export_chunks(records, fmt, chunk_records=5))
    with_records = [p for p in pieces if "s-" in p]  # every record's span id is s-<n>
    assert len(with_records) == 5  # ceil(23 / 5)
    assert [p.count('"s-') + p.count(",s-") for p in with_records] == [5, 5, 5, 5, 3]
    if fmt != "csv":
        assert records_from_json("".join(pieces)) == records


def test_chrome_events_come_a_batch_at_a_time() -> None:
    records = many_records(12)
    pieces = list(export_chunks(records, "chrome", chunk_records=4))
    document = json.loads("".join(pieces))
    events = [e for e in document["traceEvents"] if e["ph"] == "X"]
    assert len(events) == 12
    assert max(p.count('"ph": ') for p in pieces) <= 4


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "50"])
def test_a_bad_chunk_size_is_a_value_error_naming_it(bad: Any) -> None:
    with pytest.raises(ValueError, match="chunk_records"):
        export_chunks(sample_records(), "json", chunk_records=bad)


@pytest.mark.anyio
@pytest.mark.parametrize("fmt", FORMATS)
async def test_the_stream_is_the_export_with_the_loop_free_between_pieces(fmt: str) -> None:
    records = many_records(40)
    ticks = 0
    seen_at: list[int] = []
    done = anyio.Event()

    async def ticking() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(ticking)
        await anyio.lowlevel.checkpoint()
        pieces = []
        async for piece in stream_export(records, fmt, chunk_records=4):
            seen_at.append(ticks)
            pieces.append(piece)
        done.set()
    assert "".join(pieces) == export(records, fmt)
    assert len(pieces) >= 10
    # The other task ran while the stream went on: without a checkpoint between pieces the
    # whole stream is one step of the loop and ``ticks`` never moves.  (trio runs the tasks
    # of one scheduling batch in a random order, so it is checked over two pieces.)
    assert all(later > earlier for earlier, later in zip(seen_at, seen_at[2:], strict=False))
    assert seen_at[-1] - seen_at[0] >= len(pieces) - 2


@pytest.mark.anyio
async def test_the_chrome_layout_is_made_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads: list[threading.Thread] = []
    real = tracer_stream.export_chunks

    def spying(*args: Any, **kwargs: Any) -> Any:
        threads.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(tracer_stream, "export_chunks", spying)
    text = "".join([piece async for piece in stream_export(many_records(3), "chrome")])
    assert json.loads(text)["otherData"]["records"] == 3
    assert threads
    assert threads[0] is not threading.current_thread()


@pytest.mark.anyio
async def test_an_unknown_format_fails_before_any_piece() -> None:
    pieces = stream_export(sample_records(), "xml")
    with pytest.raises(ValueError, match="xml"):
        await pieces.__anext__()
