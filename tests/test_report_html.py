"""The report page: self-contained (fetches nothing), its sections and SVG charts,
escaped text, redacted params, and small on a full ring."""

from __future__ import annotations

import re
from typing import Any

import anyio
import pytest
from report_fixtures import real_records

from runtime.report import build_report, render_report, report_html, write_report
from runtime.tracer.records import TraceRecord

SECTIONS = ("summary", "operations", "waterfalls", "selector", "slowest", "failing")


def assert_self_contained(page: str) -> None:
    """No attribute or CSS that makes a browser fetch anything."""
    # The one link allowed: an empty inline icon (else a browser asks the server for one).
    lowered = page.lower().replace('<link rel="icon" href="data:,">', "")
    for marker in ("src=", "href=", "url(", "@import", "<link", "<script", "<iframe"):
        assert marker not in lowered, marker
    assert "http://" not in lowered
    assert "https://" not in lowered


@pytest.mark.anyio
async def test_a_session_report_has_every_section_and_charts() -> None:
    with anyio.fail_after(20):
        records, _ = await real_records()
    page = report_html(records, title="Session <one>")
    assert_self_contained(page)
    assert page.startswith("<!DOCTYPE html>")
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert "<title>Session &lt;one&gt;</title>" in page
    assert page.count("<svg") >= 4
    assert 'class="chart waterfall"' in page
    assert "step right" in page
    assert "hunter2" not in page
    assert "sekrit" not in page
    assert "***" in page


def record(n: int, **extra: Any) -> TraceRecord:
    values: dict[str, Any] = {
        "trace_id": "t",
        "span_id": f"p-{n}",
        "parent_span_id": None,
        "kind": "tool_call",
        "tool_type": "CI",
        "operation": "search",
        "tenant": "acme",
        "started_at": n / 100,
        "started_wall": 1_700_000_000.0 + n / 100,
        "duration_ms": 1.0 + n % 50,
        "status": "ok",
    }
    values.update(extra)
    return TraceRecord(**values)


def test_text_from_records_is_escaped() -> None:
    hostile = '<img src=x onerror="alert(1)">'
    page = report_html(
        [
            record(1, tool_type=hostile, status="error", error_message=hostile),
            record(2, kind="pipeline", operation=hostile, params={"q": hostile}),
        ]
    )
    assert hostile not in page
    assert "&lt;img src=x" in page
    assert "<img" not in page


def test_an_empty_report_still_renders() -> None:
    page = report_html([])
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert "no composition runs" in page
    assert_self_contained(page)


def test_render_takes_the_data_built_once() -> None:
    records = [record(n) for n in range(20)]
    assert render_report(build_report(records)) == report_html(records)


def ring(size: int) -> list[TraceRecord]:
    """A full ring: tool calls under many operations, runs with steps, failures."""
    records = []
    for n in range(size):
        if n % 50 == 0:
            records.append(
                record(
                    n,
                    kind="pipeline",
                    operation=f"run{n % 3}",
                    tool_type="pipeline",
                    metadata={"steps": {"a": "ok", "b": "not_run"}},
                )
            )
        elif n % 50 == 1:
            records.append(record(n, kind="step", operation="a", parent_span_id=f"p-{n - 1}"))
        else:
            records.append(
                record(
                    n,
                    tool_type=f"T{n % 9}",
                    operation=f"op{n % 4}",
                    status="ok" if n % 17 else "error",
                    params={"keywords": ["x" * 40] * 5, "token": "t0ps3cret"},
                    metadata={"cache": ("hit", "miss", "coalesced", "bypass")[n % 4]},
                )
            )
    return records


def test_a_full_ring_of_ten_thousand_records_stays_small(tmp_path: Any) -> None:
    page = write_report(ring(10_000), tmp_path / "report.html")
    size = (tmp_path / "report.html").stat().st_size
    assert size == len(page.encode())
    assert size < 2_000_000
    assert len(re.findall("<svg", page)) >= 36 * 2
    assert "t0ps3cret" not in page


def test_a_lone_surrogate_is_written_escaped(tmp_path: Any) -> None:
    write_report([record(1, tenant="bad\ud800")], tmp_path / "r.html")
    assert "bad\\ud800" in (tmp_path / "r.html").read_text(encoding="utf-8")
