"""How a cached value is stored: serialized once on fill, rebuilt fresh on every hit.

- :func:`freeze` pickles a value and proves the pickle loads back (so a hit can never fail
  to thaw); ``len()`` of the stored form is the entry's size for ``max_bytes``.
- :func:`thaw` returns a fresh object on every call: no caller can change what another
  caller gets, and types are preserved exactly (a tuple stays a tuple).
- The pickle never leaves the process; a shared tier uses :mod:`runtime.cache.codec`.
- The leader's own caller may keep the object it computed: only the stored form is shared.
"""

from __future__ import annotations

import pickle
from typing import Any, Final, NewType

from runtime.cache.keys import Uncacheable

__all__ = ["StoredValue", "Uncacheable", "freeze", "thaw"]

StoredValue = NewType("StoredValue", bytes)
"""The stored form of a cached value; its ``len()`` is the entry's size in bytes."""

_PROTOCOL: Final = pickle.HIGHEST_PROTOCOL


def freeze(value: Any) -> StoredValue:
    """The stored form of ``value``; raises :class:`Uncacheable` if it cannot round-trip."""
    try:
        stored = pickle.dumps(value, protocol=_PROTOCOL)
    except Exception as exc:  # pickle raises PicklingError, TypeError, AttributeError, ...
        raise Uncacheable(f"cannot serialise a {type(value).__name__}: {exc}") from exc
    try:
        pickle.loads(stored)
    except Exception as exc:
        raise Uncacheable(f"a {type(value).__name__} does not deserialise: {exc}") from exc
    return StoredValue(stored)


def thaw(stored: StoredValue) -> Any:
    """A fresh copy of the value whose stored form is ``stored``: no other caller sees it."""
    return pickle.loads(stored)
