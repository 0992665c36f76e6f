"""Walking caller-supplied JSON-like data: one set of limits, one checking walk.

Every walk over data the runtime did not build (params, results) honours the same two
bounds: containers nested at most :data:`MAX_DEPTH` deep (the outermost is level 1), and
at most :data:`MAX_CONTAINERS` containers per value, a shared one counted once per
reference (as JSON writes it out).  So no value -- cyclic, deep, or ``x = [x, x]`` forty
times over -- makes a walk run away.

:func:`check_json_data` raises the caller's exception, naming the path of the first
offending value (``filters[0].value``; empty for the value as a whole), unless the value
is plain JSON data: ``None``, ``str``, ``int``, ``bool``, finite ``float``, sequences of
the given types and dicts with ``str`` keys.  With ``exact`` only those exact types pass
(no subclasses), as a JSON round trip requires.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Final

__all__ = ["MAX_CONTAINERS", "MAX_DEPTH", "Refuse", "check_json_data"]

MAX_DEPTH: Final = 64
MAX_CONTAINERS: Final = 100_000

Refuse = Callable[[str, str], Exception]
"""``refuse(reason, path)``: the exception a failed check raises."""

_EXACT_SCALARS: Final = frozenset({str, int, bool, type(None)})
_STR: Final = frozenset({str})


def check_json_data(
    value: Any,
    refuse: Refuse,
    *,
    sequences: tuple[type, ...] = (list, tuple),
    exact: bool = False,
    path: str = "",
    depth: int = 0,
) -> None:
    """Raise ``refuse(reason, path)`` unless ``value`` is plain JSON data (module doc)."""
    _check(value, refuse, sequences, exact, path, depth, [MAX_CONTAINERS])


def _check(
    value: Any,
    refuse: Refuse,
    sequences: tuple[type, ...],
    exact: bool,
    path: str,
    depth: int,
    budget: list[int],
) -> None:
    kind = type(value)
    if kind in _EXACT_SCALARS or (not exact and isinstance(value, str | bool | int)):
        return
    if kind is float or (not exact and isinstance(value, float)):
        if not math.isfinite(value):
            raise refuse(f"non-finite float {value!r}", path)
        return
    is_sequence = kind in sequences if exact else isinstance(value, sequences)
    is_dict = kind is dict if exact else isinstance(value, dict)
    if not (is_sequence or is_dict):
        raise refuse(f"a {kind.__name__} is not a JSON value", path)
    if depth >= MAX_DEPTH:
        raise refuse(f"nested deeper than {MAX_DEPTH} levels", path)
    budget[0] -= 1
    if budget[0] >= 0:
        # One C-level pass for the common case, a container of plain scalars (floats
        # excluded: each needs its finiteness checked).
        if is_sequence and _EXACT_SCALARS.issuperset(map(type, value)):
            return
        if (
            is_dict
            and _STR.issuperset(map(type, value))
            and _EXACT_SCALARS.issuperset(map(type, value.values()))
        ):
            return
    else:
        raise refuse(
            f"more than {MAX_CONTAINERS:,} nested containers (a shared one counts each "
            "time it is referenced)",
            path,
        )
    if is_sequence:
        for index, item in enumerate(value):
            _check(item, refuse, sequences, exact, f"{path}[{index}]", depth + 1, budget)
        return
    for name, item in value.items():
        if type(name) is not str and (exact or not isinstance(name, str)):
            raise refuse(f"dict key {name!r} is a {type(name).__name__}, not a str", path)
        _check(
            item, refuse, sequences, exact, f"{path}.{name}" if path else name, depth + 1, budget
        )
