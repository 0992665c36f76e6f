"""The pure core of CEP rule simulation: parse a rule, find where it would have fired.

A rule is "metric op threshold for duration".  Samples are taken every ``step`` seconds
and each sample stands for the ``step`` seconds it starts, so a run of ``k`` consecutive
breaching samples covers ``k * step`` seconds; the rule fires on the sample at which
the run's coverage first reaches the duration (a duration of 0 fires on the first
breach).  A gap in the samples longer than ``step`` ends a run, exactly as a
non-breaching sample does — which is why the database may hand over *only* the breaching
samples and the answer is the same (a property the tests check).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable, Mapping

import attrs

from runtime.ops.params import RULE_PATTERN

__all__ = ["SQL_OPS", "Alert", "Rule", "breaches", "detect_alerts", "parse_rule"]

_COMPARE: Mapping[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
# The SQL spelling of each rule operator (identifiers from this table only).
SQL_OPS: Mapping[str, str] = {">": ">", ">=": ">=", "<": "<", "<=": "<=", "==": "=", "!=": "!="}
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


@attrs.frozen(slots=True)
class Rule:
    metric: str
    op: str
    threshold: float
    duration_s: int = 0
    rule_id: int | None = None
    name: str = ""
    severity: str = "warning"
    ci_type: str | None = None

    @property
    def text(self) -> str:
        # Fixed-point, not ``:g``: "1e+06" would not parse back as a rule.
        threshold = f"{self.threshold:.6f}".rstrip("0").rstrip(".")
        if self.duration_s == 0:
            return f"{self.metric} {self.op} {threshold}"
        if self.duration_s % 3600 == 0:
            duration = f"{self.duration_s // 3600}h"
        elif self.duration_s % 60 == 0:
            duration = f"{self.duration_s // 60}m"
        else:
            duration = f"{self.duration_s}s"
        return f"{self.metric} {self.op} {threshold} for {duration}"


@attrs.frozen(slots=True)
class Alert:
    """One would-be alert: a run of breaching samples on one CI that lasted long enough."""

    ci_id: int
    start_ts: int
    fired_ts: int
    end_ts: int
    peak: float
    peak_ts: int
    samples: int


def parse_rule(text: str) -> Rule:
    """The rule an inline rule string states; ``ValueError`` if it does not match."""
    match = re.fullmatch(RULE_PATTERN, text)
    if match is None:
        raise ValueError(f"not a rule of the form 'metric op threshold [for N(s|m|h)]': {text!r}")
    amount = match["amount"]
    duration = int(amount) * _UNIT_SECONDS[match["unit"]] if amount else 0
    return Rule(match["metric"], match["op"], float(match["threshold"]), duration)


def breaches(rule: Rule, value: float) -> bool:
    return _COMPARE[rule.op](value, rule.threshold)


def _more_extreme(rule: Rule, value: float, than: float) -> bool:
    # "Peak" is the sample furthest into breach: the lowest one for a below-threshold rule.
    if rule.op in ("<", "<="):
        return value < than
    return value > than


@attrs.define(slots=True)
class _Run:
    ci_id: int
    start_ts: int
    last_ts: int
    count: int
    peak: float
    peak_ts: int
    fired_ts: int | None = None

    def alert(self) -> Alert | None:
        if self.fired_ts is None:
            return None
        return Alert(
            self.ci_id,
            self.start_ts,
            self.fired_ts,
            self.last_ts,
            self.peak,
            self.peak_ts,
            self.count,
        )


def detect_alerts(samples: Iterable[tuple[int, int, float]], rule: Rule, step: int) -> list[Alert]:
    """Alerts ``rule`` would have raised over ``samples`` (``(ci_id, ts, value)``).

    ``samples`` must be ordered by ``(ci_id, ts)``.  Alerts come out in that order too.
    """
    alerts: list[Alert] = []
    run: _Run | None = None
    for ci_id, ts, value in samples:
        if not breaches(rule, value):
            if run is not None and (alert := run.alert()) is not None:
                alerts.append(alert)
            run = None
            continue
        if run is not None and run.ci_id == ci_id and ts - run.last_ts <= step:
            run.last_ts = ts
            run.count += 1
            if _more_extreme(rule, value, run.peak):
                run.peak, run.peak_ts = value, ts
        else:
            if run is not None and (alert := run.alert()) is not None:
                alerts.append(alert)
            run = _Run(ci_id, ts, ts, 1, value, ts)
        if run.fired_ts is None and run.last_ts - run.start_ts + step >= rule.duration_s:
            run.fired_ts = ts
    if run is not None and (alert := run.alert()) is not None:
        alerts.append(alert)
    return alerts
