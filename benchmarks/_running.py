"""Running one benchmark script as a subprocess and reading its last JSON line."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import attrs
from _layout import EXPECTED, HERE, ROOT, Figures


@attrs.frozen(slots=True)
class Outcome:
    """How one benchmark's run went."""

    name: str
    status: str  # ok, failed, timeout, no-json, missing
    command: str
    seconds: float = 0.0
    returncode: int | None = None
    figures: Figures | None = None
    error: str | None = None


def discover() -> list[str]:
    """The benchmarks to run: :data:`EXPECTED` first, then any other script found."""
    found = sorted(
        path.stem
        for path in HERE.glob("*.py")
        if path.name != Path(__file__).name and not path.name.startswith("_")
    )
    return [*EXPECTED, *(name for name in found if name not in EXPECTED)]


def last_json(stdout: str) -> Figures | None:
    """The JSON object on the last non-empty line of ``stdout``, if there is one."""
    lines = [line for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None
    try:
        value = json.loads(lines[-1])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _tail(text: str, lines: int = 5) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_one(name: str, quick: bool, timeout: float) -> Outcome:
    path = HERE / f"{name}.py"
    argv = [sys.executable, str(path.relative_to(ROOT)), *(["--quick"] if quick else [])]
    command = "python " + " ".join(argv[1:])
    if not path.exists():
        return Outcome(name, "missing", command, error=f"benchmarks/{name}.py does not exist")
    started = time.perf_counter()
    try:
        done = subprocess.run(
            argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return Outcome(
            name,
            "timeout",
            command,
            time.perf_counter() - started,
            error=f"no result within {timeout:g}s\n{_tail(stderr)}".strip(),
        )
    seconds = time.perf_counter() - started
    figures = last_json(done.stdout)
    if done.returncode != 0:
        return Outcome(
            name, "failed", command, seconds, done.returncode, figures, _tail(done.stderr)
        )
    if figures is None:
        return Outcome(
            name,
            "no-json",
            command,
            seconds,
            done.returncode,
            error="the last line of stdout is not a JSON object",
        )
    return Outcome(name, "ok", command, seconds, done.returncode, figures)


# -- the hit-ratio curve ------------------------------------------------------------------
