"""The pure cores of the MCP face: JSON Schema mapping, names, traceparent, bearer tenants.

The schema property: for every ops tool, params generated from its params schema (valid
and, with ``invalid=True``, broken in one place) get the same verdict from the published
``inputSchema`` (checked by the ``jsonschema`` package) as from the tool's own validator,
after a JSON round trip -- except the gaps :mod:`runtime.tools.jsonschema` documents,
where the schema is looser, never stricter.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.errors import InvalidParams
from runtime.mcp.naming import (
    MAX_NAME,
    composition_tool_name,
    intent_tool_name,
    parse_traceparent,
    tenant_for_authorization,
    tool_name,
)
from runtime.ops import PARAMS_SCHEMAS, TOOL_DEFS, validate_params
from runtime.ops.strategies import ops_params
from runtime.tools import ToolRegistry
from runtime.tools.jsonschema import to_json_schema

ALLOWED = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
TOOLS = [(d.tool_type, d.operation) for d in TOOL_DEFS]
VALIDATORS = {
    key: jsonschema.Draft202012Validator(to_json_schema(PARAMS_SCHEMAS[key])) for key in TOOLS
}


def _round_trip(params: Any) -> Any:
    return json.loads(json.dumps(params))


def _documented_gap(error: InvalidParams, params: Any) -> bool:
    """The validator's rejection is one the schema cannot state (module docstring)."""
    problem = error.problem
    if "ISO-8601" in problem or "non-finite" in problem or "Unicode" in problem:
        return True
    # 1.0 is an "integer" to JSON Schema; the validator wants an int.
    return "must be an integer, got float" in problem


@pytest.mark.parametrize("key", TOOLS, ids=lambda k: f"{k[0]}.{k[1]}")
@settings(max_examples=30)
@given(data=st.data())
def test_valid_params_pass_schema_and_validator(key: tuple[str, str], data: Any) -> None:
    params = _round_trip(data.draw(ops_params(*key)))
    validate_params(*key, params)
    errors = list(VALIDATORS[key].iter_errors(params))
    assert errors == [], [e.message for e in errors]


@pytest.mark.parametrize("key", TOOLS, ids=lambda k: f"{k[0]}.{k[1]}")
@settings(max_examples=40)
@given(data=st.data())
def test_generated_rejects_are_rejected_by_both(key: tuple[str, str], data: Any) -> None:
    drawn = data.draw(ops_params(*key, invalid=True))
    try:
        params = _round_trip(drawn)
    except (TypeError, ValueError):
        return  # not JSON at all (a key that is not a string): no MCP client can send it
    rejection: InvalidParams | None = None
    try:
        validate_params(*key, params)
    except InvalidParams as error:
        rejection = error
    if rejection is None:
        # The JSON round trip repaired the break (a tuple became a list): both accept.
        assert VALIDATORS[key].is_valid(params)
    elif VALIDATORS[key].is_valid(params):
        assert _documented_gap(rejection, params), (rejection, params)


# -- instances drawn from the published JSON Schema itself -------------------------------


