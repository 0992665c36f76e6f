"""The demo: an operator session over the sample CMDB, and the workload it replays.

* :mod:`~runtime.demo.workload` -- the question catalogue and its Zipf popularity (pure);
* :mod:`~runtime.demo.session` -- discovery, the scripted walk-through, the replay;
* :mod:`~runtime.demo.console` -- progress bar and tables, with or without ``rich``;
* :mod:`~runtime.demo.app` -- :func:`run_demo`, what ``python -m runtime demo`` runs.

``benchmarks/ops_bench.py`` replays the same workload with the cache on and off.
"""

from runtime.demo.app import DemoReport, ToolFigures, prepare_database, print_report, run_demo
from runtime.demo.session import Answer, Asker, ReplayResult, discover, replay, walk_through
from runtime.demo.workload import (
    CiRef,
    Estate,
    Question,
    distinct_count,
    question_catalogue,
    zipf_sample,
    zipf_weights,
)

__all__ = [
    "Answer",
    "Asker",
    "CiRef",
    "DemoReport",
    "Estate",
    "Question",
    "ReplayResult",
    "ToolFigures",
    "discover",
    "distinct_count",
    "prepare_database",
    "print_report",
    "question_catalogue",
    "replay",
    "run_demo",
    "walk_through",
    "zipf_sample",
    "zipf_weights",
]
