"""Why the selector chose what it chose: a JSON-able summary and a one-line reason.

Pure functions of the chosen :class:`~runtime.selector.scoring.Ranked` and the runner-up
(the best-ranked other candidate).  ``execute_best`` puts the summary on its result and on
each attempt's trace record (``selection``); the demo prints the line.

The summary's ``parts`` are the winning score's terms: each factor's contribution (value
times normalised weight); they add up to ``confidence / reliability``.
"""

from __future__ import annotations

from typing import Any

from runtime.selector.scoring import Ranked

__all__ = ["runner_up_of", "selection_summary", "why_line"]


def runner_up_of(chosen: Ranked, ranking: list[Ranked]) -> Ranked | None:
    """The best-ranked candidate other than ``chosen`` (None for a single candidate)."""
    return next((r for r in ranking if r.candidate != chosen.candidate), None)


def selection_summary(intent: str, chosen: Ranked, runner_up: Ranked | None) -> dict[str, Any]:
    """Plain JSON data: the intent, the winning score's parts, the runner-up."""
    return {
        "intent": intent,
        "chosen": chosen.name,
        "confidence": round(chosen.confidence, 6),
        "reliability": round(chosen.reliability, 6),
        "explored": chosen.explored,
        "parts": {line.factor: round(line.contribution, 6) for line in chosen.breakdown},
        "runner_up": None if runner_up is None else runner_up.name,
        "runner_up_confidence": None if runner_up is None else round(runner_up.confidence, 6),
    }


def why_line(chosen: Ranked, runner_up: Ranked | None) -> str:
    """``CI.search 0.62 (accuracy 0.27, latency 0.16, ...) over METRIC.series 0.55``."""
    parts = sorted(chosen.breakdown, key=lambda line: -line.contribution)
    terms = ", ".join(f"{p.factor} {p.contribution:.2f}" for p in parts if p.contribution > 0)
    reason = f"{chosen.name} {chosen.confidence:.2f} ({terms or 'no factor above 0'}"
    if chosen.reliability < 1.0:
        reason += f"; x{chosen.reliability:.2f} reliability"
    reason += ")"
    if chosen.explored:
        reason += ", explored: too little known about it yet"
    if runner_up is None:
        return reason + ", the only candidate"
    return reason + f" over {runner_up.name} {runner_up.confidence:.2f}"
