"""The sample estate, drawn: CIs, their dependency graph, incidents, metrics and events.

Pure functions of a ``random.Random`` (no I/O): :func:`make_cis` draws services, apps,
databases, hosts and network gear; :func:`make_relations` a dependency graph with hubs
(preferential attachment); :func:`plan_incidents` incidents on hub-weighted CIs;
:func:`draw_series` diurnal metrics at :data:`RESOLUTION_S` below the CEP thresholds,
pushed above them inside an incident's window; :func:`background_events` and
:func:`incident_effects` the event log.  Every draw happens in a fixed order, so the same
seed gives the same estate; :mod:`runtime.ops.generate` writes it to SQLite.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from runtime.ops.schema import (
    METRIC_UNITS,
)

__all__ = [
    "INCIDENT_KINDS",
    "METRICS_BY_TYPE",
    "METRIC_DESCRIPTIONS",
    "REGIONS",
    "RESOLUTION_S",
    "RULES",
    "Bump",
    "Ci",
    "Events",
    "Incident",
    "IncidentKind",
    "background_events",
    "diurnal",
    "draw_series",
    "incident_effects",
    "make_cis",
    "make_relations",
    "plan_incidents",
]

RESOLUTION_S = 300
"""Seconds between two metric samples."""


@attrs.frozen(slots=True)
class IncidentKind:
    """What an incident does: push ``metric`` to ``low..high`` on CIs of ``ci_types``."""

    name: str
    metric: str
    low: float
    high: float
    ci_types: tuple[str, ...]
    severity: str
    threshold: float


INCIDENT_KINDS: tuple[IncidentKind, ...] = (
    IncidentKind("cpu_spike", "cpu_usage", 92.0, 99.5, ("host", "database"), "major", 90.0),
    IncidentKind("memory_leak", "mem_usage", 87.0, 98.0, ("host",), "major", 85.0),
    IncidentKind("disk_fill", "disk_usage", 91.0, 99.0, ("host",), "major", 90.0),
    IncidentKind(
        "latency_spike",
        "latency_ms",
        600.0,
        2500.0,
        ("service", "app", "database"),
        "critical",
        500.0,
    ),
    IncidentKind("error_burst", "error_rate", 6.0, 30.0, ("service", "app"), "critical", 5.0),
    IncidentKind("connection_storm", "connections", 460.0, 500.0, ("database",), "critical", 450.0),
    IncidentKind(
        "packet_loss", "packet_loss", 3.0, 12.0, ("switch", "router", "firewall"), "critical", 2.0
    ),
)

# (name, metric, op, threshold, duration_s, severity, ci_type, enabled, description)
RULES: tuple[tuple[str, str, str, float, int, str, str | None, int, str], ...] = (
    ("High CPU", "cpu_usage", ">", 90.0, 600, "major", None, 1, "CPU above 90% for 10 minutes"),
    ("Memory pressure", "mem_usage", ">", 85.0, 900, "major", "host", 1, "memory above 85%"),
    ("Slow responses", "latency_ms", ">", 500.0, 300, "critical", None, 1, "latency > 500 ms"),
    ("Error burst", "error_rate", ">", 5.0, 300, "critical", None, 1, "errors above 5%"),
    ("Packet loss", "packet_loss", ">", 2.0, 600, "critical", None, 1, "loss above 2%"),
    ("Disk almost full", "disk_usage", ">", 90.0, 1800, "major", "host", 1, "disk above 90%"),
    (
        "DB connection saturation",
        "connections",
        ">=",
        450.0,
        600,
        "critical",
        "database",
        1,
        "connection pool nearly exhausted",
    ),
    ("Idle service", "request_rate", "<", 1.0, 3600, "warning", "app", 0, "disabled: noisy"),
)

_TYPE_SHARES: tuple[tuple[str, float, str], ...] = (
    ("service", 0.08, "SVC"),
    ("app", 0.25, "APP"),
    ("database", 0.10, "DB"),
    ("host", 0.37, "HOST"),
    ("switch", 0.08, "SW"),
    ("router", 0.04, "RTR"),
    ("load_balancer", 0.04, "LB"),
    ("firewall", 0.04, "FW"),
)
METRICS_BY_TYPE: Mapping[str, tuple[str, ...]] = {
    "service": ("latency_ms", "error_rate"),
    "app": ("latency_ms", "error_rate", "request_rate"),
    "database": ("cpu_usage", "latency_ms", "connections"),
    "host": ("cpu_usage", "mem_usage", "disk_usage"),
    "switch": ("throughput_mbps", "packet_loss"),
    "router": ("throughput_mbps", "packet_loss"),
    "firewall": ("throughput_mbps", "packet_loss"),
    "load_balancer": ("throughput_mbps", "request_rate"),
}
METRIC_DESCRIPTIONS: Mapping[str, str] = {
    "cpu_usage": "CPU utilisation",
    "mem_usage": "memory utilisation",
    "disk_usage": "disk space used",
    "latency_ms": "response latency (p50)",
    "error_rate": "share of failed requests",
    "request_rate": "requests per second",
    "connections": "open database connections",
    "throughput_mbps": "traffic through the device",
    "packet_loss": "share of packets lost",
}
_DOMAINS: tuple[tuple[str, str], ...] = (
    ("gateway", "team-platform"),
    ("identity", "team-identity"),
    ("payments", "team-payments"),
    ("orders", "team-commerce"),
    ("checkout", "team-commerce"),
    ("catalog", "team-commerce"),
    ("search", "team-discovery"),
    ("inventory", "team-supply"),
    ("shipping", "team-supply"),
    ("billing", "team-payments"),
    ("notifications", "team-platform"),
    ("messaging", "team-platform"),
    ("pricing", "team-commerce"),
    ("ledger", "team-payments"),
    ("reporting", "team-data"),
    ("analytics", "team-data"),
)
# (region, short code, UTC offset in hours used for the daily wave)
REGIONS: tuple[tuple[str, str, int], ...] = (
    ("eu-west-1", "euw1", 1),
    ("us-east-1", "use1", -5),
    ("ap-southeast-1", "apse1", 8),
    ("us-west-2", "usw2", -8),
)
_REGION_WEIGHTS = (0.4, 0.35, 0.15, 0.10)
_ENVS = (("prod", 0.6), ("staging", 0.2), ("dev", 0.15), ("dr", 0.05))
_STATUSES = (("active", 0.86), ("maintenance", 0.05), ("degraded", 0.04), ("retired", 0.05))
_TIERS = (("tier1", 0.3), ("tier2", 0.45), ("tier3", 0.25))
_APP_PARTS = ("api", "worker", "web", "scheduler", "consumer")
_DB_ENGINES = (
    ("postgres", 0.45),
    ("mysql", 0.2),
    ("redis", 0.15),
    ("mongodb", 0.1),
    ("oracle", 0.1),
)
_HOST_ROLES = ("web", "app", "db", "batch", "cache", "k8s")
_VENDORS: Mapping[str, tuple[str, ...]] = {
    "switch": ("cisco", "arista", "juniper"),
    "router": ("cisco", "juniper"),
    "load_balancer": ("f5", "citrix", "haproxy"),
    "firewall": ("paloalto", "fortinet", "cisco"),
}
_TAGS: Mapping[str, tuple[str, ...]] = {
    "service": ("customer-facing", "internal", "critical", "pci", "gdpr"),
    "app": ("k8s", "vm", "critical", "batch", "customer-facing", "legacy", "java", "python", "go"),
    "database": ("critical", "ha", "backup-daily", "pci", "legacy"),
    "host": ("vm", "baremetal", "k8s-node", "patched", "legacy"),
    "network": ("core", "edge", "ha", "dmz"),
}
_NETWORK = ("switch", "router", "load_balancer", "firewall")


@attrs.define(slots=True)
class Ci:
    id: int
    code: str
    name: str
    type: str
    env: str
    status: str
    owner: str
    tags: list[str]
    attributes: dict[str, Any]
    utc_offset: int


@attrs.frozen(slots=True)
class Incident:
    ci_id: int
    kind: IncidentKind
    first: int  # sample index of the first breaching sample
    last: int  # sample index of the last breaching sample (inclusive)
    level: float


@attrs.frozen(slots=True)
class Bump:
    """Sub-threshold degradation of a dependent CI while an upstream incident lasts."""

    first: int
    last: int
    amount: float
    cap: float


def _weighted(rng: random.Random, options: Sequence[tuple[str, float]]) -> str:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _type_counts(total: int) -> list[tuple[str, int, str]]:
    raw = [(name, total * share, prefix) for name, share, prefix in _TYPE_SHARES]
    counts = [max(1, int(value)) for _, value, _ in raw]
    # Largest remainder first, so the shares add up to exactly ``total``.
    order = sorted(range(len(raw)), key=lambda i: (-(raw[i][1] - int(raw[i][1])), i))
    i = 0
    while sum(counts) < total:
        counts[order[i % len(order)]] += 1
        i += 1
    biggest = sorted(range(len(raw)), key=lambda i: (-counts[i], i))
    i = 0
    while sum(counts) > total:
        if counts[biggest[i % len(biggest)]] > 1:
            counts[biggest[i % len(biggest)]] -= 1
        i += 1
    return [(name, count, prefix) for (name, _, prefix), count in zip(raw, counts, strict=True)]


def make_cis(rng: random.Random, total: int) -> list[Ci]:
    cis: list[Ci] = []
    name_counts: dict[str, int] = {}
    domain_weights = [1.0 / (rank + 1) for rank in range(len(_DOMAINS))]

    def unique(base: str) -> str:
        name_counts[base] = name_counts.get(base, 0) + 1
        return f"{base}-{name_counts[base]:02d}"

    for ci_type, count, prefix in _type_counts(total):
        for _ in range(count):
            ci_id = len(cis) + 1
            region_index = rng.choices(range(len(REGIONS)), weights=_REGION_WEIGHTS)[0]
            region, region_code, offset = REGIONS[region_index]
            attributes: dict[str, Any] = {"region": region, "tier": _weighted(rng, _TIERS)}
            env = _weighted(rng, _ENVS)
            if ci_type in ("service", "app", "database"):
                domain, owner = rng.choices(_DOMAINS, weights=domain_weights)[0]
                attributes["domain"] = domain
                if ci_type == "service":
                    name = unique(f"{domain}-svc")
                    attributes["version"] = f"{rng.randint(1, 4)}.{rng.randint(0, 20)}"
                elif ci_type == "app":
                    name = unique(f"{domain}-{rng.choice(_APP_PARTS)}")
                    attributes["version"] = (
                        f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
                    )
                else:
                    engine = _weighted(rng, _DB_ENGINES)
                    name = unique(f"{domain}-{engine}")
                    attributes["vendor"] = engine
                pool = _TAGS[ci_type]
            elif ci_type == "host":
                name = unique(f"{rng.choice(_HOST_ROLES)}-{region_code}")
                attributes["os"] = "linux" if rng.random() < 0.8 else "windows"
                attributes["cpu_cores"] = rng.choice((2, 4, 8, 16, 32, 64))
                attributes["memory_gb"] = rng.choice((4, 8, 16, 32, 64, 128, 256))
                owner = "team-compute" if rng.random() < 0.7 else "team-sre"
                pool = _TAGS["host"]
            else:
                short = {"switch": "sw", "router": "rtr", "load_balancer": "lb", "firewall": "fw"}
                name = unique(f"{short[ci_type]}-{region_code}")
                attributes["vendor"] = rng.choice(_VENDORS[ci_type])
                owner = "team-security" if ci_type == "firewall" else "team-network"
                env = "prod" if rng.random() < 0.85 else "dr"
                pool = _TAGS["network"]
            tags = rng.sample(pool, rng.randint(1, min(3, len(pool))))
            if ci_type == "host":
                tags.insert(0, str(attributes["os"]))
            cis.append(
                Ci(
                    ci_id,
                    f"{prefix}-{ci_id:05d}",
                    name,
                    ci_type,
                    env,
                    _weighted(rng, _STATUSES),
                    owner,
                    tags,
                    attributes,
                    offset,
                )
            )
    return cis


class _Attachment:
    """Preferential attachment: a CI is picked in proportion to 1 + its in-degree."""

    def __init__(self, rng: random.Random, ids: Iterable[int] = ()) -> None:
        self.rng = rng
        self.tickets: list[int] = list(ids)

    def add(self, ci_id: int) -> None:
        self.tickets.append(ci_id)

    def pick(self, count: int, exclude: int | None = None) -> list[int]:
        chosen: list[int] = []
        distinct = len(set(self.tickets) - {exclude})
        count = min(count, distinct)
        while len(chosen) < count:
            candidate = self.rng.choice(self.tickets)
            if candidate != exclude and candidate not in chosen:
                chosen.append(candidate)
        for candidate in chosen:
            self.tickets.append(candidate)
        return chosen


def make_relations(rng: random.Random, cis: Sequence[Ci]) -> list[tuple[int, int, str]]:
    by_type: dict[str, list[int]] = {}
    for ci in cis:
        by_type.setdefault(ci.type, []).append(ci.id)
    apps, services, dbs = by_type["app"], by_type["service"], by_type["database"]
    hosts, switches, routers = by_type["host"], by_type["switch"], by_type["router"]
    relations: list[tuple[int, int, str]] = []

    app_pool = _Attachment(rng)
    for app in apps:
        if app_pool.tickets:
            for target in app_pool.pick(rng.choice((0, 1, 1, 2, 3)), exclude=app):
                relations.append((app, target, "calls"))
        app_pool.add(app)
    for service in services:
        for target in app_pool.pick(rng.randint(1, 3)):
            relations.append((service, target, "depends_on"))
    db_pool = _Attachment(rng, dbs)
    for app in apps:
        if rng.random() < 0.8:
            for target in db_pool.pick(rng.randint(1, 2)):
                relations.append((app, target, "uses"))
    for app in apps:
        for target in rng.sample(hosts, min(len(hosts), rng.randint(1, 2))):
            relations.append((app, target, "runs_on"))
    for db in dbs:
        relations.append((db, rng.choice(hosts), "runs_on"))
    switch_pool = _Attachment(rng, switches)
    for host in hosts:
        relations.append((host, switch_pool.pick(1)[0], "connected_to"))
    router_pool = _Attachment(rng, routers)
    for switch in switches:
        for target in router_pool.pick(rng.randint(1, 2)):
            relations.append((switch, target, "connected_to"))
    for lb in by_type["load_balancer"]:
        for target in app_pool.pick(rng.randint(2, 5)):
            relations.append((lb, target, "routes_to"))
        relations.append((lb, switch_pool.pick(1)[0], "connected_to"))
    for firewall in by_type["firewall"]:
        for target in router_pool.pick(rng.randint(1, 2)):
            relations.append((firewall, target, "connected_to"))
    return sorted(set(relations))


def plan_incidents(
    rng: random.Random,
    cis: Sequence[Ci],
    relations: Sequence[tuple[int, int, str]],
    samples: int,
    days: int,
) -> list[Incident]:
    in_degree: dict[int, int] = {}
    for _, target, _ in relations:
        in_degree[target] = in_degree.get(target, 0) + 1
    kinds_by_type: dict[str, list[IncidentKind]] = {}
    for kind in INCIDENT_KINDS:
        for ci_type in kind.ci_types:
            kinds_by_type.setdefault(ci_type, []).append(kind)
    eligible = [ci for ci in cis if ci.type in kinds_by_type]
    weights = [1 + in_degree.get(ci.id, 0) for ci in eligible]
    taken: dict[tuple[int, str], list[tuple[int, int]]] = {}
    incidents: list[Incident] = []

    def place(ci: Ci, kind: IncidentKind, first: int, last: int) -> bool:
        # Keep a margin (and room for a memory leak's ramp) between incidents on one series.
        margin = 26 if kind.name == "memory_leak" else 2
        spans = taken.setdefault((ci.id, kind.metric), [])
        if any(first - margin <= hi and lo <= last + margin for lo, hi in spans):
            return False
        spans.append((first - margin, last + margin))
        incidents.append(Incident(ci.id, kind, first, last, rng.uniform(kind.low, kind.high)))
        return True

    # The biggest application-tier hub is in trouble right now: the demo's opening story.
    tiers = [ci for ci in eligible if ci.type in ("service", "app", "database")]
    hub = min(tiers, key=lambda ci: (-in_degree.get(ci.id, 0), ci.id))
    latency = next(kind for kind in INCIDENT_KINDS if kind.name == "latency_spike")
    place(hub, latency, samples - 9, samples - 1)

    wanted = max(4, len(cis) * days // 40)
    attempts = 0
    while len(incidents) < wanted and attempts < wanted * 20:
        attempts += 1
        ci = rng.choices(eligible, weights=weights)[0]
        kind = rng.choice(kinds_by_type[ci.type])
        length = rng.randint(3, 36)
        lead = 26 if kind.name == "memory_leak" else 0
        if samples - length <= lead:
            continue
        first = rng.randint(lead, samples - length)
        place(ci, kind, first, first + length - 1)
    return incidents


def diurnal(offset_hours: int, start: int, samples: int) -> list[float]:
    wave = []
    for k in range(samples):
        local = start + k * RESOLUTION_S + offset_hours * 3600
        hour = (local % 86_400) / 3600
        weekday = (local // 86_400 + 3) % 7  # 1970-01-01 was a Thursday; 5, 6 = Sat, Sun
        damp = 0.6 if weekday >= 5 else 1.0
        wave.append(damp * math.sin(2 * math.pi * (hour - 8) / 24))
    return wave


def _baseline(
    rng: random.Random, metric: str, wave: Sequence[float], ramp: Sequence[float]
) -> tuple[list[float], float, float]:
    """A series' normal behaviour, and the bounds its values are clamped to."""
    gauss = rng.gauss
    if metric == "disk_usage":
        base, growth = rng.uniform(30, 70), rng.uniform(0, 5)
        return [base + growth * r + gauss(0, 0.3) for r in ramp], 0.0, 100.0
    if metric == "cpu_usage":
        base, amp, sd, high = rng.uniform(15, 50), rng.uniform(5, 15), 2.5, 100.0
    elif metric == "mem_usage":
        base, amp, sd, high = rng.uniform(30, 65), 3.0, 1.5, 100.0
    elif metric == "packet_loss":
        base, amp, sd, high = rng.uniform(0, 0.2), 0.0, 0.03, 100.0
    elif metric == "error_rate":
        base = rng.uniform(0.05, 0.8)
        amp, sd, high = base * 0.3, 0.05, 100.0
    else:
        ranges = {
            "latency_ms": (20, 180, 0.3, 0.05),
            "request_rate": (50, 2000, 0.5, 0.03),
            "connections": (20, 200, 0.3, 0.025),
            "throughput_mbps": (100, 5000, 0.4, 0.03),
        }
        low, top, amp_share, sd_share = ranges[metric]
        base = rng.uniform(low, top)
        amp, sd, high = base * amp_share, base * sd_share, math.inf
    return [base + amp * w + gauss(0, sd) for w in wave], 0.0, high


