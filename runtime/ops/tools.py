"""The nine ops tools as runtime tools, and their registration.

A tool call validates its params first, on the caller's task (pure, no I/O), so a bad
call costs no thread hop and no query; then the handler runs on a worker thread with
that thread's connection — read-only for the eight readers, read-write for
CEP.simulate.  Results are plain JSON-able dicts in the agreed shapes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import attrs

from runtime.errors import InvalidParams
from runtime.ops.ci import ci_aggregate, ci_get, ci_search
from runtime.ops.db import OpsDatabase, Session
from runtime.ops.graph import graph_expand, graph_path
from runtime.ops.history import event_log
from runtime.ops.metrics import metric_aggregate, metric_series
from runtime.ops.params import PARAMS_SCHEMAS, validate_params
from runtime.ops.simulate import cep_simulate
from runtime.ops.timerange import parse_iso
from runtime.tools import ToolContext, ToolRegistry

__all__ = [
    "TOOL_DEFS",
    "OpsTool",
    "ToolDef",
    "check_across_fields",
    "check_ops_params",
    "register_ops_tools",
]

Handler = Callable[[Session, Mapping[str, Any], ToolContext], dict[str, Any]]


def _reader(function: Callable[[Session, Mapping[str, Any]], dict[str, Any]]) -> Handler:
    def handler(session: Session, params: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
        return function(session, params)

    return handler


def _simulate(session: Session, params: Mapping[str, Any], ctx: ToolContext) -> dict[str, Any]:
    return cep_simulate(session, params, tenant_id=ctx.tenant_id)


@attrs.frozen(slots=True)
class ToolDef:
    """What one ops tool is: its handler, whether it writes, and how to describe it."""

    tool_type: str
    operation: str
    handler: Handler
    description: str
    side_effects: bool = False

    @property
    def params_schema(self) -> Mapping[str, Any]:
        return PARAMS_SCHEMAS[(self.tool_type, self.operation)]


TOOL_DEFS: tuple[ToolDef, ...] = (
    ToolDef(
        "CI",
        "search",
        _reader(ci_search),
        "find CIs: keywords ANDed over name, code, type and tags; filters; sort; limit",
    ),
    ToolDef("CI", "get", _reader(ci_get), "one CI by id or by code (record is None if absent)"),
    ToolDef(
        "CI",
        "aggregate",
        _reader(ci_aggregate),
        "count CIs (or distinct values) grouped by a field, top N groups",
    ),
    ToolDef(
        "METRIC",
        "aggregate",
        _reader(metric_aggregate),
        "avg/min/max/sum/count/p95 of a metric over CIs and a time range",
    ),
    ToolDef(
        "METRIC",
        "series",
        _reader(metric_series),
        "one CI's metric over a time range, bucketed (average per bucket)",
    ),
    ToolDef(
        "GRAPH",
        "expand",
        _reader(graph_expand),
        "CIs related to a CI within depth 1-3, with node/edge limits",
    ),
    ToolDef("GRAPH", "path", _reader(graph_path), "shortest relation path between two CIs"),
    ToolDef(
        "HISTORY",
        "event_log",
        _reader(event_log),
        "events of CIs over a time range, newest first, by severity and kind",
    ),
    ToolDef(
        "CEP",
        "simulate",
        _simulate,
        "simulate a stored or inline CEP rule over past metrics; logs every simulation",
        side_effects=True,
    ),
)


@attrs.frozen(slots=True)
class OpsTool:
    """One ops tool bound to a database: ``await tool.execute(ctx, params) -> dict``."""

    definition: ToolDef
    db: OpsDatabase

    async def execute(self, ctx: ToolContext, params: Mapping[str, Any]) -> dict[str, Any]:
        spec = self.definition
        checked = check_ops_params(spec.tool_type, spec.operation, params)
        work = partial(_call, spec.handler, checked, ctx)
        label = f"{spec.tool_type}.{spec.operation}"
        if spec.side_effects:
            return await self.db.write(label, work)
        return await self.db.read(label, work)


def check_ops_params(tool_type: str, operation: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The params checked against the tool's schema, then across fields
    (:func:`check_across_fields`)."""
    checked: dict[str, Any] = validate_params(tool_type, operation, params)
    check_across_fields(tool_type, operation, checked)
    return checked


def check_across_fields(tool_type: str, operation: str, params: Mapping[str, Any]) -> None:
    """What a schema cannot say, on params it already accepted: an explicit ``time_range``
    whose ``from`` is after its ``to`` is ``InvalidParams`` naming both.  The registered
    validator: the executor has checked the schema by then, so it is not checked twice."""
    span = params.get("time_range")
    if isinstance(span, Mapping) and parse_iso(span["from"]) > parse_iso(span["to"]):
        raise InvalidParams(
            tool_type,
            operation,
            "time_range.from",
            f"time_range.from ({span['from']}) is after time_range.to ({span['to']})",
        )


def _call(
    handler: Handler, params: Mapping[str, Any], ctx: ToolContext, session: Session
) -> dict[str, Any]:
    return handler(session, params, ctx)


def register_ops_tools(registry: ToolRegistry, db: OpsDatabase) -> None:
    """Register all nine ops tools, bound to ``db``, with descriptions and params schemas
    (which the executor enforces before any cache work)."""
    for definition in TOOL_DEFS:
        registry.register(
            definition.tool_type,
            definition.operation,
            OpsTool(definition, db),
            description=definition.description,
            side_effects=definition.side_effects,
            params_schema=definition.params_schema,
            validator=partial(check_across_fields, definition.tool_type, definition.operation),
        )
