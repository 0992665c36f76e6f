"""The CLI and the demo, end to end: ``python -m runtime demo|seed-db|config``.

The demo runs in a subprocess at a tiny size (40 CIs, 1 day) on both backends, the way the
README's ``make demo`` runs it, and its ``--json`` summary is checked against the database
it ran on.  Usage errors must exit 2 naming the argument; failures exit 1 with one line.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from runtime.cli import main
from runtime.ops import DEFAULT_CIS, DEFAULT_DAYS, DEFAULT_SEED, content_digest, ensure_database
from runtime.ops.config import OpsConfig

TINY = ["--cis", "40", "--days", "1"]
ALL_TOOLS = {
    "CI.search",
    "CI.get",
    "CI.aggregate",
    "METRIC.aggregate",
    "METRIC.series",
    "GRAPH.expand",
    "GRAPH.path",
    "HISTORY.event_log",
    "CEP.simulate",
}


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "runtime", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def cep_log_rows(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        (count,) = conn.execute("SELECT count(*) FROM cep_exec_log").fetchone()
    finally:
        conn.close()
    return int(count)


@pytest.mark.parametrize("backend", ["trio", "asyncio"])
def test_the_demo_runs_at_a_tiny_size_and_its_json_summary_adds_up(
    tmp_path: Path, backend: str
) -> None:
    db = tmp_path / "cmdb.sqlite"
    done = run_cli(
        "demo", "--backend", backend, "--json", "--db", str(db), *TINY, "--questions", "300",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])

    assert summary["backend"] == backend
    assert summary["database"] == {
        "path": str(db), "cis": 40, "days": 1, "seed": DEFAULT_SEED, "built": True,
    }  # fmt: skip
    assert summary["calls"] > 300
    assert 0 < summary["hit_rate"] <= 1
    assert summary["cache_hits"] > 0
    # Repeated questions are answered from the cache, so the database sees fewer queries
    # than the runtime sees calls (some tools issue several queries per call).
    assert summary["db_queries"] < summary["calls"]
    # The only failed calls would be candidates execute_best fell back from; candidates
    # that would reject the params are skipped without running, so there are none here.
    assert summary["errors"] == summary["selector_failed_attempts"] == 0
    assert summary["replay"]["questions"] == 300
    assert summary["replay"]["errors"] == 0

    tools = summary["tools"]
    assert set(tools) == ALL_TOOLS
    assert sum(row["calls"] for row in tools.values()) == summary["calls"]
    assert sum(row["db_queries"] for row in tools.values()) == summary["db_queries"]
    for row in tools.values():
        assert row["p50_ms"] <= row["p95_ms"]
        assert 0 <= row["cache_hit_rate"] <= 1
    # A CEP simulation writes its log on every call: never cached, one log row per call.
    assert tools["CEP.simulate"]["calls"] >= 2
    assert tools["CEP.simulate"]["cache_hit_rate"] == 0
    assert cep_log_rows(db) == tools["CEP.simulate"]["calls"]

    assert set(summary["pipelines"]) == {"impact_analysis", "search_with_context"}
    assert len(summary["answers"]) >= 7
    assert all(answer["answer"] for answer in summary["answers"])
    # One "why" per question the selector answered: the winner's score over the runner-up.
    chosen = [answer for answer in summary["answers"] if answer["via"].startswith("selector:")]
    assert len(chosen) >= 6
    for answer in chosen:
        tool = answer["via"].removeprefix("selector: ").split(",")[0].split(";")[0]
        assert answer["why"].startswith(tool + " ")
        assert " over " in answer["why"] or answer["why"].endswith("the only candidate")

    traces = [Path(path) for path in summary["traces"]]
    assert [path.suffix for path in traces] == [".jsonl", ".csv"]
    for path in traces:
        assert (tmp_path / path).is_file()
    records = (tmp_path / traces[0]).read_text().splitlines()
    assert len(records) >= summary["calls"]
    # The HTML report beside them, of the same records.
    page = tmp_path / summary["report"]
    assert page.parent == (tmp_path / traces[0]).parent
    text = page.read_text(encoding="utf-8")
    assert '<section id="waterfalls">' in text
    assert "impact_analysis" in text


def test_the_demo_reuses_the_database_and_prints_readable_tables(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "cmdb.sqlite"
    ensure_database(db, cis=40, days=1, seed=DEFAULT_SEED)
    # Not the mtime: the demo's CEP simulations legitimately write their execution log.
    built = (db.stat().st_ino, content_digest(db))

    status = main(["demo", "--plain", "--db", str(db), *TINY, "--questions", "50"])

    out = capsys.readouterr().out
    assert status == 0
    assert (db.stat().st_ino, content_digest(db)) == built  # reused, not rebuilt
    assert "sample CMDB (reused)" in out
    assert "the 5 CIs most affected by" in out
    questions = [line for line in out.splitlines() if line.startswith("  ? ")]
    whys = [line for line in out.splitlines() if line.startswith("    why: ")]
    assert len(whys) == len([line for line in out.splitlines() if "[selector: " in line])
    assert len(whys) >= len(questions) - 2  # the compositions answer the rest
    header = next(line for line in out.splitlines() if line.startswith("tool "))
    assert header.split() == [
        "tool", "calls", "p50", "ms", "p95", "ms", "cache", "hit", "rate", "errors", "db",
        "queries",
    ]  # fmt: skip
    for tool in ALL_TOOLS:
        assert any(line.startswith(tool + " ") for line in out.splitlines()), tool
    assert "database queries issued:" in out
    assert "traces exported to: var/traces/demo-traces.jsonl" in out
    assert (tmp_path / "var" / "traces" / "demo-traces.csv").is_file()
    # The report's path is the last thing printed.
    assert out.splitlines()[-1].endswith("var/traces/demo-report.html")
    assert (tmp_path / "var" / "traces" / "demo-report.html").is_file()


def test_seed_db_builds_the_requested_estate_with_a_progress_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "sub" / "cmdb.sqlite"
    status = main(
        ["seed-db", "--plain", "--cis", "24", "--days", "1", "--seed", "5", "--db", str(db)]
    )
    captured = capsys.readouterr()
    assert status == 0
    assert f"built {db}" in captured.out
    assert "24 CIs" in captured.out
    assert "indexes" in captured.err  # the plain progress bar, on stderr
    # Exactly what was asked for: ensure_database finds it and does not rebuild.
    assert ensure_database(db, cis=24, days=1, seed=5).built is False
    assert ensure_database(db, cis=24, days=1, seed=6).built is True


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["demo", "--cis", "3"], "--cis"),
        (["demo", "--days", "0"], "--days"),
        (["demo", "--days", "many"], "--days"),
        (["demo", "--backend", "curio"], "--backend"),
        (["demo", "--questions", "-1"], "--questions"),
        (["demo", "--skew", "-0.5"], "--skew"),
        (["seed-db", "--seed", "x"], "--seed"),
        (["seed-db", "--colour", "red"], "--colour"),
        (["launch"], "launch"),
        ([], "COMMAND"),
    ],
)
def test_bad_arguments_exit_2_naming_the_argument(
    argv: list[str], named: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert named in capsys.readouterr().err


def test_usage_errors_exit_2_from_the_command_line_too(tmp_path: Path) -> None:
    done = run_cli("seed-db", "--cis", "2", cwd=tmp_path)
    assert done.returncode == 2
    assert "--cis: must be between 8 and 50000, got 2" in done.stderr
    assert not (tmp_path / "var").exists()


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ("cache: {colour: red}\n", "runtime: error: cache.colour: unknown key"),
        ("ops: {cis: -4}\n", "runtime: error: ops.cis: must be a positive integer"),
        ("- a\n- list\n", "must hold a mapping"),
    ],
)
def test_a_bad_config_file_exits_1_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], document: str, message: str
) -> None:
    config = tmp_path / "runtime.yaml"
    config.write_text(document)
    status = main(["demo", "--config", str(config), "--db", str(tmp_path / "db.sqlite")])
    err = capsys.readouterr().err
    assert status == 1
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "db.sqlite").exists()


def test_an_unwritable_database_path_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    status = main(
        ["seed-db", "--plain", "--cis", "8", "--days", "1", "--db", str(blocker / "x.db")]
    )
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith("runtime: error: ")
    assert len(err.strip().splitlines()) == 1


def test_config_prints_the_effective_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "runtime.yaml"
    config.write_text("ops: {demo_questions: 7}\n")
    assert main(["config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "demo_questions: 7" in out
    assert f"cis: {DEFAULT_CIS}" in out


def test_config_does_not_print_the_redis_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secret = "s3cret-s3cret-s3cret-42"
    config = tmp_path / "runtime.yaml"
    config.write_text(f"cache: {{redis: {{url: 'redis://127.0.0.1:6379/0', secret: {secret}}}}}\n")
    assert main(["config", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert secret not in out
    assert "secret: '***'" in out


def test_the_ops_config_defaults_are_the_generators() -> None:
    ops = OpsConfig()
    assert (ops.cis, ops.days, ops.seed) == (DEFAULT_CIS, DEFAULT_DAYS, DEFAULT_SEED)


def test_the_demo_still_runs_with_cache_tracer_and_selector_disabled(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "runtime.yaml"
    config.write_text(
        "cache: {enabled: false}\ntracer: {enabled: false}\nselector: {enabled: false}\n"
    )
    db = tmp_path / "cmdb.sqlite"
    argv = ["demo", "--json", "--config", str(config), "--db", str(db), *TINY]
    assert main([*argv, "--questions", "40", "--backend", "asyncio"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["hit_rate"] == 0
    assert summary["cache_hits"] == 0
    assert summary["traces"] == []
    assert summary["report"] is None
    assert summary["pipelines"] == {}
    tools = summary["tools"]
    assert sum(row["calls"] for row in tools.values()) == summary["calls"] > 40
    # Without a cache every call reaches the database, at least one query each.
    assert summary["db_queries"] >= summary["calls"]
    assert all(row["p50_ms"] is None and row["cache_hit_rate"] == 0 for row in tools.values())
    assert all("declared order" in answer["via"] for answer in summary["answers"][:4])


def test_the_demo_counts_in_words_that_agree_with_the_number() -> None:
    from runtime.demo.session import _count

    assert [_count(n, "alert") for n in (0, 1, 2)] == ["0 alerts", "1 alert", "2 alerts"]
