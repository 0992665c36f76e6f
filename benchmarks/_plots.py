"""The report's PNG plots (matplotlib, from the bench extra, installed when missing)."""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Mapping
from typing import Any

from _layout import RESULTS, ROOT

SELECTOR_SCENARIOS = ("spike", "drift", "fast_failing", "stale")
SELECTOR_STRATEGIES = (
    "round_robin",
    "random",
    "p2c_least_outstanding",
    "p2c_peak_ewma",
    "ours",
    "ours_fastest",
    "ours_p2c",
)


def selector_table(figures: Mapping[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """``{scenario: {strategy: {p50, p99, p999, error_rate}}}`` from selector_bench figures."""
    table: dict[str, dict[str, dict[str, float]]] = {}
    for scenario in SELECTOR_SCENARIOS:
        for strategy in SELECTOR_STRATEGIES:
            prefix = f"{scenario}_{strategy}_"
            row = {
                column: figures[prefix + key]
                for column, key in (
                    ("p50", "p50_ms"),
                    ("p99", "p99_ms"),
                    ("p999", "p999_ms"),
                    ("error_rate", "error_rate"),
                )
                if prefix + key in figures
            }
            if len(row) == 4:
                table.setdefault(scenario, {})[strategy] = row
    return table


def _ensure_matplotlib() -> bool:
    """Whether matplotlib imports -- installing the ``bench`` extra first when it does
    not, so that every run of this script includes its plots in the report."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is not None:
        return True
    print("matplotlib missing: installing the bench extra (pip install -e '.[bench]')")
    command = [sys.executable, "-m", "pip", "install", "--quiet", "-e", f"{ROOT}[bench]"]
    if subprocess.run(command, check=False).returncode != 0:
        return False
    importlib.invalidate_caches()
    return importlib.util.find_spec("matplotlib") is not None


def make_plots(
    curve: Mapping[str, Any] | None, selector: Mapping[str, Any] | None
) -> tuple[list[str], str | None]:
    """Write the PNGs; returns their paths (relative to the repo) and a note if skipped."""
    if not _ensure_matplotlib():
        return [], "matplotlib is not installed and could not be (`pip install -e '.[bench]'`)"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written: list[str] = []
    RESULTS.mkdir(parents=True, exist_ok=True)
    if curve is not None:
        points = curve["points"]
        sizes = [100 * p["fraction"] for p in points]
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        ax.plot(sizes, [p["hit_ratio_opt"] for p in points], "o--", label="analytic optimum")
        ax.plot(sizes, [p["hit_ratio_lru"] for p in points], "s-", label="runtime CacheStore (LRU)")
        ax.plot(
            sizes,
            [p.get("hit_ratio_tinylfu", math.nan) for p in points],
            "^-",
            label="runtime CacheStore (W-TinyLFU, default)",
        )
        ax.set_xscale("log")
        ax.set_xticks(sizes, [f"{s:g}%" for s in sizes])
        ax.set_xlabel(f"cache size (share of {curve['keys']:,} keys)")
        ax.set_ylabel("hit ratio (after warm-up)")
        ax.set_ylim(0, 1)
        ax.set_title(f"Zipf({curve['skew']}) independent-reference trace, {curve['calls']:,} calls")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = RESULTS / "hit_ratio.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path.relative_to(ROOT)))
    table = selector_table(selector) if selector else {}
    if table:
        fig, axes = plt.subplots(1, len(table), figsize=(4.2 * len(table), 4.6), sharey=True)
        axes_list = list(axes) if len(table) > 1 else [axes]
        for ax, (scenario, rows) in zip(axes_list, table.items(), strict=True):
            names = list(rows)
            positions = range(len(names))
            width = 0.27
            for offset, (column, label) in enumerate(
                (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"))
            ):
                ax.bar(
                    [x + (offset - 1) * width for x in positions],
                    [rows[n][column] for n in names],
                    width,
                    label=label,
                )
            ax.set_xticks(list(positions), names, rotation=60, ha="right", fontsize=8)
            ax.set_yscale("log")
            ax.set_title(scenario)
            ax.grid(True, axis="y", alpha=0.3)
        axes_list[0].set_ylabel("latency, ms (log scale)")
        axes_list[0].legend()
        fig.suptitle("Selector scenarios: latency percentiles per strategy (simulated)")
        fig.tight_layout()
        path = RESULTS / "selector_latency.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path.relative_to(ROOT)))
    return written, None


# -- the report --------------------------------------------------------------------------------
