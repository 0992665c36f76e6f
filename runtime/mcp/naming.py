"""Pure rules of the MCP face: tool names, annotations, ``traceparent`` and bearer tenants.

No I/O and no ``mcp`` import, so the rules are testable (and tested with hypothesis) on
their own.  Names use only ``[A-Za-z0-9_-]``, a subset of MCP's allowed characters
(SEP-986 also allows ``.``) that desktop assistants' tool-name rules accept as well:

* a tool ``(tool_type, operation)`` is ``{tool_type lowercased}_{operation}``
  (``CI.search`` -> ``ci_search``, ``HISTORY.event_log`` -> ``history_event_log``);
* a composition ``name`` is ``compose_{name}``; a selector intent is
  ``intent_{name lowercased}``;
* any other character becomes ``-``; names are cut to 64 characters.  Two things that
  map to one name are refused when the server is built (:class:`NameClash`).
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping

from runtime.calls import SpanRef

__all__ = [
    "MAX_NAME",
    "NameClash",
    "composition_tool_name",
    "intent_tool_name",
    "parse_traceparent",
    "tenant_for_authorization",
    "tool_name",
]

MAX_NAME = 64
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_-]")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")


class NameClash(ValueError):
    """Two tools, compositions or intents map to the same MCP tool name."""

    def __init__(self, name: str, first: str, second: str) -> None:
        self.name = name
        super().__init__(f"MCP tool name {name!r} is claimed by both {first} and {second}")


def _clean(text: str) -> str:
    return _NOT_ALLOWED.sub("-", text)[:MAX_NAME]


def tool_name(tool_type: str, operation: str) -> str:
    """The MCP name of the tool ``(tool_type, operation)``."""
    return _clean(f"{tool_type.lower()}_{operation}")


def composition_tool_name(composition: str) -> str:
    return _clean(f"compose_{composition}")


def intent_tool_name(intent: str) -> str:
    return _clean(f"intent_{intent.lower()}")


def parse_traceparent(value: object) -> SpanRef | None:
    """The remote parent in a W3C ``traceparent`` header value, or None when invalid.

    Per the W3C recommendation an invalid value is ignored (the call starts its own
    trace), never an error: version ``ff``, all-zero ids and malformed text are refused;
    a future version may carry more fields after the four we read.
    """
    if not isinstance(value, str):
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace_id, span_id, _flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return SpanRef(trace_id, span_id)


def tenant_for_authorization(header: str | None, tokens: Mapping[str, str]) -> str | None:
    """The tenant a ``Bearer <token>`` Authorization header maps to, or None."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    offered = token.strip().encode("utf-8", "surrogatepass")
    # Compared in constant time, every token: a dict lookup's timing would hint at them.
    found = None
    for known, tenant in tokens.items():
        if hmac.compare_digest(known.encode("utf-8", "surrogatepass"), offered):
            found = tenant
    return found
