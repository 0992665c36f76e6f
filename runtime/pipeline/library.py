"""Compositions declared as data, and the built-in ones.

The ``compositions:`` section of the configuration holds plain mappings (the loader hands
them over untouched).  :func:`compile_composition` turns one into a
:class:`~runtime.pipeline.steps.Pipeline` and checks it completely first: a bad reference
is a :class:`~runtime.errors.ConfigError` at load time naming the composition, the step
and the key path, never a ``KeyError`` mid-request.

A composition has ``description``, ``defaults`` (initial params a run may override) and
``steps``: each a step (``name``, ``tool``, ``operation``, ``params``, ``on_error``:
fail_fast | skip | fallback, ``fallback``, ``timeout``, ``retries``, ``backoff``,
``retry_on``, ``when``) or a ``parallel`` group with ``max_concurrency``.  A step may
reference ``$params`` and the steps of earlier stages -- not itself, its own parallel
group or a later step; a fallback sees what its step sees; a ``when`` that does not
resolve is false.  The full format: docs/pipelines.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

from runtime.config import parse_duration
from runtime.errors import (
    ConfigError,
    InvalidParams,
    ToolExecutionError,
    ToolNotFound,
    ToolTimeout,
)
from runtime.pipeline.refs import (
    PARAMS_ROOT,
    ParamTemplate,
    Ref,
    RefSyntaxError,
    UnresolvedReference,
    compile_params,
    is_reference,
    parse_ref,
    resolve_ref,
)
from runtime.pipeline.state import State
from runtime.pipeline.steps import (
    ON_ERROR_POLICIES,
    Backoff,
    Parallel,
    Pipeline,
    RetryOn,
    Stage,
    Step,
    default_retry_on,
)

__all__ = [
    "RETRYABLE_ERRORS",
    "compile_composition",
    "compile_compositions",
]

RETRYABLE_ERRORS: Mapping[str, type[BaseException]] = {
    "ToolExecutionError": ToolExecutionError,
    "ToolTimeout": ToolTimeout,
    "InvalidParams": InvalidParams,
    "ToolNotFound": ToolNotFound,
    "TimeoutError": TimeoutError,
}
"""The exception names a composition's ``retry_on`` may list."""

_STEP_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_COMPOSITION_KEYS = frozenset({"description", "defaults", "steps"})
_STEP_KEYS = frozenset(
    {
        "name",
        "tool",
        "operation",
        "params",
        "on_error",
        "fallback",
        "timeout",
        "retries",
        "backoff",
        "retry_on",
        "when",
    }
)
_GROUP_KEYS = frozenset({"parallel", "max_concurrency"})
_BACKOFF_KEYS = frozenset({"base", "factor", "max", "jitter"})


def compile_compositions(
    section: Mapping[str, Any], *, path: str = "compositions"
) -> dict[str, Pipeline]:
    """Compile a whole ``compositions:`` section; raises :class:`ConfigError`."""
    if not isinstance(section, Mapping):
        raise ConfigError(path, f"expected a mapping of compositions, got {_kind(section)}")
    return {
        name: compile_composition(name, body, path=f"{path}.{name}")
        for name, body in section.items()
    }


def compile_composition(
    name: str, mapping: Mapping[str, Any], *, path: str | None = None
) -> Pipeline:
    """Check and compile one composition; raises :class:`ConfigError` on any mistake."""
    return _Compiler(name, path if path is not None else f"compositions.{name}").compile(mapping)


@attrs.frozen(slots=True)
class _Scope:
    """What a step's references may see: ``myself`` is the step whose results are not
    there yet (a fallback's owner), then the names available, its siblings and all
    declared steps."""

    step: str
    myself: str
    available: set[str]
    siblings: frozenset[str]
    declared: Mapping[str, str]

    @property
    def visible(self) -> tuple[str, set[str], frozenset[str], Mapping[str, str]]:
        return self.myself, self.available, self.siblings, self.declared


