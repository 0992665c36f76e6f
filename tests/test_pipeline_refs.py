"""Path references (``$search.records[*].ci_id``): grammar, resolution, templates."""

from __future__ import annotations

import re
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runtime.pipeline import State
from runtime.pipeline.refs import (
    WILDCARD,
    Ref,
    RefSyntaxError,
    Segment,
    UnresolvedReference,
    compile_params,
    format_ref,
    is_reference,
    parse_ref,
    resolve_path,
    resolve_ref,
)

# The grammar, written independently of the parser, to compare against.
GRAMMAR = re.compile(r"\$[A-Za-z_]\w*(?:\.[A-Za-z_]\w*|\[(?:\*|-?[0-9]+)\])*", re.ASCII)

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
segments: st.SearchStrategy[Segment] = st.one_of(
    names, st.integers(min_value=-50, max_value=50), st.just(WILDCARD)
)
refs = st.builds(Ref, names, st.lists(segments, max_size=6).map(tuple))

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=5))
documents = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(names, children, max_size=4)
    ),
    max_leaves=20,
)


@given(refs)
def test_format_then_parse_is_identity(ref: Ref) -> None:
    text = format_ref(ref)
    assert parse_ref(text) == ref
    assert str(ref) == text
    assert is_reference(text)


@st.composite
def near_references(draw: st.DrawFn) -> str:
    """Valid references with one character inserted, removed or replaced."""
    text = format_ref(draw(refs))
    at = draw(st.integers(0, len(text)))
    char = draw(st.sampled_from("$.[]*-_a09 "))
    edit = draw(st.sampled_from(["insert", "remove", "replace"]))
    if edit == "insert":
        return text[:at] + char + text[at:]
    if edit == "remove":
        return text[:at] + text[at + 1 :]
    return text[:at] + char + text[at + 1 :]


@given(st.one_of(st.text(alphabet="$.[]*-_aZ09 x", max_size=14), near_references()))
def test_parser_accepts_exactly_the_grammar(text: str) -> None:
    if GRAMMAR.fullmatch(text):
        ref = parse_ref(text)
        assert parse_ref(format_ref(ref)) == ref
        assert ref.root == text[1:].split(".")[0].split("[")[0]
    else:
        with pytest.raises(RefSyntaxError):
            parse_ref(text)


@given(documents, st.data())
def test_an_existing_path_resolves_to_the_very_value(document: Any, data: st.DataObject) -> None:
    path: list[Segment] = []
    value = document
    while isinstance(value, list | dict) and value and data.draw(st.booleans()):
        if isinstance(value, list):
            index = data.draw(st.integers(-len(value), len(value) - 1))
            path.append(index)
            value = value[index]
        else:
            key = data.draw(st.sampled_from(sorted(value)))
            path.append(key)
            value = value[key]
    assert resolve_path(document, path) is value


@given(st.lists(st.dictionaries(names, json_scalars, max_size=3), max_size=6), names)
def test_a_wildcard_maps_the_rest_of_the_path_over_a_list(
    records: list[dict[str, Any]], key: str
) -> None:
    document = {"records": [{**extra, "ci_id": n} for n, extra in enumerate(records)]}
    assert resolve_path(document, ["records", WILDCARD, "ci_id"]) == list(range(len(records)))
    assert resolve_path(document, ["records", WILDCARD]) == document["records"]
    if any(key not in record for record in document["records"]):
        with pytest.raises(UnresolvedReference):
            resolve_path(document, ["records", WILDCARD, key])


@given(st.lists(st.lists(st.integers(), max_size=4), max_size=4))
def test_nested_wildcards_flatten(groups: list[list[int]]) -> None:
    document = {"groups": [{"items": [{"v": v} for v in group]} for group in groups]}
    flat = [v for group in groups for v in group]
    assert resolve_path(document, ["groups", WILDCARD, "items", WILDCARD, "v"]) == flat


@pytest.mark.parametrize(
    ("document", "path", "problem"),
    [
        ({"a": 1}, ["b"], "key 'b' not found"),
        ({"a": [1, 2]}, ["a", 2], "out of range"),
        ({"a": 1}, ["a", WILDCARD], "not a list"),
        ({"a": {"b": 1}}, ["a", 0], "not a list"),
        ({"a": [1]}, ["a", "b"], "not a mapping"),
        ({"record": None}, ["record", "ci_id"], "None"),
    ],
)
def test_resolution_is_strict(document: Any, path: list[Segment], problem: str) -> None:
    with pytest.raises(UnresolvedReference, match=problem):
        resolve_path(document, path)


@pytest.mark.parametrize(
    "text",
    ["search", "$", "$1step", "$a.", "$a..b", "$a[", "$a[x]", "$a[1", "$a.b c", "$a[*]x", "$a-b"],
)
def test_malformed_references(text: str) -> None:
    with pytest.raises(RefSyntaxError):
        parse_ref(text)


def test_templates_render_references_and_keep_literals() -> None:
    template = compile_params(
        {
            "ci_ids": "$search.records[*].ci_id",
            "first": "$search.records[0].ci_code",
            "nested": {"keywords": ["$params.keyword", "literal"], "price": "$$5"},
            "limit": 10,
        }
    )
    assert [(path, str(ref)) for path, ref in template.references()] == [
        ("params.ci_ids", "$search.records[*].ci_id"),
        ("params.first", "$search.records[0].ci_code"),
        ("params.nested.keywords[0]", "$params.keyword"),
    ]
    state = State(
        {"keyword": "db"},
        {"search": {"records": [{"ci_id": 4, "ci_code": "A"}, {"ci_id": 9, "ci_code": "B"}]}},
    )
    assert template(state) == {
        "ci_ids": [4, 9],
        "first": "A",
        "nested": {"keywords": ["db", "literal"], "price": "$5"},
        "limit": 10,
    }


def test_a_template_names_the_param_it_could_not_resolve() -> None:
    template = compile_params({"nested": {"ids": ["$get.record.ci_id"]}})
    with pytest.raises(UnresolvedReference) as caught:
        template(State({}, {"get": {"record": None}}))
    assert caught.value.param == "params.nested.ids[0]"
    with pytest.raises(UnresolvedReference, match="produced no result"):
        template(State({}, {}))


def test_a_malformed_reference_in_a_template_names_the_param() -> None:
    with pytest.raises(RefSyntaxError) as caught:
        compile_params({"filters": [{"value": "$search..x"}]})
    assert caught.value.param == "params.filters[0].value"


def test_resolve_ref_reads_params_or_results() -> None:
    state = State({"ci_id": 3}, {"get": {"record": {"ci_id": 7}}})
    assert resolve_ref(parse_ref("$params.ci_id"), state) == 3
    assert resolve_ref(parse_ref("$get.record.ci_id"), state) == 7
    assert resolve_ref(parse_ref("$params"), state) == {"ci_id": 3}