class Events:
    def __init__(self) -> None:
        self.rows: list[tuple[int, int, str, str, str]] = []

    def add(self, ts: int, ci_id: int, severity: str, kind: str, message: str) -> None:
        self.rows.append((ts, ci_id, severity, kind, message))


def background_events(
    rng: random.Random, cis: Sequence[Ci], start: int, span: int, events: Events, days: int
) -> None:
    for ci in cis:
        for _ in range(rng.randint(0, math.ceil(days * 0.8))):
            ts = start + rng.randrange(span)
            roll = rng.random()
            if ci.type in ("service", "app") and roll < 0.45:
                version = f"{rng.randint(1, 9)}.{rng.randint(0, 30)}.{rng.randint(0, 9)}"
                events.add(ts, ci.id, "info", "deployment", f"deployed {ci.name} {version}")
            elif ci.type == "database" and roll < 0.4:
                events.add(ts, ci.id, "info", "backup", f"nightly backup of {ci.name} completed")
            elif roll < 0.7:
                events.add(
                    ts, ci.id, "info", "config_change", f"configuration of {ci.code} changed"
                )
            elif roll < 0.85 and ci.type not in _NETWORK:
                events.add(ts, ci.id, "minor", "restart", f"{ci.name} restarted")
            else:
                events.add(ts, ci.id, "info", "maintenance", f"maintenance window on {ci.code}")