class _Compiler:
    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path

    def fail(self, path: str, step: str | None, problem: str) -> ConfigError:
        who = f"composition {self.name!r}"
        if step is not None:
            who += f", step {step!r}"
        return ConfigError(path, f"{who}: {problem}")

    def compile(self, mapping: Mapping[str, Any]) -> Pipeline:
        if not isinstance(self.name, str) or not _STEP_NAME.match(self.name):
            raise self.fail(self.path, None, "a composition name is letters, digits and '_'")
        if not isinstance(mapping, Mapping):
            raise self.fail(self.path, None, f"expected a mapping, got {_kind(mapping)}")
        self.check_keys(mapping, _COMPOSITION_KEYS, self.path, None)
        description = mapping.get("description", "")
        if not isinstance(description, str):
            raise self.fail(f"{self.path}.description", None, "expected a string")
        defaults = mapping.get("defaults", {})
        if not isinstance(defaults, Mapping):
            raise self.fail(
                f"{self.path}.defaults", None, f"expected a mapping, got {_kind(defaults)}"
            )
        raw_steps = mapping.get("steps")
        steps_path = f"{self.path}.steps"
        if not isinstance(raw_steps, list) or not raw_steps:
            raise self.fail(steps_path, None, "expected a non-empty list of steps")

        declared = self.declared_names(raw_steps, steps_path)
        available: set[str] = set()  # steps of earlier stages
        stages: list[Stage] = []
        for index, entry in enumerate(raw_steps):
            where = f"{steps_path}[{index}]"
            if isinstance(entry, Mapping) and "parallel" in entry:
                stages.append(self.group(entry, where, available, declared))
                members = [m["name"] for m in entry["parallel"]]
            else:
                stages.append(self.step(entry, where, available, frozenset(), declared))
                members = [entry["name"]]
            available.update(members)
        return Pipeline(self.name, stages, defaults=dict(defaults), description=description)

    def check_keys(
        self, mapping: Mapping[str, Any], allowed: frozenset[str], path: str, step: str | None
    ) -> None:
        for key in mapping:
            if key not in allowed:
                raise self.fail(
                    f"{path}.{key}",
                    step,
                    f"unknown key {key!r}; expected one of {', '.join(sorted(allowed))}",
                )

    def declared_names(self, raw_steps: list[Any], steps_path: str) -> dict[str, str]:
        """Every step name (fallbacks included) -> its path; checks names are valid, unique."""
        declared: dict[str, str] = {}

        def note(entry: Any, where: str) -> None:
            if not isinstance(entry, Mapping):
                raise self.fail(where, None, f"a step is a mapping, got {_kind(entry)}")
            name = entry.get("name")
            if not isinstance(name, str) or not _STEP_NAME.match(name):
                raise self.fail(
                    f"{where}.name",
                    None,
                    f"a step needs a name of letters, digits and '_', got {name!r}",
                )
            if name == PARAMS_ROOT:
                raise self.fail(
                    f"{where}.name", name, "'params' is reserved for the run's initial params"
                )
            if name in declared:
                raise self.fail(
                    f"{where}.name", name, f"duplicate step name (first at {declared[name]})"
                )
            declared[name] = where
            fallback = entry.get("fallback")
            if isinstance(fallback, Mapping):
                note(fallback, f"{where}.fallback")

        for index, entry in enumerate(raw_steps):
            where = f"{steps_path}[{index}]"
            if isinstance(entry, Mapping) and "parallel" in entry:
                self.check_keys(entry, _GROUP_KEYS, where, None)
                members = entry["parallel"]
                if not isinstance(members, list) or not members:
                    raise self.fail(f"{where}.parallel", None, "expected a non-empty list of steps")
                for position, member in enumerate(members):
                    member_path = f"{where}.parallel[{position}]"
                    if isinstance(member, Mapping) and "parallel" in member:
                        raise self.fail(member_path, None, "parallel groups cannot be nested")
                    note(member, member_path)
            else:
                note(entry, where)
        return declared

    def group(
        self,
        entry: Mapping[str, Any],
        where: str,
        available: set[str],
        declared: Mapping[str, str],
    ) -> Parallel:
        members = entry["parallel"]
        siblings = frozenset(member["name"] for member in members)
        steps = [
            self.step(member, f"{where}.parallel[{position}]", available, siblings, declared)
            for position, member in enumerate(members)
        ]
        limit = entry.get("max_concurrency")
        if limit is not None and (not _is_int(limit) or limit < 1):
            raise self.fail(
                f"{where}.max_concurrency", None, f"expected a positive integer, got {limit!r}"
            )
        return Parallel(*steps, max_concurrency=limit)

    def step(
        self,
        entry: Mapping[str, Any],
        where: str,
        available: set[str],
        siblings: frozenset[str],
        declared: Mapping[str, str],
        *,
        owner: str | None = None,
    ) -> Step:
        name: str = entry["name"]
        self.check_keys(entry, _STEP_KEYS, where, name)
        tool = self.text(entry, "tool", where, name)
        operation = self.text(entry, "operation", where, name)
        # A fallback is judged by what its step sees: its own name is not a result yet.
        myself = owner if owner is not None else name
        scope = _Scope(name, myself, available, siblings, declared)
        template = self.params(entry, where, scope)
        on_error = entry.get("on_error", "fail_fast")
        if on_error not in ON_ERROR_POLICIES:
            raise self.fail(
                f"{where}.on_error",
                name,
                f"unknown on_error {on_error!r}; expected one of {', '.join(ON_ERROR_POLICIES)}",
            )
        fallback = self.fallback(entry, on_error, where, scope)
        timeout = self.timeout(entry.get("timeout"), where, name)
        retries = entry.get("retries", 0)
        if not _is_int(retries) or retries < 0:
            raise self.fail(
                f"{where}.retries", name, f"expected a non-negative integer, got {retries!r}"
            )
        backoff = self.backoff(entry.get("backoff", {}), f"{where}.backoff", name)
        retry_on = self.retry_on(entry.get("retry_on"), f"{where}.retry_on", name)
        return Step(
            name=name,
            tool=tool,
            operation=operation,
            params=template if any(True for _ in template.references()) else template.tree,
            on_error=on_error,
            fallback=fallback,
            timeout=timeout,
            retries=retries,
            backoff=backoff,
            retry_on=retry_on,
            condition=self.condition(entry.get("when"), where, scope),
        )

    def params(self, entry: Mapping[str, Any], where: str, scope: _Scope) -> ParamTemplate:
        name = scope.step
        raw_params = entry.get("params", {})
        if not isinstance(raw_params, Mapping):
            raise self.fail(f"{where}.params", name, f"expected a mapping, got {_kind(raw_params)}")
        try:
            template = compile_params(raw_params)
        except RefSyntaxError as error:
            raise self.fail(f"{where}.{error.param}", name, str(error)) from None
        except TypeError as error:
            raise self.fail(f"{where}.params", name, str(error)) from None
        for param_path, ref in template.references():
            self.check_ref(ref, f"{where}.{param_path}", name, *scope.visible)
        return template

    def fallback(
        self, entry: Mapping[str, Any], on_error: str, where: str, scope: _Scope
    ) -> Step | None:
        name = scope.step
        raw_fallback = entry.get("fallback")
        if on_error != "fallback":
            if raw_fallback is not None:
                raise self.fail(
                    f"{where}.fallback",
                    name,
                    f"a fallback step is given but on_error is {on_error!r}; "
                    "use on_error: fallback",
                )
            return None
        if raw_fallback is None:
            raise self.fail(
                f"{where}.fallback", name, "on_error is 'fallback' but no fallback step is given"
            )
        if not isinstance(raw_fallback, Mapping):
            raise self.fail(
                f"{where}.fallback", name, f"expected a step mapping, got {_kind(raw_fallback)}"
            )
        if "when" in raw_fallback:
            raise self.fail(f"{where}.fallback.when", name, "a fallback step cannot have 'when'")
        _, available, siblings, declared = scope.visible
        return self.step(
            raw_fallback, f"{where}.fallback", available, siblings, declared, owner=scope.myself
        )

    def timeout(self, timeout: Any, where: str, name: str) -> float | None:
        if timeout is None:
            return None
        # A duration like every other in the configuration: 500ms, 2s, 1m or seconds.
        try:
            seconds = parse_duration(timeout, f"{where}.timeout")
        except ConfigError as exc:
            raise self.fail(f"{where}.timeout", name, exc.problem) from None
        if not seconds > 0:
            raise self.fail(
                f"{where}.timeout", name, f"expected a positive duration, got {seconds!r}"
            )
        return seconds

    def condition(self, when: Any, where: str, scope: _Scope) -> _When | None:
        if when is None:
            return None
        name = scope.step
        if not is_reference(when):
            raise self.fail(f"{where}.when", name, f"expected a reference ($...), got {when!r}")
        try:
            when_ref = parse_ref(when)
        except RefSyntaxError as error:
            raise self.fail(f"{where}.when", name, str(error)) from None
        self.check_ref(when_ref, f"{where}.when", name, *scope.visible)
        return _When(when_ref)

    def text(self, entry: Mapping[str, Any], key: str, where: str, step: str) -> str:
        value = entry.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(
                f"{where}.{key}", step, f"{key} must be a non-empty string, got {value!r}"
            )
        return value

    def check_ref(
        self,
        ref: Ref,
        path: str,
        step: str,
        myself: str,
        available: set[str],
        siblings: frozenset[str],
        declared: Mapping[str, str],
    ) -> None:
        root = ref.root
        if root == PARAMS_ROOT or root in available:
            return
        text = str(ref)
        if root == myself:
            problem = f"{text} refers to step {root!r} itself; a step sees only earlier results"
        elif root in siblings:
            problem = (
                f"{text} refers to step {root!r} of the same parallel group; steps in a group "
                "run side by side and cannot see each other's results"
            )
        elif root in declared:
            problem = (
                f"forward reference: {text} refers to step {root!r} "
                f"(at {declared[root]}), which has not run before this step"
            )
        else:
            known = ", ".join(sorted(available)) or "none yet"
            problem = (
                f"{text} refers to unknown step {root!r}; "
                f"'params' or an earlier step ({known}) expected"
            )
        raise self.fail(path, step, problem)

    def backoff(self, raw: Any, path: str, step: str) -> Backoff:
        if not isinstance(raw, Mapping):
            raise self.fail(path, step, f"expected a mapping, got {_kind(raw)}")
        self.check_keys(raw, _BACKOFF_KEYS, path, step)
        try:
            return Backoff(**raw)
        except (TypeError, ValueError) as error:
            raise self.fail(path, step, str(error)) from None

    def retry_on(self, raw: Any, path: str, step: str) -> RetryOn:
        if raw is None:
            return default_retry_on
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not raw:
            raise self.fail(path, step, "expected a non-empty list of error names")
        types: list[type[BaseException]] = []
        for position, item in enumerate(raw):
            # Checked as a string first: a mapping or list from the data is unhashable, and
            # a membership test on it would escape as a TypeError, not a ConfigError.
            if not isinstance(item, str) or item not in RETRYABLE_ERRORS:
                raise self.fail(
                    f"{path}[{position}]",
                    step,
                    f"unknown error {item!r}; expected one of {', '.join(RETRYABLE_ERRORS)}",
                )
            types.append(RETRYABLE_ERRORS[item])
        return tuple(types)


@attrs.frozen(slots=True)
class _When:
    """A step condition from data: the reference resolves to a truthy value."""

    ref: Ref

    def __call__(self, state: State) -> bool:
        try:
            return bool(resolve_ref(self.ref, state))
        except UnresolvedReference:
            return False


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__
