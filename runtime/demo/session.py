"""The scripted operator session: discovery, an incident walk-through, a replayed workload.

Everything here goes through a started :class:`~runtime.runtime.Runtime`, so every answer
is a real tool call on the real SQLite CMDB, cached, traced and (for intents) chosen by
the selector.  The session is data-driven: it finds the estate's CIs and its noisiest
CI by asking, instead of naming them, so it tells a sensible story on any generated
database, from the 40-CI test size to the default 500.

Answers are kept as :class:`Answer` values (question, one readable line); turning them into
terminal output is :mod:`runtime.demo.console`'s job.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import anyio
import attrs

from runtime.demo.workload import PRIMARY_METRICS, CiRef, Estate, Question
from runtime.errors import AllCandidatesFailed
from runtime.executor import failure_exception
from runtime.ops.schema import CI_TYPES, METRIC_UNITS
from runtime.runtime import Runtime
from runtime.selector import SelectorSettings
from runtime.tools import ToolContext

__all__ = ["Answer", "Asker", "Choice", "ReplayResult", "discover", "replay", "walk_through"]


@attrs.frozen(slots=True)
class Answer:
    """One scripted question, how it was answered, and the answer in words."""

    question: str
    answer: str
    via: str
    """The tool(s) or composition that answered, e.g. ``CI.aggregate`` (selector's pick)."""
    why: str = ""
    """The selector's reason (``BestResult.why``): the winner's score and the runner-up."""


@attrs.frozen(slots=True)
class ReplayResult:
    """What replaying a workload did: calls, failures, wall time, each call's latency."""

    calls: int
    errors: int
    elapsed_s: float
    latencies_s: tuple[float, ...] = attrs.field(repr=False)
    callers: int = 1

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.elapsed_s if self.elapsed_s > 0 else math.inf


@attrs.frozen(slots=True)
class Choice:
    """Which tool answered an intent, its data, and the candidates that failed first."""

    data: Any
    tool_type: str
    operation: str
    attempts: tuple[tuple[str, str, BaseException], ...] = ()
    by_selector: bool = True
    why: str = ""


class Asker:
    """Asks intents as one operator: through the selector, noting failed first tries.

    ``execute_best`` skips candidates that would reject the params and falls back to the
    next candidate when one fails; the failed attempts are real calls, shown as errors in
    the per-tool figures, so the report counts them to explain those errors.
    With the selector disabled in the configuration, the intent's candidates are tried
    in their declared order instead, so the demo still runs.
    """

    def __init__(self, rt: Runtime, ctx: ToolContext) -> None:
        self.rt = rt
        self.ctx = ctx
        self.failed_attempts: list[str] = []

    async def best(
        self, intent: str, params: Mapping[str, Any], *, strategy: str | None = None
    ) -> Choice:
        if self.rt.selector is None:
            choice = await self._in_declared_order(intent, params)
        else:
            best = await self.rt.execute_best(intent, params, self.ctx, strategy=strategy)
            choice = Choice(best.data, best.tool_type, best.operation, best.attempts, why=best.why)
        self.failed_attempts.extend(f"{tool}.{op}" for tool, op, _ in choice.attempts)
        return choice

    async def _in_declared_order(self, intent: str, params: Mapping[str, Any]) -> Choice:
        settings = SelectorSettings.from_config(self.rt.config.selector)
        candidates = settings.candidates.get(intent, ())
        attempts: list[tuple[str, str, BaseException]] = []
        for tool_type, operation in candidates:
            if (tool_type, operation) not in self.rt.registry:
                continue
            if self.rt.registry.get(tool_type, operation).rejects(params) is not None:
                continue  # as execute_best does: never run a tool that rejects the params
            result = await self.rt.execute_result(tool_type, operation, params, self.ctx)
            if result.success:
                return Choice(result.data, tool_type, operation, tuple(attempts), False)
            attempts.append((tool_type, operation, failure_exception(tool_type, operation, result)))
        raise AllCandidatesFailed(intent, attempts)


async def discover(asker: Asker) -> Estate:
    """List the estate by type and rank CIs by recent critical alerts (hottest first)."""
    cis: list[CiRef] = []
    for ci_type in CI_TYPES:
        best = await asker.best(
            "LIST",
            {"filters": [{"field": "ci_type", "op": "=", "value": ci_type}], "limit": 100},
        )
        cis.extend(CiRef.from_record(record) for record in best.data["records"])
    hot: list[int] = []
    for time_range in ("last_24h", "last_7d"):
        best = await asker.best(
            "HISTORY",
            {
                "severity": ["critical", "major"],
                "kinds": ["alert"],
                "time_range": time_range,
                "limit": 200,
            },
        )
        counts = Counter(int(event["ci_id"]) for event in best.data["events"])
        hot = [ci_id for ci_id, _ in counts.most_common()]
        if hot:
            break
    if not hot:
        # A quiet estate: fall back to the kinds of CI an operator looks at first.
        kinds = ("database", "service", "app")
        preferred = [ci for kind in kinds for ci in cis if ci.ci_type == kind]
        hot = [ci.ci_id for ci in preferred[:5]]
    return Estate(tuple(cis), tuple(hot))


def _fmt(value: Any, metric: str | None = None) -> str:
    if value is None:
        return "no data"
    if isinstance(value, float):
        text = f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    else:
        text = f"{value:,}"
    unit = METRIC_UNITS.get(metric or "", "")
    if unit == "percent":
        return f"{text} %"
    if unit in ("", "count"):
        return text
    return f"{text} {unit}"


def _via(best: Choice, strategy: str | None = None) -> str:
    tool = f"{best.tool_type}.{best.operation}"
    if not best.by_selector:
        return f"{tool} (selector disabled: candidates in declared order)"
    if strategy is not None:
        tool += f", strategy {strategy}"
    if best.attempts:
        tried = ", ".join(f"{t}.{o} ({type(e).__name__})" for t, o, e in best.attempts)
        tool += f"; the selector tried {tried} first"
    return f"selector: {tool}"


def _choose_focus(estate: Estate) -> CiRef:
    """The CI the incident walk-through is about: the hottest, databases preferred."""
    by_id = estate.by_id()
    hot = [by_id[ci_id] for ci_id in estate.hot if ci_id in by_id]
    for ci in hot[:5]:
        if ci.ci_type == "database":
            return ci
    if hot:
        return hot[0]
    return estate.cis[0]


async def walk_through(asker: Asker, estate: Estate) -> list[Answer]:
    """The scripted part: questions an on-call operator asks, through intents and
    compositions, each answered in one readable line."""
    rt, ctx = asker.rt, asker.ctx
    by_id = estate.by_id()
    answers = [await _estate_mix(asker), await _alerting(asker, by_id)]
    focus = _choose_focus(estate)
    metrics = PRIMARY_METRICS.get(focus.ci_type, ("cpu_usage",))
    answers.append(await _how_bad(asker, focus, metrics))
    answers.append(await _peak(asker, focus, metrics[0]))
    impact = await rt.compose(
        "impact_analysis",
        {"ci_id": focus.ci_id, "depth": 2, "metric": metrics[0], "event_limit": 200},
        ctx,
    )
    answers.append(_impact_answer(focus, impact.results, metrics[0]))
    search = await rt.compose(
        "search_with_context",
        {
            "keywords": [focus.domain],
            "filters": [{"field": "env", "op": "=", "value": "prod"}],
            "metric": metrics[0],
            "event_limit": 200,
        },
        ctx,
    )
    answers.append(_context_answer(focus.domain, search.results, metrics[0]))
    others = [ci_id for ci_id in estate.hot if ci_id != focus.ci_id]
    if others:
        answers.append(await _path(asker, focus, others[0], by_id))
    answers.append(await _rule_simulation(asker, "latency_ms > 500 for 5m"))
    return answers


async def _estate_mix(asker: Asker) -> Answer:
    best = await asker.best("AGGREGATE", {"group_by": "ci_type", "top_n": 20})
    rows = best.data["rows"]
    total = sum(int(row[1]) for row in rows)
    mix = ", ".join(f"{count} {kind}" for kind, count in rows)
    return Answer("what is in the estate?", f"{total} CIs: {mix}", _via(best), best.why)


async def _alerting(asker: Asker, by_id: Mapping[int, CiRef]) -> Answer:
    best = await asker.best(
        "HISTORY",
        {"severity": "critical", "kinds": ["alert"], "time_range": "last_24h", "limit": 200},
    )
    events = best.data["events"]
    loud = Counter(int(event["ci_id"]) for event in events).most_common(3)
    if events:
        names = ", ".join(f"{_name(by_id, ci_id)} ({count})" for ci_id, count in loud)
        text = f"{len(events)} critical alerts on {len({e['ci_id'] for e in events})} CIs; "
        text += f"loudest: {names}"
    else:
        text = "no critical alerts in the last 24h"
    return Answer("what has been alerting today?", text, _via(best), best.why)


async def _how_bad(asker: Asker, focus: CiRef, metrics: Sequence[str]) -> Answer:
    figures = []
    via = why = ""
    for metric in metrics:
        best = await asker.best(
            "METRIC",
            {"metric": metric, "agg": "p95", "ci_ids": [focus.ci_id], "time_range": "last_24h"},
        )
        figures.append(f"{metric} p95 {_fmt(best.data['value'], metric)}")
        via, why = _via(best), best.why
    return Answer(
        f"incident on {focus.name}: how bad is it?",
        f"{focus.name} ({focus.ci_type}, {focus.code}): " + ", ".join(figures),
        via,
        why,
    )


async def _peak(asker: Asker, focus: CiRef, metric: str) -> Answer:
    best = await asker.best(
        "SERIES",
        {"ci_id": focus.ci_id, "metric": metric, "time_range": "last_24h", "bucket": "1h"},
    )
    points = [(ts, value) for ts, value in best.data["points"] if value is not None]
    if points:
        peak_ts, peak = max(points, key=lambda point: point[1])
        low = min(value for _, value in points)
        text = (
            f"{metric} peaked at {_fmt(peak, metric)} at {peak_ts} (hourly low {_fmt(low, metric)})"
        )
    else:
        text = f"no {metric} samples in the last 24h"
    return Answer(f"when did {focus.name} peak?", text, _via(best), best.why)


async def _path(asker: Asker, focus: CiRef, other: int, by_id: Mapping[int, CiRef]) -> Answer:
    # An operator asking for *the* path wants the exact answer, not the quickest.
    best = await asker.best(
        "PATH",
        {"source": focus.ci_id, "target": other, "max_hops": 6},
        strategy="MOST_ACCURATE",
    )
    target = _name(by_id, other)
    if best.data["found"]:
        route = " → ".join(node["ci_name"] for node in best.data["nodes"])
        text = f"{route} ({best.data['hop_count']} hops)"
    else:
        text = f"not connected within 6 hops of {target}"
    return Answer(
        f"how is {focus.name} linked to {target}?", text, _via(best, "MOST_ACCURATE"), best.why
    )


async def _rule_simulation(asker: Asker, rule: str) -> Answer:
    simulated = []
    for _ in range(2):  # asked twice: a simulation logs a run each time, so it is never cached
        best = await asker.best(
            "ANALYSIS",
            {"rule": rule, "time_range": "last_24h"},
            strategy="MOST_ACCURATE",
        )
        simulated.append(best)
    alerts = simulated[-1].data["alerts"]
    text = (
        f"would have fired {_count(len(alerts), 'alert')} on "
        f"{_count(len({a['ci_id'] for a in alerts}), 'CI')} "
        f"(simulated {_count(len(simulated), 'time')}, each run logged, never served from cache)"
    )
    return Answer(
        f"would the rule '{rule}' have fired today?",
        text,
        _via(simulated[-1], "MOST_ACCURATE"),
        simulated[-1].why,
    )


def _name(by_id: Mapping[int, CiRef], ci_id: int) -> str:
    ci = by_id.get(ci_id)
    return ci.name if ci is not None else f"CI {ci_id}"


def _impact_answer(focus: CiRef, results: Mapping[str, Any], metric: str) -> Answer:
    expand = results.get("expand") or {}
    nodes = [node for node in expand.get("nodes", []) if node["ci_id"] != focus.ci_id]
    events = (results.get("events") or {}).get("events", [])
    per_ci = Counter(int(event["ci_id"]) for event in events)
    order = {node["ci_id"]: position for position, node in enumerate(nodes)}
    # Most events first; among equals, the nearer CI (GRAPH.expand lists nodes by distance).
    ranked = sorted(nodes, key=lambda node: (-per_ci[node["ci_id"]], order[node["ci_id"]]))
    top = ", ".join(f"{node['ci_name']} ({per_ci[node['ci_id']]} events)" for node in ranked[:5])
    value = (results.get("metrics") or {}).get("value")
    text = (
        f"{len(nodes)} CIs within 2 hops; neighbourhood {metric} avg {_fmt(value, metric)}; "
        f"most affected: {top or 'none'}"
    )
    return Answer(
        f"the 5 CIs most affected by {focus.name}",
        text,
        "impact_analysis (CI.get → GRAPH.expand → METRIC.aggregate ∥ HISTORY.event_log)",
    )


def _context_answer(domain: str, results: Mapping[str, Any], metric: str) -> Answer:
    records = (results.get("search") or {}).get("records", [])
    value = (results.get("metrics") or {}).get("value")
    events = (results.get("events") or {}).get("events", [])
    severities = Counter(str(event["severity"]) for event in events)
    text = (
        f"{len(records)} prod CIs; {metric} avg {_fmt(value, metric)}; {len(events)} events "
        f"in 24h ({severities.get('critical', 0)} critical, {severities.get('major', 0)} major)"
    )
    return Answer(
        f"the {domain} domain in prod, with context",
        text,
        "search_with_context (CI.search → METRIC.aggregate ∥ HISTORY.event_log)",
    )


async def replay(
    rt: Runtime, ctx: ToolContext, questions: Sequence[Question], *, callers: int
) -> ReplayResult:
    """Ask ``questions`` in order with ``callers`` concurrent askers; time every call.

    A failed call is counted, not raised: a workload run reports its error count.
    """
    latencies: list[float] = []
    errors = 0
    position = 0

    async def caller() -> None:
        nonlocal errors, position
        while position < len(questions):
            question = questions[position]
            position += 1
            started = anyio.current_time()
            result = await rt.execute_result(
                question.tool_type, question.operation, question.params, ctx
            )
            latencies.append(anyio.current_time() - started)
            if not result.success:
                errors += 1

    started = anyio.current_time()
    async with anyio.create_task_group() as group:
        for _ in range(max(1, callers)):
            group.start_soon(caller)
    elapsed = anyio.current_time() - started
    return ReplayResult(
        calls=len(latencies),
        errors=errors,
        elapsed_s=elapsed,
        latencies_s=tuple(latencies),
        callers=callers,
    )


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
