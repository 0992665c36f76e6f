"""The params schema language (runtime.tools.schema): compiling, checking, normalising."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import InvalidParams, ToolRegistry
from runtime.ops import PARAMS_SCHEMAS
from runtime.ops.timerange import parse_iso
from runtime.testing import params_from_schema
from runtime.tools.schema import SchemaError, compile_schema, validate_schema

TICKET = {
    "type": "object",
    "fields": {
        "id": {"type": "int", "min": 1, "max": 10_000, "required": True},
        "fields": {
            "type": "list",
            "items": {"type": "str", "enum": ["title", "state", "owner"]},
            "default": ["title", "state"],
        },
        "verbose": {"type": "bool", "default": False},
        "where": {
            "type": "list",
            "items": {
                "type": "object",
                "fields": {
                    "op": {"type": "str", "enum": ["=", "!="], "required": True},
                    "value": {"type": "number", "min": -1, "max": 1},
                },
            },
        },
    },
}
SCHEMAS = sorted(PARAMS_SCHEMAS.items())


def rejects(schema: Any, params: Any) -> InvalidParams:
    with pytest.raises(InvalidParams) as caught:
        validate_schema(schema, params, tool_type="USER", operation="ticket")
    assert (caught.value.tool_type, caught.value.operation) == ("USER", "ticket")
    assert repr(caught.value.param) in str(caught.value)
    return caught.value


def test_defaults_are_filled_in_and_tuples_become_lists() -> None:
    out = validate_schema(TICKET, {"id": 3, "where": ({"op": "="},)})
    assert out == {"id": 3, "fields": ["title", "state"], "verbose": False, "where": [{"op": "="}]}


@pytest.mark.parametrize(
    ("params", "param", "words"),
    [
        ({"id": 99, "bogus": 1}, "bogus", "unknown param; accepted: id, fields, verbose, where"),
        ({1: "x", "id": 1}, "1", "unknown param"),
        ({}, "id", "is required"),
        ({"id": "7"}, "id", "must be an integer, got str"),
        ({"id": True}, "id", "must be an integer, got bool"),
        ({"id": 0}, "id", "between 1 and 10000"),
        ({"id": 1, "fields": ["title", "colour"]}, "fields[1]", "must be one of title"),
        ({"id": 1, "verbose": 1}, "verbose", "must be a boolean"),
        ({"id": 1, "where": [{"op": "="}, {"op": "<"}]}, "where[1].op", "must be one of =, !="),
        ({"id": 1, "where": [{"op": "=", "value": float("nan")}]}, "where[0].value", "non-finite"),
        ({"id": 1, "where": [{"op": "=", "x": 1}]}, "where[0].x", "unknown param"),
        ("id=1", "params", "must be an object, got str"),
    ],
)
def test_rejections_name_the_dotted_path(params: Any, param: str, words: str) -> None:
    error = rejects(TICKET, params)
    assert error.param == param
    assert words in error.problem


def test_a_default_is_fresh_for_every_call() -> None:
    checker = compile_schema(TICKET)
    first = checker.validate({"id": 1})
    first["fields"].append("owner")
    assert checker.validate({"id": 1})["fields"] == ["title", "state"]


def test_the_input_is_never_altered() -> None:
    params = {"id": 1, "where": [{"op": "="}]}
    before = copy.deepcopy(params)
    out = validate_schema(TICKET, params)
    out["where"][0]["op"] = "!="
    assert params == before


@pytest.mark.parametrize(("tool", "schema"), SCHEMAS, ids=lambda v: str(v))
@settings(max_examples=25)
@given(data=st.data())
def test_valid_params_normalise_idempotently(
    tool: tuple[str, str], schema: Any, data: st.DataObject
) -> None:
    checker = compile_schema(schema)
    once = checker.validate(data.draw(params_from_schema(schema)), *tool)
    assert checker.validate(once, *tool) == once
    # every field with a default is present afterwards
    assert {n for n, f in schema["fields"].items() if "default" in f} <= set(once)


@pytest.mark.parametrize(("tool", "schema"), SCHEMAS, ids=lambda v: str(v))
@settings(max_examples=25)
@given(data=st.data())
def test_invalid_params_are_rejected(
    tool: tuple[str, str], schema: Any, data: st.DataObject
) -> None:
    bad = data.draw(params_from_schema(schema, invalid=True))
    with pytest.raises(InvalidParams) as caught:
        compile_schema(schema).validate(bad, *tool)
    assert (caught.value.tool_type, caught.value.operation) == tool


@given(st.text(max_size=40) | st.datetimes().map(lambda d: d.isoformat()))
def test_iso_datetime_format_agrees_with_the_ops_parser(text: str) -> None:
    schema = {"type": "object", "fields": {"at": {"type": "str", "format": "iso_datetime"}}}
    try:
        parse_iso(text)
    except (ValueError, OverflowError):
        parses = False
    else:
        parses = True
    try:
        validate_schema(schema, {"at": text})
    except InvalidParams:
        accepted = False
    else:
        accepted = True
    assert accepted == parses


def _field(spec: Any) -> dict[str, Any]:
    return {"type": "object", "fields": {"x": spec}}


@pytest.mark.parametrize(
    ("schema", "where", "words"),
    [
        ({"type": "list", "items": {"type": "int"}}, "params_schema", "must be an"),
        (
            {"type": "object", "properties": {}},
            "params_schema",
            "unknown key(s) properties",
        ),
        (_field({"type": "integer"}), "params_schema.fields.x", "unknown type 'integer'"),
        (_field({"type": "int", "maximum": 3}), "params_schema.fields.x", "unknown key(s) maximum"),
        (_field({"type": "str", "pattern": "("}), "params_schema.fields.x", "does not compile"),
        (_field({"type": "str", "enum": "abc"}), "params_schema.fields.x", "list of strings"),
        (_field({"type": "str", "format": "email"}), "params_schema.fields.x", "unknown format"),
        (_field({"type": "int", "min": "1"}), "params_schema.fields.x", "min must be a number"),
        (_field({"type": "int", "max": 3, "default": 5}), "params_schema.fields.x", "default"),
        (_field({"type": "list"}), "params_schema.fields.x", 'needs "items"'),
        (_field({"type": "list", "items": {"type": "int"}, "max_items": -1}), "", "max_items"),
        (_field({"type": "one_of", "choices": []}), "params_schema.fields.x", "non-empty list"),
        (
            _field({"type": "one_of", "discriminator": "k", "choices": [{"type": "int"}]}),
            "params_schema.fields.x.choices[0]",
            "discriminator",
        ),
        (
            {"type": "object", "fields": {"a": {"type": "int"}}, "exactly_one_of": [["a", "b"]]},
            "params_schema",
            "known fields",
        ),
    ],
)
def test_malformed_schemas_are_refused_at_compile_time(schema: Any, where: str, words: str) -> None:
    with pytest.raises(SchemaError) as caught:
        compile_schema(schema)
    assert caught.value.where.startswith(where)
    assert words in str(caught.value)


def test_register_refuses_a_malformed_schema() -> None:
    registry = ToolRegistry()

    async def tool(ctx: Any, params: Any) -> Any:
        return params

    with pytest.raises(SchemaError, match="unknown type 'integer'"):
        registry.register("USER", "bad", tool, params_schema=_field({"type": "integer"}))
    assert ("USER", "bad") not in registry


def test_one_of_without_discriminator_reports_the_first_fitting_choice() -> None:
    schema = _field(
        {"type": "one_of", "choices": [{"type": "str", "max_length": 2}, {"type": "int"}]}
    )
    assert rejects(schema, {"x": "abc"}).problem == "must have at most 2 characters"
    assert "must be a string or an integer, got list" in rejects(schema, {"x": []}).problem
    assert validate_schema(schema, {"x": 3}) == {"x": 3}


def test_discriminated_choices_name_the_tag_field() -> None:
    schema = PARAMS_SCHEMAS[("CI", "search")]
    error = rejects(schema, {"filters": [{"field": "name", "value": 1}]})
    assert (error.param, error.problem) == ("filters[0].op", "is required")
    error = rejects(schema, {"filters": [{"field": "name", "op": ["="], "value": 1}]})
    assert error.param == "filters[0].op"
