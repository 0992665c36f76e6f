"""What a runtime offers over MCP: one entry per tool, composition and selector intent.

Built once from a started :class:`~runtime.Runtime` (its registry is read-only once it
runs): each :class:`Entry` carries the MCP ``Tool`` listing and what a call runs.  Names
follow :mod:`runtime.mcp.naming`; a clash is refused here, at build time.  Schemas:

* a tool: :func:`runtime.tools.jsonschema.to_json_schema` of its params schema;
* a composition: one property per ``$params.<name>`` its steps reference -- typed as the
  step's tool param when a step passes it on unchanged, open otherwise -- plus its
  ``defaults``, each with its default;
* an intent: the params of its candidates (open: any property) plus ``strategy``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Literal

import attrs
import mcp_types as types

from runtime.mcp.naming import NameClash, composition_tool_name, intent_tool_name, tool_name
from runtime.pipeline import Pipeline, Step
from runtime.pipeline.refs import ParamTemplate
from runtime.runtime import Runtime
from runtime.tools import ToolRegistry, ToolSpec
from runtime.tools.jsonschema import field_json_schema, to_json_schema

__all__ = ["Entry", "build_catalog", "composition_schema", "tool_annotations"]

Kind = Literal["tool", "composition", "intent"]


@attrs.frozen(slots=True)
class Entry:
    """One MCP tool: its listing and what it runs (``target``: (type, op), a name)."""

    kind: Kind
    listing: types.Tool
    target: tuple[str, str] | str

    @property
    def name(self) -> str:
        return self.listing.name


def tool_annotations(spec: ToolSpec) -> types.ToolAnnotations:
    """Readers are read-only and idempotent; tools with side effects are destructive."""
    if spec.side_effects:
        return types.ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=False
        )
    return types.ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)


def _tool_entry(spec: ToolSpec) -> Entry:
    description = spec.description or f"{spec.tool_type}.{spec.operation}"
    listing = types.Tool(
        name=tool_name(spec.tool_type, spec.operation),
        title=f"{spec.tool_type}.{spec.operation}",
        description=description,
        input_schema=to_json_schema(spec),
        annotations=tool_annotations(spec),
    )
    return Entry("tool", listing, spec.key)


def _step_refs(step: Step) -> Iterator[tuple[Step, str, str | None]]:
    """``(step, input name, the step param it feeds as is, if any)`` per ``$params`` ref."""
    if isinstance(step.params, ParamTemplate):
        for where, ref in step.params.references():
            if ref.is_params and ref.path and isinstance(ref.path[0], str):
                fed = where.removeprefix("params.") if len(ref.path) == 1 else None
                yield step, ref.path[0], fed if fed and "." not in fed and "[" not in fed else None
    if step.fallback is not None:
        yield from _step_refs(step.fallback)


def composition_schema(pipeline: Pipeline, registry: ToolRegistry | None = None) -> dict[str, Any]:
    """The inputs of a composition as JSON Schema: each ``$params`` input a step passes on
    unchanged has that tool param's schema; others are open (the steps' tools check them)."""
    properties: dict[str, Any] = {}
    for step in pipeline.iter_steps():
        for owner, name, fed in _step_refs(step):
            typed = None
            if (
                fed is not None
                and registry is not None
                and (owner.tool, owner.operation) in registry
            ):
                typed = field_json_schema(registry.get(owner.tool, owner.operation), fed)
            if typed is not None and "type" not in properties.get(name, {}):
                typed.pop("default", None)
                typed["description"] = f"{owner.tool}.{owner.operation} {fed} (step {owner.name!r})"
                properties[name] = typed
            else:
                properties.setdefault(name, {"description": f"used by step {owner.name!r}"})
    for name, default in pipeline.defaults.items():
        properties.setdefault(name, {})["default"] = default
    return {"type": "object", "properties": properties}


def _composition_entry(name: str, pipeline: Pipeline, registry: ToolRegistry) -> Entry:
    steps = ", ".join(pipeline.step_names)
    description = pipeline.description or f"the composition {name!r}"
    listing = types.Tool(
        name=composition_tool_name(name),
        title=f"composition {name}",
        description=f"{description} (steps: {steps}; reports progress per finished step)",
        input_schema=composition_schema(pipeline, registry),
        annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=False),
    )
    return Entry("composition", listing, name)


def _intent_entry(intent: str, candidates: tuple[str, ...], strategies: tuple[str, ...]) -> Entry:
    listing = types.Tool(
        name=intent_tool_name(intent),
        title=f"intent {intent}",
        description=(
            f"answer the intent {intent!r} with the best of its tools ({', '.join(candidates)}), "
            "falling back to the next one on failure; arguments are that tool's params"
        ),
        input_schema={
            "type": "object",
            "properties": {
                "strategy": {
                    "type": "string",
                    "enum": list(strategies),
                    "description": "how to rank the candidate tools (default: the configured one)",
                }
            },
        },
        annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=False),
    )
    return Entry("intent", listing, intent)


def build_catalog(
    runtime: Runtime, *, compositions: bool = True, intents: bool = True
) -> dict[str, Entry]:
    """Every MCP tool of ``runtime`` by name; raises :class:`NameClash` on a collision."""
    entries: list[Entry] = [_tool_entry(spec) for spec in runtime.registry.specs()]
    if compositions:
        entries += [
            _composition_entry(n, p, runtime.registry)
            for n, p in sorted(runtime.compositions.items())
        ]
    if intents and runtime.selector is not None:
        settings = runtime.selector.settings
        strategies = tuple(sorted(settings.strategies))
        for intent, pairs in sorted(settings.candidates.items()):
            shown = tuple(f"{t}.{op}" for t, op in pairs)
            entries.append(_intent_entry(intent, shown, strategies))
    catalog: dict[str, Entry] = {}
    for entry in entries:
        if entry.name in catalog:
            raise NameClash(entry.name, _describe(catalog[entry.name]), _describe(entry))
        catalog[entry.name] = entry
    return catalog


def _describe(entry: Entry) -> str:
    target = entry.target
    shown = f"{target[0]}.{target[1]}" if isinstance(target, tuple) else target
    return f"{entry.kind} {shown}"


def listing(catalog: Mapping[str, Entry]) -> list[types.Tool]:
    return [entry.listing for entry in catalog.values()]
