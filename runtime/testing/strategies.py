"""Hypothesis strategies for the runtime's inputs: params, intents, compositions, faults.

Params come from the same data the validator reads (a tool's params schema, in the language
of :mod:`runtime.tools.schema`), so a new field or bound in a schema shows up in the
generated inputs without touching this module (the ops suite's: ``runtime.ops.strategies``).
``invalid=True`` inverts that: every example breaks
the schema in exactly one place -- a wrong type, an unknown key, a missing required key,
a value out of range, too many items, a bad discriminator -- at any depth, and the
validator must reject it with :class:`~runtime.errors.InvalidParams`.

Compositions are drawn over a set of ``(tool_type, operation)`` pairs, typically fake
tools (:class:`~runtime.testing.fakes.ScriptedTool`).  Everything a composition holds is
inspectable data -- conditions are :class:`ResultPresent` values, backoffs have no jitter
-- so a test can interpret the same composition with a reference model and compare.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any

import attrs
from hypothesis import strategies as st

from runtime.pipeline import Backoff, Parallel, Pipeline, State, Step
from runtime.pipeline.steps import OnError
from runtime.selector.intents import Candidate, Intent
from runtime.testing.fakes import ACTIONS, Action, FaultPlan
from runtime.tools import ToolRegistry

__all__ = [
    "ResultPresent",
    "compositions",
    "fault_plans",
    "intents",
    "params_from_schema",
]

Schema = Mapping[str, Any]

# Values of every JSON-ish type; a "wrong type" example is whichever of these a spec
# does not admit.  NaN is a float no "number" accepts.
# A day inside the years 1-9999 whatever the zone offset.
_EARLIEST = dt.datetime(1, 1, 2)
_LATEST = dt.datetime(9999, 12, 30)
_ANY_TYPE_VALUES: tuple[Any, ...] = (None, True, 7, 1.5, math.nan, "text", [], {})


# -- what a spec admits, by type only ------------------------------------------------------


def _is_type(value: Any, kind: str) -> bool:
    # Mirrors runtime.ops.params: bool is not a number, NaN/inf are not numbers.
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return isinstance(value, int) or math.isfinite(value)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "list":
        return isinstance(value, list | tuple)
    if kind == "object":
        return isinstance(value, Mapping)
    raise ValueError(f"unknown schema type {kind!r}")


def _type_fits(spec: Schema, value: Any) -> bool:
    if spec["type"] == "one_of":
        return any(_type_fits(choice, value) for choice in spec["choices"])
    return _is_type(value, spec["type"])


def _wrong_type(spec: Schema) -> st.SearchStrategy[Any] | None:
    wrong = [value for value in _ANY_TYPE_VALUES if not _type_fits(spec, value)]
    return st.sampled_from(wrong) if wrong else None


# -- valid values ----------------------------------------------------------------------


def _valid(spec: Schema) -> st.SearchStrategy[Any]:
    kind = spec["type"]
    if kind == "int":
        return st.integers(_ceil(spec.get("min")), _floor(spec.get("max")))
    if kind == "number":
        low, high = spec.get("min"), spec.get("max")
        floats = st.floats(low, high, allow_nan=False, allow_infinity=False)
        whole_low, whole_high = _ceil(low), _floor(high)
        if whole_low is not None and whole_high is not None and whole_low > whole_high:
            return floats  # no integer between fractional bounds (0.25 to 0.75)
        return st.one_of(st.integers(whole_low, whole_high), floats)
    if kind == "bool":
        return st.booleans()
    if kind == "str":
        return _valid_string(spec)
    if kind == "list":
        low = spec.get("min_items", 0)
        high = max(low, min(spec.get("max_items", low + 4), low + 4))
        return st.lists(_valid(spec["items"]), min_size=low, max_size=high)
    if kind == "one_of":
        return st.one_of([_valid(choice) for choice in spec["choices"]])
    if kind == "object":
        return _valid_object(spec)
    raise ValueError(f"unknown schema type {kind!r}")


def _ceil(bound: float | None) -> int | None:
    # Bounds may be fractional (``"min": 0.5``); integers() needs whole ones.
    return None if bound is None else math.ceil(bound)


def _floor(bound: float | None) -> int | None:
    return None if bound is None else math.floor(bound)


def _valid_string(spec: Schema) -> st.SearchStrategy[str]:
    if "enum" in spec:
        return st.sampled_from(list(spec["enum"]))
    low = spec.get("min_length", 0)
    high = spec.get("max_length", low + 20)
    if "pattern" in spec:
        texts: st.SearchStrategy[str] = st.from_regex(spec["pattern"], fullmatch=True)  # type: ignore[assignment]
        return texts.filter(lambda text: low <= len(text) <= high)
    if spec.get("format") == "iso_datetime":
        return st.datetimes(min_value=_EARLIEST, max_value=_LATEST, timezones=st.none()).map(
            lambda moment: moment.isoformat()
        )
    return st.text(min_size=low, max_size=max(low, min(high, low + 20)))


def _valid_object(spec: Schema) -> st.SearchStrategy[dict[str, Any]]:
    fields: Mapping[str, Schema] = spec["fields"]
    groups: list[list[str]] = [list(group) for group in spec.get("exactly_one_of", ())]
    exclusive = {name for group in groups for name in group}
    required = {n: _valid(f) for n, f in fields.items() if f.get("required") and n not in exclusive}
    optional = {
        n: _valid(f) for n, f in fields.items() if not f.get("required") and n not in exclusive
    }
    base = st.fixed_dictionaries(required, optional=optional)
    if not groups:
        return base

    @st.composite
    def with_exactly_one(draw: st.DrawFn) -> dict[str, Any]:
        params = draw(base)
        for group in groups:
            chosen = draw(st.sampled_from(group))
            params[chosen] = draw(_valid(fields[chosen]))
        return params

    return with_exactly_one()


# -- invalid values: each breaks the spec in one place ------------------------------------


def _invalid(spec: Schema, *, protect: str | None = None) -> st.SearchStrategy[Any] | None:
    """Values ``spec`` rejects, or None if it rejects nothing."""
    kind = spec["type"]
    options: list[st.SearchStrategy[Any]] = []
    wrong = _wrong_type(spec)
    if wrong is not None:
        options.append(wrong)
    if kind in ("int", "number"):
        if spec.get("min") is not None:
            options.append(st.integers(1, 1000).map(partial(_below, spec["min"])))
        if spec.get("max") is not None:
            options.append(st.integers(1, 1000).map(partial(_above, spec["max"])))
    elif kind == "str":
        options.extend(_invalid_strings(spec))
    elif kind == "list":
        options.extend(_invalid_lists(spec))
    elif kind == "object":
        options.extend(_invalid_objects(spec, protect))
    elif kind == "one_of":
        options.extend(_invalid_one_of(spec))
    return st.one_of(options) if options else None


def _invalid_strings(spec: Schema) -> list[st.SearchStrategy[str]]:
    # A lone surrogate is rejected by every string spec, before anything else is checked.
    options: list[st.SearchStrategy[str]] = [st.sampled_from(["\ud800", "ok\udfff"])]
    if "enum" in spec:
        allowed = set(spec["enum"])
        options.append(st.text(max_size=12).filter(lambda text: text not in allowed))
    low = spec.get("min_length", 0)
    if low > 0:
        options.append(st.text(max_size=low - 1))
    if "max_length" in spec:
        high = spec["max_length"]
        options.append(st.integers(1, 5).map(lambda extra: "x" * (high + extra)))
    if "pattern" in spec:
        pattern = re.compile(spec["pattern"])
        options.append(st.text(max_size=20).filter(lambda text: pattern.fullmatch(text) is None))
    if spec.get("format") == "iso_datetime":
        options.append(
            st.sampled_from(["", "yesterday", "2024-13-01", "2024-02-30T00:00", "10000-01-01"])
        )
    return options


def _invalid_lists(spec: Schema) -> list[st.SearchStrategy[list[Any]]]:
    items: Schema = spec["items"]
    options: list[st.SearchStrategy[list[Any]]] = []
    low = spec.get("min_items", 0)
    if low > 0:
        options.append(st.lists(_valid(items), max_size=low - 1))
    if "max_items" in spec:
        too_many = spec["max_items"] + 1
        options.append(_valid(items).map(lambda item: [item] * too_many))
    bad_item = _invalid(items)
    if bad_item is not None:
        # One bad item among valid ones, anywhere; the list's length stays legal.
        room = max(0, min(3, spec.get("max_items", 4) - 1))

        @st.composite
        def with_bad_item(draw: st.DrawFn) -> list[Any]:
            size = draw(st.integers(max(0, low - 1), max(room, low - 1)))
            values = draw(st.lists(_valid(items), min_size=size, max_size=size))
            values.insert(draw(st.integers(0, len(values))), draw(bad_item))
            return values

        options.append(with_bad_item())
    return options


def _invalid_objects(spec: Schema, protect: str | None) -> list[st.SearchStrategy[Any]]:
    fields: Mapping[str, Schema] = spec["fields"]
    valid = _valid_object(spec)
    options: list[st.SearchStrategy[Any]] = []

    unknown = st.one_of(
        st.text(min_size=1, max_size=8).filter(lambda name: name not in fields),
        st.integers(0, 9),  # a key that is not even a string
    )
    options.append(
        st.tuples(valid, unknown, _valid({"type": "int"})).map(lambda t: {**t[0], t[1]: t[2]})
    )
    for name, field in fields.items():
        if name == protect:
            continue
        if field.get("required"):
            options.append(valid.map(partial(_drop_keys, (name,))))
        bad = _invalid(field)
        if bad is not None:
            options.append(st.tuples(valid, bad).map(partial(_set_key, name)))
    for group in spec.get("exactly_one_of", ()):
        members = [name for name in group if name != protect]
        options.append(valid.map(partial(_drop_keys, tuple(members))))
        every = st.fixed_dictionaries({name: _valid(fields[name]) for name in members})
        options.append(st.tuples(valid, every).map(lambda t: {**t[0], **t[1]}))
    return options


def _invalid_one_of(spec: Schema) -> list[st.SearchStrategy[Any]]:
    choices: Sequence[Schema] = spec["choices"]
    key = spec.get("discriminator")
    options: list[st.SearchStrategy[Any]] = []
    if key is not None:
        tags = {tag for choice in choices for tag in choice["fields"][key]["enum"]}
        for choice in choices:
            valid = _valid_object(choice)
            options.append(valid.map(lambda params: _without(params, key)))
            options.append(
                st.tuples(valid, st.text(max_size=6).filter(lambda tag: tag not in tags)).map(
                    lambda t: {**t[0], key: t[1]}
                )
            )
            options.extend(_invalid_objects(choice, protect=key))
        return options
    for index, choice in enumerate(choices):
        bad = _invalid(choice)
        if bad is None:
            continue
        others = [other for i, other in enumerate(choices) if i != index]
        # Invalid for this choice, and of a type no other choice would try.
        options.append(bad.filter(partial(_fits_none, others)))
    return options


def _without(params: Mapping[Any, Any], *names: str) -> dict[Any, Any]:
    return {key: value for key, value in params.items() if key not in names}


def _drop_keys(names: tuple[str, ...], params: Mapping[Any, Any]) -> dict[Any, Any]:
    return _without(params, *names)


def _set_key(name: str, pair: tuple[Mapping[Any, Any], Any]) -> dict[Any, Any]:
    return {**pair[0], name: pair[1]}


def _below(bound: float, distance: int) -> float:
    return bound - distance


def _above(bound: float, distance: int) -> float:
    return bound + distance


def _fits_none(choices: Sequence[Schema], value: Any) -> bool:
    return not any(_type_fits(choice, value) for choice in choices)


# -- public strategies ----------------------------------------------------------------------


def params_from_schema(schema: Schema, *, invalid: bool = False) -> st.SearchStrategy[Any]:
    """Params a schema in :mod:`runtime.ops.params`'s language accepts (or, ``invalid=True``,
    rejects).

    Use it for your own tools: give them a schema in that language (``ToolRegistry.register(...,
    params_schema=...)``) and check them with the same strategies as the ops tools.
    """
    if not invalid:
        return _valid(schema)
    bad = _invalid(schema)
    if bad is None:
        raise ValueError("this schema accepts every value; there are no invalid params")
    return bad


def intents(
    candidates: Mapping[str, Sequence[Candidate]],
    *,
    schemas: Mapping[Candidate, Schema] | None = None,
    with_params: bool = True,
) -> st.SearchStrategy[Intent]:
    """Intents over ``candidates`` (intent -> its ``(tool_type, operation)`` pairs), with
    params valid for one of the intent's candidates when ``schemas`` has a params schema
    for it (otherwise empty).  The ops suite's: ``runtime.ops.strategies.ops_intents``."""
    names = sorted(candidates)
    if not names:
        raise ValueError("no intents to draw from")
    known = schemas if schemas is not None else {}

    @st.composite
    def build(draw: st.DrawFn) -> Intent:
        name = draw(st.sampled_from(names))
        params: Mapping[str, Any] = {}
        pairs = [pair for pair in candidates[name] if pair in known]
        if with_params and pairs:
            params = draw(params_from_schema(known[draw(st.sampled_from(pairs))]))
        return Intent(name, params)

    return build()


