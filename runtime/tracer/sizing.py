"""How big a call's result was, measured at report time without keeping the result.

- :func:`result_count`: the length of a list/tuple result, or of the first list/tuple under
  one of :data:`COUNT_KEYS` in a mapping, else ``None``.  Exact, never raises.
- :func:`result_size_bytes`: the length of the compact, ASCII-escaped JSON encoding
  (``repr`` for what JSON cannot encode, the ``repr``'s length when JSON cannot take the
  value at all); ``None`` for no data or when even ``repr`` fails.  Never raises.
- :class:`ResultSizer` counts every result and *measures* one in ``every`` per
  (tool_type, operation), estimating the rest as
  ``round(measured_size * count / measured_count)``.  It measures when there is no
  usable measurement (first result, after :meth:`ResultSizer.clear`, after ``every - 1``
  estimates, after a measurement gave no size) or when the counts cannot be scaled (one
  is ``None`` or 0 and they differ).  ``every=1`` measures every result.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

__all__ = [
    "COUNT_KEYS",
    "DEFAULT_SIZE_EVERY",
    "ResultSizer",
    "Sizing",
    "result_count",
    "result_size_bytes",
]

COUNT_KEYS: tuple[str, ...] = ("records", "rows", "items", "events", "nodes")

_COUNT_KEY_SET = frozenset(COUNT_KEYS)

DEFAULT_SIZE_EVERY = 64
"""One exact measurement per 64 results of an operation: the JSON encoding's cost
(10-20 us for the benchmark's 20-row result) spread over 64 calls is ~0.2 us."""

Sizing = tuple[int | None, int | None, bool]
"""``(result_count, result_size_bytes, result_size_estimated)``."""

_ENCODER = json.JSONEncoder(separators=(",", ":"), default=repr)


def result_size_bytes(data: Any) -> int | None:
    """Length of ``data``'s compact JSON encoding, robustly; ``None`` for no data.

    ``json.dumps(data, separators=(",", ":"))``, ASCII-escaped (so characters = bytes);
    values JSON cannot encode are encoded by ``repr``, and a result JSON cannot take at
    all (a cycle, non-string keys) falls back to the length of its ``repr``.  ``None``
    when ``data is None`` or even ``repr`` fails.  Never raises.
    """
    if data is None:
        return None
    try:
        return len(_ENCODER.encode(data))
    except Exception:
        pass
    try:
        return len(repr(data).encode("utf-8", "replace"))
    except Exception:
        return None


def result_count(data: Any) -> int | None:
    """How many items a result holds, when that is evident from its shape: the length of
    a list/tuple, or of the first list/tuple under one of :data:`COUNT_KEYS` in a
    mapping; else ``None``.  Never raises."""
    if isinstance(data, list | tuple):
        return len(data)
    if isinstance(data, Mapping):
        for key in COUNT_KEYS:
            try:
                inner = data.get(key)
            except Exception:
                return None
            if isinstance(inner, list | tuple):
                return len(inner)
    return None


class _Model:
    """The latest measurement of one operation's results, and how long it stays in use."""

    __slots__ = ("count", "estimate", "left", "size")

    def __init__(self, left: int, size: int | None, count: int | None) -> None:
        self.left = left  # results still to estimate from this measurement
        self.size = size
        self.count = count
        # What a result with the measured count is estimated as: built once, returned often.
        self.estimate: Sizing = (count, size, True)


class ResultSizer:
    """Counts every result; measures one in ``every`` per operation, estimates the rest.

    Owned by the tracer actor but called in the *callers'* tasks (it is the tracer's
    ``size_result``), always synchronously, so no two calls interleave within one event
    loop.  Its state is one small model per (tool_type, operation) -- the set the tool
    registry fixes -- so it stays bounded.
    """

    __slots__ = ("_every", "_models")

    def __init__(self, every: int = DEFAULT_SIZE_EVERY) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every!r}")
        self._every = every
        self._models: dict[tuple[str, str], _Model] = {}

    @property
    def every(self) -> int:
        return self._every

    def clear(self) -> None:
        """Forget every measurement: the next result of each operation is measured."""
        self._models.clear()

    def size(self, tool_type: str, operation: str, data: Any) -> Sizing:
        """``(count, size, estimated)`` of a result (``data`` not ``None``); never raises."""
        # result_count, inlined for the common shape (a plain dict) on this per-call path.
        if type(data) is dict:
            count = None
            # A result with none of the keys (a single record, say) costs one C call.
            if not _COUNT_KEY_SET.isdisjoint(data):
                for count_key in COUNT_KEYS:
                    inner = data.get(count_key)
                    if inner is not None and (
                        type(inner) is list or isinstance(inner, list | tuple)
                    ):
                        count = len(inner)
                        break
        else:
            count = result_count(data)
        model = self._models.get((tool_type, operation))
        if model is not None and model.left and model.size is not None:
            if count == model.count:
                model.left -= 1
                return model.estimate
            if count and model.count:
                model.left -= 1
                return count, round(model.size * count / model.count), True
        size = result_size_bytes(data)
        self._models[(tool_type, operation)] = _Model(self._every - 1, size, count)
        return count, size, False
