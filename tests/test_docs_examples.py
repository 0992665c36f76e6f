"""The README's code and docs/examples stay identical and keep running."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "docs" / "examples"


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.parametrize("name", ["embed_trio.py", "embed_asyncio.py"])
def test_readme_embedding_examples_are_the_files_that_run(name: str) -> None:
    source = (EXAMPLES / name).read_text(encoding="utf-8")
    assert source in readme_blocks(), f"README's example differs from docs/examples/{name}"
    assert len(source.strip().splitlines()) <= 22


@pytest.mark.parametrize("name", ["embed_trio.py", "embed_asyncio.py"])
def test_embedding_examples_run_and_print_results(name: str) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines == ["{'ci_id': 7, 'tenant': 'acme'}"] * 2
