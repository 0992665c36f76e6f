"""Where run_all reads and writes, and which benchmarks it expects (see run_all.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

RESULTS = HERE / "results"
REPORT = ROOT / "docs" / "benchmarks.md"
LATEST = RESULTS / "latest.json"

# Every benchmark the issues ask for, in report order; files that exist but are not listed
# here run too (after these), and listed ones that do not exist are reported as missing.
EXPECTED = (
    "actor_overhead",
    "cache_bench",
    "tracer_bench",
    "selector_bench",
    "pipeline_bench",
    "ops_bench",
    "scaleout_bench",
    "soak",
    "report_bench",
    "mcp_bench",
    "service_bench",
    "testing_bench",
)

Figures = dict[str, Any]


# -- goals ------------------------------------------------------------------------------
