"""The service pages: the dashboard is static and self-contained; the report of the ring
is rendered -- and its records built -- off the event loop."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import attrs
import pytest
from starlette.requests import Request

import runtime.tracer.actor as tracer_actor
from runtime import ToolContext, ToolRegistry, load_config, open_runtime
from runtime.report import web
from runtime.tracer.actor import THREAD_RECORDS

pytestmark = pytest.mark.anyio


def request_for(rt: Any, path: str) -> Request:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [],
        "query_string": b"",
        "state": {"runtime": rt},
    }
    return Request(scope)


def tools() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool("CI", "get")
    async def get(ctx: ToolContext, params: dict[str, Any]) -> Any:
        return {"ci_id": params["ci_id"]}

    return registry


async def test_the_dashboard_is_one_static_page_that_polls_stats() -> None:
    response = await web.dashboard(request_for(None, "/dashboard"))
    page = bytes(response.body).decode()
    assert response.media_type == "text/html"
    for section in ("overview", "throughput", "latency", "actors"):
        assert f'<section id="{section}">' in page
    assert "<svg" in page
    assert 'fetch("stats"' in page
    for marker in ("src=", "href=", "url(", "<link", "@import"):
        assert marker not in page.lower().replace('<link rel="icon" href="data:,">', "")


async def test_the_ring_report_is_rendered_in_a_worker_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread = threading.get_ident()
    release = threading.Event()
    rendered_in: list[int] = []

    def blocking_render(records: Any, **kwargs: Any) -> str:
        rendered_in.append(threading.get_ident())
        # Only the event loop can set the event: had we been called on the loop thread,
        # this would wait in vain.
        assert release.wait(10)
        return f"<html>{len(records)} records</html>"

    monkeypatch.setattr(web, "report_html", blocking_render)
    with anyio.fail_after(20):
        async with open_runtime(tools()) as rt:
            for i in range(5):
                await rt.execute("CI", "get", {"ci_id": i}, ToolContext(tenant_id="a"))
            responses = []

            async def fetch() -> None:
                responses.append(await web.traces_report(request_for(rt, "/traces/report")))

            async with anyio.create_task_group() as tg:
                tg.start_soon(fetch)
                while not rendered_in:
                    await anyio.sleep(0.001)  # the loop keeps running while it renders
                release.set()
    assert rendered_in[0] != loop_thread
    assert bytes(responses[0].body) == b"<html>5 records</html>"


async def test_a_full_ring_is_read_off_the_loop_and_reported() -> None:
    config = load_config(None)
    config = attrs.evolve(config, tracer=attrs.evolve(config.tracer, max_records=THREAD_RECORDS))
    built_in: set[int] = set()
    original = tracer_actor.record_from_report

    def spy(*args: Any, **kwargs: Any) -> Any:
        built_in.add(threading.get_ident())
        return original(*args, **kwargs)

    with anyio.fail_after(30):
        async with open_runtime(tools(), config) as rt:
            ctx = ToolContext(tenant_id="a")
            for i in range(THREAD_RECORDS + 10):
                await rt.execute("CI", "get", {"ci_id": i % 50, "token": "s3cr3t"}, ctx)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(tracer_actor, "record_from_report", spy)
                response = await web.traces_report(request_for(rt, "/traces/report"))
                assert built_in
                assert threading.get_ident() not in built_in
                built_in.clear()
                assert len(await rt.tracer.records(limit=10)) == 10
                assert built_in == {threading.get_ident()}  # a small read stays inline
    page = bytes(response.body).decode()
    assert f"{THREAD_RECORDS:,}</b>records" in page
    assert '<section id="operations">' in page
    assert "s3cr3t" not in page


async def test_the_report_without_a_tracer_is_a_404() -> None:
    config = load_config(None)
    config = attrs.evolve(config, tracer=attrs.evolve(config.tracer, enabled=False))
    with anyio.fail_after(10):
        async with open_runtime(tools(), config) as rt:
            response = await web.traces_report(request_for(rt, "/traces/report"))
    assert response.status_code == 404
    assert b"tracer is disabled" in bytes(response.body)


async def test_exporting_a_full_ring_formats_it_in_a_worker_thread() -> None:
    config = load_config(None)
    config = attrs.evolve(config, tracer=attrs.evolve(config.tracer, max_records=THREAD_RECORDS))
    formatted_in: list[int] = []
    original = tracer_actor.export

    def spy(*args: Any, **kwargs: Any) -> str:
        formatted_in.append(threading.get_ident())
        return original(*args, **kwargs)

    with anyio.fail_after(30):
        async with open_runtime(tools(), config) as rt:
            ctx = ToolContext(tenant_id="a")
            for i in range(THREAD_RECORDS):
                await rt.execute("CI", "get", {"ci_id": i}, ctx)
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(tracer_actor, "export", spy)
                text = await rt.tracer.export("chrome")
    assert formatted_in
    assert threading.get_ident() not in formatted_in
    assert text.count('"ph": "X"') == THREAD_RECORDS
