"""The SQLite schema of the sample CMDB, and the vocabularies the tools accept.

The vocabularies (CI types, metric names, relation types, severities, filterable fields)
live here, beside the tables, because two parties must agree on them: the generator that
fills the database and the params schemas that tell callers what they may ask for.  A
value a caller may name is only ever a member of one of these tuples, which is what lets
the tools splice identifiers into SQL from an allowlist and pass every *value* as a
bound parameter.

Timestamps are integer Unix seconds (UTC): integer range scans are what the metric and
event queries do all day, and ISO strings are produced only at the edge, in results.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = [
    "AGGREGATE_FIELDS",
    "CI_FIELDS",
    "CI_TYPES",
    "CONTENT_TABLES",
    "DDL",
    "ENVS",
    "EVENT_KINDS",
    "FILTER_FIELDS",
    "INDEXES",
    "METRIC_NAMES",
    "METRIC_UNITS",
    "RELATION_TYPES",
    "SCHEMA_VERSION",
    "SEVERITIES",
    "SORT_FIELDS",
    "STATUSES",
    "field_sql",
]

SCHEMA_VERSION = 1

CI_TYPES: tuple[str, ...] = (
    "service",
    "app",
    "database",
    "host",
    "switch",
    "router",
    "load_balancer",
    "firewall",
)
ENVS: tuple[str, ...] = ("prod", "staging", "dev", "dr")
STATUSES: tuple[str, ...] = ("active", "maintenance", "degraded", "retired")
RELATION_TYPES: tuple[str, ...] = (
    "depends_on",
    "calls",
    "uses",
    "runs_on",
    "connected_to",
    "routes_to",
)
# Ordered from most to least severe; the order is used when a caller asks for
# "major and above".
SEVERITIES: tuple[str, ...] = ("critical", "major", "minor", "warning", "info")
EVENT_KINDS: tuple[str, ...] = (
    "alert",
    "recovery",
    "degradation",
    "threshold_warning",
    "deployment",
    "config_change",
    "restart",
    "backup",
    "maintenance",
)

METRIC_UNITS: Mapping[str, str] = {
    "cpu_usage": "percent",
    "mem_usage": "percent",
    "disk_usage": "percent",
    "latency_ms": "ms",
    "error_rate": "percent",
    "request_rate": "req/s",
    "connections": "count",
    "throughput_mbps": "Mbit/s",
    "packet_loss": "percent",
}
METRIC_NAMES: tuple[str, ...] = tuple(METRIC_UNITS)

# Caller-facing field name -> SQL expression over the ``cis`` table.  Attribute fields
# read the JSON document; the JSON path is a constant of this table, never caller text.
_FIELD_SQL: Mapping[str, str] = {
    "ci_id": "cis.id",
    "ci_code": "cis.code",
    "ci_name": "cis.name",
    "ci_type": "cis.type",
    "env": "cis.env",
    "status": "cis.status",
    "owner": "cis.owner",
    "attributes.region": "json_extract(cis.attributes, '$.region')",
    "attributes.tier": "json_extract(cis.attributes, '$.tier')",
    "attributes.os": "json_extract(cis.attributes, '$.os')",
    "attributes.vendor": "json_extract(cis.attributes, '$.vendor')",
}

# ``tags`` is filterable too, with membership semantics (see runtime.ops.ci).
FILTER_FIELDS: tuple[str, ...] = (*_FIELD_SQL, "tags")
CI_FIELDS: tuple[str, ...] = tuple(_FIELD_SQL)
AGGREGATE_FIELDS: tuple[str, ...] = (
    "ci_type",
    "env",
    "status",
    "owner",
    "attributes.region",
    "attributes.tier",
    "attributes.os",
    "attributes.vendor",
)
SORT_FIELDS: tuple[str, ...] = ("ci_id", "ci_code", "ci_name", "ci_type", "env", "status", "owner")


def field_sql(field: str) -> str:
    """The SQL expression for an allowlisted field; KeyError for anything else."""
    return _FIELD_SQL[field]


DDL: tuple[str, ...] = (
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE cis (
        id INTEGER PRIMARY KEY,
        code TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        type TEXT NOT NULL,
        env TEXT NOT NULL,
        status TEXT NOT NULL,
        owner TEXT NOT NULL,
        tags TEXT NOT NULL DEFAULT '[]',
        attributes TEXT NOT NULL DEFAULT '{}'
    )""",
    """CREATE TABLE relations (
        source INTEGER NOT NULL REFERENCES cis(id),
        target INTEGER NOT NULL REFERENCES cis(id),
        type TEXT NOT NULL,
        PRIMARY KEY (source, target, type)
    ) WITHOUT ROWID""",
    """CREATE TABLE metric_defs (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        unit TEXT NOT NULL,
        description TEXT NOT NULL
    )""",
    # Which CI reports which metric: lets "this metric over all CIs" walk the metric's
    # CIs and then seek into metric_values by primary key instead of scanning it.
    """CREATE TABLE ci_metrics (
        ci_id INTEGER NOT NULL REFERENCES cis(id),
        metric_id INTEGER NOT NULL REFERENCES metric_defs(id),
        PRIMARY KEY (metric_id, ci_id)
    ) WITHOUT ROWID""",
    """CREATE TABLE metric_values (
        ci_id INTEGER NOT NULL,
        metric_id INTEGER NOT NULL,
        ts INTEGER NOT NULL,
        value REAL NOT NULL,
        PRIMARY KEY (ci_id, metric_id, ts)
    ) WITHOUT ROWID""",
    """CREATE TABLE events (
        id INTEGER PRIMARY KEY,
        ci_id INTEGER NOT NULL REFERENCES cis(id),
        ts INTEGER NOT NULL,
        severity TEXT NOT NULL,
        kind TEXT NOT NULL,
        message TEXT NOT NULL
    )""",
    # Ground truth of the generator, kept so tests and the demo can check the tools
    # against what was planted rather than against the tools themselves.
    """CREATE TABLE incidents (
        id INTEGER PRIMARY KEY,
        ci_id INTEGER NOT NULL REFERENCES cis(id),
        kind TEXT NOT NULL,
        metric TEXT NOT NULL,
        start_ts INTEGER NOT NULL,
        end_ts INTEGER NOT NULL,
        peak REAL NOT NULL
    )""",
    """CREATE TABLE cep_rules (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        metric TEXT NOT NULL,
        op TEXT NOT NULL,
        threshold REAL NOT NULL,
        duration_s INTEGER NOT NULL,
        severity TEXT NOT NULL,
        ci_type TEXT,
        enabled INTEGER NOT NULL DEFAULT 1,
        description TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE cep_exec_log (
        id INTEGER PRIMARY KEY,
        simulation_id TEXT NOT NULL UNIQUE,
        rule_id INTEGER,
        rule_text TEXT NOT NULL,
        time_from INTEGER NOT NULL,
        time_to INTEGER NOT NULL,
        ci_count INTEGER NOT NULL,
        alert_count INTEGER NOT NULL,
        triggered INTEGER NOT NULL,
        tenant_id TEXT,
        created_at TEXT NOT NULL
    )""",
)

INDEXES: tuple[str, ...] = (
    "CREATE INDEX cis_type ON cis(type)",
    "CREATE INDEX cis_env ON cis(env)",
    "CREATE INDEX cis_owner ON cis(owner)",
    "CREATE INDEX relations_target ON relations(target, source)",
    "CREATE INDEX events_ci_ts ON events(ci_id, ts)",
    "CREATE INDEX events_ts ON events(ts)",
    "CREATE INDEX incidents_ci ON incidents(ci_id, start_ts)",
)

# Tables whose rows make up "the contents" for the determinism digest; the execution
# log is excluded on purpose, it is what CEP.simulate writes at run time.
CONTENT_TABLES: tuple[tuple[str, str], ...] = (
    ("meta", "key"),
    ("cis", "id"),
    ("relations", "source, target, type"),
    ("metric_defs", "id"),
    ("ci_metrics", "metric_id, ci_id"),
    ("metric_values", "ci_id, metric_id, ts"),
    ("events", "id"),
    ("incidents", "id"),
    ("cep_rules", "id"),
)
