"""Shared plumbing for the benchmark scripts: ``--quick``, timing, the final JSON line.

Every benchmark prints exactly one JSON object as the last line of stdout, with every
figure named, so ``run_all.py`` and humans read the same thing.

Run a benchmark as ``python benchmarks/<name>.py [--quick]`` from the repository root.
Python puts the script's own directory first on ``sys.path``, so the scripts import their
siblings (``from _common import emit``) as plain modules and ``runtime`` from the installed
package: nothing edits ``sys.path``.  :func:`tests_module` loads a helper of the test suite
(a Redis server, replica processes) by its file path.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

TESTS = Path(__file__).resolve().parent.parent / "tests"


def tests_module(name: str) -> ModuleType:
    """The test suite's helper module ``tests/<name>.py``, loaded once by its file path."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, TESTS / f"{name}.py")
    if spec is None or spec.loader is None:
        raise ImportError(f"no test helper {name!r} in {TESTS}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses and attrs look it up
    spec.loader.exec_module(module)
    return module


def parse_args(description: str | None, argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(description or "").strip().splitlines()[0] if description else None
    )
    parser.add_argument("--quick", action="store_true", help="a short run (CI-sized)")
    return parser.parse_args(argv)


def best_of(repeats: int, function: Callable[[], float]) -> tuple[float, float]:
    """Run ``function`` (which returns a duration) ``repeats`` times: (best, median)."""
    durations = [function() for _ in range(repeats)]
    return min(durations), statistics.median(durations)


def timed(function: Callable[[], Any]) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def emit(name: str, figures: dict[str, Any], *, quick: bool) -> None:
    """Print the benchmark's one JSON object as the last line of stdout."""
    record = {
        "benchmark": name,
        "quick": quick,
        "python": platform.python_version(),
        **figures,
    }
    print(json.dumps(record, sort_keys=False))


def run_measurements(
    name: str,
    measurements: list[Callable[[bool], dict[str, Any]]],
    description: str | None,
    argv: list[str] | None = None,
) -> None:
    """Run each measurement in turn (its time on stderr), then :func:`emit` all figures."""
    args = parse_args(description, argv)
    figures: dict[str, Any] = {}
    for measure in measurements:
        started = time.perf_counter()
        figures.update(measure(args.quick))
        print(f"{measure.__name__}: {time.perf_counter() - started:.1f}s", file=sys.stderr)
    emit(name, figures, quick=args.quick)


_CACHEGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null")


def have_valgrind() -> bool:
    return shutil.which("valgrind") is not None


def instructions(script: Path, args: list[str]) -> int:
    """Instructions retired by ``python script --child *args`` under cachegrind.

    ``PYTHONHASHSEED=0``: the same string hashes, hence the same dict layouts, in every run.
    """
    done = subprocess.run(
        [*_CACHEGRIND, sys.executable, str(script), "--child", *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output:\n{done.stderr}")
    return int(found.group(1).replace(",", ""))
