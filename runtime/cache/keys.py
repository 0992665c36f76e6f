"""Canonical, tenant-safe cache keys.

A key is derived from a canonical form of everything that decides the answer -- tenant,
tool type, operation and params, minus the *volatile* params that name the request
(``request_id``, ``trace_id`` and whatever the configuration adds):

- JSON with sorted object keys and no whitespace; tuples encode as lists; list order kept.
- Only JSON data is accepted (:mod:`runtime.jsondata`): ``str``, ``int``, finite ``float``,
  ``bool``, ``None``, lists, tuples and dicts with ``str`` keys.  ``True`` and ``1``, and
  ``1`` and ``1.0``, encode differently.
- Anything else raises :class:`Uncacheable` naming the path; the caller turns it into a
  counted bypass.  Never a crash, never a guessed key.

The digest is BLAKE2b-128, personalised, over ``["v1", tenant, tool_type, operation,
params]``; the key keeps tenant, tool type and operation beside it for invalidation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

import attrs

from runtime.errors import RuntimeFault
from runtime.jsondata import check_json_data

__all__ = [
    "DIGEST_SIZE",
    "VOLATILE_KEYS",
    "CacheKey",
    "DigestMemo",
    "Uncacheable",
    "canonical_params",
    "key_digest",
    "make_key",
    "volatile_keys",
]

DIGEST_SIZE: Final = 16
"""Bytes of BLAKE2b digest: 128 bits keeps accidental collisions out of reach (2^64 keys
for a 50% birthday chance) at a third of sha256's memory per entry."""

VOLATILE_KEYS: Final = frozenset({"request_id", "trace_id"})
"""Top-level parameters that identify the request, not the question; never part of a key."""

# Built once: json.dumps with non-default options constructs an encoder per call, which
# measured as a fifth of the cost of a key on the cache-hit path.
_ENCODER: Final = json.JSONEncoder(
    sort_keys=True,
    separators=(",", ":"),
    ensure_ascii=True,  # also makes lone surrogates encodable
    allow_nan=False,
)


def _refuse(value: Any) -> Any:
    raise TypeError(f"a {type(value).__name__} is not a JSON value")


# The C encoder behind _ENCODER, called directly: JSONEncoder.encode builds it anew on
# every call, which is most of its cost for a small document.  Same options, same output
# (a test compares them); markers=None skips the cycle check, which check_json_data's depth
# bound already makes unnecessary.
_MAKE_C_ENCODER = getattr(json.encoder, "c_make_encoder", None)  # CPython's _json
_C_ENCODE: Final = (
    _MAKE_C_ENCODER(
        None, _refuse, json.encoder.encode_basestring_ascii, None, ":", ",", True, False, False
    )
    if _MAKE_C_ENCODER is not None
    else None
)
_PERSON: Final = b"runtime.cache.k1"  # 16 bytes: separates our digests from any other use
_HASHER: Final = hashlib.blake2b(digest_size=DIGEST_SIZE, person=_PERSON)


class Uncacheable(RuntimeFault):
    """A call's params or result cannot be cached safely; the call must bypass the cache.

    ``reason`` says why in words, ``path`` locates the offending value inside the params or
    the result (``filters[0].value``; empty for the value as a whole).
    """

    def __init__(self, reason: str, path: str = "") -> None:
        self.reason = reason
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"uncacheable{where}: {reason}")


@attrs.frozen(slots=True)
class CacheKey:
    """The identity of one cached answer.

    ``digest`` alone identifies the entry (it covers the other three fields); tenant, tool
    type and operation are kept so that invalidation and statistics need no parsing.  Build
    keys with :func:`make_key`, not by hand.
    """

    tenant: str
    tool_type: str
    operation: str
    digest: bytes = attrs.field(repr=lambda d: d.hex())


def volatile_keys(extra: Iterable[str] = ()) -> frozenset[str]:
    """The volatile parameter names: ``request_id``, ``trace_id`` plus ``extra``."""
    return VOLATILE_KEYS.union(extra)


_FAST_LEAVES: Final = frozenset({str, int, bool, float, type(None)})
_STR: Final = frozenset({str})


def _check(value: Any) -> None:
    """Raise :class:`Uncacheable` unless ``value`` is plain JSON data (see module doc)."""
    # Fast path, all in C: params of plain values (floats included: the encoder itself
    # refuses NaN and infinities) pass without a Python-level step per value.
    if (
        type(value) is dict
        and _STR.issuperset(map(type, value))
        and _FAST_LEAVES.issuperset(map(type, value.values()))
    ):
        return
    check_json_data(value, Uncacheable)


def canonical_params(
    params: Mapping[str, Any], volatile: frozenset[str] = VOLATILE_KEYS
) -> dict[str, Any]:
    """``params`` without its volatile top-level keys, checked to be canonicalisable.

    Raises :class:`Uncacheable` for anything that is not plain JSON data.
    """
    if not isinstance(params, Mapping):
        raise Uncacheable(f"params must be a mapping, got {type(params).__name__}")
    kept = {name: value for name, value in params.items() if name not in volatile}
    _check(kept)
    return kept