def fault_plans(
    *,
    actions: Sequence[Action] = ACTIONS,
    max_script: int = 4,
    latencies: Sequence[float] = (0.0, 0.1, 0.3, 1.1),
    fail_probabilities: Sequence[float] = (0.0, 0.25, 0.5),
    huge_size: int = 10_000,
) -> st.SearchStrategy[FaultPlan]:
    """Fault plans drawing from ``actions``; each shrinks toward "always ok, no delay".

    ``then`` (the action past the script) is ``ok`` or ``fail``: a plan that hangs
    forever after its script would make every retry hang too.
    """
    ordered = sorted(set(actions), key=ACTIONS.index)
    if not ordered:
        raise ValueError("fault_plans needs at least one action")
    latency_values = sorted(set(latencies))
    tail = [action for action in ("ok", "fail") if action in ordered] or ordered[:1]
    return st.builds(
        FaultPlan,
        script=st.lists(st.sampled_from(ordered), max_size=max_script).map(tuple),
        then=st.sampled_from(tail),
        fail_probability=st.sampled_from(sorted(set(fail_probabilities))),
        seed=st.integers(0, 2**16),
        latency=st.sampled_from(latency_values),
        latencies=st.lists(st.sampled_from(latency_values), max_size=max_script).map(tuple),
        huge_size=st.just(huge_size),
    )


