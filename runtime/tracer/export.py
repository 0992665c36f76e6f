"""Trace records as JSON, JSON lines or CSV text, and JSON text back to records.

All three formats share one shape per record (:func:`~runtime.tracer.records.record_to_dict`):
the :class:`~runtime.tracer.records.TraceRecord` fields in declaration order, with the wall
clock start as ISO 8601 UTC text (``2025-01-02T03:04:05.123456Z``).

* ``json`` — a JSON array of record objects (indented for people);
* ``jsonl`` — one compact JSON object per line, for streaming into log pipelines;
  ASCII-escaped, so no Unicode line separator (U+2028, U+0085) can break a line reader;
* ``csv`` — a header row of the field names, then one row per record; ``params`` and
  ``metadata`` are JSON-encoded into their cells, ``None`` is an empty cell, booleans are
  ``true``/``false``;
* ``chrome`` — a Chrome trace-event timeline for Perfetto or chrome://tracing (one
  complete event per record; see :mod:`runtime.tracer.chrome`); it does not read back.

Records are already redacted when they are built, so nothing here can leak a secret that
a record does not hold.

Every text is valid UTF-8, even for a record holding a lone surrogate (JSON lets a
client send ``"\\ud800"``, and a tenant or param is kept as sent): ``json`` writes it as
the escape ``\\ud800``, which reads back as the same string, and ``csv`` as that text.

:func:`export` always returns the text; given a ``path`` it also writes the text there
(UTF-8).  Writing is blocking file I/O: from async code call it in a worker thread (the
tracer actor's ``export`` does).
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable
from typing import Any

from runtime.tracer.chrome import chrome_trace
from runtime.tracer.records import FIELD_NAMES, TraceRecord, record_from_dict, record_to_dict

__all__ = ["FORMATS", "check_format", "export", "records_from_json", "records_from_jsonl"]

FORMATS: tuple[str, ...] = ("json", "jsonl", "csv", "chrome")

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


def _to_csv(rows: list[dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(FIELD_NAMES)
    for row in rows:
        writer.writerow([_csv_cell(name, row[name]) for name in FIELD_NAMES])
    return buffer.getvalue()


def _rows(records: Iterable[TraceRecord]) -> list[dict[str, Any]]:
    return [record_to_dict(record) for record in records]


def check_format(format: str) -> str:
    """The canonical (lower-case) name of ``format``; ``ValueError`` naming the supported
    formats when it is not one of them."""
    fmt = format.lower() if isinstance(format, str) else format
    if fmt not in FORMATS:
        raise ValueError(
            f"unknown trace export format {format!r}; supported formats: {', '.join(FORMATS)}"
        )
    return fmt


def export(
    records: Iterable[TraceRecord],
    format: str,
    path: str | os.PathLike[str] | None = None,
) -> str:
    """``records`` as ``format`` text (one of :data:`FORMATS`); also written to ``path``."""
    fmt = check_format(format)
    if fmt == "chrome":
        text = _dumps(chrome_trace(records), ascii_only=True) + "\n"
    elif fmt == "json":
        text = _escape_surrogates(_dumps(_rows(records), indent=2) + "\n")
    elif fmt == "jsonl":
        text = "".join(_dumps(row, ascii_only=True) + "\n" for row in _rows(records))
    else:
        text = _escape_surrogates(_to_csv(_rows(records)))
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
