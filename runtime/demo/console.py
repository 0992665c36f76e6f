"""Terminal output for the CLI: a progress bar and tables, with rich or without it.

``rich`` is an optional extra (``pip install runtime[cli]``), so every piece here has a
plain-text twin: the CLI must work, and read well, on a bare install.  Progress goes to
stderr (stdout stays clean for ``--json`` and pipes); tables go to stdout.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TextIO

__all__ = ["Progress", "have_rich", "print_table", "progress_bar"]

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``, the callback :func:`runtime.ops.build_database` takes."""

_STAGE_TEXT = {
    "estate": "CIs and topology",
    "metrics": "metric series",
    "indexes": "indexes",
    "done": "done",
}


def have_rich() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


@contextmanager
def progress_bar(
    title: str, *, plain: bool = False, stream: TextIO | None = None
) -> Iterator[Progress]:
    """A ``progress(stage, done, total)`` callback drawing one bar while the block runs.

    Nothing is drawn until the first update, so wrapping work that may turn out to have
    nothing to do (an existing database) prints nothing.  A redrawn bar on a terminal
    (with rich installed), plain lines otherwise.
    """
    stream = stream if stream is not None else sys.stderr
    # A bar redrawn in place only on a terminal; a log file or a pipe gets plain lines.
    drawn = not plain and have_rich() and bool(getattr(stream, "isatty", lambda: False)())
    bar: _RichBar | _PlainBar = _RichBar(title, stream) if drawn else _PlainBar(title, stream)
    try:
        yield bar.update
    finally:
        bar.close()


class _RichBar:
    def __init__(self, title: str, stream: TextIO) -> None:
        self.title = title
        self.stream = stream
        self.progress: Any = None
        self.task: Any = None

    def update(self, stage: str, done: int, total: int) -> None:
        if self.progress is None:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self.progress = RichProgress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=self.stream),
            )
            self.task = self.progress.add_task(self.title, total=None)
            self.progress.start()
        label = f"{self.title}: {_STAGE_TEXT.get(stage, stage)}"
        self.progress.update(self.task, description=label, completed=done, total=max(total, 1))

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


class _PlainBar:
    """``title: stage [#####.....] 120/500`` redrawn in place on a terminal; on anything
    else (a log, a pipe) one line per finished stage, so logs stay readable."""

    WIDTH = 30

    def __init__(self, title: str, stream: TextIO) -> None:
        self.title = title
        self.stream = stream
        self.interactive = bool(getattr(stream, "isatty", lambda: False)())
        self.stage: str | None = None
        self.drawn = ""

    def update(self, stage: str, done: int, total: int) -> None:
        total = max(total, 1)
        done = min(max(done, 0), total)
        label = _STAGE_TEXT.get(stage, stage)
        filled = self.WIDTH * done // total
        line = f"{self.title}: {label:<18} [{'#' * filled}{'.' * (self.WIDTH - filled)}]"
        line += f" {done}/{total}"
        if self.interactive:
            if line != self.drawn:
                self.stream.write("\r" + line.ljust(len(self.drawn)))
                self.stream.flush()
                self.drawn = line
        elif done == total and stage != self.stage:
            self.stream.write(line + "\n")
            self.stream.flush()
            self.stage = stage

    def close(self) -> None:
        if self.interactive and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def print_table(
    title: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    plain: bool = False,
    stream: TextIO | None = None,
    right_align_from: int = 1,
) -> None:
    """A table on ``stream`` (stdout): rich's when available, aligned text otherwise.

    Columns from ``right_align_from`` on are numbers and are right-aligned.
    """
    stream = stream if stream is not None else sys.stdout
    cells = [[_cell(value) for value in row] for row in rows]
    if not plain and have_rich():
        from rich.console import Console
        from rich.table import Table

        table = Table(title=title, title_justify="left", show_lines=False)
        for index, header in enumerate(headers):
            table.add_column(header, justify="right" if index >= right_align_from else "left")
        for row in cells:
            table.add_row(*row)
        width = max(100, shutil.get_terminal_size((100, 24)).columns)
        Console(file=stream, width=width).print(table)
        return
    widths = [
        max(len(header), *(len(row[index]) for row in cells)) if cells else len(header)
        for index, header in enumerate(headers)
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if index >= right_align_from else value.ljust(width)
            for index, (value, width) in enumerate(zip(values, widths, strict=True))
        ]
        return "  ".join(parts).rstrip()

    stream.write(f"{title}\n")
    stream.write(line(headers) + "\n")
    stream.write("  ".join("-" * width for width in widths) + "\n")
    for row in cells:
        stream.write(line(row) + "\n")
    stream.flush()


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
