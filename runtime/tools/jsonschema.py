"""A tool's params schema (the dict language of :mod:`runtime.ops.params`) as JSON Schema.

:func:`to_json_schema` maps a :class:`~runtime.tools.ToolSpec` (or a bare schema dict) to a
JSON Schema (draft 2020-12) document that faces publish: the MCP server's ``inputSchema``,
an HTTP API's description.  A tool registered without a schema gets ``{"type": "object"}``
(or the JSON Schema its tool object carries as ``input_schema``, as remote MCP tools do).

Pure and generic: no I/O, no import of any face.  The mapping keeps every constraint the
validator enforces that JSON Schema can state -- types, bounds, lengths, enums, defaults,
descriptions, ``required``, closed objects, ``exactly_one_of`` -- with three documented
gaps, where the schema is looser than the validator (never stricter):

* ``int`` is ``"integer"``, which JSON Schema also grants to ``1.0``; the validator wants
  a true integer;
* ``format: iso_datetime`` becomes ``"format": "date-time"``, an annotation, plus the
  length bound; the validator's ``datetime.fromisoformat`` check is not expressible;
* ``number`` must be finite, which JSON cannot break anyway (it has no NaN).

Patterns are anchored and written so Python's ``re.search`` (what ``jsonschema`` runs)
and ECMA-262 agree with the validator's ``re.fullmatch``.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

__all__ = ["JSON_SCHEMA_DIALECT", "field_json_schema", "schema_of", "to_json_schema"]

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_TYPES = {
    "int": "integer",
    "number": "number",
    "str": "string",
    "bool": "boolean",
    "list": "array",
    "object": "object",
}
_NAMED_GROUP = re.compile(r"\(\?P<[A-Za-z_][A-Za-z0-9_]*>")


def schema_of(spec: object) -> Mapping[str, Any] | None:
    """The params schema dict of a ToolSpec-like object (``params_schema``) or a dict."""
    if isinstance(spec, Mapping):
        return spec
    found = getattr(spec, "params_schema", None)
    return found if isinstance(found, Mapping) else None


def to_json_schema(spec: object) -> dict[str, Any]:
    """The JSON Schema of a tool's params (``spec``: a ToolSpec or a params schema dict).

    A spec without a params schema whose tool carries a JSON Schema of its own (an
    ``input_schema`` mapping: a remote MCP tool) gets a copy of that one.
    """
    schema = schema_of(spec)
    if schema is None:
        own = getattr(getattr(spec, "tool", None), "input_schema", None)
        return copy.deepcopy(dict(own)) if isinstance(own, Mapping) else {"type": "object"}
    converted = _convert(schema)
    if converted.get("type") != "object":
        # Tool params are always an object; a non-object top-level spec is a bug upstream.
        raise ValueError(f"a params schema must describe an object, got {schema.get('type')!r}")
    return converted


def field_json_schema(spec: object, name: str) -> dict[str, Any] | None:
    """The JSON Schema of one top-level param ``name`` of a tool (None when unknown)."""
    schema = schema_of(spec)
    if schema is None or schema.get("type") != "object" or name not in schema.get("fields", {}):
        return None
    return _convert(schema["fields"][name])


def _convert(spec: Mapping[str, Any]) -> dict[str, Any]:
    kind = spec["type"]
    if kind == "one_of":
        # "anyOf", not "oneOf": the validator takes the first choice that fits, so a
        # value fitting two overlapping choices is valid (oneOf would refuse it).
        out: dict[str, Any] = {"anyOf": [_convert(choice) for choice in spec["choices"]]}
    elif kind in _TYPES:
        out = {"type": _TYPES[kind]}
        if kind in ("int", "number"):
            _copy(spec, out, min="minimum", max="maximum")
        elif kind == "str":
            _string(spec, out)
        elif kind == "list":
            out["items"] = _convert(spec["items"])
            _copy(spec, out, min_items="minItems", max_items="maxItems")
        elif kind == "object":
            _object(spec, out)
    else:
        raise ValueError(f"unknown params schema type {kind!r}")
    _copy(spec, out, description="description", default="default")
    return out


def _copy(spec: Mapping[str, Any], out: dict[str, Any], **names: str) -> None:
    for ours, theirs in names.items():
        if spec.get(ours) is not None:
            value = spec[ours]
            out[theirs] = list(value) if isinstance(value, list | tuple) else value


def _string(spec: Mapping[str, Any], out: dict[str, Any]) -> None:
    if "enum" in spec:
        out["enum"] = list(spec["enum"])
    _copy(spec, out, min_length="minLength", max_length="maxLength")
    if "pattern" in spec:
        out["pattern"] = _anchored(spec["pattern"])
    if spec.get("format") == "iso_datetime":
        out["format"] = "date-time"


def _anchored(pattern: str) -> str:
    # Named groups are Python-only syntax: plain groups mean the same to both dialects.
    # "$(?!\n)": Python's "$" also matches before a final newline, which fullmatch
    # refuses; ECMA's "$" does not, and there the lookahead is always true.
    body = _NAMED_GROUP.sub("(", pattern)
    return f"^(?:{body})$(?!\\n)"


def _object(spec: Mapping[str, Any], out: dict[str, Any]) -> None:
    fields: Mapping[str, Mapping[str, Any]] = spec.get("fields", {})
    out["properties"] = {name: _convert(field) for name, field in fields.items()}
    required = [name for name, field in fields.items() if field.get("required", False)]
    if required:
        out["required"] = required
    out["additionalProperties"] = False
    groups = [list(group) for group in spec.get("exactly_one_of", ())]
    one_ofs = [{"oneOf": [{"required": [name]} for name in group]} for group in groups]
    if len(one_ofs) == 1:
        out.update(one_ofs[0])
    elif one_ofs:
        out["allOf"] = one_ofs
