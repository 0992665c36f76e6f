"""A deterministic generator of the sample CMDB: an estate, its metrics and its history.

Same ``seed`` and sizes, same contents: every draw comes from one ``random.Random(seed)``
in a fixed order, iteration is over lists, and the reference "now" is a constant stored
in the ``meta`` table.

The estate itself is drawn by :mod:`runtime.ops.estate` (services, apps, databases, hosts
and network gear, a dependency graph with hubs, diurnal metrics, incidents kept in their
own table as ground truth); this module writes it to SQLite and finds existing builds.

The database is built in a temporary file beside the target and renamed over it only
when complete, so nobody ever opens a half-built database.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import attrs

from runtime.ops.db import naming_path
from runtime.ops.estate import (
    INCIDENT_KINDS,
    METRIC_DESCRIPTIONS,
    METRICS_BY_TYPE,
    REGIONS,
    RESOLUTION_S,
    RULES,
    Bump,
    Ci,
    Events,
    Incident,
    IncidentKind,
    background_events,
    diurnal,
    draw_series,
    incident_effects,
    make_cis,
    make_relations,
    plan_incidents,
)
from runtime.ops.schema import (
    CONTENT_TABLES,
    DDL,
    INDEXES,
    METRIC_UNITS,
    SCHEMA_VERSION,
)
from runtime.ops.timerange import iso

__all__ = [
    "DEFAULT_CIS",
    "DEFAULT_DAYS",
    "DEFAULT_NOW",
    "DEFAULT_SEED",
    "GENERATOR_VERSION",
    "INCIDENT_KINDS",
    "RESOLUTION_S",
    "BuildSummary",
    "IncidentKind",
    "Progress",
    "build_database",
    "content_digest",
    "ensure_database",
    "existing_database",
    "seed_db_main",
]

DEFAULT_CIS = 500
DEFAULT_DAYS = 7
DEFAULT_SEED = 42
# 2025-06-02T00:00:00Z, a Monday: the dataset's "now", whatever the wall clock says.
DEFAULT_NOW = 1_748_822_400
GENERATOR_VERSION = "1"
MIN_CIS = 8
# Upper bound of a build: ~100 ms of generation per 100 CIs a day, so the largest build
# (MAX_CIS over MAX_DAYS) takes minutes, never hours.
MAX_CIS = 50_000
MAX_DAYS = 30

Progress = Callable[[str, int, int], None]


@attrs.frozen(slots=True)
class BuildSummary:
    """What a build produced (or what an existing database holds, ``built=False``)."""

    path: str
    seed: int
    days: int
    cis: int
    relations: int
    metric_series: int
    metric_points: int
    events: int
    incidents: int
    rules: int
    now: int
    now_iso: str
    built: bool = True
    elapsed_s: float = attrs.field(default=0.0, eq=False)


def build_database(
    path: str | os.PathLike[str],
    *,
    cis: int = DEFAULT_CIS,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    progress: Progress | None = None,
    now: int = DEFAULT_NOW,
) -> BuildSummary:
    """Build the sample CMDB at ``path`` (replacing any file there) and summarise it.

    ``progress(stage, done, total)`` is called as the work advances, for a progress bar.
    """
    if not MIN_CIS <= cis <= MAX_CIS:
        raise ValueError(f"cis must be between {MIN_CIS} and {MAX_CIS}, got {cis}")
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be between 1 and {MAX_DAYS}, got {days}")
    started = time.perf_counter()
    report: Progress = progress or (lambda stage, done, total: None)
    target = Path(path)
    if target.is_dir():
        # Checked before the build: otherwise a minute of work ends in a failed rename
        # whose error names our temporary file, not the path the user gave.
        raise IsADirectoryError(f"{target} is a directory; give the database file's path")
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with naming_path(target):
            counts = _build(temp, cis=cis, days=days, seed=seed, now=now, report=report)
        # A stale WAL beside the target belongs to the database being replaced.
        for suffix in ("-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        os.replace(temp, target)
    finally:
        for leftover in (temp, Path(f"{temp}-journal"), Path(f"{temp}-wal"), Path(f"{temp}-shm")):
            leftover.unlink(missing_ok=True)
    return BuildSummary(
        path=str(target),
        seed=seed,
        days=days,
        now=now,
        now_iso=iso(now),
        cis=counts["cis"],
        relations=counts["relations"],
        metric_series=counts["metric_series"],
        metric_points=counts["metric_points"],
        events=counts["events"],
        incidents=counts["incidents"],
        rules=counts["rules"],
        elapsed_s=time.perf_counter() - started,
    )


def _build(
    temp: Path, *, cis: int, days: int, seed: int, now: int, report: Progress
) -> dict[str, int]:
    rng = random.Random(seed)
    samples = days * 86_400 // RESOLUTION_S
    start = now - samples * RESOLUTION_S
    report("estate", 0, cis)
    estate = make_cis(rng, cis)
    relations = make_relations(rng, estate)
    incidents = plan_incidents(rng, estate, relations, samples, days)
    events = Events()
    bumps = incident_effects(rng, incidents, estate, relations, start, samples, events)
    background_events(rng, estate, start, samples * RESOLUTION_S, events, days)
    report("estate", cis, cis)

    conn = sqlite3.connect(temp, isolation_level=None)
    try:
        for pragma in (
            "journal_mode=OFF",
            "synchronous=OFF",
            "temp_store=MEMORY",
            "cache_size=-65536",
        ):
            conn.execute(f"PRAGMA {pragma}")
        conn.execute("BEGIN")
        for statement in DDL:
            conn.execute(statement)
        metric_ids = _write_estate(conn, estate, relations)
        peaks, series, points = _write_metrics(
            conn, rng, estate, incidents, bumps, start, samples, metric_ids, report
        )
        event_count = _write_history(conn, events, incidents, peaks, start)
        counts = {
            "cis": len(estate),
            "relations": len(relations),
            "metric_series": series,
            "metric_points": points,
            "events": event_count,
            "incidents": len(incidents),
            "rules": len(RULES),
        }
        meta = {
            "schema_version": str(SCHEMA_VERSION),
            "generator_version": GENERATOR_VERSION,
            "seed": str(seed),
            "days": str(days),
            "now": str(now),
            "now_iso": iso(now),
            "data_from": str(start),
            "resolution_s": str(RESOLUTION_S),
            **{f"count_{name}": str(value) for name, value in counts.items()},
        }
        conn.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))
        report("indexes", 0, len(INDEXES))
        for number, statement in enumerate(INDEXES, start=1):
            conn.execute(statement)
            report("indexes", number, len(INDEXES))
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        # WAL lets the tools' readers run while CEP.simulate appends to its log.
        conn.execute("PRAGMA journal_mode=WAL")
    finally:
        conn.close()
    report("done", 1, 1)
    return counts


def _write_estate(
    conn: sqlite3.Connection, estate: Sequence[Ci], relations: Sequence[tuple[int, int, str]]
) -> dict[str, int]:
    """The CIs, their relations and the metric definitions; returns each metric's id."""
    conn.executemany(
        "INSERT INTO cis VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                ci.id,
                ci.code,
                ci.name,
                ci.type,
                ci.env,
                ci.status,
                ci.owner,
                json.dumps(ci.tags),
                json.dumps(ci.attributes, sort_keys=True),
            )
            for ci in estate
        ],
    )
    conn.executemany("INSERT INTO relations VALUES (?, ?, ?)", relations)
    metric_ids = {name: number + 1 for number, name in enumerate(METRIC_UNITS)}
    conn.executemany(
        "INSERT INTO metric_defs VALUES (?, ?, ?, ?)",
        [
            (i, name, METRIC_UNITS[name], METRIC_DESCRIPTIONS[name])
            for name, i in metric_ids.items()
        ],
    )
    return metric_ids


