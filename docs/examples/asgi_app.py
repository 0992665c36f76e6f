"""The runtime inside a real ASGI service: ask by intent, run compositions, stats, traces.

One Starlette app, written against anyio only, so the same module is served two ways::

    python docs/examples/asgi_app.py --port 8000          # uvicorn, on asyncio
    python docs/examples/asgi_app.py --trio --port 8000   # hypercorn's trio worker
    uvicorn docs.examples.asgi_app:app --port 8000        # the module-level app
    python docs/examples/asgi_app.py --workers 2 [--trio]  # N processes, a runtime each

The runtime lives in the app's *lifespan*: it starts (with the nine ops tools over the
sample CMDB, built on first start if absent) before the first request is accepted, and it
stops -- every actor task with it -- after the server has finished the requests in flight.
Requests talk to it from their own tasks; nothing is spawned outside the runtime's task
group.

Endpoints (JSON in, JSON out)::

    POST /ask      {intent, params, tenant, strategy?}   -> the best candidate's answer
    POST /execute  {tool, operation, params, tenant}     -> one tool call
    POST /compose  {name, params, tenant}                -> a named composition's result
    GET  /stats                                          -> cache, tracer and actor health
    GET  /traces?format=json|jsonl|csv                   -> the buffered trace records
    GET  /healthz                                        -> 200 when every actor is up, else 503

Errors are JSON ``{"error": <type>, "message": <the runtime's message>}``: a malformed
request is 400; bad input the runtime rejected (``InvalidParams``, ``ConfigError``,
``UnknownIntent``, an unknown composition or strategy) is 422; an unknown tool is 404; a
tool that failed is 502, one that timed out 504.

Settings come from arguments, or from the environment for ``uvicorn module:app``:
``RUNTIME_CMDB`` (database path, default ``var/example-cmdb.sqlite``), ``RUNTIME_CMDB_CIS``
/ ``RUNTIME_CMDB_DAYS`` (size of a database built on start), ``RUNTIME_CONFIG`` (a YAML
configuration file) and ``RUNTIME_DEMO_TOOLS=1`` (also register ``DEMO.sleep``, a tool that
sleeps, for trying timeouts and graceful shutdown).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import attrs
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from runtime import (
    ActorUnavailable,
    AllCandidatesFailed,
    ConfigError,
    InvalidParams,
    PipelineError,
    Runtime,
    RuntimeConfig,
    ToolContext,
    ToolExecutionError,
    ToolNotFound,
    ToolRegistry,
    ToolTimeout,
    UnknownIntent,
    load_config,
    open_runtime,
)
from runtime.ops import OpsDatabase, ensure_database, register_ops_tools

__all__ = ["ServiceSettings", "app", "create_app", "main"]

log = logging.getLogger("runtime.example")

DEFAULT_DATABASE = "var/example-cmdb.sqlite"
TRACE_MEDIA_TYPES = {"json": "application/json", "jsonl": "application/x-ndjson", "csv": "text/csv"}
MAX_SLEEP_S = 30.0


@attrs.frozen(slots=True)
class ServiceSettings:
    """Where the CMDB lives, how big to build it, and how to configure the runtime."""

    database: Path = Path(DEFAULT_DATABASE)
    cis: int = 100
    days: int = 2
    seed: int = 42
    config: RuntimeConfig = attrs.field(factory=RuntimeConfig)
    demo_tools: bool = False

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServiceSettings:
        config_path = environ.get("RUNTIME_CONFIG")
        return cls(
            database=Path(environ.get("RUNTIME_CMDB", DEFAULT_DATABASE)),
            cis=int(environ.get("RUNTIME_CMDB_CIS", "100")),
            days=int(environ.get("RUNTIME_CMDB_DAYS", "2")),
            config=load_config(config_path) if config_path else RuntimeConfig(),
            demo_tools=environ.get("RUNTIME_DEMO_TOOLS", "") == "1",
        )


# -- errors -------------------------------------------------------------------------------


class BadRequest(Exception):
    """The request itself is malformed (not JSON, missing or mistyped fields)."""


def error_status(exc: BaseException) -> int:
    """The HTTP status for an error the runtime raised (the order of the checks matters:
    the classes overlap -- ``InvalidParams`` is a ``ToolExecutionError``, ``ToolNotFound``
    and ``UnknownIntent`` are ``LookupError``s)."""
    if isinstance(exc, BadRequest):
        return 400
    if isinstance(exc, ToolNotFound):
        return 404
    if isinstance(exc, InvalidParams | ConfigError | UnknownIntent | LookupError | ValueError):
        return 422
    if isinstance(exc, AllCandidatesFailed):
        # Every candidate refused the params: the caller's input is at fault, not a tool.
        if exc.attempts and all(isinstance(e, InvalidParams) for _, _, e in exc.attempts):
            return 422
        return 502
    if isinstance(exc, PipelineError):
        return error_status(exc.cause) if isinstance(exc.cause, InvalidParams) else 502
    if isinstance(exc, ToolTimeout):
        return 504
    if isinstance(exc, ToolExecutionError):
        return 502
    if isinstance(exc, ActorUnavailable):
        return 503
    return 500


def error_body(exc: BaseException) -> dict[str, Any]:
    body: dict[str, Any] = {"error": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, InvalidParams):
        body["param"] = exc.param
    if isinstance(exc, ConfigError):
        body["path"] = exc.path
    if isinstance(exc, ToolExecutionError):
        body["tool"] = f"{exc.tool_type}.{exc.operation}"
        body["error_type"] = exc.error_type
    if isinstance(exc, AllCandidatesFailed):
        body["attempts"] = failures(exc.attempts)
    if isinstance(exc, PipelineError):
        body["step"] = exc.step
        if hasattr(exc.partial, "to_dict"):
            body["partial"] = exc.partial.to_dict()
    return body


def json_response(content: Any, status_code: int = 200) -> Response:
    # default=str: a tool may answer values JSON has no type for (dates, decimals).
    text = json.dumps(content, default=str, separators=(",", ":"))
    return Response(text, status_code=status_code, media_type="application/json")


Endpoint = Callable[[Request], Awaitable[Response]]


def answers_errors(endpoint: Endpoint) -> Endpoint:
    """Turn the runtime's deliberate errors into JSON responses; anything else is a 500."""

    async def wrapped(request: Request) -> Response:
        try:
            return await endpoint(request)
        except ClientDisconnect:
            # The client left before its body arrived: routine under load, and nobody
            # will read an answer (499, nginx's "client closed request").
            return Response(status_code=499)
        except Exception as exc:
            status = error_status(exc)
            if status == 500:
                log.exception("unexpected error serving %s", request.url.path)
            return json_response(error_body(exc), status)

    return wrapped