@attrs.frozen(slots=True)
class ResultPresent:
    """A step condition: run only if ``step`` produced a result (or, with
    ``present=False``, only if it did not).  A value, so it prints and compares."""

    step: str
    present: bool = True

    def __call__(self, state: State) -> bool:
        return (self.step in state) == self.present


@st.composite
def _one_step(
    draw: st.DrawFn,
    step_name: str,
    earlier: tuple[str, ...],
    *,
    pairs: Sequence[Candidate],
    params: Callable[[str, str, str], st.SearchStrategy[Mapping[str, Any]]] | None,
    policies: Sequence[OnError],
    conditions: bool,
    timeouts: Sequence[float | None],
    max_retries: int,
    backoff_bases: Sequence[float],
    is_fallback: bool = False,
) -> Step:
    """One step of :func:`compositions` (its fallback drawn the same way, one level deep)."""
    tool, operation = draw(st.sampled_from(pairs))
    if params is None:
        step_params: Mapping[str, Any] = {"step": step_name}
    else:
        step_params = draw(params(tool, operation, step_name))
    if is_fallback:
        on_error: OnError = draw(st.sampled_from(("fail_fast", "skip")))
    else:
        on_error = draw(st.sampled_from(list(policies)))
    fallback = None
    if on_error == "fallback":
        fallback = draw(
            _one_step(
                f"{step_name}_fallback",
                (),
                pairs=pairs,
                params=params,
                policies=policies,
                conditions=conditions,
                timeouts=timeouts,
                max_retries=max_retries,
                backoff_bases=backoff_bases,
                is_fallback=True,
            )
        )
    condition = None
    if conditions and earlier and not is_fallback and draw(st.booleans()):
        condition = ResultPresent(draw(st.sampled_from(earlier)), draw(st.booleans()))
    base = draw(st.sampled_from(list(backoff_bases)))
    return Step(
        step_name,
        tool,
        operation,
        step_params,
        on_error=on_error,
        fallback=fallback,
        timeout=draw(st.sampled_from(list(timeouts))),
        retries=draw(st.integers(0, max_retries)),
        backoff=Backoff(base=base, factor=2.0, max=max(base, 1.0), jitter=0.0),
        condition=condition,
    )


