"""The pages in a real browser: headless Chromium opens the trace report (a file) and the
example service's /dashboard and /traces/report, takes screenshots, and checks there is no
console error, the expected sections and SVG charts are there, and nothing was fetched
from outside loopback.  Skips without Chromium locally (`make chromium`), fails in CI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from browser import Browser, chromium_or_skip, is_local
from report_fixtures import real_records
from test_apps_servers import Server, tiny_db

from runtime.report import write_report

__all__ = ["tiny_db"]  # a fixture, shared

pytestmark = pytest.mark.slow

PNG = b"\x89PNG\r\n\x1a\n"
REPORT_SECTIONS = ["summary", "operations", "waterfalls", "selector", "slowest", "failing"]
DASHBOARD_SECTIONS = ["overview", "throughput", "latency", "actors"]


@pytest.fixture
def browser() -> Iterator[Browser]:
    opened = Browser(chromium_or_skip())
    try:
        yield opened
    finally:
        opened.close()


def sections(browser: Browser) -> list[str]:
    found: list[str] = browser.evaluate(
        "Array.from(document.querySelectorAll('section[id]')).map(s => s.id)"
    )
    return found


def check_clean(browser: Browser, shot: Path) -> None:
    assert browser.screenshot(shot).startswith(PNG)
    assert shot.stat().st_size > 5_000
    assert browser.console_errors == []
    assert browser.requests, "the browser saw no request at all: the check is blind"
    assert browser.outside_loopback() == []


def test_the_report_file_in_a_browser(browser: Browser, tmp_path: Path) -> None:
    records, _ = anyio.run(real_records)
    page = tmp_path / "report.html"
    write_report(records, page)
    browser.open(page.as_uri())
    assert sections(browser) == REPORT_SECTIONS
    assert browser.evaluate("document.querySelectorAll('svg').length") >= 4
    assert browser.evaluate("document.querySelectorAll('svg.waterfall rect').length") >= 5
    title = browser.evaluate("document.querySelector('h1').textContent")
    assert title == "Trace report"
    check_clean(browser, tmp_path / "report.png")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_the_dashboard_and_ring_report_of_a_running_service(
    browser: Browser, backend: str, tiny_db: Path, tmp_path: Path
) -> None:
    server = Server(backend, tiny_db, tmp_path / "server.log")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            for ci in range(1, 6):
                body: dict[str, Any] = {
                    "tool": "CI",
                    "operation": "get",
                    "params": {"ci_id": ci},
                    "tenant": "acme",
                }
                assert client.post("/execute", json=body).status_code == 200
            composed = {"name": "impact_analysis", "params": {"ci_id": 3}, "tenant": "acme"}
            assert client.post("/compose", json=composed).status_code == 200

        browser.open(f"{server.url}/dashboard?interval=0.3")
        browser.wait_for("document.querySelectorAll('#actor-table tbody tr').length > 0")
        browser.wait_for("document.querySelectorAll('#p95-chart rect').length > 0")
        browser.wait_for("document.getElementById('calls-per-s').textContent !== '-'")
        assert sections(browser) == DASHBOARD_SECTIONS
        assert browser.evaluate("document.getElementById('health').textContent").endswith(" up")
        tools = browser.evaluate(
            "Array.from(document.querySelectorAll('#p95-chart text')).map(t => t.textContent)"
        )
        assert "CI.get" in tools
        assert browser.evaluate("document.getElementById('calls').textContent") != "-"
        assert any(url.endswith("/stats") for url in browser.requests)
        check_clean(browser, tmp_path / "dashboard.png")

        browser.open(f"{server.url}/traces/report")
        assert sections(browser) == REPORT_SECTIONS
        assert browser.evaluate("document.querySelectorAll('svg.waterfall').length") >= 1
        check_clean(browser, tmp_path / "ring-report.png")
    finally:
        assert server.stop() == 0, server.log()


def test_the_checks_catch_console_errors_and_outside_fetches(
    browser: Browser, tmp_path: Path
) -> None:
    page = tmp_path / "bad.html"
    page.write_text(
        "<!DOCTYPE html><html><body><h1>bad</h1>"
        '<img src="http://assets.example.invalid/logo.png">'
        "<script>console.error('boom'); undefinedFunction();</script></body></html>"
    )
    browser.open(page.as_uri())
    browser.settle(0.5)
    assert any("boom" in error for error in browser.console_errors)
    assert any("undefinedFunction" in error for error in browser.console_errors)
    assert browser.outside_loopback() == ["http://assets.example.invalid/logo.png"]


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("file:///tmp/r.html", True),
        ("http://127.0.0.1:8000/stats", True),
        ("http://localhost/x", True),
        ("data:image/png;base64,AAAA", True),
        ("https://cdn.example.com/lib.js", False),
        ("http://10.0.0.1/", False),
    ],
)
def test_what_counts_as_loopback(url: str, local: bool) -> None:
    assert is_local(url) is local