# -- request parsing -------------------------------------------------------------------------


async def read_body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from exc
    except RecursionError:
        # json gives up on nesting deeper than the interpreter's recursion limit.
        raise BadRequest("the body is not valid JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest(f"the body must be a JSON object, got {type(body).__name__}")
    return body


def field(body: Mapping[str, Any], name: str, kind: type, default: Any = ...) -> Any:
    if name not in body:
        if default is ...:
            raise BadRequest(f"missing field {name!r}")
        return default
    value = body[name]
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise BadRequest(f"field {name!r} must be a non-empty {kind.__name__}")
    return value


def context_of(body: Mapping[str, Any], request: Request) -> ToolContext:
    return ToolContext(
        tenant_id=field(body, "tenant", str),
        request_id=request.headers.get("x-request-id"),
    )


def runtime_of(request: Request) -> Runtime:
    rt: Runtime = request.state.runtime
    return rt


# -- endpoints ---------------------------------------------------------------------------------


@answers_errors
async def ask(request: Request) -> Response:
    body = await read_body(request)
    intent = field(body, "intent", str)
    params = field(body, "params", dict, {})
    strategy = field(body, "strategy", str, None)
    best = await runtime_of(request).execute_best(
        intent, params, context_of(body, request), strategy=strategy
    )
    return json_response(
        {
            "data": best.data,
            "tool": best.tool_type,
            "operation": best.operation,
            "confidence": best.chosen.confidence,
            "fallback_used": best.fallback_used,
            "attempts": failures(best.attempts),
            "skipped": failures(best.skipped),
        }
    )


def failures(entries: tuple[tuple[str, str, BaseException], ...]) -> list[dict[str, str]]:
    return [
        {"tool": f"{tool}.{op}", "error": type(e).__name__, "message": str(e)}
        for tool, op, e in entries
    ]


@answers_errors
async def execute(request: Request) -> Response:
    body = await read_body(request)
    data = await runtime_of(request).execute(
        field(body, "tool", str),
        field(body, "operation", str),
        field(body, "params", dict, {}),
        context_of(body, request),
    )
    return json_response({"data": data})


@answers_errors
async def compose(request: Request) -> Response:
    body = await read_body(request)
    result = await runtime_of(request).compose(
        field(body, "name", str), field(body, "params", dict, {}), context_of(body, request)
    )
    return json_response(result.to_dict())


@answers_errors
async def stats(request: Request) -> Response:
    rt = runtime_of(request)
    cache: dict[str, Any] | None = None
    if rt.cache is not None:
        try:
            cache = (await rt.cache.stats()).to_dict()
        except ActorUnavailable as exc:  # degraded: calls bypass a dead cache
            cache = {"unavailable": str(exc)}
    tracer: dict[str, Any] | None = None
    if rt.tracer is not None:
        try:
            tracer = (await rt.tracer.tracer_stats()).to_dict()
        except ActorUnavailable as exc:
            tracer = {"unavailable": str(exc)}
    return json_response(
        {
            "cache": cache,
            "tracer": tracer,
            "health": health_dict(rt),
            "running_pipelines": rt.running_pipelines,
        }
    )


def health_dict(rt: Runtime) -> dict[str, Any]:
    health = rt.health()
    return {
        "ok": health.ok,
        "down": dict(health.down),
        "crashes": dict(health.crashes),
        "actors": {name: attrs.asdict(actor) for name, actor in health.actors.items()},
    }


@answers_errors
async def traces(request: Request) -> Response:
    rt = runtime_of(request)
    fmt = request.query_params.get("format", "json")
    if fmt not in TRACE_MEDIA_TYPES:
        raise BadRequest(f"format must be one of {', '.join(TRACE_MEDIA_TYPES)}, got {fmt!r}")
    if rt.tracer is None:
        raise LookupError("the tracer is disabled (tracer.enabled is false)")
    text = await rt.tracer.export(fmt)
    return PlainTextResponse(text, media_type=TRACE_MEDIA_TYPES[fmt])


async def healthz(request: Request) -> Response:
    body = health_dict(runtime_of(request))
    return json_response({"ok": body["ok"], "down": body["down"]}, 200 if body["ok"] else 503)


# -- the app --------------------------------------------------------------------------------------


def register_demo_tools(registry: ToolRegistry) -> None:
    """``DEMO.sleep {seconds, tag?}``: sleeps, then answers ``{"slept", "tag"}``."""

    @registry.tool("DEMO", "sleep", description="sleep for `seconds` (at most 30), then answer")
    async def sleep(ctx: ToolContext, params: Mapping[str, Any]) -> dict[str, Any]:
        seconds = params.get("seconds", 0)
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise InvalidParams("DEMO", "sleep", "seconds", "must be a number")
        if not 0 <= seconds <= MAX_SLEEP_S:
            raise InvalidParams("DEMO", "sleep", "seconds", f"must be in [0, {MAX_SLEEP_S:g}]")
        await anyio.sleep(seconds)
        return {"slept": seconds, "tag": params.get("tag")}


def create_app(settings: ServiceSettings | None = None) -> Starlette:
    """The service; ``settings`` default to :meth:`ServiceSettings.from_env` at start-up."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        chosen = settings if settings is not None else ServiceSettings.from_env()
        build = partial(
            ensure_database, chosen.database, cis=chosen.cis, days=chosen.days, seed=chosen.seed
        )
        summary = await anyio.to_thread.run_sync(build)
        log.info("CMDB at %s (%d CIs, built now: %s)", summary.path, summary.cis, summary.built)
        db = await OpsDatabase.open(chosen.database)
        try:
            registry = ToolRegistry()
            register_ops_tools(registry, db)
            if chosen.demo_tools:
                register_demo_tools(registry)
            async with open_runtime(registry, chosen.config) as rt:
                yield {"runtime": rt}
                log.info("shutting the runtime down")
            # Every actor task lived in the runtime's task group, which has now exited.
            still_running = [name for name, a in rt.health().actors.items() if a.running]
            log.info("runtime stopped; actors still running: %d", len(still_running))
        finally:
            db.close()

    routes = [
        Route("/ask", ask, methods=["POST"]),
        Route("/execute", execute, methods=["POST"]),
        Route("/compose", compose, methods=["POST"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/traces", traces, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan, max_body_size=1 << 20)


app = create_app()
"""For ``uvicorn docs.examples.asgi_app:app``: settings from the environment."""


# -- serving -------------------------------------------------------------------------------------


def serve_uvicorn(service: Starlette, host: str, port: int, graceful_timeout: float) -> None:
    import uvicorn

    config = uvicorn.Config(
        service,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=math.ceil(graceful_timeout),
    )
    # uvicorn finishes the requests in flight on SIGINT/SIGTERM, then re-raises the signal
    # under the handlers it found: make those no-ops so a graceful stop exits with status 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    uvicorn.Server(config).run()


async def serve_hypercorn_trio(
    service: Starlette, host: str, port: int, graceful_timeout: float
) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = graceful_timeout
    config.accesslog = None
    logging.getLogger("hypercorn.error").propagate = False  # it has its own handler

    async def shutdown_on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("got %s: finishing the requests in flight", signal.Signals(signum).name)
                return

    # Starlette is an ASGI 3 app; hypercorn's annotation spells out its own scope types.
    await serve(service, config, shutdown_trigger=shutdown_on_signal)  # type: ignore[arg-type]


def serve_workers(args: argparse.Namespace, settings: ServiceSettings) -> int:
    """``--workers N``: N processes accept on one socket, each with its own runtime.

    They share nothing but the CMDB file and, when ``cache.redis`` is configured, the
    Redis tier (values and cross-replica single-flight, docs/redis.md).  Each worker builds
    the module-level ``app`` from the environment, so the settings travel there; the CMDB
    is built here, once, before the workers could race to build it.
    """
    ensure_database(settings.database, cis=settings.cis, days=settings.days, seed=settings.seed)
    os.environ["RUNTIME_CMDB"] = str(settings.database.resolve())
    if args.config:
        os.environ["RUNTIME_CONFIG"] = str(args.config.resolve())
    if settings.demo_tools:
        os.environ["RUNTIME_DEMO_TOOLS"] = "1"
    here = str(Path(__file__).resolve().parent)
    if args.trio:
        from hypercorn.config import Config
        from hypercorn.run import run

        config = Config()
        config.bind = [f"{args.host}:{args.port}"]
        config.workers = args.workers
        config.worker_class = "trio"
        config.application_path = "asgi_app:app"
        config.graceful_timeout = args.graceful_timeout
        config.accesslog = None
        sys.path.insert(0, here)  # spawned workers import the app by this path
        return run(config)
    import inspect

    import uvicorn

    options: dict[str, Any] = {}
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.run).parameters:
        # Newer uvicorns restart a worker silent for 5 s; importing and starting a runtime
        # on a loaded host can take longer than that.
        options["timeout_worker_healthcheck"] = 60
    uvicorn.run(
        "asgi_app:app",
        app_dir=here,
        host=args.host,
        port=args.port,
        workers=args.workers,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=math.ceil(args.graceful_timeout),
        **options,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The runtime as an HTTP service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--trio", action="store_true", help="serve with hypercorn on trio")
    parser.add_argument("--database", type=Path, help=f"CMDB path (default {DEFAULT_DATABASE})")
    parser.add_argument("--cis", type=int, help="CIs in a database built on start")
    parser.add_argument("--days", type=int, help="days of metrics in a database built on start")
    parser.add_argument("--seed", type=int, help="generator seed of a database built on start")
    parser.add_argument("--config", type=Path, help="a runtime configuration YAML file")
    parser.add_argument("--demo-tools", action="store_true", help="also register DEMO.sleep")
    parser.add_argument("--graceful-timeout", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes, each with its own runtime"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = ServiceSettings.from_env()
    settings = attrs.evolve(
        settings,
        database=args.database or settings.database,
        cis=args.cis or settings.cis,
        days=args.days or settings.days,
        seed=args.seed if args.seed is not None else settings.seed,
        config=load_config(args.config) if args.config else settings.config,
        demo_tools=args.demo_tools or settings.demo_tools,
    )
    if args.workers > 1:
        return serve_workers(args, settings)
    service = create_app(settings)
    if args.trio:
        anyio.run(
            serve_hypercorn_trio, service, args.host, args.port, args.graceful_timeout,
            backend="trio",
        )  # fmt: skip
    else:
        serve_uvicorn(service, args.host, args.port, args.graceful_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
