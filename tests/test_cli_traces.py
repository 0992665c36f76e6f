"""``runtime traces report|export``: files written, formats converted, and bad input as
one line on stderr with exit status 2."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime.cli import main
from runtime.tracer import export, records_from_jsonl
from runtime.tracer.records import TraceRecord


def records() -> list[TraceRecord]:
    base: dict[str, Any] = {
        "trace_id": "t",
        "parent_span_id": None,
        "tool_type": "CI",
        "operation": "get",
        "tenant": "acme",
        "started_wall": 1_700_000_000.0,
        "status": "ok",
    }
    return [
        TraceRecord(**base, span_id="p-1", kind="pipeline", started_at=1.0, duration_ms=9.0),
        TraceRecord(
            **{**base, "parent_span_id": "p-1"},
            span_id="p-2",
            kind="tool_call",
            started_at=1.001,
            duration_ms=5.0,
            params={"password": "hunter2"},
        ),
    ]


@pytest.fixture
def traces(tmp_path: Path) -> Path:
    path = tmp_path / "demo-traces.jsonl"
    export(records(), "jsonl", path)
    return path


def test_report_writes_the_page_beside_the_input_by_default(
    traces: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["traces", "report", str(traces)]) == 0
    page = traces.with_suffix(".html")
    assert str(page) in capsys.readouterr().out
    text = page.read_text(encoding="utf-8")
    assert '<section id="waterfalls">' in text
    assert "demo-traces.jsonl" in text


def test_report_to_a_chosen_file(traces: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "r.html"
    target.parent.mkdir()
    assert main(["traces", "report", str(traces), "-o", str(target), "--title", "Mine"]) == 0
    assert "<title>Mine</title>" in target.read_text(encoding="utf-8")


def test_export_chrome_to_a_file(traces: Path, tmp_path: Path) -> None:
    target = tmp_path / "trace.json"
    assert main(["traces", "export", str(traces), "--format", "chrome", "-o", str(target)]) == 0
    events = json.loads(target.read_text())["traceEvents"]
    assert sorted(e["name"] for e in events if e["ph"] == "X") == ["CI.get", "pipeline get"]


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "CSV"])
def test_export_converts_to_the_other_formats_on_stdout(
    traces: Path, fmt: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["traces", "export", str(traces), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt.lower() == "csv":
        assert [row["span_id"] for row in csv.DictReader(out.splitlines())] == ["p-1", "p-2"]
    else:
        assert out == export(records(), fmt)


def test_a_json_array_export_reads_too(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    export(records(), "json", path)
    assert (
        main(["traces", "export", str(path), "--format", "jsonl", "-o", str(tmp_path / "x")]) == 0
    )
    assert records_from_jsonl((tmp_path / "x").read_text()) == records()


BAD_LINES = {
    "not JSON": ("{not json\n", "line 1 is not JSON"),
    "a list": ("[1, 2]\n", "item 1: a int, not a trace record"),
    "not a record": ('{"a": 1}\n', "line 1 is not a trace record"),
    "a bad number": (None, "line 2: field duration_ms must be a number"),
    "a bad date": (None, "line 2 is not a trace record: Invalid isoformat"),
}


@pytest.mark.parametrize("case", sorted(BAD_LINES))
def test_bad_input_is_one_line_and_status_2(
    tmp_path: Path, case: str, capsys: pytest.CaptureFixture[str]
) -> None:
    text, message = BAD_LINES[case]
    path = tmp_path / "t.jsonl"
    if text is None:
        good, second = export(records(), "jsonl").splitlines()
        row = json.loads(second)
        if "number" in case:
            row["duration_ms"] = "slow"
        else:
            row["started_wall"] = "yesterday"
        text = good + "\n" + json.dumps(row) + "\n"
    path.write_text(text)
    for command in (["report", str(path)], ["export", str(path), "--format", "csv"]):
        assert main(["traces", *command]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1, err
        assert err.startswith("runtime: error: ")
        assert message in err


def test_a_missing_file_and_an_unknown_format(
    traces: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["traces", "report", str(tmp_path / "none.jsonl")]) == 2
    err = capsys.readouterr().err
    assert (
        err == f"runtime: error: cannot read {tmp_path / 'none.jsonl'}: No such file or directory\n"
    )
    assert main(["traces", "export", str(traces), "--format", "xml"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "'xml'" in err
    assert "chrome" in err


def test_the_module_entry_point(traces: Path, tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    done = subprocess.run(
        [sys.executable, "-m", "runtime", "traces", "report", str(traces), "-o", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert target.exists()
    bad = subprocess.run(
        [sys.executable, "-m", "runtime", "traces", "export", str(tmp_path / "no.jsonl")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2
    assert bad.stderr.count("\n") == 1