def _write_metrics(
    conn: sqlite3.Connection,
    rng: random.Random,
    estate: Sequence[Ci],
    incidents: Sequence[Incident],
    bumps: Mapping[tuple[int, str], list[Bump]],
    start: int,
    samples: int,
    metric_ids: Mapping[str, int],
    report: Progress,
) -> tuple[dict[int, float], int, int]:
    """Every CI's metric series; returns each incident's peak, the series and the points."""
    waves = {offset: diurnal(offset, start, samples) for _, _, offset in REGIONS}
    ramp = [k / samples for k in range(samples)]
    timestamps = [start + k * RESOLUTION_S for k in range(samples)]
    incidents_by_series: dict[tuple[int, str], list[int]] = {}
    for number, incident in enumerate(incidents):
        key = (incident.ci_id, incident.kind.metric)
        incidents_by_series.setdefault(key, []).append(number)
    peaks: dict[int, float] = {}
    series = points = 0
    for done, ci in enumerate(estate, start=1):
        for metric in METRICS_BY_TYPE[ci.type]:
            numbers = incidents_by_series.get((ci.id, metric), [])
            values, series_peaks = draw_series(
                rng,
                ci,
                metric,
                waves[ci.utc_offset],
                ramp,
                bumps.get((ci.id, metric), []),
                [incidents[n] for n in numbers],
            )
            for local, peak in series_peaks.items():
                peaks[numbers[local]] = peak
            metric_id = metric_ids[metric]
            conn.execute("INSERT INTO ci_metrics VALUES (?, ?)", (ci.id, metric_id))
            conn.executemany(
                "INSERT INTO metric_values VALUES (?, ?, ?, ?)",
                zip([ci.id] * samples, [metric_id] * samples, timestamps, values, strict=True),
            )
            series += 1
            points += samples
        if done % 10 == 0 or done == len(estate):
            report("metrics", done, len(estate))
    return peaks, series, points


