"""How a cached value is stored: checked once on fill, rebuilt fresh on every hit.

- :func:`freeze` makes the stored form of a value and proves it thaws (so a hit can never
  fail to); ``len()`` of the stored form is the entry's size for ``max_bytes`` -- the
  length of the value's pickle.
- :func:`thaw` returns a fresh object on every call: no caller can change what another
  caller gets, and types are preserved exactly (a tuple stays a tuple).
- A *flat* value -- an atom (exact ``str``, ``int``, ``float``, ``bool``, ``None``) or a
  plain dict (``str`` keys), list or tuple of atoms -- is kept as a private copy and thawed
  by one C-level copy, where unpickling costs several times as much; anything else is
  kept as its pickle and thawed by unpickling it.  Atoms are immutable, so copies share
  them safely.
- The stored form never leaves the process; a shared tier uses :mod:`runtime.cache.codec`.
- The leader's own caller may keep the object it computed: only the stored form is shared.
"""

from __future__ import annotations

import pickle
from typing import Any, Final

from runtime.cache.keys import Uncacheable

__all__ = ["StoredValue", "Uncacheable", "freeze", "thaw"]

_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL
_ATOMS: Final = frozenset({str, int, float, bool, type(None)})
_STR: Final = frozenset({str})


class StoredValue:
    """The stored form of a cached value; its ``len()`` is the entry's size in bytes.

    Build it with :func:`freeze`, read it with :func:`thaw`."""

    __slots__ = ("_flat", "_pickle", "_size")

    def __init__(self, size: int, pickled: bytes | None, flat: Any) -> None:
        self._size = size
        self._pickle = pickled
        self._flat = flat

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        form = "pickled" if self._pickle is not None else "flat"
        return f"<StoredValue {form}, {self._size} bytes>"


def freeze(value: Any) -> StoredValue:
    """The stored form of ``value``; raises :class:`Uncacheable` if it cannot round-trip."""
    try:
        pickled = pickle.dumps(value, protocol=_PROTOCOL)
    except Exception as exc:  # pickle raises PicklingError, TypeError, AttributeError, ...
        raise Uncacheable(f"cannot serialise a {type(value).__name__}: {exc}") from exc
    if _is_flat(value):
        return StoredValue(len(pickled), None, _fresh(value))
    try:
        pickle.loads(pickled)
    except Exception as exc:
        raise Uncacheable(f"a {type(value).__name__} does not deserialise: {exc}") from exc
    return StoredValue(len(pickled), pickled, None)


def thaw(stored: StoredValue) -> Any:
    """A fresh copy of the value whose stored form is ``stored``: no other caller sees it."""
    pickled = stored._pickle
    if pickled is not None:
        return pickle.loads(pickled)
    return _fresh(stored._flat)


def _is_flat(value: Any) -> bool:
    """An atom, or a plain dict (``str`` keys), list or tuple of atoms."""
    kind = type(value)
    if kind is dict:
        return _STR.issuperset(map(type, value)) and _ATOMS.issuperset(map(type, value.values()))
    if kind is list or kind is tuple:
        return _ATOMS.issuperset(map(type, value))
    return kind in _ATOMS


def _fresh(value: Any) -> Any:
    """A copy of a flat value: a new dict or list; a tuple or an atom is immutable."""
    kind = type(value)
    return value.copy() if kind is dict or kind is list else value