def from_json_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values a JSON Schema accepts, for the subset ``to_json_schema`` emits.

    Integers are drawn as ints (JSON Schema also calls 1.0 an integer: a documented gap),
    ``date-time`` strings as RFC 3339 timestamps (what the format means).
    """
    if "anyOf" in schema:
        return st.one_of([from_json_schema(choice) for choice in schema["anyOf"]])
    kind = schema["type"]
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "number":
        return st.one_of(
            st.integers(schema.get("minimum"), schema.get("maximum")),
            st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False),
        )
    if kind == "string":
        return _json_string(schema)
    if kind == "array":
        return st.lists(
            from_json_schema(schema["items"]),
            min_size=schema.get("minItems", 0),
            max_size=min(schema.get("maxItems", 5), 5),
        )
    return _json_object(schema)


def _json_string(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if schema.get("format") == "date-time":
        moments = st.datetimes(
            min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30)
        )
        return moments.map(lambda moment: moment.replace(tzinfo=datetime.UTC).isoformat())
    if "pattern" in schema:
        body = schema["pattern"].removeprefix("^(?:").removesuffix(")$(?!\\n)")
        return st.from_regex(body, fullmatch=True).filter(
            lambda text: len(text) <= schema.get("maxLength", 10**9)
        )
    return st.text(
        st.characters(codec="utf-8"),
        min_size=schema.get("minLength", 0),
        max_size=min(schema.get("maxLength", 20), 20),
    )


@st.composite
def _json_object(draw: st.DrawFn, schema: dict[str, Any]) -> dict[str, Any]:
    properties: dict[str, Any] = schema.get("properties", {})
    required = set(schema.get("required", ()))
    groups = [[rule["required"][0] for rule in one["oneOf"]] for one in _one_ofs(schema)]
    chosen = {draw(st.sampled_from(group)) for group in groups}
    excluded = {name for group in groups for name in group} - chosen
    value: dict[str, Any] = {}
    for name, sub in properties.items():
        if name in excluded:
            continue
        if name in required or name in chosen or draw(st.booleans()):
            value[name] = draw(from_json_schema(sub))
    return value


def _one_ofs(schema: dict[str, Any]) -> list[dict[str, Any]]:
    if "oneOf" in schema:
        return [{"oneOf": schema["oneOf"]}]
    return list(schema.get("allOf", ()))


@pytest.mark.parametrize("key", TOOLS, ids=lambda k: f"{k[0]}.{k[1]}")
@settings(max_examples=30)
@given(data=st.data())
def test_whatever_the_input_schema_accepts_the_validator_accepts(
    key: tuple[str, str], data: Any
) -> None:
    schema = to_json_schema(PARAMS_SCHEMAS[key])
    params = data.draw(from_json_schema(schema))
    assert VALIDATORS[key].is_valid(params)  # the generator keeps to the schema
    validate_params(*key, params)


def test_every_constraint_kind_is_mapped() -> None:
    schema = to_json_schema(PARAMS_SCHEMAS[("CEP", "simulate")])
    assert schema["oneOf"] == [{"required": ["rule_id"]}, {"required": ["rule"]}]
    assert schema["properties"]["max_alerts"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 500,
        "default": 100,
    }
    rule = schema["properties"]["rule"]
    assert rule["pattern"].startswith("^(?:")
    assert "?P<" not in rule["pattern"]
    time_range = schema["properties"]["time_range"]
    assert time_range["default"] == "last_24h"
    assert time_range["anyOf"][1]["required"] == ["from", "to"]
    checker = jsonschema.Draft202012Validator(schema)
    assert checker.is_valid({"rule": "cpu_usage > 90 for 5m"})
    assert not checker.is_valid({"rule": "cpu_usage > 90\n"})
    assert not checker.is_valid({"rule": "cpu_usage > 90", "rule_id": 1})
    assert not checker.is_valid({})


def test_tool_without_schema_is_an_open_object_and_spec_is_accepted() -> None:
    registry = ToolRegistry()

    async def free(ctx: Any, params: Any) -> Any:
        return params

    spec = registry.register("X", "free", free)
    assert to_json_schema(spec) == {"type": "object"}
    typed = registry.register(
        "X", "typed", free, params_schema={"type": "object", "fields": {"n": {"type": "int"}}}
    )
    assert to_json_schema(typed)["properties"] == {"n": {"type": "integer"}}


def test_a_schema_that_is_not_an_object_or_unknown_is_refused() -> None:
    with pytest.raises(ValueError, match="must describe an object"):
        to_json_schema({"type": "int"})
    with pytest.raises(ValueError, match="unknown params schema type 'float'"):
        to_json_schema({"type": "object", "fields": {"x": {"type": "float"}}})


@given(st.text(min_size=1, max_size=100), st.text(min_size=1, max_size=100))
def test_names_use_only_allowed_characters(tool_type: str, operation: str) -> None:
    for name in (
        tool_name(tool_type, operation),
        composition_tool_name(operation),
        intent_tool_name(operation),
    ):
        assert set(name) <= ALLOWED
        assert 1 <= len(name) <= MAX_NAME


def test_ops_tool_names_follow_the_rule() -> None:
    assert tool_name("CI", "search") == "ci_search"
    assert tool_name("HISTORY", "event_log") == "history_event_log"
    assert composition_tool_name("impact_analysis") == "compose_impact_analysis"
    assert intent_tool_name("SEARCH") == "intent_search"
    assert len({tool_name(t, o) for t, o in TOOLS}) == len(TOOLS)


@given(
    st.text(alphabet="0123456789abcdef", min_size=32, max_size=32),
    st.text(alphabet="0123456789abcdef", min_size=16, max_size=16),
    st.sampled_from(["00", "01"]),
)
def test_traceparent_round_trips(trace_id: str, span_id: str, flags: str) -> None:
    parsed = parse_traceparent(f"00-{trace_id}-{span_id}-{flags}")
    if set(trace_id) == {"0"} or set(span_id) == {"0"}:
        assert parsed is None
    else:
        assert parsed is not None
        assert (parsed.trace_id, parsed.span_id) == (trace_id, span_id)


@pytest.mark.parametrize(
    "value",
    [
        None,
        42,
        "",
        "garbage",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
    ],
)
def test_invalid_traceparents_are_ignored(value: Any) -> None:
    assert parse_traceparent(value) is None


def test_a_future_version_may_carry_more_fields() -> None:
    parsed = parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x")
    assert parsed is not None


def test_bearer_tokens_map_to_tenants() -> None:
    tokens = {"s3cret": "acme", "other": "globex"}
    assert tenant_for_authorization("Bearer s3cret", tokens) == "acme"
    assert tenant_for_authorization("bearer  other ", tokens) == "globex"
    assert tenant_for_authorization("Bearer nope", tokens) is None
    assert tenant_for_authorization("Basic s3cret", tokens) is None
    assert tenant_for_authorization("Bearer", tokens) is None
    assert tenant_for_authorization(None, tokens) is None
