"""The trace report as one self-contained HTML page (inline CSS and SVG, no script).

:func:`render_report` draws a :class:`~runtime.report.data.ReportData`; :func:`report_html`
does both steps for records.  The page fetches nothing: no links to stylesheets,
scripts, fonts or images (its one ``href`` is an empty inline ``data:`` icon), so it reads
the same offline.  Sections (each a ``<section>``
with an ``id``): ``summary``, ``operations``, ``waterfalls``, ``selector``, ``slowest``,
``failing``.  Every text from the records is HTML-escaped; params are shown redacted.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from html import escape

from runtime.report.data import (
    CACHE_OUTCOMES,
    TIME_BUCKETS,
    CallRow,
    OperationReport,
    ReportData,
    build_report,
)
from runtime.report.svg import (
    CACHE_COLOURS,
    STATUS_COLOURS,
    histogram_svg,
    legend,
    palette,
    stacked_bars_svg,
    waterfall_svg,
)
from runtime.tracer.records import TraceRecord, iso_from_wall

__all__ = ["render_report", "report_html"]

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;max-width:1200px}
h1{font-size:1.5em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{padding:3px 8px;text-align:right;
border-bottom:1px solid #eee;vertical-align:middle}th{background:#f6f6f6}
td.name,th.name,td.text{text-align:left}td.text{max-width:420px;overflow-wrap:anywhere;
font-family:ui-monospace,monospace;font-size:12px}
.tiles{display:flex;gap:1em;flex-wrap:wrap}.tile{background:#f6f8fa;padding:.6em 1em;
border-radius:6px}.tile b{display:block;font-size:1.4em}
.swatch{display:inline-block;width:10px;height:10px;margin:0 4px 0 10px}
.legend{font-size:12px;color:#555}svg text{font:11px system-ui,sans-serif;fill:#333}
svg text.axis{fill:#777;font-size:10px}.status-ok{color:#2e9d5b}.bad{color:#d64541}
.note{color:#666}
"""


def report_html(
    records: Iterable[TraceRecord], *, title: str = "Trace report", waterfalls: int = 5
) -> str:
    """The report page for ``records``."""
    return render_report(build_report(records, waterfalls=waterfalls), title=title)


