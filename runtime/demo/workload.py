"""What an operator asks, and how often: the question catalogue and its Zipf popularity.

Operators do not ask uniformly random questions.  During an incident the same handful of
questions about the same few CIs come back again and again (from the on-call engineer,
from a dashboard refresh, from the assistant re-checking its answer), while the long
tail is asked once.  Popularity by rank is close to Zipf's law, ``P(rank k) ∝ 1/k^s``;
that skew is exactly what a result cache turns into saved database queries, so the demo
and ``benchmarks/ops_bench.py`` both draw their workload from here.

Pure and deterministic: the catalogue is built from an :class:`Estate` (what discovery
found) and a seed, the sample from a seed; no I/O, no clock.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

__all__ = [
    "PRIMARY_METRICS",
    "CiRef",
    "Estate",
    "Question",
    "distinct_count",
    "question_catalogue",
    "zipf_sample",
    "zipf_weights",
]

# The metrics an operator looks at first for each kind of CI.  The generator gives every
# type its own metric set; asking a host for its error rate would only return "no data".
PRIMARY_METRICS: Mapping[str, tuple[str, ...]] = {
    "service": ("error_rate", "latency_ms"),
    "app": ("latency_ms", "error_rate", "request_rate"),
    "database": ("latency_ms", "cpu_usage", "connections"),
    "host": ("cpu_usage", "mem_usage", "disk_usage"),
    "switch": ("packet_loss", "throughput_mbps"),
    "router": ("packet_loss", "throughput_mbps"),
    "load_balancer": ("request_rate", "throughput_mbps"),
    "firewall": ("packet_loss", "throughput_mbps"),
}


@attrs.frozen(slots=True)
class CiRef:
    """What the session needs to know about one CI to ask about it."""

    ci_id: int
    code: str
    name: str
    ci_type: str
    env: str = "prod"

    @property
    def domain(self) -> str:
        """The business domain the generator encodes as the name's first word."""
        return self.name.split("-", 1)[0]

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> CiRef:
        """From a CI.search / CI.get record or a GRAPH.expand node."""
        return cls(
            ci_id=int(record["ci_id"]),
            code=str(record["ci_code"]),
            name=str(record["ci_name"]),
            ci_type=str(record["ci_type"]),
            env=str(record.get("env", "prod")),
        )


@attrs.frozen(slots=True)
class Estate:
    """What discovery found: CIs (by type) and the ones alerting lately, hottest first."""

    cis: tuple[CiRef, ...]
    hot: tuple[int, ...] = ()

    def by_id(self) -> dict[int, CiRef]:
        return {ci.ci_id: ci for ci in self.cis}

    def of_type(self, ci_type: str) -> tuple[CiRef, ...]:
        return tuple(ci for ci in self.cis if ci.ci_type == ci_type)

    def types(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(ci.ci_type for ci in self.cis))


@attrs.frozen(slots=True)
class Question:
    """One question as a tool call; ``label`` says it in words for logs and reports."""

    label: str
    tool_type: str
    operation: str
    params: Mapping[str, Any] = attrs.field(factory=dict)

    @property
    def tool(self) -> str:
        return f"{self.tool_type}.{self.operation}"


def zipf_weights(count: int, skew: float) -> list[float]:
    """Unnormalised Zipf weights ``1/k^skew`` for ranks 1..count (skew 0 is uniform)."""
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    if skew < 0:
        raise ValueError(f"skew must not be negative, got {skew}")
    return [1.0 / (rank**skew) for rank in range(1, count + 1)]


def zipf_sample(
    items: Sequence[Question], count: int, *, skew: float, seed: int | str
) -> list[Question]:
    """``count`` draws from ``items`` (most popular first) with Zipf popularity, repeatable."""
    if count and not items:
        raise ValueError("cannot sample from an empty catalogue")
    weights = zipf_weights(len(items), skew)
    cumulative = list(itertools.accumulate(weights))
    rng = random.Random(f"zipf:{seed}")
    total = cumulative[-1] if cumulative else 0.0
    last = len(items) - 1
    # bisect on the cumulative weights: O(log n) a draw, and the index never runs past the
    # end even when rounding leaves the last cumulative weight a hair below the total.
    return [
        items[min(bisect.bisect_right(cumulative, rng.random() * total), last)]
        for _ in range(count)
    ]


