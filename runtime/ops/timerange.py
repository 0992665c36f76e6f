"""Time ranges relative to the dataset's own "now", and ISO formatting.

The sample database stores the reference time it was generated at (``meta.now``); every
relative range (``last_24h``) is resolved against that value, passed in as ``now``, never
against the wall clock.  That keeps answers reproducible: the same database gives the
same answer to "errors in the last hour" today and next year.

Ranges are half-open, ``[time_from, time_to)``, in integer Unix seconds (UTC).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

__all__ = [
    "RELATIVE_RANGES",
    "iso",
    "parse_iso",
    "resolve_time_range",
]

RELATIVE_RANGES: Mapping[str, int] = {
    "last_1h": 3600,
    "last_24h": 86_400,
    "last_7d": 7 * 86_400,
}


def parse_iso(text: str) -> int:
    """Unix seconds of an ISO-8601 date or datetime; naive values are taken as UTC.

    Raises ``ValueError`` for text that is not ISO-8601 and ``OverflowError`` for a moment
    that falls outside the years 1-9999 once converted to UTC.
    """
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    moment = moment.astimezone(dt.UTC)
    # Floor to whole seconds: the database stores integer seconds.
    return int(moment.timestamp() // 1)


def iso(ts: int) -> str:
    """``2025-06-01T12:00:00Z`` for Unix seconds ``ts``."""
    moment = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=ts)
    return moment.isoformat(timespec="seconds") + "Z"


def resolve_time_range(value: str | Mapping[str, str], now: int) -> tuple[int, int]:
    """``(time_from, time_to)`` for a validated time-range param.

    A reversed explicit range (``from`` after ``to``) never gets here: the ops tools reject
    it as ``InvalidParams`` (:func:`runtime.ops.tools.check_ops_params`).
    """
    if isinstance(value, str):
        return now - RELATIVE_RANGES[value], now
    return parse_iso(value["from"]), parse_iso(value["to"])
