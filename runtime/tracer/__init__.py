"""The execution tracer: one record per call, bounded history, percentiles, exports.

The pure core — :class:`TracerState` with its records, stats, sketch and redaction — and
the exports are importable without any optional dependency.  :class:`OtelBridge` needs the
``otel`` extra and is imported only when first touched (``runtime.tracer.OtelBridge``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runtime.tracer.actor import RecordSink, TracerActor
from runtime.tracer.export import FORMATS, export, records_from_json, records_from_jsonl
from runtime.tracer.records import TraceRecord, record_from_dict, record_from_report, record_to_dict
from runtime.tracer.redact import DEFAULT_REDACT_KEYS, REDACTED, Redactor, redact
from runtime.tracer.sketch import QuantileSketch
from runtime.tracer.state import TracerState
from runtime.tracer.stats import OperationStats, TracerStats

if TYPE_CHECKING:
    from runtime.tracer.otel import OtelBridge

__all__ = [
    "DEFAULT_REDACT_KEYS",
    "FORMATS",
    "REDACTED",
    "OperationStats",
    "OtelBridge",
    "QuantileSketch",
    "RecordSink",
    "Redactor",
    "TraceRecord",
    "TracerActor",
    "TracerState",
    "TracerStats",
    "export",
    "record_from_dict",
    "record_from_report",
    "record_to_dict",
    "records_from_json",
    "records_from_jsonl",
    "redact",
]


def __getattr__(name: str) -> Any:
    # The OpenTelemetry SDK is an optional extra: import it only when asked for.
    if name == "OtelBridge":
        from runtime.tracer.otel import OtelBridge

        return OtelBridge
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