def _time_range(rng: random.Random) -> str:
    # Operators mostly look at the last day, sometimes the last hour, rarely the week.
    return rng.choices(("last_24h", "last_1h", "last_7d"), weights=(6, 3, 1))[0]


def _questions_about(ci: CiRef, rng: random.Random) -> list[Question]:
    """The questions an operator asks about one CI, the commonest first."""
    metrics = PRIMARY_METRICS.get(ci.ci_type, ("cpu_usage",))
    questions = [
        Question(f"what is {ci.name}?", "CI", "get", {"ci_code": ci.code}),
        Question(
            f"{metrics[0]} p95 of {ci.name}",
            "METRIC",
            "aggregate",
            {"metric": metrics[0], "agg": "p95", "ci_ids": [ci.ci_id], "time_range": "last_24h"},
        ),
        Question(
            f"recent events on {ci.name}",
            "HISTORY",
            "event_log",
            {"ci_ids": [ci.ci_id], "time_range": "last_24h", "limit": 20},
        ),
        Question(
            f"{metrics[0]} of {ci.name} over time",
            "METRIC",
            "series",
            {"ci_id": ci.ci_id, "metric": metrics[0], "time_range": "last_24h", "bucket": "1h"},
        ),
        Question(
            f"what depends on {ci.name}?",
            "GRAPH",
            "expand",
            {"ci_id": ci.ci_id, "depth": 2, "direction": "in", "max_nodes": 100},
        ),
    ]
    for metric in metrics[1:]:
        time_range = _time_range(rng)
        questions.append(
            Question(
                f"{metric} max of {ci.name} ({time_range})",
                "METRIC",
                "aggregate",
                {"metric": metric, "agg": "max", "ci_ids": [ci.ci_id], "time_range": time_range},
            )
        )
    return questions


def _fleet_questions(estate: Estate, rng: random.Random) -> list[Question]:
    """Questions about the whole estate or a whole kind of CI."""
    questions = [
        Question("how many CIs of each type?", "CI", "aggregate", {"group_by": "ci_type"}),
        Question("how many CIs per environment?", "CI", "aggregate", {"group_by": "env"}),
        Question(
            "which CIs are degraded?",
            "CI",
            "search",
            {"filters": [{"field": "status", "op": "=", "value": "degraded"}], "limit": 50},
        ),
        *_event_questions(),
    ]
    for ci_type in estate.types():
        members = estate.of_type(ci_type)
        ids = [ci.ci_id for ci in members][:300]
        metric = PRIMARY_METRICS.get(ci_type, ("cpu_usage",))[0]
        time_range = _time_range(rng)
        questions.append(
            Question(
                f"{metric} p95 across all {ci_type}s ({time_range})",
                "METRIC",
                "aggregate",
                {"metric": metric, "agg": "p95", "ci_ids": ids, "time_range": time_range},
            )
        )
        questions.append(
            Question(
                f"prod {ci_type}s by owner",
                "CI",
                "aggregate",
                {
                    "group_by": "owner",
                    "filters": [
                        {"field": "ci_type", "op": "=", "value": ci_type},
                        {"field": "env", "op": "=", "value": "prod"},
                    ],
                },
            )
        )
    for domain in sorted({ci.domain for ci in estate.cis}):
        questions.append(
            Question(
                f"find {domain} CIs in prod",
                "CI",
                "search",
                {
                    "keywords": [domain],
                    "filters": [{"field": "env", "op": "=", "value": "prod"}],
                    "limit": 20,
                },
            )
        )
    return questions


def _event_questions() -> list[Question]:
    """Recent critical (and major) events: a dashboard panel and an operator's question."""
    return [
        Question(
            "critical events in the last hour",
            "HISTORY",
            "event_log",
            {"severity": "critical", "time_range": "last_1h", "limit": 50},
        ),
        Question(
            "critical and major events today",
            "HISTORY",
            "event_log",
            {"severity": ["critical", "major"], "time_range": "last_24h", "limit": 100},
        ),
    ]


