"""The benchmark scripts run as ``python benchmarks/<name>.py`` and edit no ``sys.path``.

Their siblings (``_common``, run_all's parts) are imported from the script's own directory,
which Python puts first on ``sys.path`` for a script; ``runtime`` comes from the install.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def _path_edits(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        is_sys = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
        if is_sys and node.attr == "path" and node.value.id == "sys":  # type: ignore[attr-defined]
            lines.append(node.lineno)
    return lines


def test_no_benchmark_edits_sys_path() -> None:
    scripts = sorted(BENCHMARKS.glob("*.py"))
    assert len(scripts) > 10
    offenders = [
        f"{path.name}:{line}"
        for path in scripts
        for line in _path_edits(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offenders == []


def test_the_path_check_notices_an_edit() -> None:
    assert _path_edits(ast.parse("import sys\nsys.path.insert(0, 'x')\n")) == [2]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["run_all", "scaleout_bench", "cache_bench"])
def test_a_script_imports_from_any_working_directory(name: str, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / f"{name}.py"), "--help"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout
