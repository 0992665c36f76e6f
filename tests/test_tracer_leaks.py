"""Secrets that must not leak: key spellings, and secret values echoed in error messages."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from runtime import ToolContext, ToolRegistry, open_runtime
from runtime.calls import CallReport
from runtime.tracer.export import FORMATS, export
from runtime.tracer.records import MAX_ERROR_CHARS, record_from_report
from runtime.tracer.redact import REDACTED, Redactor, redact


def make_report(**overrides: Any) -> CallReport:
    values: dict[str, Any] = {
        "kind": "tool_call",
        "trace_id": "t-1",
        "span_id": "s-1",
        "parent_span_id": None,
        "tool_type": "CI",
        "operation": "search",
        "tenant_id": "acme",
        "started_at": 1.0,
        "started_wall": 1_700_000_000.5,
        "duration_s": 0.01,
        "status": "error",
        "error_type": "PermissionError",
    }
    values.update(overrides)
    return CallReport(**values)


@pytest.mark.parametrize(
    "key",
    ["privateKey", "PrivateKey", "private.key", "ssh-private-key", "api.key", "Api.Key"],
)
def test_camel_case_and_dotted_keys_are_redacted(key: str) -> None:
    assert redact({key: "-----BEGIN KEY-----", "limit": 5}) == {key: REDACTED, "limit": 5}


def test_separator_free_fragments_still_match_separated_keys() -> None:
    redactor = Redactor(["private_key"])
    assert redactor.is_secret("PRIVATE-KEY")
    assert redactor.is_secret("privatekey")
    assert not redactor.is_secret("private")


def test_secret_values_are_scrubbed_from_the_error_message() -> None:
    record = record_from_report(
        make_report(
            params={
                "auth": {"password": "hunter2"},
                "headers": {"Authorization": ["Bearer abc.def"]},
                "ci": "web-01",
            },
            metadata={"steps": {"rotate_token": "web-01"}},
            error_message="login refused for 'hunter2' with Bearer abc.def on web-01",
        )
    )
    assert record.params["auth"] == {"password": REDACTED}
    assert record.metadata == {"steps": {"rotate_token": REDACTED}}
    assert record.error_message == f"login refused for '{REDACTED}' with {REDACTED} on web-01"


def test_the_longest_secret_is_scrubbed_first_and_before_the_cut() -> None:
    secret = "s3cr3t-" * 10
    message = "x" * (MAX_ERROR_CHARS - 20) + secret
    record = record_from_report(
        make_report(params={"token": secret, "api_key": secret[:8]}, error_message=message)
    )
    assert record.error_message is not None
    assert "s3cr3t" not in record.error_message
    assert record.error_message.endswith(REDACTED)


def test_short_or_non_secret_values_leave_the_message_alone() -> None:
    message = "no rows for web-01 (limit 5)"
    record = record_from_report(
        make_report(params={"token": "", "ci": "web-01", "limit": 5}, error_message=message)
    )
    assert record.error_message == message


@pytest.mark.parametrize("fmt", FORMATS)
def test_no_export_format_leaks_a_secret_from_an_error_message(fmt: str) -> None:
    record = record_from_report(
        make_report(params={"client_secret": "sk-live-123"}, error_message="bad sk-live-123")
    )
    assert "sk-live-123" not in export([record], fmt)


def test_the_otel_span_does_not_leak_a_secret_from_an_error_message() -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from runtime.tracer.otel import OtelBridge

    exporter = InMemorySpanExporter()
    bridge = OtelBridge([SimpleSpanProcessor(exporter)], include_arguments=True)
    bridge.emit(
        record_from_report(
            make_report(params={"password": "hunter2"}, error_message="denied: hunter2")
        )
    )
    bridge.shutdown()
    (span,) = exporter.get_finished_spans()
    texts = [str(span.status.description), *map(str, (span.attributes or {}).values())]
    for event in span.events:
        texts.extend(map(str, (event.attributes or {}).values()))
    assert all("hunter2" not in text for text in texts)
    assert span.status.description == f"denied: {REDACTED}"


@pytest.mark.anyio
async def test_a_tool_echoing_its_secret_param_does_not_leak_it() -> None:
    registry = ToolRegistry()

    @registry.tool("CI", "search")
    async def search(ctx: ToolContext, params: dict[str, Any]) -> Any:
        raise PermissionError(f"login refused for {params['auth']['password']!r}")

    with anyio.fail_after(10):
        async with open_runtime(registry) as rt:
            assert rt.tracer is not None
            with pytest.raises(Exception, match="hunter2"):
                await rt.execute(
                    "CI", "search", {"auth": {"password": "hunter2"}}, ToolContext(tenant_id="a")
                )
            (record,) = await rt.tracer.records()
            texts = [await rt.tracer.export(fmt) for fmt in FORMATS]
    assert record.error_message == f"login refused for '{REDACTED}'"
    assert all("hunter2" not in text for text in texts)


@pytest.mark.parametrize("fragment", ["_", "-.", " "])
def test_a_fragment_of_separators_only_is_refused_not_made_to_match_every_key(
    fragment: str,
) -> None:
    with pytest.raises(ValueError, match="letter or digit"):
        Redactor(["token", fragment])
