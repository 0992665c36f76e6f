"""The shared tier's key layout and generation tokens (pure: no I/O, ``now`` passed in).

Values live under ``{prefix}:val:{tenant}:{tool}:{op}:{gen}:{digest}``; ``gen`` hashes the
four *generation tokens* (whole cache, tenant, tool type, operation) whose keys
:func:`generation_keys` names, so replacing a token invalidates its namespace.  Name parts
are percent-encoded, so no tenant or tool name can forge another's key.
:class:`GenerationCache` keeps tokens read from Redis for at most ``max_age`` seconds.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Final, Protocol
from urllib.parse import quote

__all__ = [
    "CacheKeyLike",
    "GenerationCache",
    "data_key",
    "generation_keys",
    "global_generation_key",
    "key_generation_key",
    "new_token",
    "tenant_generation_key",
    "tool_generation_key",
]

_GEN_CACHE_MAX: Final = 4096


class CacheKeyLike(Protocol):
    """What the tier needs of a cache key (``runtime.cache.keys.CacheKey`` fits)."""

    @property
    def tenant(self) -> str: ...
    @property
    def tool_type(self) -> str: ...
    @property
    def operation(self) -> str: ...
    @property
    def digest(self) -> bytes: ...


def _part(text: str) -> str:
    # Percent-encoding ':' (and everything else unusual) keeps the layout unambiguous:
    # tenant "a:b" can never pose as tenant "a" with tool "b".
    # surrogatepass: make_key accepts str with lone surrogates, so must the layout.
    return quote(str(text), safe="", errors="surrogatepass")


def global_generation_key(prefix: str) -> str:
    return f"{prefix}:gen:all"


def tenant_generation_key(prefix: str, tenant: str) -> str:
    return f"{prefix}:gen:tenant:{_part(tenant)}"


def tool_generation_key(prefix: str, tool_type: str, operation: str | None = None) -> str:
    if operation is None:
        return f"{prefix}:gen:tool:{_part(tool_type)}"
    return f"{prefix}:gen:op:{_part(tool_type)}:{_part(operation)}"


def generation_keys(prefix: str, key: CacheKeyLike) -> tuple[str, str, str, str]:
    """The four generation keys that together decide where ``key``'s value lives."""
    return (
        global_generation_key(prefix),
        tenant_generation_key(prefix, key.tenant),
        tool_generation_key(prefix, key.tool_type),
        tool_generation_key(prefix, key.tool_type, key.operation),
    )


def data_key(prefix: str, key: CacheKeyLike, generations: tuple[str, ...]) -> bytes:
    """The Redis key of ``key``'s value under the given generation tokens."""
    gen = hashlib.blake2b("\x00".join(generations).encode(), digest_size=8).hexdigest()
    return (
        f"{prefix}:val:{_part(key.tenant)}:{_part(key.tool_type)}:{_part(key.operation)}"
        f":{gen}:{key.digest.hex()}"
    ).encode()


def key_generation_key(prefix: str, location: bytes) -> bytes:
    """Where a single-key invalidation of the value at ``location`` leaves its mark.

    A flight that claimed the key before the mark was set must not write its value
    (:mod:`runtime.cache.lease`); the mark lives as long as a lease can.
    """
    return prefix.encode() + b":kgen:" + location[len(prefix) + len(":val:") :]


def new_token() -> str:
    return secrets.token_hex(8)


class GenerationCache:
    """Generation tokens last read from Redis, each reusable for ``max_age`` seconds.

    ``epoch`` changes on every local bump: a fetch that started before a bump must not
    overwrite the bumped token with the older one it read (see :meth:`store`).
    """

    __slots__ = ("_tokens", "epoch", "max_age")

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self.epoch = 0
        self._tokens: dict[str, tuple[str, float]] = {}

    def lookup(self, names: tuple[str, ...], now: float) -> tuple[str, ...] | None:
        found = []
        for name in names:
            entry = self._tokens.get(name)
            if entry is None or now - entry[1] >= self.max_age:
                return None
            found.append(entry[0])
        return tuple(found)

    def store(
        self, names: tuple[str, ...], tokens: tuple[str, ...], now: float, epoch: int
    ) -> None:
        if epoch != self.epoch or self.max_age <= 0:
            return
        if len(self._tokens) + len(names) > _GEN_CACHE_MAX:
            self._tokens.clear()  # crude but bounded; refilled at one MGET per namespace
        for name, token in zip(names, tokens, strict=True):
            self._tokens[name] = (token, now)

    def bump(self, name: str, token: str, now: float) -> None:
        self.epoch += 1
        if self.max_age > 0:
            self._tokens[name] = (token, now)

    def clear(self) -> None:
        self.epoch += 1
        self._tokens.clear()
