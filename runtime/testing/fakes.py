"""Fake tools whose every answer, delay and failure comes from a plan.

A property test of a runtime needs tools that misbehave *on purpose and on cue*: fail at
the third call, hang until cancelled, take 2.5 s, return 10 MB or something that cannot be
pickled.  :class:`FaultPlan` is that cue sheet, a frozen value (so hypothesis can draw,
shrink and print it), and :class:`ScriptedTool` plays it, recording every call for
assertions.

Two decisions keep plans predictable, so that a test can compute what *should* happen:

* **Decisions are pure.**  :meth:`FaultPlan.action_for` maps (call index, call key) to
  an action; the "fail with probability p" draw comes from ``random.Random`` seeded with
  the plan's seed, the key and the index -- not from one shared generator -- so it does
  not depend on the order in which concurrent calls happened to arrive.
* **Call indices can count per params.**  With ``index_by="params"`` the k-th call *with
  these params* gets index k, so parallel steps calling one tool with different params
  each see their own sequence regardless of scheduling (trio shuffles ready tasks).

Latencies are ``anyio.sleep`` calls, so under virtual time (see
:mod:`runtime.testing.clock`) a 30 s plan runs in microseconds and times are exact.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import anyio
import attrs

from runtime.errors import InvalidParams
from runtime.tools import ToolContext, ToolRegistry, ToolSpec

__all__ = [
    "ACTIONS",
    "Action",
    "CallRecord",
    "FaultPlan",
    "ScriptedFailure",
    "ScriptedTool",
    "Unserialisable",
    "echo_result",
    "params_key",
]

Action = Literal["ok", "fail", "invalid", "hang", "huge", "unserialisable"]
"""What one call does.

