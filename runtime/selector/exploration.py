"""Exploration: now and then, a choice goes to a candidate the ranking did not put first.

Pure; the state calls :func:`pick_explored` with ``now`` and the ranking.  Without it a
candidate nobody has tried keeps its prior for ever (a fast newcomer with a pessimistic
prior is never picked), and one that was slow once is avoided long after it got better:
its estimate only drifts back to its prior, never below.

The rule is a **bounded exploration share**, not an optimistic prior or sampling:

- *Budget.*  Each choice of an intent earns ``exploration_share`` of a credit (capped at
  1, and an intent starts with 1, so a newcomer is tried at once); exploring spends one.
  Over N choices at most ``1 + share * N`` explore, whatever the load.
- *When.*  Only when the ranking's own choice has been observed: if even the best rests
  on its prior, running it teaches as much as a probe would.
- *Eligible* candidates are the ones not ranked first, with nothing in flight or reserved
  (one probe at a time), an error-rate estimate at most ``exploration_max_error`` (a
  failing tool is never "explored"), and either no finished call yet or none for
  ``exploration_refresh`` (and not explored for that long either): rediscovery.
- The least observed eligible candidate wins (fewest samples, then the oldest last
  sample, then name): the one we know least about.

No randomness is needed, so a seeded run replays exactly and property tests are exact.
docs/selector.md says why not an optimistic prior (it would herd every burst onto the
unknown tool) nor Thompson sampling (it needs a posterior the scores do not have).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from runtime.selector.intents import Candidate
from runtime.selector.observations import ToolStats
from runtime.selector.scoring import Ranked

__all__ = ["eligible", "pick_explored"]


def eligible(
    ranked: Ranked,
    stats: ToolStats,
    last_explored: float,
    now: float,
    refresh_s: float,
    max_error: float,
) -> bool:
    """Whether ``ranked`` (not the ranking's first) may be explored at ``now``."""
    evidence = ranked.evidence
    if evidence.get("in_flight", 0) or evidence.get("reserved", 0):
        return False
    if float(evidence.get("error_rate", 0.0)) > max_error:
        return False
    if stats.samples == 0:
        return now - last_explored >= refresh_s
    stamp = stats.stamp if stats.stamp is not None else -math.inf
    return now - stamp >= refresh_s and now - last_explored >= refresh_s


def pick_explored(
    ranked: Sequence[Ranked],
    stats_of: Callable[[Candidate], ToolStats],
    last_explored: Callable[[Candidate], float],
    now: float,
    refresh_s: float,
    max_error: float,
) -> Ranked | None:
    """The candidate to explore, or None when no candidate after the first is eligible."""
    best: tuple[int, float, str, str] | None = None
    chosen: Ranked | None = None
    for candidate in ranked[1:]:
        stats = stats_of(candidate.candidate)
        if not eligible(
            candidate, stats, last_explored(candidate.candidate), now, refresh_s, max_error
        ):
            continue
        stamp = stats.stamp if stats.stamp is not None else -math.inf
        order = (stats.samples, stamp, candidate.tool_type, candidate.operation)
        if best is None or order < best:
            best, chosen = order, candidate
    return chosen