def incident_effects(
    rng: random.Random,
    incidents: Sequence[Incident],
    cis: Sequence[Ci],
    relations: Sequence[tuple[int, int, str]],
    start: int,
    samples: int,
    events: Events,
) -> dict[tuple[int, str], list[Bump]]:
    """Events for each incident, and the degradation of the CIs depending on it."""
    dependents: dict[int, list[int]] = {}
    for source, target, _ in relations:
        if source not in dependents.setdefault(target, []):
            dependents[target].append(source)
    by_id = {ci.id: ci for ci in cis}
    metrics_of = {ci.id: METRICS_BY_TYPE[ci.type] for ci in cis}
    bumps: dict[tuple[int, str], list[Bump]] = {}
    for incident in incidents:
        ci, kind = by_id[incident.ci_id], incident.kind
        first_ts = start + incident.first * RESOLUTION_S
        unit = METRIC_UNITS[kind.metric]
        events.add(
            first_ts + rng.randint(0, 59),
            ci.id,
            kind.severity,
            "alert",
            f"{kind.name.replace('_', ' ')}: {kind.metric} above {kind.threshold:g} {unit} "
            f"on {ci.name} ({ci.code})",
        )
        for k in range(incident.first + 6, incident.last + 1, 6):
            events.add(
                start + k * RESOLUTION_S + rng.randint(0, 59),
                ci.id,
                "warning",
                "threshold_warning",
                f"{kind.metric} still above {kind.threshold:g} {unit} on {ci.code}",
            )
        if incident.last + 1 < samples:
            events.add(
                start + (incident.last + 1) * RESOLUTION_S + rng.randint(0, 59),
                ci.id,
                "info",
                "recovery",
                f"{kind.metric} back to normal on {ci.name} ({ci.code})",
            )
        for dependent in dependents.get(ci.id, [])[:10]:
            dep_metrics = metrics_of[dependent]
            if "latency_ms" in dep_metrics:
                bumps.setdefault((dependent, "latency_ms"), []).append(
                    Bump(incident.first, incident.last, rng.uniform(100, 180), 450.0)
                )
            if "error_rate" in dep_metrics:
                bumps.setdefault((dependent, "error_rate"), []).append(
                    Bump(incident.first, incident.last, rng.uniform(1, 2), 4.0)
                )
            if incident.first + 1 < samples:
                events.add(
                    start + (incident.first + 1) * RESOLUTION_S + rng.randint(0, 59),
                    dependent,
                    "warning",
                    "degradation",
                    f"upstream {ci.code} degraded; {by_id[dependent].code} is affected",
                )
    return bumps


def draw_series(
    rng: random.Random,
    ci: Ci,
    metric: str,
    wave: Sequence[float],
    ramp: Sequence[float],
    bumps: Sequence[Bump],
    incidents: Sequence[Incident],
) -> tuple[list[float], dict[int, float]]:
    """One CI's samples of one metric, and the peak of each of its incidents by index."""
    values, low, high = _baseline(rng, metric, wave, ramp)
    for bump in bumps:
        for k in range(bump.first, bump.last + 1):
            values[k] = min(values[k] + bump.amount, bump.cap)
    peaks: dict[int, float] = {}
    for number, incident in enumerate(incidents):
        kind = incident.kind
        if kind.name == "memory_leak":
            # The leak builds up over two hours, staying under the threshold until it breaks.
            origin = values[incident.first - 25]
            for step in range(1, 25):
                k = incident.first - 25 + step
                values[k] = min(
                    origin + (kind.threshold - 2 - origin) * step / 24, kind.threshold - 2
                )
        for k in range(incident.first, incident.last + 1):
            values[k] = rng.uniform(kind.low, incident.level)
        peaks[number] = round(max(values[incident.first : incident.last + 1]), 3)
    return [round(low if v < low else high if v > high else v, 3) for v in values], peaks
