"""Shared pieces of the MCP tests: a registry of ops tools plus probe tools, and a gate.

``add_probe_tools`` registers, next to the nine ops tools:

* ``PROBE.wait`` -- counts its executions, then waits for ``gate.release`` (the
  cancellation and coalescing tests hold calls in flight with it);
* ``PROBE.fail`` -- raises ``RuntimeError("disk on fire")``;
* ``PROBE.free`` -- no params schema at all (its inputSchema must be ``{"type":
  "object"}``), echoes its params.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from runtime import ToolContext, ToolRegistry


class Gate:
    """Holds ``PROBE.wait`` calls until released; counts how many ran the tool."""

    def __init__(self) -> None:
        self.release = anyio.Event()
        self.started = anyio.Event()
        self.executions = 0
        self.tenants: list[str] = []

    async def wait_tool(self, ctx: ToolContext, params: Mapping[str, Any]) -> dict[str, Any]:
        self.executions += 1
        self.tenants.append(ctx.tenant_id)
        self.started.set()
        await self.release.wait()
        return {"key": params.get("key"), "tenant": ctx.tenant_id}


async def _fail(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
    raise RuntimeError("disk on fire")


async def _free(ctx: ToolContext, params: Mapping[str, Any]) -> Any:
    return {"echo": dict(params)}


def add_probe_tools(registry: ToolRegistry, gate: Gate) -> None:
    registry.register(
        "PROBE",
        "wait",
        gate.wait_tool,
        description="waits for the test's gate",
        params_schema={"type": "object", "fields": {"key": {"type": "str", "max_length": 20}}},
    )
    registry.register("PROBE", "fail", _fail, description="always fails")
    registry.register("PROBE", "free", _free)