def render_report(data: ReportData, *, title: str = "Trace report") -> str:
    """The page for ``data`` (see the module docstring)."""
    body = "".join(
        (
            _summary(data, title),
            _operations(data),
            _waterfalls(data),
            _selector(data),
            _calls("slowest", "Slowest calls", data.slowest, len(data.slowest)),
            _calls("failing", "Failing calls", data.failing, data.failures),
        )
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        # An empty inline icon: served over HTTP, a page would otherwise ask for one.
        '<link rel="icon" href="data:,">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def _ms(value: float) -> str:
    return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"


def _when(wall: float) -> str:
    return iso_from_wall(wall)[:23].replace("T", " ")


def _summary(data: ReportData, title: str) -> str:
    tools = data.stats.tools.values()
    calls = sum(s.count for s in tools)
    hits = sum(s.cache_hits for s in tools)
    tiles = [
        ("records", f"{data.records:,}"),
        ("tool calls", f"{calls:,}"),
        ("composition runs", f"{data.runs:,}"),
        ("failed calls", f"{data.failures:,}"),
        ("cache hit rate", f"{hits / calls:.0%}" if calls else "-"),
    ]
    span = (
        f"{_when(data.first_wall)} – {_when(data.last_wall)} UTC" if data.records else "no records"
    )
    overall: list[dict[str, int]] = [{} for _ in range(TIME_BUCKETS)]
    for op in data.operations:
        if op.kind == "tool_call":
            for total, counts in zip(overall, op.cache_over_time, strict=True):
                for name, count in counts.items():
                    total[name] = total.get(name, 0) + count
    chart = stacked_bars_svg(overall, CACHE_COLOURS, width=720, height=90, label="tool calls")
    return (
        f'<section id="summary"><h1>{escape(title)}</h1><p class="note">{escape(span)}; '
        f"time buckets of {data.bucket_s:,.2f} s</p>"
        '<div class="tiles">'
        + "".join(f'<div class="tile"><b>{v}</b>{escape(k)}</div>' for k, v in tiles)
        + "</div><h3>Tool calls over time, by cache outcome</h3>"
        + (chart + legend(CACHE_COLOURS) if chart else '<p class="note">no tool calls</p>')
        + "</section>"
    )


_KIND_TITLES = {"tool_call": "Tool calls", "step": "Pipeline steps", "pipeline": "Compositions"}


def _operations(data: ReportData) -> str:
    parts = ['<section id="operations"><h2>Per tool and operation</h2>']
    parts.append(
        '<p class="note">Latency in ms; percentiles from the tracer\'s sketch (±1 %). '
        "Histogram bins are log-spaced (4 per decade).</p>" + legend(CACHE_COLOURS)
    )
    for kind, heading in _KIND_TITLES.items():
        mine = [op for op in data.operations if op.kind == kind]
        if not mine:
            continue
        parts.append(
            f"<h3>{heading}</h3><table><tr><th class=name>name</th><th>calls</th>"
            "<th>errors</th><th>timeouts</th><th>cancelled</th><th>p50</th><th>p95</th>"
            "<th>p99</th><th>max</th><th>latency histogram</th><th>cache outcomes</th>"
            "<th>cache outcomes over time</th></tr>"
        )
        parts.extend(_operation_row(op) for op in mine)
        parts.append("</table>")
    if not data.operations:
        parts.append('<p class="note">no records</p>')
    parts.append("</section>")
    return "".join(parts)


def _operation_row(op: OperationReport) -> str:
    s = op.stats
    outcomes = ", ".join(
        f"{name} {op.cache[name]}" for name in CACHE_OUTCOMES if op.cache.get(name)
    )
    return (
        f"<tr><td class=name>{escape(op.name)}</td><td>{s.count:,}</td>"
        f"<td>{s.error:,}</td><td>{s.timeout:,}</td><td>{s.cancelled:,}</td>"
        f"<td>{_ms(s.p50_ms)}</td><td>{_ms(s.p95_ms)}</td><td>{_ms(s.p99_ms)}</td>"
        f"<td>{_ms(s.max_ms)}</td><td>{histogram_svg(op.histogram)}</td>"
        f"<td class=text>{escape(outcomes)}</td>"
        f"<td>{stacked_bars_svg(op.cache_over_time, CACHE_COLOURS, width=160, height=30)}</td>"
        "</tr>"
    )


def _waterfalls(data: ReportData) -> str:
    parts = ['<section id="waterfalls"><h2>Slowest composition runs</h2>']
    if not data.waterfalls:
        parts.append('<p class="note">no composition runs in these records</p>')
    else:
        parts.append(
            f'<p class="note">The {len(data.waterfalls)} slowest of {data.runs:,} runs: '
            "run → step → tool call, on one time axis; parallel steps overlap.</p>"
            + legend({k: v for k, v in STATUS_COLOURS.items() if k != "failed"})
        )
    for waterfall in data.waterfalls:
        parts.append(
            f"<h3>{escape(waterfall.name)} <small>{_ms(waterfall.duration_ms)} ms, "
            f"{escape(waterfall.status)}, {_when(waterfall.started_wall)} UTC</small></h3>"
            + waterfall_svg(waterfall)
        )
    parts.append("</section>")
    return "".join(parts)


def _selector(data: ReportData) -> str:
    parts = ['<section id="selector"><h2>Selector choices per intent</h2>']
    if not data.intents:
        parts.append(
            '<p class="note">no selector choices recorded in these records (tool-call '
            "records with an <code>intent</code> in their metadata)</p>"
        )
    for intent in data.intents:
        colours = palette(list(intent.chosen))
        chart = stacked_bars_svg(intent.over_time, colours, width=480, height=60, label="choices")
        runner = ", ".join(f"{escape(k)} ({v})" for k, v in intent.runner_up.items()) or "-"
        chosen = ", ".join(f"{escape(k)} ({v})" for k, v in intent.chosen.items())
        parts.append(
            f"<h3>{escape(intent.intent)}</h3>{chart}{legend(colours)}"
            f"<p>chosen: {chosen}; runner-up: {runner}</p>"
        )
    parts.append("</section>")
    return "".join(parts)


def _calls(section: str, heading: str, rows: Sequence[CallRow], total: int) -> str:
    parts = [f'<section id="{section}"><h2>{heading}</h2>']
    if not rows:
        parts.append('<p class="note">none</p></section>')
        return "".join(parts)
    if total > len(rows):
        parts.append(f'<p class="note">the newest {len(rows)} of {total:,}</p>')
    parts.append(
        "<table><tr><th class=name>started (UTC)</th><th class=name>call</th><th>ms</th>"
        "<th class=name>status</th><th class=name>cache</th><th class=name>tenant</th>"
        "<th class=name>params (redacted)</th><th class=name>error</th></tr>"
    )
    for row in rows:
        status_class = "status-ok" if row.status == "ok" else "bad"
        params = json.dumps(row.params, ensure_ascii=False, default=repr)
        parts.append(
            f"<tr><td class=name>{_when(row.started_wall)}</td>"
            f"<td class=name>{escape(row.name)}</td><td>{_ms(row.duration_ms)}</td>"
            f'<td class="name {status_class}">{escape(row.status)}</td>'
            f"<td class=name>{escape(row.cache)}</td><td class=name>{escape(row.tenant)}</td>"
            f"<td class=text>{escape(params[:300])}</td>"
            f"<td class=text>{escape(row.error[:300])}</td></tr>"
        )
    parts.append("</table></section>")
    return "".join(parts)
