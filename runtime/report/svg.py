"""Small inline SVG charts as text: bar histograms, stacked bars over time, waterfalls.

Pure string building, no I/O and no external assets; every label is HTML-escaped.
Each chart is one ``<svg>`` element sized in pixels with a ``viewBox``, readable
without CSS or scripts.  Colours for statuses and cache outcomes are fixed here so the
report's legend and charts agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from runtime.report.data import Waterfall

__all__ = [
    "CACHE_COLOURS",
    "STATUS_COLOURS",
    "histogram_svg",
    "legend",
    "stacked_bars_svg",
    "waterfall_svg",
]

STATUS_COLOURS = {
    "ok": "#2e9d5b",
    "fallback": "#8fbf3f",
    "error": "#d64541",
    "failed": "#d64541",
    "timeout": "#e8912d",
    "rejected": "#b5651d",
    "cancelled": "#8a8a8a",
    "skipped": "#9bb7d4",
    "not_run": "#e4e4e4",
}
CACHE_COLOURS = {
    "hit": "#2e9d5b",
    "miss": "#e8912d",
    "coalesced": "#3b7dd8",
    "bypass": "#9b59b6",
    "off": "#b8b8b8",
}
_PALETTE = ("#3b7dd8", "#e8912d", "#2e9d5b", "#9b59b6", "#d64541", "#16a5a5", "#b8860b")


def palette(names: Sequence[str]) -> dict[str, str]:
    """A colour per name, cycling through a fixed palette (stable for the same order)."""
    return {name: _PALETTE[i % len(_PALETTE)] for i, name in enumerate(names)}


def _fmt_ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 1:
        return f"{value:.1f} ms"
    return f"{value * 1000:.0f} µs"


def histogram_svg(bins: Sequence[tuple[float, float, int]], width: int = 240) -> str:
    """Latency histogram: one bar per log-spaced bin, low and high bounds labelled."""
    if not bins:
        return ""
    height, base = 56, 44
    top = max(count for _, _, count in bins) or 1
    step = width / len(bins)
    bars = []
    for i, (low, high, count) in enumerate(bins):
        h = 0 if not count else max(1.0, (base - 4) * count / top)
        title = f"{_fmt_ms(low)} – {_fmt_ms(high)}: {count}"
        bars.append(
            f'<rect x="{i * step:.1f}" y="{base - h:.1f}" width="{max(step - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="#3b7dd8"><title>{escape(title)}</title></rect>'
        )
    labels = (
        f'<text x="0" y="{height - 2}" class="axis">{escape(_fmt_ms(bins[0][0]))}</text>'
        f'<text x="{width}" y="{height - 2}" class="axis" text-anchor="end">'
        f"{escape(_fmt_ms(bins[-1][1]))}</text>"
    )
    return (
        f'<svg class="chart histogram" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="latency histogram">'
        f"{''.join(bars)}{labels}</svg>"
    )


def stacked_bars_svg(
    buckets: Sequence[Mapping[str, int]],
    colours: Mapping[str, str],
    *,
    width: int = 240,
    height: int = 48,
    label: str = "over time",
) -> str:
    """One stacked bar per time bucket, segments in the order of ``colours``."""
    top = max((sum(b.values()) for b in buckets), default=0)
    if not top:
        return ""
    step = width / len(buckets)
    parts = []
    for i, counts in enumerate(buckets):
        y = float(height)
        for name, colour in colours.items():
            count = counts.get(name, 0)
            if not count:
                continue
            h = max(0.5, height * count / top)
            y -= h
            parts.append(
                f'<rect x="{i * step:.1f}" y="{y:.1f}" width="{max(step - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{colour}"><title>{escape(name)}: {count}</title></rect>'
            )
    return (
        f'<svg class="chart bars" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
        f"{''.join(parts)}</svg>"
    )


def waterfall_svg(waterfall: Waterfall, width: int = 900) -> str:
    """Rows of a run's span tree on one time axis: label, then a bar at its offset."""
    row_h, label_w = 18, 260
    rows = waterfall.rows
    total = max([waterfall.duration_ms, *(r.offset_ms + r.duration_ms for r in rows)], default=0.0)
    scale = (width - label_w - 70) / total if total > 0 else 0.0
    height = row_h * len(rows) + 22
    parts = []
    for i, row in enumerate(rows):
        y = i * row_h + 2
        colour = STATUS_COLOURS.get(row.status, "#444")
        indent = 8 + row.depth * 14
        parts.append(
            f'<text x="{indent}" y="{y + 12}" class="label">{escape(row.label[:40])}</text>'
        )
        x = label_w + max(row.offset_ms, 0.0) * scale
        w = max(row.duration_ms * scale, 1.5)
        dash = ' stroke="#888" stroke-dasharray="3 2"' if row.span_id is None else ""
        title = (
            f"{row.label}: {row.status}, {_fmt_ms(row.duration_ms)} at +{_fmt_ms(row.offset_ms)}"
        )
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 2}" width="{w:.1f}" height="{row_h - 5}" '
            f'fill="{colour}"{dash}><title>{escape(title)}</title></rect>'
        )
        parts.append(
            f'<text x="{x + w + 4:.1f}" y="{y + 12}" class="axis">'
            f"{escape(_fmt_ms(row.duration_ms) if row.span_id else row.status)}</text>"
        )
    axis_y = height - 6
    parts.append(f'<text x="{label_w}" y="{axis_y}" class="axis">0</text>')
    parts.append(
        f'<text x="{width - 70}" y="{axis_y}" class="axis" text-anchor="end">'
        f"{escape(_fmt_ms(total))}</text>"
    )
    return (
        f'<svg class="chart waterfall" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="waterfall of '
        f'{escape(waterfall.name)}">{"".join(parts)}</svg>'
    )


def legend(colours: Mapping[str, str]) -> str:
    """An HTML legend of coloured swatches."""
    items = "".join(
        f'<span class="swatch" style="background:{colour}"></span>{escape(name)} '
        for name, colour in colours.items()
    )
    return f'<p class="legend">{items}</p>'