def compositions(
    operations: Iterable[Candidate] | ToolRegistry,
    *,
    name: str = "composition",
    max_stages: int = 4,
    max_parallel: int = 3,
    policies: Sequence[OnError] = ("fail_fast", "skip", "fallback"),
    max_retries: int = 2,
    timeouts: Sequence[float | None] = (None, 0.5, 2.0),
    backoff_bases: Sequence[float] = (0.0, 0.1),
    conditions: bool = True,
    params: Callable[[str, str, str], st.SearchStrategy[Mapping[str, Any]]] | None = None,
) -> st.SearchStrategy[Pipeline]:
    """Random pipelines over ``operations`` (pairs, or every tool of a registry).

    Sequential steps and :class:`~runtime.Parallel` groups (2 to ``max_parallel``
    steps), each step with an error policy from ``policies`` (a ``fallback`` step gets a
    fallback step of its own, itself ``fail_fast`` or ``skip``), 0 to ``max_retries``
    retries, a timeout from ``timeouts``, a jitter-free backoff and, when ``conditions``,
    possibly a :class:`ResultPresent` condition on a step of an earlier stage.

    Step names are ``s0``, ``s1``, ... (fallbacks ``s0_fallback``).  By default a step's
    params are ``{"step": name}``: no two steps share a cache key, so cache hits and
    coalescing never blur what each step did.  ``params(tool, operation, step_name)``
    draws your own instead.
    """
    pairs = sorted(operations) if isinstance(operations, ToolRegistry) else list(operations)
    if not pairs:
        raise ValueError("compositions needs at least one (tool_type, operation)")
    if max_stages < 1 or max_parallel < 1:
        raise ValueError("max_stages and max_parallel must be >= 1")
    if not policies:
        raise ValueError("compositions needs at least one error policy")

    one_step = partial(
        _one_step,
        pairs=pairs,
        params=params,
        policies=list(policies),
        conditions=conditions,
        timeouts=list(timeouts),
        max_retries=max_retries,
        backoff_bases=list(backoff_bases),
    )

    @st.composite
    def build(draw: st.DrawFn) -> Pipeline:
        stages: list[Step | Parallel] = []
        earlier: list[str] = []
        counter = 0
        for _ in range(draw(st.integers(1, max_stages))):
            width = draw(st.integers(1, max_parallel)) if max_parallel > 1 else 1
            names = [f"s{counter + i}" for i in range(width)]
            counter += width
            steps = [draw(one_step(n, tuple(earlier))) for n in names]
            stages.append(steps[0] if width == 1 else Parallel(*steps))
            earlier.extend(names)
        return Pipeline(name, stages)

    return build()
