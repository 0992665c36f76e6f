"""Two pages for an HTTP service (Starlette, the ``examples`` extra): a live dashboard
and the trace report of the current ring.

* ``GET /dashboard`` -- :data:`DASHBOARD_HTML`, a static page whose small inline script
  polls ``/stats`` (the example service's endpoint; ``?interval=`` seconds, default 2)
  and draws calls/s, the cache hit rate, p95 per tool and actor health as inline SVG
  and tables.  No external assets; a failed poll shows as text, never as a console error.
* ``GET /traces/report`` -- the report page (:mod:`runtime.report`) of the tracer's
  buffered records.  Records are built and the page rendered in worker threads, so a
  full ring never stalls the event loop.

Both read the runtime from ``request.state.runtime`` (the app's lifespan state), as the
example service's other endpoints do.
"""

from __future__ import annotations

import functools

import anyio
import anyio.to_thread
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from runtime.report.html import report_html
from runtime.runtime import Runtime

__all__ = ["DASHBOARD_HTML", "dashboard", "traces_report"]


async def dashboard(request: Request) -> Response:
    """The live dashboard page (static; its script polls ``/stats``)."""
    return HTMLResponse(DASHBOARD_HTML)


async def traces_report(request: Request) -> Response:
    """The trace report of the current ring, rendered off the event loop."""
    rt: Runtime = request.state.runtime
    if rt.tracer is None:
        return JSONResponse(
            {"error": "LookupError", "message": "the tracer is disabled (tracer.enabled is false)"},
            status_code=404,
        )
    records = await rt.tracer.records()
    render = functools.partial(report_html, records, title="runtime: trace report (live ring)")
    page: str = await anyio.to_thread.run_sync(render)
    return HTMLResponse(page)


DASHBOARD_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>runtime dashboard</title>
<link rel="icon" href="data:,">
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1100px}
.tiles{display:flex;gap:1em;flex-wrap:wrap}.tile{background:#f6f8fa;padding:.6em 1em;
border-radius:6px;min-width:9em}.tile b{display:block;font-size:1.5em}
table{border-collapse:collapse}td,th{padding:3px 8px;border-bottom:1px solid #eee;
text-align:right}th{background:#f6f6f6}td.name,th.name{text-align:left}
.up{color:#2e9d5b}.down{color:#d64541;font-weight:bold}#status{color:#666}
svg text{font:11px system-ui,sans-serif;fill:#333}
</style></head><body>
<h1>runtime dashboard</h1>
<p id="status">connecting to /stats ...</p>
<section id="overview"><div class="tiles">
<div class="tile"><b id="calls-per-s">-</b>calls/s</div>
<div class="tile"><b id="hit-rate">-</b>cache hit rate</div>
<div class="tile"><b id="calls">-</b>tool calls traced</div>
<div class="tile"><b id="health">-</b>actors</div>
</div></section>
<section id="throughput"><h2>Calls per second</h2>
<svg id="rate-chart" width="720" height="100" viewBox="0 0 720 100" role="img"
 aria-label="calls per second"><polyline id="rate-line" fill="none" stroke="#3b7dd8"
 stroke-width="2" points=""/><text id="rate-max" x="4" y="12"></text></svg></section>
<section id="latency"><h2>p95 latency per tool (ms)</h2>
<svg id="p95-chart" width="720" height="20" viewBox="0 0 720 20" role="img"
 aria-label="p95 per tool"></svg></section>
<section id="actors"><h2>Actor health</h2><table id="actor-table"><thead><tr>
<th class="name">actor</th><th class="name">state</th><th>processed</th><th>mailbox</th>
<th>dropped</th><th>starts</th><th class="name">death reason</th></tr></thead>
<tbody></tbody></table></section>
<script>
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const params = new URLSearchParams(location.search);
const interval = Math.max(0.2, Number(params.get("interval")) || 2) * 1000;
const rates = [];
let previous = null;

function el(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}
function toolRows(tracer) {
  const rows = [];
  for (const [tool, ops] of Object.entries((tracer && tracer.tools) || {}))
    for (const [op, s] of Object.entries(ops)) rows.push({name: tool + "." + op, s: s});
  return rows;
}
function drawRates() {
  const top = Math.max(1, ...rates);
  const step = 720 / 59;
  const points = rates.map((r, i) => (i * step).toFixed(1) + "," +
    (96 - 84 * r / top).toFixed(1));
  document.getElementById("rate-line").setAttribute("points", points.join(" "));
  document.getElementById("rate-max").textContent = "max " + top.toFixed(1) + "/s";
}
function drawP95(rows) {
  const chart = document.getElementById("p95-chart");
  chart.replaceChildren();
  const top = Math.max(1e-9, ...rows.map(r => r.s.p95_ms));
  const height = Math.max(20, rows.length * 20);
  chart.setAttribute("height", height);
  chart.setAttribute("viewBox", "0 0 720 " + height);
  rows.forEach((r, i) => {
    chart.append(el("text", {x: 0, y: i * 20 + 14}, r.name));
    chart.append(el("rect", {x: 200, y: i * 20 + 3, height: 14,
      width: Math.max(1, 440 * r.s.p95_ms / top), fill: "#3b7dd8"}));
    chart.append(el("text", {x: 206 + 440 * r.s.p95_ms / top, y: i * 20 + 14},
      r.s.p95_ms.toFixed(2)));
  });
}
function drawActors(health) {
  const body = document.querySelector("#actor-table tbody");
  body.replaceChildren();
  for (const [name, a] of Object.entries(health.actors || {})) {
    const row = document.createElement("tr");
    const cells = [name, a.running ? "up" : "down", a.processed,
      a.mailbox_used + "/" + a.mailbox_size, a.dropped, a.starts, a.death_reason || ""];
    cells.forEach((value, i) => {
      const cell = document.createElement("td");
      cell.textContent = String(value);
      if (i === 0 || i === 1 || i === 6) cell.className = "name";
      if (i === 1) cell.classList.add(a.running ? "up" : "down");
      row.append(cell);
    });
    body.append(row);
  }
  const actors = Object.values(health.actors || {});
  document.getElementById("health").textContent =
    actors.filter(a => a.running).length + "/" + actors.length + " up";
}
function show(stats, now) {
  const rows = toolRows(stats.tracer);
  const calls = rows.reduce((n, r) => n + r.s.count, 0);
  const hits = rows.reduce((n, r) => n + r.s.cache_hits, 0);
  if (previous !== null && now > previous.at) {
    rates.push(Math.max(0, (calls - previous.calls) * 1000 / (now - previous.at)));
    if (rates.length > 60) rates.shift();
    document.getElementById("calls-per-s").textContent = rates[rates.length - 1].toFixed(1);
  }
  previous = {at: now, calls: calls};
  const cache = stats.cache || {};
  const rate = typeof cache.hit_rate === "number" ? cache.hit_rate : (calls ? hits / calls : 0);
  document.getElementById("hit-rate").textContent = (100 * rate).toFixed(1) + " %";
  document.getElementById("calls").textContent = calls.toLocaleString();
  drawRates();
  drawP95(rows);
  drawActors(stats.health || {});
}
async function poll() {
  const status = document.getElementById("status");
  try {
    const response = await fetch("stats", {cache: "no-store"});
    if (!response.ok) throw new Error("HTTP " + response.status);
    show(await response.json(), performance.now());
    status.textContent = "live: /stats every " + interval / 1000 + " s, last at " +
      new Date().toLocaleTimeString();
  } catch (error) {
    status.textContent = "cannot reach /stats (" + error.message + "); retrying";
  }
  setTimeout(poll, interval);
}
poll();
</script></body></html>
"""
