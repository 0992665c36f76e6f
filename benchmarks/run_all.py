"""Run every benchmark, collect their figures, and write the benchmark report.

    python benchmarks/run_all.py [--quick] [--only NAME ...] [--no-plots]

Each ``benchmarks/*.py`` except this file and the helper modules (names starting with
``_``) runs as a subprocess, one after another (they time things; running them side by
side would measure the contention), with ``--quick`` when given.  The last line of each
one's stdout is its JSON object of figures.  A benchmark that fails, times out, prints no
JSON or does not exist yet is recorded as such -- the run goes on.

Outputs:

* ``benchmarks/results/latest.json`` -- every benchmark's status, duration, command and
  figures, the goal verdicts, the machine, and the hit-ratio curve;
* ``docs/benchmarks.md`` -- the report: per goal figure ours, the anchor, the ratio, the
  goal and met/missed, then each benchmark's figures;
* ``benchmarks/results/*.png`` -- plots, linked from the report: hit ratio against cache
  size next to the analytic optimum, and latency percentiles per strategy in the
  selector scenarios.  matplotlib comes with the ``bench`` extra, which this script
  installs when it is missing (``make bench`` installs it first).

The goals come from the issues that asked for each benchmark; :data:`GOALS` is the one
table of them.  The hit-ratio curve is computed here, with the runtime's own
:class:`~runtime.cache.store.CacheStore`, on an independent-reference Zipf(0.99) trace.
"""

from __future__ import annotations

import argparse
import json
import time

import attrs
from _goals import GOALS, Goal, judge
from _hit_ratio import hit_ratio_curve
from _layout import EXPECTED, LATEST, REPORT, RESULTS, ROOT
from _machine import machine
from _plots import make_plots, selector_table
from _report import missed_notes, render
from _running import Outcome, discover, last_json, run_one

__all__ = [
    "EXPECTED",
    "GOALS",
    "Goal",
    "judge",
    "last_json",
    "main",
    "missed_notes",
    "selector_table",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs of every benchmark")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run only these benchmarks")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument(
        "--timeout", type=float, default=None, help="per-benchmark limit in seconds"
    )
    args = parser.parse_args(argv)
    timeout = args.timeout or (120.0 if args.quick else 1800.0)
    started = time.perf_counter()
    names = [n for n in discover() if not args.only or n in args.only]
    outcomes: list[Outcome] = []
    for name in names:
        outcome = run_one(name, args.quick, timeout)
        print(f"{name:<16} {outcome.status:<8} {outcome.seconds:6.1f}s", flush=True)
        outcomes.append(outcome)
    by_name = {o.name: o for o in outcomes}
    verdicts = [
        judge(goal, by_name[goal.benchmark].figures) for goal in GOALS if goal.benchmark in by_name
    ]
    curve_started = time.perf_counter()
    curve = hit_ratio_curve(args.quick)
    print(f"{'hit_ratio_curve':<16} {'ok':<8} {time.perf_counter() - curve_started:6.1f}s")
    selector = by_name.get("selector_bench")
    plots: list[str] = []
    plot_note: str | None = "plots skipped (--no-plots)"
    if not args.no_plots:
        plots, plot_note = make_plots(curve, selector.figures if selector else None)
    total = time.perf_counter() - started
    info = machine()
    RESULTS.mkdir(parents=True, exist_ok=True)
    latest = {
        "generated": info["date_utc"],
        "quick": args.quick,
        "total_seconds": round(total, 1),
        "machine": info,
        "benchmarks": {o.name: attrs.asdict(o) for o in outcomes},
        "goals": [
            {
                "benchmark": v.goal.benchmark,
                "figure": v.goal.figure,
                "key": v.key,
                "op": v.goal.op,
                "target": v.goal.target,
                "value": v.value,
                "ours": v.ours,
                "anchor": v.anchor,
                "status": v.status,
                "issue": v.goal.issue,
            }
            for v in verdicts
        ],
        "hit_ratio_curve": curve,
        "plots": plots,
    }
    LATEST.write_text(json.dumps(latest, indent=2) + "\n", encoding="utf-8")
    REPORT.write_text(
        render(outcomes, verdicts, info, args.quick, total, curve, plots, plot_note),
        encoding="utf-8",
    )
    counts = {s: sum(1 for v in verdicts if v.status == s) for s in ("met", "missed", "missing")}
    print(
        f"goals: {counts['met']} met, {counts['missed']} missed, {counts['missing']} missing; "
        f"{total:.0f}s; wrote {LATEST.relative_to(ROOT)} and {REPORT.relative_to(ROOT)}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
