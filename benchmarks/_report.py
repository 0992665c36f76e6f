"""docs/benchmarks.md: the goals table, each benchmark's figures, the notes on misses."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from _goals import Verdict
from _plots import SELECTOR_SCENARIOS, selector_table
from _running import Outcome


def fmt(value: Any) -> str:
    """A figure for a table: integers as such, floats with four significant digits."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4g}"
    if isinstance(value, list | dict):
        return f"`{json.dumps(value)}`"
    return str(value)


def _unit(key: str | None) -> str:
    if key is None:
        return ""
    for suffix, unit in (
        ("_us", " µs"),
        ("_ms", " ms"),
        ("_mops", " Mops/s"),
        ("calls_per_s_with_cache", " calls/s"),
        ("calls_per_s_without_cache", " calls/s"),
        ("_pct", " %"),
    ):
        if key.endswith(suffix) or key == suffix:
            return unit
    for marker, unit in (("_us_", " µs"), ("_ms_", " ms")):
        if marker in key:
            return unit
    return ""


def _cell(value: float | None, key: str | None) -> str:
    return "—" if value is None else f"{fmt(value)}{_unit(key)}"


def goals_table(verdicts: Sequence[Verdict]) -> list[str]:
    lines = [
        "| Benchmark | Figure | Ours | Anchor | Ratio | Goal | Met? |",
        "|---|---|---|---|---|---|---|",
    ]
    marks = {"met": "✅ met", "missed": "❌ missed", "missing": "⚠️ missing"}
    for v in verdicts:
        goal = v.goal
        if goal.ratio:
            ours = _cell(v.ours, goal.ours) if goal.ours else "—"
            ratio = _cell(v.value, None)
        else:
            ours = _cell(v.value, goal.figure)
            ratio = (
                fmt(v.value / v.anchor)
                if v.value is not None and v.anchor and goal.op != "=="
                else "—"
            )
        anchor_value = f"{_cell(v.anchor, goal.anchor)}: " if goal.anchor else ""
        status = marks[v.status]
        if v.status == "missing" and goal.proxy:
            shown = "not measured" if v.proxy_value is None else fmt(v.proxy_value)
            status += f" (proxy `{goal.proxy}` = {shown})"
        target = fmt(goal.target) if goal.target != int(goal.target) else f"{int(goal.target)}"
        figure = f"`{goal.figure}`"
        if v.key is not None and v.key != goal.figure:
            figure += f" (printed as `{v.key}`)"
        lines.append(
            f"| {goal.benchmark} | {figure} | {ours} | {anchor_value}{goal.anchor_text} "
            f"| {ratio} | {goal.op} {target} | {status} |"
        )
    return lines


def _selector_section(figures: Mapping[str, Any]) -> list[str]:
    table = selector_table(figures)
    if not table:
        return []
    lines = [
        "",
        "Per scenario and strategy (medians over seeds; latency includes queueing):",
        "",
        "| Scenario | Strategy | p50 ms | p99 ms | p99.9 ms | Error rate |",
        "|---|---|---|---|---|---|",
    ]
    for scenario, rows in table.items():
        for strategy, row in rows.items():
            lines.append(
                f"| {scenario} | {strategy} | {fmt(row['p50'])} | {fmt(row['p99'])} "
                f"| {fmt(row['p999'])} | {fmt(row['error_rate'])} |"
            )
    return lines


def _figures_section(outcome: Outcome) -> list[str]:
    lines = [f"### {outcome.name}", ""]
    status = outcome.status if outcome.status == "ok" else f"**{outcome.status}**"
    lines.append(f"`{outcome.command}` — {status}, {outcome.seconds:.1f} s")
    if outcome.error:
        lines += ["", "```", outcome.error, "```"]
    figures = outcome.figures or {}
    if outcome.name == "selector_bench":
        lines += _selector_section(figures)
        shown = {k: v for k, v in figures.items() if not k.startswith(SELECTOR_SCENARIOS)}
    else:
        shown = dict(figures)
    for key in ("benchmark", "quick", "python"):
        shown.pop(key, None)
    if shown:
        lines += ["", "| Figure | Value |", "|---|---|"]
        lines += [f"| `{key}` | {fmt(value)} |" for key, value in shown.items()]
    return [*lines, ""]


