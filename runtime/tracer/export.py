"""Trace records as JSON, JSON lines or CSV text, and JSON text back to records.

All formats share one shape per record (:func:`~runtime.tracer.records.record_to_dict`):
the fields in declaration order, the wall-clock start as ISO 8601 UTC text.

* ``json`` -- an indented JSON array of record objects;
* ``jsonl`` -- one compact, ASCII-escaped JSON object per line;
* ``csv`` -- a header row, then a row per record; ``params`` and ``metadata`` are JSON in
  their cells, ``None`` an empty cell, booleans ``true``/``false``;
* ``chrome`` -- a Chrome trace-event timeline for Perfetto or chrome://tracing
  (:mod:`runtime.tracer.chrome`); it does not read back.

Records are redacted when built, so nothing here can leak what a record does not hold.
Every text is valid UTF-8, even for a record holding a lone surrogate (a JSON escape).
:func:`export_chunks` yields the text in pieces of at most ``chunk_records`` records each
(``chrome``: events), their concatenation the same text as :func:`export`, which joins
them and, given a ``path``, writes it (blocking: call it from a worker thread in async
code).  No piece is one long C call, so a thread exporting lets others have the GIL.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from runtime.tracer.chrome import chrome_trace
from runtime.tracer.records import FIELD_NAMES, TraceRecord, record_from_dict, record_to_dict

__all__ = [
    "CHUNK_RECORDS",
    "FORMATS",
    "check_format",
    "export",
    "export_chunks",
    "records_from_json",
    "records_from_jsonl",
]

FORMATS: tuple[str, ...] = ("json", "jsonl", "csv", "chrome")
CHUNK_RECORDS = 10
"""Records (chrome: events) per piece of :func:`export_chunks` by default: ~2 ms of CPU."""

_NESTED = frozenset({"params", "metadata", "selection"})

# A lone surrogate is a valid Python str but has no UTF-8 encoding.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogates(text: str) -> str:
    # In JSON text a surrogate can only sit inside a string literal, where this escape
    # reads back as the same character; in a CSV cell it is the same spelling.
    return _SURROGATE.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def _dumps(value: Any, *, indent: int | None = None, ascii_only: bool = False) -> str:
    # repr() for anything a hand-built record might hold that JSON cannot encode.
    return json.dumps(value, ensure_ascii=ascii_only, indent=indent, default=repr)


def _csv_cell(name: str, value: Any) -> str:
    if name in _NESTED:
        return _dumps(value)
    if value is None:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def _csv_rows(rows: list[dict[str, Any]], *, header: bool) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    if header:
        writer.writerow(FIELD_NAMES)
    for row in rows:
        writer.writerow([_csv_cell(name, row[name]) for name in FIELD_NAMES])
    return buffer.getvalue()


def _rows(records: Iterable[TraceRecord]) -> list[dict[str, Any]]:
    return [record_to_dict(record) for record in records]


def _batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _json_chunks(records: Sequence[TraceRecord], size: int) -> Iterator[str]:
    # json.dumps(rows, indent=2) is "[\n" + the items, each indented, joined by ",\n" +
    # "\n]"; a batch dumped alike is the same items between the same brackets.
    if not records:
        yield "[]\n"
        return
    opening = "[\n"
    for batch in _batches(records, size):
        body = _dumps(_rows(batch), indent=2)[2:-2]
        yield _escape_surrogates(opening + body)
        opening = ",\n"
    yield "\n]\n"


def _chrome_chunks(trace: dict[str, Any], size: int) -> Iterator[str]:
    # json.dumps of the document, with the event array written a batch at a time.
    opening = "{"
    for key, value in trace.items():
        yield f"{opening}{_dumps(key, ascii_only=True)}: "
        opening = ", "
        if key != "traceEvents":
            yield _dumps(value, ascii_only=True)
            continue
        separator = "["
        for batch in _batches(value, size):
            yield separator + _dumps(list(batch), ascii_only=True)[1:-1]
            separator = ", "
        yield "[]" if separator == "[" else "]"
    yield "}\n" if opening == ", " else "{}\n"


def _record_chunks(records: Sequence[TraceRecord], fmt: str, size: int) -> Iterator[str]:
    if fmt == "json":
        yield from _json_chunks(records, size)
        return
    if fmt == "csv":
        yield _csv_rows([], header=True)
    for batch in _batches(records, size):
        if fmt == "jsonl":
            yield "".join(_dumps(row, ascii_only=True) + "\n" for row in _rows(batch))
        else:
            yield _escape_surrogates(_csv_rows(_rows(batch), header=False))


def check_format(format: str) -> str:
    """The canonical (lower-case) name of ``format``; ``ValueError`` naming the supported
    formats when it is not one of them."""
    fmt = format.lower() if isinstance(format, str) else format
    if fmt not in FORMATS:
        raise ValueError(
            f"unknown trace export format {format!r}; supported formats: {', '.join(FORMATS)}"
        )
    return fmt


def export_chunks(
    records: Iterable[TraceRecord], format: str, *, chunk_records: int = CHUNK_RECORDS
) -> Iterator[str]:
    """``records`` as ``format`` text, in pieces of at most ``chunk_records`` records.

    ``chrome`` lays out the whole timeline (nesting, tracks) when this is called, not
    lazily: in async code call it in a worker thread, then take the pieces anywhere."""
    fmt = check_format(format)
    if isinstance(chunk_records, bool) or not isinstance(chunk_records, int) or chunk_records < 1:
        raise ValueError(f"chunk_records must be an integer >= 1, got {chunk_records!r}")
    if fmt == "chrome":
        return _chrome_chunks(chrome_trace(records), chunk_records)
    return _record_chunks(tuple(records), fmt, chunk_records)


def export(
    records: Iterable[TraceRecord],
    format: str,
    path: str | os.PathLike[str] | None = None,
) -> str:
    """``records`` as ``format`` text (one of :data:`FORMATS`); also written to ``path``."""
    text = "".join(export_chunks(records, format))
    if path is not None:
        with open(path, "w", encoding="utf-8", newline="") as stream:
            stream.write(text)
    return text


def records_from_json(text: str) -> list[TraceRecord]:
    """The records of a ``json`` export (also accepts ``jsonl`` text)."""
    stripped = text.lstrip()
    if not stripped.startswith("["):
        return records_from_jsonl(text)
    loaded = json.loads(text)
    if not isinstance(loaded, list):
        raise ValueError("a JSON trace export is an array of record objects")
    return [record_from_dict(item) for item in loaded]


def records_from_jsonl(text: str) -> list[TraceRecord]:
    """The records of a ``jsonl`` export; blank lines are skipped."""
    # split("\n"), not splitlines(): the latter also splits at U+2028, U+0085, ...
    return [record_from_dict(json.loads(line)) for line in text.split("\n") if line.strip()]
