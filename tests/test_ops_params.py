"""The pure parts of the ops tools: params schemas and validation, time ranges, SQL
escaping and the CEP rule core."""

from __future__ import annotations

import copy
import itertools
import re
import sqlite3
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from runtime.errors import InvalidParams
from runtime.ops import PARAMS_SCHEMAS, TOOL_DEFS, validate_params
from runtime.ops.cep import Rule, breaches, detect_alerts, parse_rule
from runtime.ops.params import RULE_PATTERN
from runtime.ops.sql import like_contains
from runtime.ops.timerange import iso, parse_iso, resolve_time_range

# The least each tool needs; everything else has a default or is optional.
MINIMAL: Mapping[tuple[str, str], dict[str, Any]] = {
    ("CI", "search"): {},
    ("CI", "get"): {"ci_id": 1},
    ("CI", "aggregate"): {},
    ("METRIC", "aggregate"): {"metric": "cpu_usage"},
    ("METRIC", "series"): {"ci_id": 1, "metric": "cpu_usage"},
    ("GRAPH", "expand"): {"ci_id": 1},
    ("GRAPH", "path"): {"source": 1, "target": 2},
    ("HISTORY", "event_log"): {},
    ("CEP", "simulate"): {"rule_id": 1},
}
TOOLS = sorted(MINIMAL)

_SPEC_KEYS: Mapping[str, set[str]] = {
    "int": {"min", "max"},
    "number": {"min", "max"},
    "str": {"min_length", "max_length", "enum", "pattern", "format"},
    "bool": set(),
    "list": {"items", "min_items", "max_items"},
    "object": {"fields", "exactly_one_of"},
    "one_of": {"choices", "discriminator"},
}
_COMMON_KEYS = {"type", "required", "default", "description"}


