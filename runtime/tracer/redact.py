"""Redaction of secrets in call parameters before they are kept or exported.

Trace records outlive the call and leave the process (JSON, CSV, OpenTelemetry), so a
parameter named ``password`` must never reach them.  Redaction is by *key*: a mapping key
whose normalised form **contains** one of the configured fragments has its whole value —
scalar, list or nested mapping — replaced by ``"***"``, at any depth, including mappings
inside lists.

Why substring and not exact match: secrets arrive under many spellings
(``db_password``, ``access_token``, ``X-API-Key``, ``client_secret``), and a missed
secret costs far more than an over-redacted ``token_count``.  Keys are normalised by
lower-casing and turning ``-`` and spaces into ``_`` before matching, so ``X-Api-Key``
matches the fragment ``api_key``.

Redaction also makes the value *plain JSON data*: mappings become ``dict`` with ``str``
keys, tuples/lists/sets become lists, non-finite floats and any other object become their
``repr`` (cut at :data:`MAX_REPR`).  That keeps every record exportable and lets a record
read back from JSON compare equal to the original.  An object's ``repr`` is not inspected
for secrets: pass secrets in mappings, not inside opaque objects.  Nesting deeper than
:data:`MAX_DEPTH` (or a reference cycle) is cut off with :data:`TOO_DEEP`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = [
    "DEFAULT_REDACT_KEYS",
    "MAX_DEPTH",
    "MAX_REPR",
    "REDACTED",
    "TOO_DEEP",
    "Redactor",
    "redact",
]

REDACTED = "***"
TOO_DEEP = "<too deep>"
MAX_DEPTH = 32
MAX_REPR = 200

DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "credential",
    "private_key",
)


def _normalise(key: str) -> str:
    return key.lower().replace("-", "_").replace(" ", "_")


class Redactor:
    """A compiled redaction rule: the fragments, normalised once, and a memo of keys.

    Parameter keys repeat endlessly (``ci_id``, ``limit``, ``since``), so the verdict per
    key is memoised; the memo is bounded so that adversarial key streams cannot grow it.
    """

    __slots__ = ("_fragments", "_verdicts")

    _MEMO_LIMIT = 4096

    def __init__(self, keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        self._fragments = tuple(sorted({_normalise(k) for k in keys if k}))
        self._verdicts: dict[str, bool] = {}

    @property
    def fragments(self) -> tuple[str, ...]:
        return self._fragments

    def is_secret(self, key: str) -> bool:
        verdict = self._verdicts.get(key)
        if verdict is None:
            normal = _normalise(key)
            verdict = any(fragment in normal for fragment in self._fragments)
            if len(self._verdicts) >= self._MEMO_LIMIT:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        return verdict

    def __call__(self, value: Any) -> Any:
        return self._clean(value, 0)

    def _clean(self, value: Any, depth: int) -> Any:
        # Exact type checks first: they are the common case and the cheapest test.
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            return value
        if kind is float:
            return value if math.isfinite(value) else repr(value)
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if isinstance(value, Mapping):
            cleaned: dict[str, Any] = {}
            for key, item in value.items():
                name = key if type(key) is str else str(key)
                cleaned[name] = REDACTED if self.is_secret(name) else self._clean(item, depth + 1)
            return cleaned
        if isinstance(value, list | tuple | set | frozenset):
            return [self._clean(item, depth + 1) for item in value]
        if isinstance(value, str | int):  # subclasses: StrEnum, IntEnum, ...
            return str(value) if isinstance(value, str) else int(value)
        if isinstance(value, float):
            return float(value) if math.isfinite(value) else repr(value)
        try:
            text = repr(value)
        except Exception:  # a broken __repr__ must not lose the whole record
            text = f"<unrepresentable {kind.__name__}>"
        return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def redact(value: Any, keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> Any:
    """``value`` as plain JSON data with every secret-keyed value replaced by ``"***"``."""
    return Redactor(keys)(value)
