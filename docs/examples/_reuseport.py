"""``asgi_app.py --workers N`` under uvicorn: N processes, a listening socket each.

uvicorn's own ``--workers`` binds one socket in the parent and shares it, and asyncio's
accept loop takes every pending connection at each wake-up: a burst of keep-alive
connections (a load balancer's pool, a load generator) lands on one worker while the
others idle -- measured here, one worker took all of ``wrk``'s 32 connections. So each
worker binds its own socket on the same port with ``SO_REUSEPORT`` and the kernel hashes
every new connection to one of them.

The parent only supervises: SIGINT/SIGTERM is passed to every worker, each finishes its
requests in flight (uvicorn's graceful stop) and stops its runtime; the parent exits 0 when
they all did.  A worker that dies is not restarted (run the service under a supervisor
that restarts it, as the deployment recipe in docs/examples/README.md says).  Linux (and
the BSDs) only: ``SO_REUSEPORT`` balances this way nowhere else.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import signal
import socket
import sys
from typing import Any

__all__ = ["reuseport_socket", "serve_uvicorn_workers"]


def serve_uvicorn_workers(
    app: str, app_dir: str, host: str, port: int, workers: int, graceful_timeout: float
) -> int:
    """Run ``workers`` uvicorn processes serving ``app`` (``module:attribute``) on one port."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(
            target=_worker,
            args=(app, app_dir, host, port, graceful_timeout),
            name=f"uvicorn-worker-{index}",
        )
        for index in range(workers)
    ]
    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.pid is not None and process.exitcode is None:
                os.kill(process.pid, signal.SIGTERM)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    for process in processes:
        process.start()
    if stopping:  # a signal while they started: those started after it must stop too
        stop(signal.SIGTERM, None)
    for process in processes:
        process.join()
    return 0 if all(process.exitcode == 0 for process in processes) else 1


def _worker(app: str, app_dir: str, host: str, port: int, graceful_timeout: float) -> None:
    sys.path.insert(0, app_dir)  # the app is imported by its module path
    import uvicorn

    sock = reuseport_socket(host, port)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        lifespan="on",
        access_log=False,
        timeout_graceful_shutdown=math.ceil(graceful_timeout),
    )
    # uvicorn re-raises the signal that stopped it under the handlers it found once it
    # has finished the requests in flight: no-ops, so a graceful stop exits with status 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    uvicorn.Server(config).run(sockets=[sock])


def reuseport_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``, for one worker.

    Its proto is ``IPPROTO_TCP``, not left 0: asyncio turns Nagle's algorithm off
    (``TCP_NODELAY``) only on connections whose socket says TCP, and with Nagle on every
    small answer waits for the client's delayed ACK -- ~40 ms a request on Linux, which
    made two workers answer half as many requests as one.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock
