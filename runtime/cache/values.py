"""How a cached value is stored: serialized once on fill, rebuilt fresh on every hit.

A cache that hands out references lets one caller's ``result["records"].append(...)``
change what every later caller gets (the original design's defect, and cachetools#184,
aiocache#842).  The stored form must therefore be something no caller can reach into, and
each hit must get its own object.  The entry's size for ``max_bytes`` should also be a real
byte count, not ``sys.getsizeof`` of the top-level container.

Candidates, measured on a realistic tool result (a CI search result: a dict with a
``records`` list of 20 CI records, each with 13 scalar fields, a ``tags`` dict and an
``attributes`` dict holding a list of 2 dicts; CPython 3.11, 2-core machine, best of 5):

============================  ===========  ==========  =====================================
strategy                      on fill      per hit     notes
============================  ===========  ==========  =====================================
``copy.deepcopy`` on read     --           346 us      no byte size; memo dict per copy
**pickle** dumps / loads      26 us        **25 us**   3.6 kB; exact types; size for free
marshal dumps / loads         12 us        41 us       5.6 kB; builtins only
json dumps / loads            101 us       63 us       10 kB; tuples become lists
deep freeze (proxy/tuple)     89 us        0 us        changes the types callers see; no size
============================  ===========  ==========  =====================================

Pickle wins: 14x cheaper per hit than ``deepcopy``, it preserves types exactly (a tuple
stays a tuple, an attrs record stays a record), and ``len()`` of the pickle is the entry
size.  Deep freezing is free per hit but hands followers a ``MappingProxyType`` where the
leader's caller got a ``dict`` -- the result's type would depend on cache timing -- and
still needs a serialization to know its size.

:func:`freeze` also runs one ``pickle.loads`` to prove the stored form can be rebuilt (an
object can pickle yet fail to unpickle, e.g. an exception subclass with extra required
arguments).  That doubles the fill cost to ~50 us, paid once per tool execution (which takes
milliseconds), and means a hit can never fail to thaw.

The pickle never leaves the process: it is produced and consumed by this module only, so
unpickling it is as safe as the object that was pickled.  A shared backend (Redis) must not
accept pickles from the network without authenticating them (an HMAC), and is out of scope
here.

The leader's own caller may keep the original object it computed: only the stored form is
shared, and every other caller gets a fresh copy from :func:`thaw`.
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