def missed_notes(verdicts: Sequence[Verdict]) -> list[str]:
    """A paragraph per missed goal whose miss has been investigated."""
    notes = [v for v in verdicts if v.status == "missed" and v.goal.when_missed]
    if not notes:
        return []
    lines = ["### Why the missed goals are missed", ""]
    for verdict in notes:
        goal = verdict.goal
        lines += [f"- `{goal.figure}` (issue #{goal.issue}): {goal.when_missed}", ""]
    return lines


def render(
    outcomes: Sequence[Outcome],
    verdicts: Sequence[Verdict],
    info: Mapping[str, Any],
    quick: bool,
    total_seconds: float,
    curve: Mapping[str, Any] | None,
    plots: Sequence[str],
    plot_note: str | None,
) -> str:
    counts = {s: sum(1 for v in verdicts if v.status == s) for s in ("met", "missed", "missing")}
    command = "python benchmarks/run_all.py" + (" --quick" if quick else "")
    lines = [
        "# Benchmarks",
        "",
        "<!-- Generated by benchmarks/run_all.py; edit that script, not this file. -->",
        "",
        f"Generated by `{command}` on {info['date_utc']} in {total_seconds:.0f} s"
        + (" (quick mode: shorter runs, noisier figures)." if quick else "."),
        "",
        "Every benchmark measures its anchor in the same run, on the same machine, and",
        "reports ratios, so the figures compare across machines better than absolute",
        "times do.  Raw figures: `benchmarks/results/latest.json`.  Each script can be run",
        "on its own (`python benchmarks/<name>.py [--quick]`); its docstring says what it",
        "measures and how.",
        "",
        "## Machine",
        "",
        f"- CPU: {info['cpu']} ({info['cpus']} logical CPUs)"
        + (f", {info['memory_gib']} GiB RAM" if info.get("memory_gib") else ""),
        f"- {info['implementation']} {info['python']} on {info['platform']}",
        f"- commit: {info.get('git_commit') or 'unknown'}",
        "",
        "## Goals",
        "",
        f"{counts['met']} met, {counts['missed']} missed, {counts['missing']} not measured.",
        "For a ratio, *Ours* and *Anchor* are the figures it divides (some ratios are",
        "medians of per-run ratios, so they differ slightly from the quotient shown).",
        "",
        *goals_table(verdicts),
        "",
        *missed_notes(verdicts),
        "## Plots",
        "",
    ]
    if plot_note:
        lines += [f"_{plot_note}._", ""]
    for path in plots:
        name = Path(path).stem.replace("_", " ")
        lines += [f"![{name}](../{path})", ""]
    if curve is not None:
        lines += [
            f"Hit ratio against cache size: the runtime's `CacheStore` (W-TinyLFU, the "
            f"default, and LRU) on an "
            f"independent-reference Zipf({curve['skew']}) trace of {curve['calls']:,} calls "
            f"over {curve['keys']:,} keys, hits counted after a warm-up of "
            f"{curve['warm_up_calls']:,} calls, next to the analytic optimum (the "
            "probability mass of the C most popular keys, which is what an ideal cache "
            "holds under independent references).",
            "",
            "| Cache size | Capacity | W-TinyLFU | LRU | Optimum | W-TinyLFU / optimum "
            "| LRU / optimum |",
            "|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {100 * p['fraction']:g}% | {p['capacity']:,} "
            f"| {fmt(p.get('hit_ratio_tinylfu'))} | {fmt(p['hit_ratio_lru'])} "
            f"| {fmt(p['hit_ratio_opt'])} | {fmt(p.get('tinylfu_vs_opt'))} "
            f"| {fmt(p['lru_vs_opt'])} |"
            for p in curve["points"]
        ]
        lines.append("")
    lines += ["## Each benchmark", ""]
    for outcome in outcomes:
        lines += _figures_section(outcome)
    return "\n".join(lines).rstrip() + "\n"


# -- main ------------------------------------------------------------------------------------