``ok`` answers with the tool's result; ``fail`` raises :class:`ScriptedFailure` (a tool
error the pipeline's default policy retries); ``invalid`` raises
:class:`~runtime.errors.InvalidParams` (never retried by default); ``hang`` sleeps until
cancelled; ``huge`` answers with the result plus ``huge_size`` bytes of padding;
``unserialisable`` answers with an :class:`Unserialisable` value, which the cache cannot
store.
"""

ACTIONS: tuple[Action, ...] = ("ok", "fail", "invalid", "hang", "huge", "unserialisable")

CallOutcome = Literal["ok", "error", "cancelled"]


def _action_tuple(values: Iterable[Action]) -> tuple[Action, ...]:
    return tuple(values)


def _float_tuple(values: Iterable[float]) -> tuple[float, ...]:
    return tuple(values)


def _probability(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"FaultPlan.{attribute.name} must be within [0, 1], got {value!r}")


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    values = value if isinstance(value, tuple) else (value,)
    for item in values:
        if not item >= 0:
            raise ValueError(f"FaultPlan.{attribute.name} must be >= 0, got {value!r}")


def _actions(instance: object, attribute: attrs.Attribute[Any], value: tuple[str, ...]) -> None:
    for item in value:
        if item not in ACTIONS:
            raise ValueError(
                f"FaultPlan.{attribute.name}: unknown action {item!r}; one of {', '.join(ACTIONS)}"
            )


def _action(instance: object, attribute: attrs.Attribute[Any], value: str) -> None:
    if value not in ACTIONS:
        raise ValueError(f"FaultPlan.{attribute.name}: unknown action {value!r}")


@attrs.frozen(slots=True)
class FaultPlan:
    """How a :class:`ScriptedTool` behaves, call by call.

    Call ``k`` (0-based) does ``script[k]``; calls past the script do ``then``.  A call
    whose scripted action is ``ok`` fails instead with probability ``fail_probability``
    (drawn from ``random.Random`` seeded by ``seed``, the call key and ``k``).  Every call
    first sleeps ``latencies[k]`` (or ``latency`` past that tuple), then acts.
    """

    script: tuple[Action, ...] = attrs.field(
        default=(), converter=_action_tuple, validator=_actions
    )
    then: Action = attrs.field(default="ok", validator=_action)
    fail_probability: float = attrs.field(default=0.0, validator=_probability)
    seed: int = 0
    latency: float = attrs.field(default=0.0, validator=_non_negative)
    latencies: tuple[float, ...] = attrs.field(
        default=(), converter=_float_tuple, validator=_non_negative
    )
    huge_size: int = attrs.field(default=1_000_000, validator=_non_negative)

    @classmethod
    def fail_at(cls, *calls: int, then: Action = "ok", **options: Any) -> FaultPlan:
        """A plan that fails exactly at the given call indices (``fail_at(2)``: the third)."""
        if any(k < 0 for k in calls):
            raise ValueError(f"call indices are >= 0, got {calls}")
        length = max(calls, default=-1) + 1
        # The calls before the last failure that are not listed succeed; ``then`` is the tail.
        script: tuple[Action, ...] = tuple("fail" if k in calls else "ok" for k in range(length))
        return cls(script=script, then=then, **options)

    @classmethod
    def always(cls, action: Action, **options: Any) -> FaultPlan:
        """A plan in which every call does ``action``."""
        return cls(then=action, **options)

    def action_for(self, index: int, key: str = "") -> Action:
        """What call ``index`` (for call key ``key``) does; pure and deterministic."""
        action = self.script[index] if index < len(self.script) else self.then
        if action == "ok" and self.fail_probability > 0.0:
            # A fresh generator per decision: independent of the order calls arrive in.
            draw = random.Random(f"{self.seed}:{key}:{index}").random()
            if draw < self.fail_probability:
                return "fail"
        return action

    def latency_for(self, index: int) -> float:
        """How long call ``index`` sleeps before it acts."""
        return self.latencies[index] if index < len(self.latencies) else self.latency


class ScriptedFailure(RuntimeError):
    """The error a ``fail`` action raises; says which tool, call and index."""

    def __init__(self, tool_type: str, operation: str, index: int) -> None:
        self.tool_type = tool_type
        self.operation = operation
        self.index = index
        super().__init__(f"{tool_type}.{operation}: scripted failure at call {index}")


class Unserialisable:
    """A value the cache cannot store (it refuses to pickle); equal by ``label``."""

    __slots__ = ("label",)

    def __init__(self, label: str) -> None:
        self.label = label

    def __reduce__(self) -> Any:
        raise TypeError("Unserialisable values cannot be pickled (by design)")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unserialisable) and other.label == self.label

    def __hash__(self) -> int:
        return hash(("Unserialisable", self.label))

    def __repr__(self) -> str:
        return f"Unserialisable({self.label!r})"


@attrs.frozen(slots=True)
class CallRecord:
    """One call of a :class:`ScriptedTool`.

    ``started_at`` / ``ended_at`` are ``anyio.current_time()`` (virtual under the test
    clocks); ``ended_at`` is None while the call runs.  ``outcome`` is ``ok``, ``error``
    or ``cancelled`` (None while running), ``error`` the exception raised, if any.
    """

    index: int
    key: str
    action: Action
    params: Mapping[str, Any]
    context: ToolContext
    started_at: float
    ended_at: float | None = None
    outcome: CallOutcome | None = None
    error: BaseException | None = attrs.field(default=None, eq=False)

    @property
    def tenant(self) -> str:
        return self.context.tenant_id


def params_key(params: Mapping[str, Any]) -> str:
    """A stable text form of ``params``: equal params give equal keys, in any key order.

    Also for params the runtime cannot cache but still runs a tool with: sets are sorted
    (their iteration order varies), and keys that are not strings are spelled with
    ``repr`` (json cannot sort keys of mixed types).
    """
    return _text(params)


def _text(value: Any) -> str:
    return json.dumps(_plain(value), sort_keys=True, default=repr, separators=(",", ":"))


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {
            key if isinstance(key, str) else repr(key): _plain(item) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, set | frozenset):
        return sorted(map(_text, value))
    return value


def echo_result(
    tool_type: str, operation: str, context: ToolContext, params: Mapping[str, Any]
) -> dict[str, Any]:
    """The default answer of a scripted tool: who asked, what, with which params.

    It depends only on the call, never on timing or call order, so a cached answer, a
    coalesced one and a fresh one are all equal, and it carries the tenant so any
    cross-tenant answer shows.
    """
    return {
        "tool": tool_type,
        "operation": operation,
        "tenant": context.tenant_id,
        "params": dict(params),
    }


Responder = Callable[[ToolContext, Mapping[str, Any], int], Any]
"""``(context, params, call index) -> data``: what an ``ok`` call answers."""


class ScriptedTool:
    """A tool that plays a :class:`FaultPlan` and records every call.

    ``respond`` computes what an ``ok`` call answers (default: :func:`echo_result`).
    ``index_by`` chooses how calls are numbered: ``"tool"`` counts every call of this
    tool, ``"params"`` counts calls with equal params separately (see the module
    docstring).  Register it once, with :meth:`register`, so its calls are its own.
    """

    def __init__(
        self,
        tool_type: str,
        operation: str,
        plan: FaultPlan | None = None,
        *,
        respond: Responder | None = None,
        index_by: Literal["tool", "params"] = "tool",
        side_effects: bool = False,
    ) -> None:
        if index_by not in ("tool", "params"):
            raise ValueError(f"index_by must be 'tool' or 'params', got {index_by!r}")
        self.tool_type = tool_type
        self.operation = operation
        self.plan = plan if plan is not None else FaultPlan()
        self.respond = respond
        self.index_by = index_by
        self.side_effects = side_effects
        self._calls: list[CallRecord] = []
        self._per_key: dict[str, int] = {}

    def register(self, registry: ToolRegistry, *, description: str = "") -> ToolSpec:
        """Register this tool under its ``(tool_type, operation)``."""
        return registry.register(
            self.tool_type,
            self.operation,
            self,
            description=description or f"scripted fake {self.tool_type}.{self.operation}",
            side_effects=self.side_effects,
        )

    # -- what tests read ----------------------------------------------------------------

    @property
    def calls(self) -> tuple[CallRecord, ...]:
        """Every call so far, in the order they started."""
        return tuple(self._calls)

    @property
    def call_count(self) -> int:
        return len(self._calls)

    def calls_for(self, tenant: str) -> tuple[CallRecord, ...]:
        return tuple(call for call in self._calls if call.tenant == tenant)

    @property
    def running(self) -> int:
        """Calls started and not yet ended (a hang that was never cancelled shows here)."""
        return sum(1 for call in self._calls if call.ended_at is None)

    def reset(self) -> None:
        """Forget the calls and restart the numbering (the plan is kept)."""
        self._calls.clear()
        self._per_key.clear()

    def next_index(self, params: Mapping[str, Any]) -> int:
        """The index the next call with ``params`` will get."""
        if self.index_by == "tool":
            return len(self._calls)
        return self._per_key.get(params_key(params), 0)

    def data_for(self, action: Action, context: ToolContext, params: Mapping[str, Any]) -> Any:
        """What a call doing ``action`` answers (for ``ok``, ``huge``, ``unserialisable``).

        Public so that a test's reference model can predict answers; ``respond`` is
        called with index ``-1`` here, so a responder that uses the index cannot be
        predicted this way.
        """
        return self._data(action, context, params, -1)

    # -- the tool -------------------------------------------------------------------------

    async def execute(self, ctx: ToolContext, params: Mapping[str, Any]) -> Any:
        key = params_key(params)
        if self.index_by == "tool":
            index = len(self._calls)
        else:
            index = self._per_key.get(key, 0)
            self._per_key[key] = index + 1
        action = self.plan.action_for(index, key)
        position = len(self._calls)
        self._calls.append(CallRecord(index, key, action, dict(params), ctx, anyio.current_time()))
        outcome: CallOutcome = "cancelled"
        error: BaseException | None = None
        try:
            await anyio.sleep(self.plan.latency_for(index))
            if action == "hang":
                await anyio.sleep_forever()
            if action == "fail":
                raise ScriptedFailure(self.tool_type, self.operation, index)
            if action == "invalid":
                raise InvalidParams(
                    self.tool_type, self.operation, "params", f"scripted rejection at call {index}"
                )
            data = self._data(action, ctx, params, index)
            outcome = "ok"
            return data
        except Exception as exc:
            outcome, error = "error", exc
            raise
        finally:
            self._calls[position] = attrs.evolve(
                self._calls[position],
                ended_at=anyio.current_time(),
                outcome=outcome,
                error=error,
            )

    def _data(
        self, action: Action, context: ToolContext, params: Mapping[str, Any], index: int
    ) -> Any:
        if self.respond is not None:
            data = self.respond(context, params, index)
        else:
            data = echo_result(self.tool_type, self.operation, context, params)
        if action == "huge":
            return {"result": data, "padding": "x" * self.plan.huge_size}
        if action == "unserialisable":
            return Unserialisable(f"{self.tool_type}.{self.operation}:{params_key(params)}")
        return data

    def __repr__(self) -> str:
        return f"ScriptedTool({self.tool_type!r}, {self.operation!r}, {self.plan!r})"
