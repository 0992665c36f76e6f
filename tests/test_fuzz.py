"""Bad input, generated: the runtime answers it with its own errors, never anything else.

* random params to every ops tool, through the runtime: a result or ``InvalidParams``;
  never another exception, never a hang (each example is bounded by ``fail_after``);
* random intents: ``UnknownIntent``, a ranking, or (when every candidate refused the
  params) ``AllCandidatesFailed`` made only of ``InvalidParams``;
* random configuration documents: ``ConfigError`` or a valid ``RuntimeConfig`` (which
  round-trips through ``config_to_dict`` and opens a runtime);
* random compositions as data: ``ConfigError`` or a ``Pipeline``.

Values are "JSON-ish" plus what a Python caller might pass by mistake: huge and negative
integers, NaN and infinities, tuples, bytes, empty and hostile strings, unknown keys,
deep nesting.  Generators lean on the real vocabulary (the tools' param names, the config
sections, the composition keys) so that examples get past the first check.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_origin, get_type_hints

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime import (
    AllCandidatesFailed,
    ConfigError,
    InvalidParams,
    Pipeline,
    PipelineError,
    PipelineResult,
    RuntimeConfig,
    ToolContext,
    ToolRegistry,
    UnknownIntent,
    compile_composition,
    config_from_dict,
    config_to_dict,
    open_runtime,
)
from runtime.config import RedisConfig
from runtime.ops import PARAMS_SCHEMAS, OpsDatabase, build_database, register_ops_tools
from runtime.ops.config import ops_defaults
from runtime.ops.preset import OPS_CANDIDATES
from runtime.testing.strategies import params_from_schema

pytestmark = pytest.mark.anyio

CTX = ToolContext("fuzz")
OPS = sorted(PARAMS_SCHEMAS)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- values ----------------------------------------------------------------------------------

HOSTILE_STRINGS = [
    "",
    " ",
    "\x00",
    "\u2028",
    "%",
    "_",
    "*",
    "\\",
    "'; DROP TABLE cis; --",
    '" OR 1=1 --',
    "$params.x",
    "last_24h ",
    "9999-12-31T23:59:59",
    "0000-00-00",
    "1e309",
    "NaN",
    "x" * 5000,
    "🙂" * 50,
]
HUGE_INTS = [2**31, 2**53 + 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30, -1, 0]

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(HUGE_INTS),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(HOSTILE_STRINGS),
    st.binary(max_size=8),
)


def json_ish(keys: st.SearchStrategy[str] | None = None) -> st.SearchStrategy[Any]:
    keys = keys if keys is not None else st.text(max_size=8)
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.lists(inner, max_size=3).map(tuple),
            st.dictionaries(keys, inner, max_size=4),
        ),
        max_leaves=12,
    )


def param_names(spec: Any) -> set[str]:
    """Every field name a params schema mentions, at any depth."""
    names: set[str] = set()
    if isinstance(spec, dict):
        for key, value in spec.items():
            if key == "fields" and isinstance(value, dict):
                names.update(value)
            names |= param_names(value)
    elif isinstance(spec, list):
        for item in spec:
            names |= param_names(item)
    return names


def enum_values(spec: Any) -> list[Any]:
    """Every enum value a schema mentions: plausible strings that reach deeper checks."""
    found: list[Any] = []
    if isinstance(spec, dict):
        found.extend(spec.get("enum", ()))
        for value in spec.values():
            found.extend(enum_values(value))
    elif isinstance(spec, list):
        for item in spec:
            found.extend(enum_values(item))
    return found


@st.composite
def ops_call(draw: st.DrawFn) -> tuple[str, str, dict[Any, Any]]:
    """A tool and params: valid ones from its schema (``runtime.testing``'s strategies),
    then mutated -- a key dropped, an unknown key added, a value replaced by anything."""
    tool_type, operation = draw(st.sampled_from(OPS))
    schema = PARAMS_SCHEMAS[(tool_type, operation)]
    params: dict[Any, Any] = dict(draw(params_from_schema(schema)))
    names = sorted(param_names(schema))
    plausible = st.sampled_from(sorted(set(map(str, enum_values(schema)))) or ["x"])
    anything = st.one_of(
        json_ish(st.sampled_from(names) | st.text(max_size=6)),
        st.integers(-5, 60),
        plausible,
        st.lists(st.one_of(st.integers(-3, 60), plausible), max_size=4),
    )
    for _ in range(draw(st.integers(0, 3))):
        mutation = draw(st.sampled_from(["drop", "add", "replace"]))
        if mutation == "drop" and params:
            del params[draw(st.sampled_from(sorted(params, key=repr)))]
        elif mutation == "add":
            key = draw(st.text(max_size=10) | st.sampled_from(HOSTILE_STRINGS) | scalars)
            params[key] = draw(anything)
        else:
            params[draw(st.sampled_from(names))] = draw(anything)
    return tool_type, operation, params


# -- a runtime over a tiny CMDB, one per example ------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpsDatabase]:
    # Our own database: CEP.simulate writes its log, and other tests read the shared one.
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    build_database(path, cis=40, days=1, seed=3)
    db = OpsDatabase(path)
    yield db
    db.close()


@pytest.fixture
def ops_registry(fuzz_db: OpsDatabase) -> ToolRegistry:
    registry = ToolRegistry()
    register_ops_tools(registry, fuzz_db)
    return registry


@FUZZ
@given(call=ops_call())
async def test_random_params_give_a_result_or_invalid_params(
    ops_registry: ToolRegistry, call: tuple[str, str, dict[Any, Any]]
) -> None:
    tool_type, operation, params = call
    with anyio.fail_after(10):
        async with open_runtime(ops_registry, ops_defaults()) as rt:
            result = await rt.execute_result(tool_type, operation, params, CTX)
            if not result.success:
                assert isinstance(result.exception, InvalidParams), (result.error_type, result)
                assert result.exception.param  # names the offending param
                with pytest.raises(InvalidParams):
                    await rt.execute(tool_type, operation, params, CTX)
            assert rt.health().ok


@pytest.mark.parametrize("params", [None, [], "ci_id=1", 7, ({"ci_id": 1},)])
async def test_params_that_are_not_a_mapping_are_a_type_error(
    ops_registry: ToolRegistry, params: Any
) -> None:
    # A programming error, not bad input: the HTTP example rejects such bodies with 400.
    async with open_runtime(ops_registry, ops_defaults()) as rt:
        with pytest.raises(TypeError, match="must be a mapping"):
            await rt.execute("CI", "get", params, CTX)


intents = st.one_of(
    st.sampled_from(sorted(OPS_CANDIDATES)),
    st.sampled_from(sorted(OPS_CANDIDATES)).map(str.lower),
    st.sampled_from(sorted(OPS_CANDIDATES)).map(lambda s: f" {s}"),
    st.text(min_size=1, max_size=12),
    st.sampled_from(HOSTILE_STRINGS[1:]),
)


@FUZZ
@given(intent=intents, call=ops_call())
async def test_random_intents_give_unknown_intent_or_an_answer(
    ops_registry: ToolRegistry, intent: str, call: tuple[str, str, dict[Any, Any]]
) -> None:
    params = call[2]
    with anyio.fail_after(10):
        async with open_runtime(ops_registry, ops_defaults()) as rt:
            if intent not in OPS_CANDIDATES:
                with pytest.raises(UnknownIntent) as unknown:
                    await rt.select(intent)
                assert unknown.value.intent == intent
                with pytest.raises(UnknownIntent):
                    await rt.execute_best(intent, params, CTX)
                return
            ranking = await rt.select(intent)
            assert {r.candidate for r in ranking} == set(OPS_CANDIDATES[intent])
            failed: AllCandidatesFailed | None = None
            try:
                best = await rt.execute_best(intent, params, CTX)
            except AllCandidatesFailed as exc:
                failed = exc
            if failed is None:
                assert (best.tool_type, best.operation) in OPS_CANDIDATES[intent]
            else:
                assert len(failed.attempts) == len(ranking)
                assert all(isinstance(e, InvalidParams) for _, _, e in failed.attempts)


# -- configuration documents ----------------------------------------------------------------------

TOOL_KEYS = st.sampled_from(["CI", "METRIC", "GRAPH", "HISTORY", "CEP", "X"]) | st.text(max_size=5)
OP_KEYS = st.sampled_from(["search", "get", "series", "simulate", "y"]) | st.text(max_size=5)
DURATIONS = st.sampled_from(["0", "500ms", "30s", "5m", "1h", "1.5s", " 2s "])
BAD_DURATIONS = st.sampled_from(["-1s", "5 m", "1d", "ms", "1e3s", "inf", "nan", "5mins"])
config_scalars = st.one_of(
    scalars.filter(lambda v: not isinstance(v, bytes)),
    DURATIONS,
    BAD_DURATIONS,
    st.integers(-2, 100_000),
    st.floats(-1.0, 2.0),
)


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``good`` nine times in ten, else ``bad`` (one_of would pick each half the time)."""
    return st.integers(0, 9).flatmap(lambda roll: good if roll else bad)


def plausible_value(hint: Any) -> st.SearchStrategy[Any]:
    """A value of the right shape for a config field's annotation (often valid)."""
    metadata = getattr(hint, "__metadata__", ())
    base = hint.__origin__ if metadata else hint  # drop Annotated
    if base is bool:
        return st.booleans()
    if base is int:
        return st.integers(0, 10_000)
    if base is float:
        if any(type(m).__name__ == "_DurationMarker" for m in metadata):
            return DURATIONS | st.floats(0, 100)
        return st.floats(0.0, 1.0)
    if base is str:
        return st.sampled_from(["BALANCED", "FASTEST", "var/x", "ops-demo"])
    if get_origin(base) is tuple:
        return st.lists(st.text(max_size=6), max_size=3)
    if get_origin(base) is dict:
        return st.dictionaries(
            TOOL_KEYS, st.dictionaries(OP_KEYS, DURATIONS, max_size=3), max_size=2
        ) | st.dictionaries(TOOL_KEYS, config_scalars, max_size=2)
    return config_scalars


def section_strategy(cls: type, depth: int = 0) -> st.SearchStrategy[Any]:
    """A mapping shaped like the attrs class ``cls``: some of its keys (recursively), mostly
    plausible values, and now and then an unknown key or a value of the wrong shape."""
    hints = get_type_hints(cls, include_extras=True)
    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in attrs.fields(cls):
        hint = hints[field.name]
        base = hint.__origin__ if hasattr(hint, "__metadata__") else hint  # drop Annotated
        if attrs.has(base) and depth < 2:
            value = mostly(section_strategy(base, depth + 1), config_scalars)
        elif field.name == "redis":
            value = st.one_of(st.none(), section_strategy(RedisConfig, depth + 1))
        else:
            value = mostly(plausible_value(hint), config_scalars)
        fields[field.name] = value
    known = st.fixed_dictionaries({}, optional=fields)
    unknown = st.dictionaries(st.text(max_size=6), config_scalars, max_size=1)
    return mostly(known, st.tuples(known, unknown).map(lambda kv: {**kv[1], **kv[0]}))


config_documents = st.one_of(
    section_strategy(RuntimeConfig),
    json_ish(),
    st.none(),
)


@settings(max_examples=150, deadline=None)
@given(document=config_documents)
def test_random_config_documents_give_config_error_or_a_valid_config(document: Any) -> None:
    try:
        config = config_from_dict(document)
    except ConfigError as exc:
        error: ConfigError | None = exc
    else:
        error = None
    if error is not None:
        if error.path:
            assert str(error) == f"{error.path}: {error.problem}"
        else:
            assert str(error) == error.problem
        return
    assert isinstance(config, RuntimeConfig)
    assert config_from_dict(config_to_dict(config)) == config
    for seconds in (config.executor.default_timeout, config.cache.default_ttl):
        assert math.isfinite(seconds)
        assert seconds >= 0


class _Echo:
    async def execute(self, ctx: ToolContext, params: Any) -> Any:
        return dict(params)


@FUZZ
@given(document=section_strategy(RuntimeConfig))
async def test_every_valid_config_opens_a_runtime_that_answers(document: Any) -> None:
    try:
        config = config_from_dict(document)
    except ConfigError:
        return
    if config.cache.redis is not None:
        config = attrs.evolve(config, cache=attrs.evolve(config.cache, redis=None))
    registry = ToolRegistry()
    registry.register("CI", "get", _Echo())
    with anyio.fail_after(10):
        try:
            async with open_runtime(registry, config) as rt:
                assert await rt.execute("CI", "get", {"ci_id": 1}, CTX, timeout=5) == {"ci_id": 1}
        except ConfigError:
            pass  # a composition the loader keeps as data may still fail to compile here


# -- compositions as data --------------------------------------------------------------------------

STEP_NAMES = st.sampled_from(["get", "search", "expand", "m", "e", "1bad", "a-b", ""])
REFS = st.sampled_from(
    [
        "$params.ci_id",
        "$params",
        "$get.record.ci_id",
        "$search.records[*].ci_id",
        "$expand.nodes[0]",
        "$nope.x",
        "$get.",
        "$",
        "$$x",
        "$search.records[",
        "plain",
    ]
)
step_value = st.one_of(REFS, config_scalars, json_ish())


def step_strategy(depth: int) -> st.SearchStrategy[Any]:
    backoff = st.fixed_dictionaries(
        {}, optional={k: config_scalars for k in ("base", "factor", "max", "jitter")}
    )
    fields: dict[str, st.SearchStrategy[Any]] = {
        "name": STEP_NAMES | config_scalars,
        "tool": st.sampled_from(["CI", "GRAPH", "METRIC", ""]) | config_scalars,
        "operation": st.sampled_from(["get", "expand", "aggregate"]) | config_scalars,
        "params": st.dictionaries(st.text(max_size=6), step_value, max_size=3) | step_value,
        "on_error": st.sampled_from(["fail_fast", "skip", "fallback", "retry"]) | config_scalars,
        "timeout": config_scalars,
        "retries": config_scalars,
        "backoff": backoff | config_scalars,
        "retry_on": st.lists(st.sampled_from(["ToolTimeout", "InvalidParams", "Nope"]))
        | config_scalars,
        "when": REFS | config_scalars,
    }
    if depth < 1:
        fields["fallback"] = step_strategy(depth + 1) | config_scalars
    step = st.fixed_dictionaries(
        {"name": fields["name"], "tool": fields["tool"], "operation": fields["operation"]},
        optional={k: v for k, v in fields.items() if k not in ("name", "tool", "operation")},
    )
    return st.one_of(step, st.dictionaries(st.text(max_size=6), step_value, max_size=3))


steps = st.lists(
    st.one_of(
        step_strategy(0),
        st.fixed_dictionaries(
            {"parallel": st.lists(step_strategy(0), max_size=3) | config_scalars},
            optional={"max_concurrency": config_scalars},
        ),
        config_scalars,
    ),
    max_size=4,
)


@st.composite
def plausible_composition(draw: st.DrawFn) -> dict[str, Any]:
    """A well-formed composition (unique step names, references to ``$params`` and to
    earlier steps, valid policies) with at most one random defect injected."""
    names = iter(["get", "expand", "metrics", "events", "extra", "more"])
    earlier: list[str] = []

    def step(name: str) -> dict[str, Any]:
        refs = ["$params.ci_id", *(f"${e}.record.ci_id" for e in earlier)]
        body: dict[str, Any] = {
            "name": name,
            "tool": draw(st.sampled_from(["CI", "GRAPH", "METRIC"])),
            "operation": draw(st.sampled_from(["get", "expand", "aggregate"])),
            "params": {"ci_id": draw(st.sampled_from(refs))},
        }
        if draw(st.booleans()):
            body["on_error"] = draw(st.sampled_from(["fail_fast", "skip"]))
        if draw(st.booleans()):
            body["retries"] = draw(st.integers(0, 3))
            body["backoff"] = {"base": 0.1, "factor": 2.0}
        if draw(st.booleans()):
            body["timeout"] = draw(st.sampled_from([0.5, 2, "1s"]))
        if len(earlier) > 0 and draw(st.booleans()):
            body["when"] = f"${earlier[0]}.record"
        return body

    stages: list[Any] = []
    for _ in range(draw(st.integers(1, 3))):
        if draw(st.booleans()):
            group = [step(next(names)) for _ in range(draw(st.integers(1, 2)))]
            stages.append({"parallel": group})
            earlier.extend(entry["name"] for entry in group)
        else:
            stages.append(step(next(names)))
            earlier.append(stages[-1]["name"])
    composition: dict[str, Any] = {"steps": stages, "defaults": {"ci_id": 1}}
    if draw(st.booleans()):
        # One defect: a random value somewhere, an unknown key, or a broken reference.
        target = draw(st.sampled_from(stages))
        target = target["parallel"][0] if "parallel" in target else target
        key = draw(st.sampled_from([*sorted(target), "bogus"]))
        target[key] = draw(step_value)
    return composition


compositions = st.one_of(
    plausible_composition(),
    plausible_composition(),
    st.fixed_dictionaries(
        {"steps": steps | config_scalars},
        optional={
            "description": st.text(max_size=10) | config_scalars,
            "defaults": st.dictionaries(st.text(max_size=6), step_value, max_size=3)
            | config_scalars,
        },
    ),
    json_ish(),
)


@settings(max_examples=200, deadline=None)
@given(name=st.sampled_from(["ok_name", "x"]) | st.text(max_size=8), body=compositions)
def test_random_compositions_compile_or_raise_config_error(name: Any, body: Any) -> None:
    try:
        pipeline = compile_composition(name, body)
    except ConfigError as exc:
        error: ConfigError | None = exc
    else:
        error = None
    if error is not None:
        assert "composition" in str(error)
        return
    assert isinstance(pipeline, Pipeline)
    assert name.isidentifier()


def test_the_fuzz_database_is_tiny(fuzz_db: OpsDatabase) -> None:
    # Guards the time budget: every example above opens a runtime over this database.
    assert int(fuzz_db.meta["count_cis"]) == 40
    assert Path(fuzz_db.path).stat().st_size < 20 * 1024 * 1024


class _Record:
    """Answers every step with a record, so references like ``$get.record.ci_id`` resolve."""

    async def execute(self, ctx: ToolContext, params: Any) -> Any:
        ci_id = params.get("ci_id")
        if not isinstance(ci_id, int) or isinstance(ci_id, bool):
            raise InvalidParams("CI", "get", "ci_id", "must be an integer")
        return {"record": {"ci_id": ci_id}}


@FUZZ
@given(body=plausible_composition())
async def test_random_compositions_that_compile_run_to_a_result_or_pipeline_error(
    body: dict[str, Any],
) -> None:
    try:
        pipeline = compile_composition("fuzzed", body)
    except ConfigError:
        return
    registry = ToolRegistry()
    for tool, operation in [("CI", "get"), ("GRAPH", "expand"), ("METRIC", "aggregate")]:
        registry.register(tool, operation, _Record())
    with anyio.fail_after(10):
        async with open_runtime(registry, ops_defaults()) as rt:
            culprit: str | None = None
            try:
                result = await rt.compose(pipeline, {}, CTX)
            except PipelineError as exc:
                result, culprit = exc.partial, exc.step
            assert isinstance(result, PipelineResult)
            assert set(result.outcomes) >= set(result.results)
            if culprit is not None:
                assert result.outcomes[culprit].status == "failed"
            assert rt.running_pipelines == 0
