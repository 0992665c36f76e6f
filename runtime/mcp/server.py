"""The runtime as an MCP server: every tool, composition and intent, served through it.

:func:`create_server` builds an ``mcp`` low-level ``Server`` from a started
:class:`~runtime.Runtime`; any transport of the SDK serves it (in-memory, stdio,
streamable HTTP: :mod:`runtime.mcp.http`).  Contract:

* ``tools/call`` goes through the runtime's public API (``execute``, ``compose``,
  ``execute_best``): cache, selector and tracer apply as in-process;
* a tool's failure is a result with ``isError`` and one sentence; invalid arguments name
  the parameter path; an unknown tool is a protocol error (``INVALID_PARAMS``).  Nothing
  is logged for these;
* the tenant is the server's (:class:`ServerSettings`) or, when bearer tokens are
  configured and the request came over HTTP, the token's -- never an argument;
* a ``traceparent`` in the request's ``_meta`` parents the call's span (same trace id);
* the client's ``notifications/cancelled`` cancels the handler's scope (the SDK does
  that), so the call's record says ``cancelled``; coalesced callers keep their flight;
* a composition sends ``notifications/progress`` per finished step when asked to.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

import anyio
import attrs
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.server import Server
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError

from runtime.calls import CURRENT_SPAN, CallReport, IdGenerator
from runtime.errors import (
    AllCandidatesFailed,
    InvalidParams,
    RuntimeFault,
    UnknownStrategy,
)
from runtime.mcp.catalog import Entry, build_catalog, listing
from runtime.mcp.naming import parse_traceparent, tenant_for_authorization
from runtime.pipeline import Pipeline
from runtime.runtime import Runtime
from runtime.tools import ToolContext

__all__ = ["ServerSettings", "Unauthorized", "create_server"]

_MAX_MESSAGE = 500


def _tokens(tokens: Mapping[str, str]) -> dict[str, str]:
    return dict(tokens)


@attrs.frozen(slots=True)
class ServerSettings:
    """How the MCP face answers: whose tenant, under which name, what it lists.

    ``tokens`` maps bearer tokens to tenants (HTTP only): with any configured, a request
    carrying no known token is refused, and the token's tenant replaces ``tenant``.
    """

    tenant: str = "default"
    tokens: Mapping[str, str] = attrs.field(factory=dict, converter=_tokens)
    name: str = "runtime"
    version: str = "0.1.0"
    compositions: bool = True
    intents: bool = True


class Unauthorized(MCPError):
    """A request over HTTP without a known bearer token, when tokens are configured."""

    def __init__(self) -> None:
        super().__init__(types.INVALID_REQUEST, "unauthorized: a known bearer token is required")


def create_server(runtime: Runtime, settings: ServerSettings | None = None) -> Server[Any]:
    """An MCP ``Server`` answering ``tools/list`` and ``tools/call`` from ``runtime``."""
    face = _Face(runtime, settings if settings is not None else ServerSettings())
    return Server(
        face.settings.name,
        version=face.settings.version,
        instructions=(
            "Tools of an operations assistant (CMDB, metrics, topology, events, CEP "
            "simulation), with cached results; compose_* run compositions, intent_* "
            "pick the best tool for an intent."
        ),
        on_list_tools=face.list_tools,
        on_call_tool=face.call_tool,
        # Without it the SDK's HTTP transport runs (and serializes) tools/list on every
        # tools/call to check Mcp-Param headers: a third of a hit's server time.
        get_tool_input_schema=face.input_schema,
    )


def _ok(data: Any, meta: dict[str, Any] | None = None) -> types.CallToolResult:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), default=str)
    structured = dict(data) if isinstance(data, Mapping) else None
    return types.CallToolResult(
        content=[types.TextContent(text=text)], structured_content=structured, _meta=meta
    )


def _error(message: str) -> types.CallToolResult:
    line = " ".join(message.split())
    if len(line) > _MAX_MESSAGE:
        line = line[: _MAX_MESSAGE - 3] + "..."
    return types.CallToolResult(content=[types.TextContent(text=line)], is_error=True)


def _sentence(exc: BaseException) -> str:
    if isinstance(exc, InvalidParams):
        return (
            f"Invalid arguments for {exc.tool_type}.{exc.operation}: "
            f"param {exc.param!r} {exc.problem}."
        )
    if isinstance(exc, UnknownStrategy):
        return f"Invalid arguments: param 'strategy' {exc}."
    text = str(exc) or type(exc).__name__
    return text if text.endswith(".") else text + "."


class _Face:
    def __init__(self, runtime: Runtime, settings: ServerSettings) -> None:
        self.runtime = runtime
        self.settings = settings
        self.catalog = build_catalog(
            runtime, compositions=settings.compositions, intents=settings.intents
        )
        self._tools = listing(self.catalog)

    async def list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        return types.ListToolsResult(tools=list(self._tools))

    def input_schema(self, name: str) -> Mapping[str, Any] | None:
        """The listed ``inputSchema`` of tool ``name`` (``None`` for an unknown tool)."""
        entry = self.catalog.get(name)
        return None if entry is None else entry.listing.input_schema

    def tenant(self, ctx: ServerRequestContext[Any, Any]) -> str:
        """The server's tenant, or over HTTP with tokens configured, the bearer token's."""
        if not self.settings.tokens:
            return self.settings.tenant
        headers = getattr(ctx.request, "headers", None)
        if headers is None:  # stdio, in-memory: the process owner is the principal
            return self.settings.tenant
        tenant = tenant_for_authorization(headers.get("authorization"), self.settings.tokens)
        if tenant is None:
            raise Unauthorized()
        return tenant

    async def call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult:
        entry = self.catalog.get(params.name)
        if entry is None:
            raise MCPError(
                types.INVALID_PARAMS,
                f"unknown tool {params.name!r}: tools/list names the {len(self.catalog)} "
                "tools of this server",
            )
        arguments: dict[str, Any] = dict(params.arguments or {})
        context = ToolContext(
            tenant_id=self.tenant(ctx),
            request_id=None if ctx.request_id is None else str(ctx.request_id),
        )
        meta: Mapping[str, Any] = ctx.meta or {}
        parent = parse_traceparent(meta.get("traceparent"))
        token = CURRENT_SPAN.set(parent) if parent is not None else None
        try:
            return await self._run(ctx, entry, arguments, context)
        except RuntimeFault as exc:
            return _error(_sentence(exc))
        finally:
            if token is not None:
                CURRENT_SPAN.reset(token)

    async def _run(
        self,
        ctx: ServerRequestContext[Any, Any],
        entry: Entry,
        arguments: dict[str, Any],
        context: ToolContext,
    ) -> types.CallToolResult:
        target = entry.target
        if entry.kind == "tool":
            assert isinstance(target, tuple)
            return _ok(await self.runtime.execute(target[0], target[1], arguments, context))
        assert isinstance(target, str)
        if entry.kind == "intent":
            return await self._intent(target, arguments, context)
        return await self._compose(ctx, target, arguments, context)

    async def _intent(
        self, intent: str, arguments: dict[str, Any], context: ToolContext
    ) -> types.CallToolResult:
        strategy = arguments.pop("strategy", None)
        if strategy is not None and not isinstance(strategy, str):
            got = type(strategy).__name__
            return _error(f"Invalid arguments: param 'strategy' must be a string, got {got}.")
        try:
            best = await self.runtime.execute_best(intent, arguments, context, strategy=strategy)
        except AllCandidatesFailed as exc:
            tried = "; ".join(f"{t}.{op}: {_sentence(e)}" for t, op, e in exc.attempts)
            return _error(f"No tool could answer the intent {intent!r}: {tried}")
        chosen: dict[str, Any] = {
            "runtime/chosen": f"{best.tool_type}.{best.operation}",
            "runtime/fallback_used": best.fallback_used,
        }
        return _ok(best.data, chosen)

    async def _compose(
        self,
        ctx: ServerRequestContext[Any, Any],
        name: str,
        arguments: dict[str, Any],
        context: ToolContext,
    ) -> types.CallToolResult:
        if self.runtime.closed:
            return _error("The runtime is closed.")
        pipeline = self.runtime.compositions[name]
        send, receive = anyio.create_memory_object_stream[str](len(pipeline.step_names) * 4)
        executor = _ProgressExecutor(self.runtime.executor, pipeline, send)
        async with anyio.create_task_group() as group:
            group.start_soon(_relay_progress, ctx, receive, len(pipeline.step_names))
            try:
                with send:
                    # Runtime.compose: counted in running_pipelines, config's deadline
                    # and concurrency cap, the runtime's retry jitter source.
                    result = await self.runtime.compose(
                        pipeline, arguments, context, executor=executor
                    )
            except RuntimeFault as exc:  # PipelineError, or the runtime closed meanwhile
                return _error(_sentence(exc))
        return _ok(result.to_dict())


class _ProgressExecutor:
    """The runtime's executor, also telling a composition's caller of finished steps."""

    def __init__(self, inner: Any, pipeline: Pipeline, send: MemoryObjectSendStream[str]) -> None:
        self.inner = inner
        self.ids: IdGenerator = inner.ids
        self._steps = frozenset(pipeline.step_names)
        self._pipeline = pipeline.name
        self._send = send

    async def execute(
        self,
        tool_type: str,
        operation: str,
        params: Mapping[str, Any],
        context: ToolContext,
        *,
        timeout: float | None = None,
    ) -> Any:
        return await self.inner.execute(tool_type, operation, params, context, timeout=timeout)

    def report(self, report: CallReport) -> None:
        self.inner.report(report)
        is_step = report.kind == "step" and report.tool_type == self._pipeline
        if is_step and report.operation in self._steps and report.metadata.get("role") == "step":
            # Progress is a courtesy: it never blocks or fails the run.
            with contextlib.suppress(
                anyio.WouldBlock, anyio.ClosedResourceError, anyio.BrokenResourceError
            ):
                self._send.send_nowait(f"step {report.operation}: {report.status}")


async def _relay_progress(
    ctx: ServerRequestContext[Any, Any], receive: MemoryObjectReceiveStream[str], total: int
) -> None:
    done = 0
    async with receive:
        async for message in receive:
            done += 1
            try:
                await ctx.session.report_progress(done, total, message)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the client is gone; the run goes on and its result is dropped
