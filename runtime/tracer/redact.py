"""Redaction of secrets in call parameters before they are kept or exported.

- A mapping key whose normalised form (lower-cased, without ``_``, ``-``, ``.`` and spaces)
  *contains* a configured fragment has its whole value replaced by ``"***"``, at any
  depth, mappings inside lists included.
- :meth:`Redactor.scrub` also removes those secret values (of at least
  :data:`MIN_SECRET_CHARS` characters) from a text such as an error message.
- The result is plain JSON data: ``dict`` with ``str`` keys, lists, and the ``repr`` (cut
  at :data:`MAX_REPR`) of anything else, non-finite floats included.  A ``repr`` is not
  inspected for secrets.
- Caller data is not trusted: nesting past :data:`MAX_DEPTH` becomes :data:`TOO_DEEP`, a
  reference back to an enclosing container :data:`CYCLE`, and containers past
  :data:`MAX_CONTAINERS` in one value :data:`TOO_LARGE` (limits of
  :mod:`runtime.jsondata`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from runtime.config import DEFAULT_REDACT_KEYS
from runtime.jsondata import MAX_CONTAINERS, MAX_DEPTH

__all__ = [
    "CYCLE",
    "DEFAULT_REDACT_KEYS",
    "MAX_CONTAINERS",
    "MAX_DEPTH",
    "MAX_REPR",
    "MIN_SECRET_CHARS",
    "REDACTED",
    "TOO_DEEP",
    "TOO_LARGE",
    "Redactor",
    "redact",
]

REDACTED = "***"
TOO_DEEP = "<too deep>"
CYCLE = "<cycle>"
TOO_LARGE = "<too large>"
MAX_REPR = 200
MIN_SECRET_CHARS = 4

_SEPARATORS = str.maketrans("", "", "_-. ")


def _normalise(key: str) -> str:
    return key.lower().translate(_SEPARATORS)


class _Walk:
    """One walk over one value: the containers open on the current path (a cycle leads
    back to one of them) and how many more containers the walk may enter."""

    __slots__ = ("left", "open")

    def __init__(self) -> None:
        self.open: set[int] = set()
        self.left = MAX_CONTAINERS

    def enter(self, container: object) -> str | None:
        """``None`` when the walk may go into ``container`` (then :meth:`leave` it), else
        the marker that stands for it."""
        key = id(container)
        if key in self.open:
            return CYCLE
        if self.left <= 0:
            return TOO_LARGE
        self.left -= 1
        self.open.add(key)
        return None

    def leave(self, container: object) -> None:
        self.open.discard(id(container))


class Redactor:
    """A compiled redaction rule: the fragments, normalised once, and a memo of keys.

    Parameter keys repeat endlessly (``ci_id``, ``limit``, ``since``), so the verdict per
    key is memoised; the memo is bounded so that adversarial key streams cannot grow it.
    """

    __slots__ = ("_fragments", "_verdicts")

    _MEMO_LIMIT = 4096

    def __init__(self, keys: Iterable[str] = DEFAULT_REDACT_KEYS) -> None:
        fragments = set()
        for key in keys:
            normal = _normalise(key)
            if key and not normal:
                # It would be the empty fragment, which every key contains.
                raise ValueError(f"redact key {key!r} has no letter or digit to match")
            if normal:
                fragments.add(normal)
        self._fragments = tuple(sorted(fragments))
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
        return self._clean(value, 0, _Walk())

    def scrub(self, text: str, *values: Any) -> str:
        """``text`` with every string held under a secret key in ``values`` (at any depth)
        replaced by ``"***"``, longest first; strings shorter than
        :data:`MIN_SECRET_CHARS` are left alone."""
        secrets: set[str] = set()
        for value in values:
            self._collect(value, False, 0, secrets, _Walk())
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, REDACTED)
        return text

    def _collect(self, value: Any, secret: bool, depth: int, found: set[str], walk: _Walk) -> None:
        if isinstance(value, str):
            if secret and len(value) >= MIN_SECRET_CHARS:
                found.add(value)
            return
        if depth >= MAX_DEPTH:
            return
        is_mapping = isinstance(value, Mapping)
        if not (is_mapping or isinstance(value, list | tuple | set | frozenset)):
            return
        if walk.enter(value) is not None:
            return
        if is_mapping:
            for key, item in value.items():
                name = key if type(key) is str else str(key)
                self._collect(item, secret or self.is_secret(name), depth + 1, found, walk)
        else:
            for item in value:
                self._collect(item, secret, depth + 1, found, walk)
        walk.leave(value)

    def _clean(self, value: Any, depth: int, walk: _Walk) -> Any:
        # Exact type checks first: they are the common case and the cheapest test.
        kind = type(value)
        if kind is str or kind is int or kind is bool or value is None:
            return value
        if kind is float:
            return value if math.isfinite(value) else repr(value)
        if depth >= MAX_DEPTH:
            return TOO_DEEP
        if isinstance(value, Mapping):
            marker = walk.enter(value)
            if marker is not None:
                return marker
            cleaned: dict[str, Any] = {}
            for key, item in value.items():
                name = key if type(key) is str else str(key)
                cleaned[name] = (
                    REDACTED if self.is_secret(name) else self._clean(item, depth + 1, walk)
                )
            walk.leave(value)
            return cleaned
        if isinstance(value, list | tuple | set | frozenset):
            marker = walk.enter(value)
            if marker is not None:
                return marker
            items = [self._clean(item, depth + 1, walk) for item in value]
            walk.leave(value)
            return items
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