def _write_history(
    conn: sqlite3.Connection,
    events: Events,
    incidents: Sequence[Incident],
    peaks: Mapping[int, float],
    start: int,
) -> int:
    """The event log, the incidents (ground truth) and the CEP rules; returns the events."""
    event_rows = sorted(events.rows)
    conn.executemany(
        "INSERT INTO events (id, ts, ci_id, severity, kind, message) VALUES (?, ?, ?, ?, ?, ?)",
        [(number, *row) for number, row in enumerate(event_rows, start=1)],
    )
    conn.executemany(
        "INSERT INTO incidents VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (
                number + 1,
                incident.ci_id,
                incident.kind.name,
                incident.kind.metric,
                start + incident.first * RESOLUTION_S,
                start + incident.last * RESOLUTION_S,
                peaks[number],
            )
            for number, incident in enumerate(incidents)
        ],
    )
    conn.executemany(
        "INSERT INTO cep_rules (name, metric, op, threshold, duration_s, severity, ci_type, "
        "enabled, description) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        RULES,
    )
    return len(event_rows)


def _summary_of(path: Path, meta: Mapping[str, str]) -> BuildSummary:
    return BuildSummary(
        path=str(path),
        seed=int(meta["seed"]),
        days=int(meta["days"]),
        cis=int(meta["count_cis"]),
        relations=int(meta["count_relations"]),
        metric_series=int(meta["count_metric_series"]),
        metric_points=int(meta["count_metric_points"]),
        events=int(meta["count_events"]),
        incidents=int(meta["count_incidents"]),
        rules=int(meta["count_rules"]),
        now=int(meta["now"]),
        now_iso=meta["now_iso"],
        built=False,
    )


def _snapshot_uri(path: Path) -> str:
    # ``immutable``: read a finished file without locks or WAL files (a read-only
    # connection to a WAL database would otherwise leave -wal/-shm files behind).
    # Content tables never change after the build, so nothing is missed.
    return f"{path.resolve().as_uri()}?mode=ro&immutable=1"