def _walk(spec: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    yield path, spec
    if spec["type"] == "list":
        yield from _walk(spec["items"], f"{path}[]")
    elif spec["type"] == "object":
        for name, field in spec["fields"].items():
            yield from _walk(field, f"{path}.{name}")
    elif spec["type"] == "one_of":
        for number, choice in enumerate(spec["choices"]):
            yield from _walk(choice, f"{path}|{number}")


def _check(tool: tuple[str, str], params: Any, param: str) -> InvalidParams:
    with pytest.raises(InvalidParams) as caught:
        validate_params(*tool, params)
    assert caught.value.param == param, caught.value
    assert (caught.value.tool_type, caught.value.operation) == tool
    assert repr(param) in str(caught.value)
    return caught.value


def test_every_tool_has_a_well_formed_schema() -> None:
    assert sorted(PARAMS_SCHEMAS) == TOOLS == sorted((d.tool_type, d.operation) for d in TOOL_DEFS)
    for tool, schema in PARAMS_SCHEMAS.items():
        assert schema["type"] == "object"
        for path, spec in _walk(schema, "/".join(tool)):
            allowed = _SPEC_KEYS[spec["type"]] | _COMMON_KEYS
            assert set(spec) <= allowed, (path, set(spec) - allowed)
            if "pattern" in spec:
                re.compile(spec["pattern"])
            if "discriminator" in spec:
                tags = [c["fields"][spec["discriminator"]]["enum"] for c in spec["choices"]]
                flat = list(itertools.chain.from_iterable(tags))
                assert len(flat) == len(set(flat)), path
        for group in schema.get("exactly_one_of", ()):
            assert set(group) <= set(schema["fields"])


@pytest.mark.parametrize("tool", TOOLS)
def test_minimal_params_validate_and_defaults_are_filled(tool: tuple[str, str]) -> None:
    params = MINIMAL[tool]
    result = validate_params(*tool, params)
    fields = PARAMS_SCHEMAS[tool]["fields"]
    for name, spec in fields.items():
        if "default" in spec and name not in params:
            assert result[name] == spec["default"]
    # The defaults are themselves valid values.
    assert validate_params(*tool, result) == result


@pytest.mark.parametrize("tool", TOOLS)
def test_validation_copies_and_never_mutates(tool: tuple[str, str]) -> None:
    params = copy.deepcopy(MINIMAL[tool])
    result = validate_params(*tool, params)
    result["extra"] = 1
    assert params == MINIMAL[tool]


@pytest.mark.parametrize("tool", TOOLS)
@given(key=st.text(min_size=1, max_size=20))
def test_unknown_keys_are_rejected_by_name(tool: tuple[str, str], key: str) -> None:
    assume(key not in PARAMS_SCHEMAS[tool]["fields"])
    error = _check(tool, {**MINIMAL[tool], key: 1}, key)
    assert "unknown param" in error.problem


@pytest.mark.parametrize("tool", TOOLS)
@given(value=st.one_of(st.none(), st.integers(), st.text(), st.lists(st.integers())))
def test_params_that_are_not_an_object_are_rejected(tool: tuple[str, str], value: Any) -> None:
    _check(tool, value, "params")


_INT_FIELDS = [
    (tool, name, spec)
    for tool, schema in sorted(PARAMS_SCHEMAS.items())
    for name, spec in schema["fields"].items()
    if spec["type"] == "int"
]


@pytest.mark.parametrize(("tool", "name", "spec"), _INT_FIELDS, ids=lambda v: str(v)[:30])
@given(data=st.data())
def test_int_params_enforce_their_range_and_type(
    tool: tuple[str, str], name: str, spec: Mapping[str, Any], data: st.DataObject
) -> None:
    base = {k: v for k, v in MINIMAL[tool].items() if k != name}
    inside = data.draw(st.integers(spec["min"], spec["max"]))
    assert validate_params(*tool, {**base, name: inside})[name] == inside
    outside = data.draw(
        st.one_of(st.integers(max_value=spec["min"] - 1), st.integers(min_value=spec["max"] + 1))
    )
    assert "between" in _check(tool, {**base, name: outside}, name).problem
    wrong = data.draw(st.one_of(st.booleans(), st.floats(), st.text(), st.none()))
    assert "integer" in _check(tool, {**base, name: wrong}, name).problem


BAD_PARAMS: list[tuple[tuple[str, str], dict[str, Any], str]] = [
    (("CI", "search"), {"limit": 0}, "limit"),
    (("CI", "search"), {"limit": 101}, "limit"),
    (("CI", "search"), {"limit": "20"}, "limit"),
    (("CI", "search"), {"keywords": "web"}, "keywords"),
    (("CI", "search"), {"keywords": ["web", 3]}, "keywords[1]"),
    (("CI", "search"), {"keywords": [""]}, "keywords[0]"),
    (("CI", "search"), {"keywords": ["x" * 101]}, "keywords[0]"),
    (("CI", "search"), {"keywords": ["k"] * 11}, "keywords"),
    (
        ("CI", "search"),
        {"filters": [{"field": "password", "op": "=", "value": 1}]},
        "filters[0].field",
    ),
    (("CI", "search"), {"filters": [{"field": "env", "op": "~", "value": 1}]}, "filters[0].op"),
    (("CI", "search"), {"filters": [{"field": "env", "value": 1}]}, "filters[0].op"),
    (("CI", "search"), {"filters": [{"field": "env", "op": "="}]}, "filters[0].value"),
    (
        ("CI", "search"),
        {"filters": [{"field": "env", "op": "in", "value": "prod"}]},
        "filters[0].value",
    ),
    (
        ("CI", "search"),
        {"filters": [{"field": "env", "op": "in", "value": []}]},
        "filters[0].value",
    ),
    (
        ("CI", "search"),
        {"filters": [{"field": "env", "op": "like", "value": 3}]},
        "filters[0].value",
    ),
    (
        ("CI", "search"),
        {"filters": [{"field": "env", "op": "=", "value": None}]},
        "filters[0].value",
    ),
    (
        ("CI", "search"),
        {"filters": [{"field": "env", "op": "=", "value": 1, "x": 1}]},
        "filters[0].x",
    ),
    (("CI", "search"), {"filters": ["env=prod"]}, "filters[0]"),
    (("CI", "search"), {"sort": "password"}, "sort"),
    (("CI", "get"), {}, "ci_id"),
    (("CI", "get"), {"ci_id": 1, "ci_code": "APP-1"}, "ci_id"),
    (("CI", "get"), {"ci_id": "1"}, "ci_id"),
    (("CI", "get"), {"ci_id": True}, "ci_id"),
    (("CI", "get"), {"ci_code": ""}, "ci_code"),
    (("CI", "aggregate"), {"group_by": "name; DROP TABLE cis"}, "group_by"),
    (("CI", "aggregate"), {"metrics": ["sum"]}, "metrics[0]"),
    (("CI", "aggregate"), {"metrics": []}, "metrics"),
    (("CI", "aggregate"), {"top_n": 201}, "top_n"),
    (("METRIC", "aggregate"), {}, "metric"),
    (("METRIC", "aggregate"), {"metric": "cpu"}, "metric"),
    (("METRIC", "aggregate"), {"metric": "cpu_usage", "agg": "median"}, "agg"),
    (("METRIC", "aggregate"), {"metric": "cpu_usage", "ci_ids": list(range(1, 302))}, "ci_ids"),
    (("METRIC", "aggregate"), {"metric": "cpu_usage", "ci_ids": [1, "2"]}, "ci_ids[1]"),
    (("METRIC", "aggregate"), {"metric": "cpu_usage", "time_range": "last_30d"}, "time_range"),
    (("METRIC", "aggregate"), {"metric": "cpu_usage", "time_range": 3600}, "time_range"),
    (
        ("METRIC", "aggregate"),
        {"metric": "cpu_usage", "time_range": {"from": "yesterday", "to": "2025-01-01"}},
        "time_range.from",
    ),
    (
        ("METRIC", "aggregate"),
        {"metric": "cpu_usage", "time_range": {"from": "2025-01-01"}},
        "time_range.to",
    ),
    (("METRIC", "series"), {"ci_id": 1, "metric": "cpu_usage", "bucket": "2m"}, "bucket"),
    (("METRIC", "series"), {"ci_id": 1, "metric": "cpu_usage", "limit": 1001}, "limit"),
    (("GRAPH", "expand"), {"ci_id": 1, "depth": 4}, "depth"),
    (("GRAPH", "expand"), {"ci_id": 1, "direction": "up"}, "direction"),
    (("GRAPH", "expand"), {"ci_id": 1, "relation_types": ["owns"]}, "relation_types[0]"),
    (("GRAPH", "expand"), {"ci_id": 1, "max_nodes": 501}, "max_nodes"),
    (("GRAPH", "path"), {"source": 1}, "target"),
    (("GRAPH", "path"), {"source": 1, "target": 2, "max_hops": 9}, "max_hops"),
    (("HISTORY", "event_log"), {"severity": "fatal"}, "severity"),
    (("HISTORY", "event_log"), {"severity": ["critical", "fatal"]}, "severity[1]"),
    (("HISTORY", "event_log"), {"limit": 201}, "limit"),
    (("HISTORY", "event_log"), {"kinds": ["party"]}, "kinds[0]"),
    (("CEP", "simulate"), {}, "rule_id"),
    (("CEP", "simulate"), {"rule_id": 1, "rule": "cpu_usage > 90"}, "rule_id"),
    (("CEP", "simulate"), {"rule": "cpu_usage >> 90"}, "rule"),
    (("CEP", "simulate"), {"rule": "temperature > 90 for 5m"}, "rule"),
    (("CEP", "simulate"), {"rule": "cpu_usage > 90 for 5d"}, "rule"),
    (("CEP", "simulate"), {"rule_id": 1, "max_alerts": 0}, "max_alerts"),
]


@pytest.mark.parametrize(("tool", "params", "param"), BAD_PARAMS)
def test_bad_params_name_the_param(
    tool: tuple[str, str], params: dict[str, Any], param: str
) -> None:
    _check(tool, params, param)


@pytest.mark.parametrize(
    ("tool", "params"),
    [
        (("CI", "search"), {"keywords": [], "filters": []}),
        (
            ("CI", "search"),
            {"filters": [{"field": "tags", "op": "not in", "value": ["a", 1, 2.5]}]},
        ),
        (("CI", "search"), {"filters": [{"field": "ci_id", "op": ">=", "value": 3.5}]}),
        (("CI", "get"), {"ci_code": "'; DROP TABLE cis; --"}),
        (("METRIC", "aggregate"), {"metric": "latency_ms", "ci_ids": []}),
        (
            ("METRIC", "aggregate"),
            {"metric": "latency_ms", "time_range": {"from": "2025-06-01", "to": "2025-05-01"}},
        ),
        (("HISTORY", "event_log"), {"severity": "critical"}),
        (("HISTORY", "event_log"), {"severity": ["critical", "major"]}),
        (("CEP", "simulate"), {"rule": "error_rate>=5"}),
        (("CEP", "simulate"), {"rule": "packet_loss != -1.25 for 999h"}),
    ],
)
def test_edge_values_that_are_valid(tool: tuple[str, str], params: dict[str, Any]) -> None:
    result = validate_params(*tool, params)
    assert {k: result[k] for k in params} == params


@given(st.integers(min_value=-(10**10), max_value=10**11))
def test_iso_round_trips(ts: int) -> None:
    assert parse_iso(iso(ts)) == ts
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", iso(ts))


def test_time_ranges_are_relative_to_the_given_now() -> None:
    now = 1_748_822_400
    assert resolve_time_range("last_1h", now) == (now - 3600, now)
    assert resolve_time_range("last_24h", now) == (now - 86_400, now)
    assert resolve_time_range("last_7d", now) == (now - 7 * 86_400, now)
    explicit = {"from": "2025-06-01T00:00:00+02:00", "to": "2025-06-01T12:00:00"}
    assert resolve_time_range(explicit, now) == (now - 86_400 - 7200, now - 43_200)


@given(needle=st.text(alphabet="ab%_\\", max_size=4), hay=st.text(alphabet="ab%_\\", max_size=8))
def test_like_contains_matches_literally(needle: str, hay: str) -> None:
    conn = sqlite3.connect(":memory:")
    try:
        matched = conn.execute(
            "SELECT ? LIKE ? ESCAPE '\\'", (hay, like_contains(needle))
        ).fetchone()
    finally:
        conn.close()
    assert bool(matched[0]) == (needle in hay)


@given(st.from_regex(RULE_PATTERN, fullmatch=True))
def test_every_rule_the_pattern_admits_parses_and_validates(text: str) -> None:
    rule = parse_rule(text)
    assert validate_params("CEP", "simulate", {"rule": text})["rule"] == text
    again = parse_rule(rule.text)
    assert (again.metric, again.op, again.threshold, again.duration_s) == (
        rule.metric,
        rule.op,
        rule.threshold,
        rule.duration_s,
    )


def test_parse_rule_reads_each_part() -> None:
    rule = parse_rule("latency_ms >= 250.5 for 2h")
    assert (rule.metric, rule.op, rule.threshold, rule.duration_s) == (
        "latency_ms",
        ">=",
        250.5,
        7200,
    )
    assert parse_rule("cpu_usage<10").duration_s == 0
    with pytest.raises(ValueError, match="not a rule"):
        parse_rule("cpu_usage > ninety")


STEP = 300
_ops = st.sampled_from([">", ">=", "<", "<=", "==", "!="])


@st.composite
def _series(draw: st.DrawFn) -> list[tuple[int, int, float]]:
    samples = []
    for ci_id in range(1, draw(st.integers(1, 3)) + 1):
        ts = draw(st.integers(0, 10)) * STEP
        for value in draw(st.lists(st.integers(0, 4).map(float), max_size=30)):
            samples.append((ci_id, ts, value))
            ts += STEP * draw(st.sampled_from([1, 1, 1, 2]))  # occasional gaps
    return samples


def _reference(
    samples: list[tuple[int, int, float]], rule: Rule
) -> list[tuple[int, int, int, int]]:
    """Maximal runs of contiguous breaching samples, kept when long enough."""
    runs: list[list[tuple[int, int, float]]] = []
    for sample in samples:
        previous = runs[-1][-1] if runs and runs[-1] else None
        if not breaches(rule, sample[2]):
            runs.append([])
            continue
        if previous and previous[0] == sample[0] and sample[1] - previous[1] == STEP:
            runs[-1].append(sample)
        else:
            runs.append([sample])
    found = []
    for run in runs:
        if run and len(run) * STEP >= rule.duration_s:
            needed = max(1, -(-rule.duration_s // STEP))
            found.append((run[0][0], run[0][1], run[needed - 1][1], run[-1][1]))
    return found


@given(samples=_series(), op=_ops, threshold=st.integers(0, 4), duration=st.integers(0, 6))
def test_detect_alerts_finds_the_long_enough_runs(
    samples: list[tuple[int, int, float]], op: str, threshold: int, duration: int
) -> None:
    rule = Rule("cpu_usage", op, float(threshold), duration * 150)
    alerts = detect_alerts(samples, rule, STEP)
    got = [(a.ci_id, a.start_ts, a.fired_ts, a.end_ts) for a in alerts]
    assert got == _reference(samples, rule)
    for alert in alerts:
        run = [s for s in samples if s[0] == alert.ci_id and alert.start_ts <= s[1] <= alert.end_ts]
        assert len(run) == alert.samples
        assert all(breaches(rule, v) for _, _, v in run)
        assert (alert.peak_ts, alert.peak) in [(ts, v) for _, ts, v in run]


@given(samples=_series(), op=_ops, threshold=st.integers(0, 4), duration=st.integers(0, 6))
def test_breaching_samples_alone_give_the_same_alerts(
    samples: list[tuple[int, int, float]], op: str, threshold: int, duration: int
) -> None:
    # This is what lets CEP.simulate filter in SQL: the database returns only breaches.
    rule = Rule("cpu_usage", op, float(threshold), duration * 150)
    breaching = [s for s in samples if breaches(rule, s[2])]
    assert detect_alerts(breaching, rule, STEP) == detect_alerts(samples, rule, STEP)
