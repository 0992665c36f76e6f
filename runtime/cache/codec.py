"""The wire form of a value in the shared (Redis) tier: JSON in a versioned, signed envelope.

Envelope (bytes)::

    rtc1:u:<json>                        unsigned
    rtc1:s:<64 hex sha256 mac>:<json>    signed with HMAC-SHA256

- Data only, never pickle: reading can at worst produce a wrong *value*, never run code.
- ``rtc1`` is the version; any other is refused.  The MAC covers the Redis key as well as
  the payload, so a signed value copied to another key (another tenant's) fails.
- With a secret only signed values are accepted; without one both forms are, unchecked.
- A value is written only if JSON gives exactly it back (``dict`` with ``str`` keys,
  ``list``, ``str``, ``int``, finite ``float``, ``bool``, ``None``, no subclasses);
  anything else raises :class:`NotJsonValue` and stays out of the shared tier.
- Refused bytes raise :class:`DecodeFailure` (``"signature"`` or ``"decode"``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, Final, Literal

from runtime.jsondata import check_json_data

__all__ = [
    "ENVELOPE_VERSION",
    "DecodeFailure",
    "NotJsonValue",
    "check_json_value",
    "decode",
    "encode",
    "seal",
    "serialise",
]

ENVELOPE_VERSION: Final = b"rtc1"
_UNSIGNED: Final = ENVELOPE_VERSION + b":u:"
_SIGNED: Final = ENVELOPE_VERSION + b":s:"
_MAC_HEX_LEN: Final = 64


class NotJsonValue(ValueError):
    """The value would not come back from JSON as the same value; ``path`` locates it."""

    def __init__(self, reason: str, path: str = "") -> None:
        self.reason = reason
        self.path = path
        where = f" at {path}" if path else ""
        super().__init__(f"not a plain JSON value{where}: {reason}")


class DecodeFailure(ValueError):
    """Stored bytes were refused.

    ``kind`` is ``"signature"`` (missing or wrong MAC) or ``"decode"`` (not our envelope,
    another envelope version, or malformed JSON).
    """

    def __init__(self, kind: Literal["decode", "signature"], reason: str) -> None:
        self.kind: Literal["decode", "signature"] = kind
        self.reason = reason
        super().__init__(f"{kind} failure: {reason}")


def check_json_value(value: Any, path: str = "", depth: int = 0) -> None:
    """Raise :class:`NotJsonValue` unless JSON round-trips ``value`` exactly.

    The limits are :mod:`runtime.jsondata`'s: a value whose JSON would be astronomically
    large is refused rather than encoded.
    """
    check_json_data(value, NotJsonValue, sequences=(list,), exact=True, path=path, depth=depth)


def _mac(secret: bytes, redis_key: bytes, payload: bytes) -> bytes:
    message = b"".join((ENVELOPE_VERSION, b"\x00", redis_key, b"\x00", payload))
    return hmac.new(secret, message, hashlib.sha256).hexdigest().encode("ascii")


def serialise(value: Any) -> bytes:
    """The JSON payload of ``value``; raises :class:`NotJsonValue` (see the module doc)."""
    check_json_value(value)
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    # surrogatepass: a str holding a lone surrogate is a valid Python str and must survive.
    return text.encode("utf-8", "surrogatepass")


def seal(payload: bytes, redis_key: bytes, secret: bytes | None) -> bytes:
    """The envelope around ``payload`` stored under ``redis_key``, signed when ``secret``."""
    if secret is None:
        return _UNSIGNED + payload
    return b"".join((_SIGNED, _mac(secret, redis_key, payload), b":", payload))


def encode(value: Any, redis_key: bytes, secret: bytes | None) -> bytes:
    """``seal(serialise(value), ...)``: raises :class:`NotJsonValue`."""
    return seal(serialise(value), redis_key, secret)


def decode(stored: bytes, redis_key: bytes, secret: bytes | None) -> Any:
    """The value in ``stored``; raises :class:`DecodeFailure` for anything else.

    Never raises anything but :class:`DecodeFailure`, whatever the bytes.
    """
    if not isinstance(stored, bytes):
        raise DecodeFailure("decode", f"expected bytes, got {type(stored).__name__}")
    if stored.startswith(_SIGNED):
        mac = stored[len(_SIGNED) : len(_SIGNED) + _MAC_HEX_LEN]
        separator = stored[len(_SIGNED) + _MAC_HEX_LEN : len(_SIGNED) + _MAC_HEX_LEN + 1]
        payload = stored[len(_SIGNED) + _MAC_HEX_LEN + 1 :]
        if len(mac) != _MAC_HEX_LEN or separator != b":":
            raise DecodeFailure("signature", "malformed signature field")
        if secret is not None and not hmac.compare_digest(mac, _mac(secret, redis_key, payload)):
            raise DecodeFailure("signature", "signature does not match")
    elif stored.startswith(_UNSIGNED):
        if secret is not None:
            raise DecodeFailure("signature", "unsigned value while signing is required")
        payload = stored[len(_UNSIGNED) :]
    elif stored.startswith(b"rtc"):
        raise DecodeFailure("decode", f"unknown envelope version {stored[:8]!r}")
    else:
        raise DecodeFailure("decode", "not a runtime cache envelope")
    try:
        return json.loads(payload.decode("utf-8", "surrogatepass"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise DecodeFailure("decode", f"malformed payload: {type(exc).__name__}") from None
