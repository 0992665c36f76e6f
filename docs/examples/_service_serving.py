"""How the example service is served: uvicorn on asyncio, hypercorn on trio, N workers.

The app itself (routes, errors, the runtime's lifespan) is :mod:`asgi_app`; this module
only starts servers around it and stops them at SIGINT/SIGTERM:

* the first signal starts draining (:class:`~_service_guard.ServiceGuard`: every answer
  says ``Connection: close``); once drained the server stops accepting, finishes the
  requests in flight, and the runtime stops after it (a second signal stops at once);
* hypercorn exits as soon as no request is left, not at its graceful timeout;
* ``--workers N``: N processes (under uvicorn on Linux, one socket each), each importing
  ``asgi_app:app`` and starting its own runtime, with the settings in ``RUNTIME_*`` variables.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import math
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import anyio
import attrs

try:  # imported as docs.examples._service_serving
    from ._reuseport import serve_uvicorn_workers
    from ._service_guard import GuardSettings, ServiceGuard
except ImportError:  # run as a script: docs/examples is on sys.path
    from _reuseport import serve_uvicorn_workers
    from _service_guard import GuardSettings, ServiceGuard

__all__ = [
    "build_parser",
    "guard_settings",
    "serve_hypercorn_trio",
    "serve_uvicorn",
    "serve_workers",
]

log = logging.getLogger("runtime.example")

HERE = Path(__file__).resolve().parent
AppFactory = Callable[[ServiceGuard], Any]
"""Builds the ASGI app behind a given guard (``asgi_app.create_app`` with the settings)."""


def build_parser(default_database: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="The runtime as an HTTP service.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--trio", action="store_true", help="serve with hypercorn on trio")
    parser.add_argument("--database", type=Path, help=f"CMDB path (default {default_database})")
    parser.add_argument("--cis", type=int, help="CIs in a database built on start (100)")
    parser.add_argument("--days", type=int, help="days of metrics in a database built on start")
    parser.add_argument("--seed", type=int, help="generator seed of a database built on start")
    parser.add_argument("--config", type=Path, help="a runtime configuration YAML file")
    parser.add_argument("--demo-tools", action="store_true", help="also register DEMO.sleep")
    parser.add_argument("--graceful-timeout", type=float, default=10.0, metavar="SECONDS")
    parser.add_argument("--max-in-flight", type=int, metavar="N", help="default 512")
    parser.add_argument("--request-deadline", type=float, metavar="SECONDS", help="default 60")
    parser.add_argument("--access-log", action="store_true", help="one log line per request")
    parser.add_argument(
        "--workers", type=int, default=1, help="worker processes, each with its own runtime"
    )
    return parser


def guard_settings(args: argparse.Namespace, base: GuardSettings) -> GuardSettings:
    """``base`` with the admission options given on the command line."""
    return attrs.evolve(
        base,
        max_in_flight=base.max_in_flight if args.max_in_flight is None else args.max_in_flight,
        deadline_s=base.deadline_s if args.request_deadline is None else args.request_deadline,
        access_log=args.access_log or base.access_log,
    )


def serve_uvicorn(
    make_app: AppFactory, guarded: GuardSettings, host: str, port: int, graceful_timeout: float
) -> None:
    """uvicorn on asyncio.  The first SIGINT/SIGTERM starts draining (every answer says
    ``Connection: close``) and, once drained, hands over to uvicorn's own graceful stop
    (stop accepting, finish the requests in flight); the lifespan then stops the runtime."""
    import uvicorn

    guard = ServiceGuard(guarded)
    config = uvicorn.Config(
        make_app(guard),
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=math.ceil(graceful_timeout),
    )

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig: int, frame: Any) -> None:
            if guard.draining:  # a second signal: no more waiting for the drain
                super().handle_exit(sig, frame)
                return
            log.info("got %s: draining, then finishing the requests in flight", sig)
            guard.begin_draining()
            threading.Thread(target=self._exit_when_drained, args=(sig,)).start()

        def _exit_when_drained(self, sig: int) -> None:
            guard.wait_drained()
            super().handle_exit(sig, None)

    # uvicorn finishes the requests in flight on SIGINT/SIGTERM, then re-raises the signal
    # under the handlers it found: make those no-ops so a graceful stop exits with status 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    DrainingServer(config).run()


async def serve_hypercorn_trio(
    make_app: AppFactory,
    lifespan: Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]],
    guarded: GuardSettings,
    host: str,
    port: int,
    graceful_timeout: float,
) -> None:
    """hypercorn on trio.  This process runs the runtime's ``lifespan(app)`` itself, around
    the server (``make_app`` builds an app without one): at SIGINT/SIGTERM the guard
    drains, hypercorn stops accepting and finishes the requests in flight, and as soon as
    none is left the server is cancelled -- instead of waiting out ``graceful_timeout`` for
    idle connections -- then the runtime stops."""
    from hypercorn.config import Config
    from hypercorn.trio import serve

    config = Config()
    config.bind = [f"{host}:{port}"]
    config.graceful_timeout = graceful_timeout
    config.accesslog = None
    logging.getLogger("hypercorn.error").propagate = False  # it has its own handler
    guard = ServiceGuard(guarded)
    stopping = anyio.Event()

    async def shutdown_on_signal() -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                name = signal.Signals(signum).name
                log.info("got %s: draining, then finishing the requests in flight", name)
                break
        guard.begin_draining()
        await guard.drained()
        stopping.set()

    async def cancel_once_answered(serving: anyio.CancelScope) -> None:
        await stopping.wait()
        with anyio.move_on_after(graceful_timeout):
            await guard.idle()
        await anyio.sleep(0.05)  # the last answers leave their sockets
        serving.cancel()

    service = make_app(guard)
    async with lifespan(service) as state:
        guard.state = state
        async with anyio.create_task_group() as group:
            group.start_soon(cancel_once_answered, group.cancel_scope)
            await serve(service, config, shutdown_trigger=shutdown_on_signal)
            group.cancel_scope.cancel()


def serve_workers(
    args: argparse.Namespace, environment: Mapping[str, str], prepare: Callable[[], object]
) -> int:
    """``--workers N``: N processes accept on one socket, each with its own runtime.

    They share nothing but the CMDB file and, when ``cache.redis`` is configured, the
    Redis tier (values and cross-replica single-flight, docs/redis.md).  Each worker builds
    the module-level ``app`` from the environment, so the settings travel there in
    ``environment``; ``prepare`` builds the CMDB here, once, before workers could race to.
    """
    prepare()
    os.environ.update(environment)
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
        sys.path.insert(0, str(HERE))  # spawned workers import the app by this path
        return run(config)
    if sys.platform == "linux":
        # A listening socket per worker (SO_REUSEPORT): the kernel spreads connections
        # over the workers, where uvicorn's one shared socket lets one worker take a whole
        # burst of them (see _reuseport).
        return serve_uvicorn_workers(
            "asgi_app:app", str(HERE), args.host, args.port, args.workers, args.graceful_timeout
        )
    import uvicorn

    options: dict[str, Any] = {}
    if "timeout_worker_healthcheck" in inspect.signature(uvicorn.run).parameters:
        # Newer uvicorns restart a worker silent for 5 s; importing and starting a runtime
        # on a loaded host can take longer than that.
        options["timeout_worker_healthcheck"] = 60
    uvicorn.run(
        "asgi_app:app",
        app_dir=str(HERE),
        host=args.host,
        port=args.port,
        workers=args.workers,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=math.ceil(args.graceful_timeout),
        **options,
    )
    return 0
