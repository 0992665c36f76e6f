"""The ops suite's compositions, declared in the configuration's own format.

``search_with_context`` (find CIs, then their metric aggregate and recent events side by
side) and ``impact_analysis`` (a CI, its topology neighbourhood, and the neighbourhood's
metric aggregate and recent events).  The format: docs/pipelines.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from runtime.pipeline import Pipeline, compile_compositions

__all__ = ["OPS_COMPOSITIONS", "ops_compositions"]

# Context steps may fail without failing the run: one retry, then skipped.
_SKIPPABLE: Mapping[str, Any] = {
    "on_error": "skip",
    "retries": 1,
    "backoff": {"base": 0.05, "factor": 2.0, "max": 1.0, "jitter": 0.1},
}


def _context_of(ci_ids: str, **extra: Any) -> dict[str, Any]:
    """The metric aggregate and the recent events of the CIs ``ci_ids`` refers to, side
    by side (``extra``: step keys such as ``when``, on both)."""
    return {
        "parallel": [
            {
                "name": "metrics",
                "tool": "METRIC",
                "operation": "aggregate",
                "params": {
                    "metric": "$params.metric",
                    "agg": "$params.agg",
                    "ci_ids": ci_ids,
                    "time_range": "$params.time_range",
                },
                **extra,
                **_SKIPPABLE,
            },
            {
                "name": "events",
                "tool": "HISTORY",
                "operation": "event_log",
                "params": {
                    "ci_ids": ci_ids,
                    "time_range": "$params.time_range",
                    "limit": "$params.event_limit",
                },
                **extra,
                **_SKIPPABLE,
            },
        ],
    }


OPS_COMPOSITIONS: Mapping[str, Mapping[str, Any]] = {
    "search_with_context": {
        "description": (
            "Find CIs, then the metric aggregate of the found CIs and their recent events, "
            "side by side."
        ),
        "defaults": {
            "keywords": [],
            "filters": [],
            "limit": 20,
            "metric": "cpu_usage",
            "agg": "avg",
            "time_range": "last_24h",
            "event_limit": 50,
        },
        "steps": [
            {
                "name": "search",
                "tool": "CI",
                "operation": "search",
                "params": {
                    "keywords": "$params.keywords",
                    "filters": "$params.filters",
                    "limit": "$params.limit",
                },
            },
            _context_of("$search.records[*].ci_id", when="$search.records"),
        ],
    },
    "impact_analysis": {
        "description": (
            "A CI, its topology neighbourhood, and the neighbourhood's metric aggregate and "
            "recent events, side by side."
        ),
        "defaults": {
            "depth": 1,
            "direction": "both",
            "max_nodes": 100,
            "metric": "cpu_usage",
            "agg": "avg",
            "time_range": "last_24h",
            "event_limit": 50,
        },
        "steps": [
            {
                "name": "get",
                "tool": "CI",
                "operation": "get",
                "params": {"ci_id": "$params.ci_id"},
            },
            {
                "name": "expand",
                "tool": "GRAPH",
                "operation": "expand",
                "params": {
                    "ci_id": "$get.record.ci_id",
                    "depth": "$params.depth",
                    "direction": "$params.direction",
                    "max_nodes": "$params.max_nodes",
                },
            },
            _context_of("$expand.nodes[*].ci_id"),
        ],
    },
}
"""The ops compositions, in the configuration's own format."""


def ops_compositions() -> dict[str, Pipeline]:
    """``search_with_context`` and ``impact_analysis``, compiled (fresh dict, shared-nothing
    pipelines: a :class:`Pipeline` holds no run state)."""
    return compile_compositions(OPS_COMPOSITIONS)