def _dashboard_questions(estate: Estate) -> list[Question]:
    """The on-call dashboard's panels: re-asked on every refresh, by every operator.

    These head the catalogue because a dashboard asks them far more often than any one
    person asks anything else -- and they are fleet-wide, so they are also the dearest
    questions to answer from the database.
    """
    questions = [
        *_event_questions(),
    ]
    for ci_type in ("app", "database", "host", "service"):
        members = estate.of_type(ci_type)
        if not members:
            continue
        metric = PRIMARY_METRICS[ci_type][0]
        questions.append(
            Question(
                f"{metric} p95 across all {ci_type}s (last hour)",
                "METRIC",
                "aggregate",
                {
                    "metric": metric,
                    "agg": "p95",
                    "ci_ids": [ci.ci_id for ci in members][:300],
                    "time_range": "last_1h",
                },
            )
        )
    questions.append(
        Question(
            "which CIs are degraded?",
            "CI",
            "search",
            {"filters": [{"field": "status", "op": "=", "value": "degraded"}], "limit": 50},
        )
    )
    return questions


def question_catalogue(
    estate: Estate, *, seed: int | str, per_type: int = 12, simulations: bool = True
) -> tuple[Question, ...]:
    """Distinct questions, most popular first: the dashboard's panels and the hot CIs'
    first questions, then a shuffled long tail.

    ``per_type`` bounds how many CIs of each type get their own questions (the long
    tail).  With ``simulations`` a few CEP simulations are included: they write their
    execution log, so they are never cached and always reach the database.
    """
    rng = random.Random(f"catalogue:{seed}")
    by_id = estate.by_id()
    hot = [by_id[ci_id] for ci_id in estate.hot if ci_id in by_id]
    head: list[Question] = []
    dashboard = _dashboard_questions(estate)
    for ci in hot[:3]:
        head.extend(_questions_about(ci, rng)[:3])
    # Interleave: a panel, then an incident question, and so on.
    head = [q for pair in itertools.zip_longest(dashboard, head) for q in pair if q is not None]
    tail: list[Question] = []
    for ci in hot[3:]:
        tail.extend(_questions_about(ci, rng))
    for ci in hot[:3]:
        tail.extend(_questions_about(ci, rng)[3:])
    for ci_type in estate.types():
        members = list(estate.of_type(ci_type))
        rng.shuffle(members)
        for ci in members[:per_type]:
            tail.extend(_questions_about(ci, rng))
    tail.extend(_fleet_questions(estate, rng))
    if simulations:
        tail.append(
            Question(
                "would 'latency_ms > 500 for 5m' have fired today?",
                "CEP",
                "simulate",
                {"rule": "latency_ms > 500 for 5m", "time_range": "last_24h"},
            )
        )
        tail.append(
            Question(
                "would 'cpu_usage > 90 for 10m' have fired today?",
                "CEP",
                "simulate",
                {"rule": "cpu_usage > 90 for 10m", "time_range": "last_24h"},
            )
        )
    if len(hot) >= 2:
        head.append(
            Question(
                f"how is {hot[0].name} connected to {hot[1].name}?",
                "GRAPH",
                "path",
                {"source": hot[0].ci_id, "target": hot[1].ci_id},
            )
        )
    rng.shuffle(tail)
    return tuple(_distinct(itertools.chain(head, tail)))


def _call_key(question: Question) -> str:
    return repr((question.tool_type, question.operation, sorted(question.params.items())))


def distinct_count(questions: Iterable[Question]) -> int:
    """How many different tool calls ``questions`` make (labels aside)."""
    return len({_call_key(question) for question in questions})


def _distinct(questions: Iterable[Question]) -> list[Question]:
    """Drop repeats of the same call (keep the first, i.e. the more popular, one)."""
    seen: set[str] = set()
    out: list[Question] = []
    for question in questions:
        key = _call_key(question)
        if key not in seen:
            seen.add(key)
            out.append(question)
    return out