def make_key(
    tenant: str,
    tool_type: str,
    operation: str,
    params: Mapping[str, Any],
    volatile: frozenset[str] = VOLATILE_KEYS,
) -> CacheKey:
    """The cache key of ``operation`` of ``tool_type`` with ``params`` for ``tenant``.

    ``volatile`` names the top-level params to leave out (build it once with
    :func:`volatile_keys`).  Raises :class:`Uncacheable` when the params cannot be
    canonicalised; the caller should then bypass the cache (and count it).
    """
    digest = key_digest(tenant, tool_type, operation, params, volatile)
    # str() strips str subclasses (StrEnum members) so ToolType.CI and "CI" agree.
    return CacheKey(str(tenant), str(tool_type), str(operation), digest)


def key_digest(
    tenant: str,
    tool_type: str,
    operation: str,
    params: Mapping[str, Any],
    volatile: frozenset[str] = VOLATILE_KEYS,
) -> bytes:
    """The digest :func:`make_key` would put in the key, without building the key.

    A cache hit needs only the digest (it alone identifies an entry), so the hit path
    builds the :class:`CacheKey` only when it misses.
    """
    for name, part in (("tenant", tenant), ("tool_type", tool_type), ("operation", operation)):
        if not isinstance(part, str):
            raise Uncacheable(f"{name} must be a str, got {type(part).__name__}")
    if type(params) is dict and volatile.isdisjoint(params):
        # Nothing to leave out: check the caller's dict in place rather than copy it (it
        # is only read, never kept).
        kept = params
        _check(kept)
    else:
        kept = canonical_params(params, volatile)
    tenant, tool_type, operation = str(tenant), str(tool_type), str(operation)
    try:
        whole = ["v1", tenant, tool_type, operation, kept]
        document = "".join(_C_ENCODE(whole, 0)) if _C_ENCODE else _ENCODER.encode(whole)
    except (TypeError, ValueError) as exc:  # a NaN the fast check let through, say
        check_json_data(kept, Uncacheable)  # raises, naming where the problem is
        raise Uncacheable(str(exc)) from exc
    hasher = _HASHER.copy()  # a copy of a primed hasher: no keyword parsing per key
    hasher.update(document.encode("ascii"))
    return hasher.digest()


_MEMO_TYPES: Final = frozenset({str, int, bool, type(None)})
DEFAULT_MEMO_SIZE: Final = 4096


class DigestMemo:
    """:func:`key_digest` for one set of volatile names, remembering flat params' digests.

    Most calls pass a flat dict of strings, ints, bools and ``None``; a repeat of one is
    answered from a dict keyed by the call's exact *shape* -- tenant, tool type,
    operation, the params' names and values, and the type of each -- instead of the
    canonical JSON and a hash.  The types are part of the shape because ``1 == True`` in
    Python but not in a key; they come first in the shape, so two values are compared
    only when their types are the same exact atom type.
    Floats are never remembered (``0.0 == -0.0``), nor params with a volatile name, nor
    names that are not exactly ``str``.
    Anything else is digested afresh: the answer is always :func:`key_digest`'s, and so
    are its errors.  At most ``size`` shapes are kept; a full memo starts over.
    """

    __slots__ = ("_memo", "_size", "_volatile")

    def __init__(self, volatile: frozenset[str] = VOLATILE_KEYS, size: int = DEFAULT_MEMO_SIZE):
        if not (isinstance(size, int) and size >= 1):
            raise ValueError(f"size must be an integer >= 1, got {size!r}")
        self._volatile = volatile
        self._size = size
        self._memo: dict[tuple[Any, ...], bytes] = {}

    def __len__(self) -> int:
        return len(self._memo)

    def digest(
        self, tenant: str, tool_type: str, operation: str, params: Mapping[str, Any]
    ) -> bytes:
        """``key_digest(tenant, tool_type, operation, params, volatile)``; raises as it does."""
        if type(params) is not dict:
            return key_digest(tenant, tool_type, operation, params, self._volatile)
        values = tuple(params.values())
        value_types = tuple(map(type, values))
        if not (_MEMO_TYPES.issuperset(value_types) and _STR.issuperset(map(type, params))):
            return key_digest(tenant, tool_type, operation, params, self._volatile)
        # Exact types first, so no value is compared with one of another type.
        names = (type(tenant), type(tool_type), type(operation), tenant, tool_type, operation)
        shape = (value_types, *names, *params, *values)
        digest = self._memo.get(shape)
        if digest is None:
            digest = key_digest(tenant, tool_type, operation, params, self._volatile)
            if _STR.issuperset(names[:3]) and self._volatile.isdisjoint(params):
                if len(self._memo) >= self._size:
                    self._memo.clear()
                self._memo[shape] = digest
        return digest