def _read_meta(path: Path) -> dict[str, str] | None:
    try:
        conn = sqlite3.connect(_snapshot_uri(path), uri=True)
    except sqlite3.Error:
        return None
    try:
        return dict(conn.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.Error:
        return None
    finally:
        conn.close()


def ensure_database(
    path: str | os.PathLike[str],
    *,
    cis: int = DEFAULT_CIS,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    progress: Progress | None = None,
) -> BuildSummary:
    """The database at ``path``, built only if it is absent or was built differently.

    ``built`` on the summary says whether this call had to build it.  A file at ``path``
    that is not a sample CMDB at all raises :class:`FileExistsError` and is left alone:
    it is somebody's data (a config file given as ``--db`` by mistake), not a stale build.
    """
    target = Path(path)
    if target.is_file():
        meta = _sample_meta(target)
        wanted = {
            "schema_version": str(SCHEMA_VERSION),
            "generator_version": GENERATOR_VERSION,
            "seed": str(seed),
            "days": str(days),
            "count_cis": str(cis),
        }
        if all(meta.get(k) == v for k, v in wanted.items()):
            return _summary_of(target, meta)
    return build_database(target, cis=cis, days=days, seed=seed, progress=progress)


def _sample_meta(target: Path) -> dict[str, str]:
    """The meta table of the sample CMDB at ``target``; ``FileExistsError`` when the file
    there is something else (somebody's data), which nothing here may replace."""
    meta = _read_meta(target)
    if meta is None:
        raise FileExistsError(
            f"{target} exists and is not a sample CMDB; not replacing it "
            "(remove it, or choose another database path)"
        )
    return meta


def existing_database(
    path: str | os.PathLike[str],
    *,
    cis: int | None = None,
    days: int | None = None,
    seed: int | None = None,
) -> BuildSummary | None:
    """The sample CMDB at ``path`` as it is, or ``None`` when there is no file.

    Sizes given are the ones a user asked for: a database built with others is a
    ``ValueError`` saying which, never resized.  ``FileExistsError`` for a file that is
    not a sample CMDB; ``ValueError`` for one built by another generator version.
    """
    target = Path(path)
    if not target.exists():
        return None
    meta = _sample_meta(target)
    rebuild = f"rebuild it with `runtime seed-db --db {target}`, or choose another --db"
    versions = (meta.get("schema_version"), meta.get("generator_version"))
    if versions != (str(SCHEMA_VERSION), GENERATOR_VERSION):
        raise ValueError(f"{target} was built by another generator version; {rebuild}")
    asked = {"count_cis": (cis, "--cis"), "days": (days, "--days"), "seed": (seed, "--seed")}
    for key, (value, flag) in asked.items():
        if value is not None and meta.get(key) != str(value):
            raise ValueError(
                f"{target} holds a sample CMDB with {flag} {meta.get(key)}, not {value}: "
                f"drop {flag} to use it as it is, or {rebuild}"
            )
    return _summary_of(target, meta)


def seed_db_main(
    path: str | os.PathLike[str],
    cis: int = DEFAULT_CIS,
    days: int = DEFAULT_DAYS,
    seed: int = DEFAULT_SEED,
    progress: Progress | None = None,
) -> BuildSummary:
    """What ``python -m runtime seed-db`` runs: (re)build, report the summary.  A file at
    ``path`` that is not a sample CMDB is ``FileExistsError`` and left alone."""
    target = Path(path)
    if target.exists():
        _sample_meta(target)
    return build_database(path, cis=cis, days=days, seed=seed, progress=progress)


def content_digest(path: str | os.PathLike[str]) -> str:
    """A SHA-256 over every content table's rows in key order (the CEP log excluded)."""
    digest = hashlib.sha256()
    conn = sqlite3.connect(_snapshot_uri(Path(path)), uri=True)
    try:
        for table, order in CONTENT_TABLES:
            digest.update(table.encode())
            # Table and column names come from the constant CONTENT_TABLES, not from input.
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY {order}"):
                digest.update(repr(row).encode())
    finally:
        conn.close()
    return digest.hexdigest()
