"""A throwaway ``redis-server`` on a unix socket in a temp dir, for tests (import the fixture).

Each test gets its own server process: nothing leaks between tests, and a test may kill,
pause (SIGSTOP) or restart it to play "Redis died" or "Redis is slow".  No TCP port is
opened (``--port 0``), so parallel runs cannot collide.

When ``redis-server`` is not on PATH the tests skip with the install command -- except in
CI (``CI=true``), where a missing server fails the run: CI must not go green by skipping.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["RedisServer", "redis_server"]

INSTALL_HINT = "redis-server not installed; install it with: apt-get install redis-server"
_START_TIMEOUT_S = 10.0


def find_redis_server() -> str:
    """The redis-server executable, or skip (fail in CI) with the install command."""
    found = shutil.which("redis-server")
    if found is not None:
        return found
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {INSTALL_HINT}", pytrace=False)
    pytest.skip(INSTALL_HINT)


class RedisServer:
    """One redis-server process listening on ``socket_path`` only."""

    def __init__(self, executable: str, directory: Path) -> None:
        self.executable = executable
        self.directory = directory
        self.socket_path = directory / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self) -> None:
        """Start (or restart) the server and wait until it answers PING."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("redis-server is already running")
        self.socket_path.unlink(missing_ok=True)
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port", "0",
                "--unixsocket", str(self.socket_path),
                "--unixsocketperm", "700",
                "--dir", str(self.directory),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                stderr = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"redis-server exited at start: {stderr}")
            if self.ping():
                return
            time.sleep(0.005)
        self.stop()
        raise RuntimeError(f"redis-server did not answer within {_START_TIMEOUT_S}s")

    def ping(self) -> bool:
        """A blocking PING over the socket (no client library involved)."""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-conversation, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def pause(self) -> None:
        """SIGSTOP: the server keeps its socket open but stops answering (a slow Redis)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server cannot act on TERM
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        if self.process.stderr is not None:
            self.process.stderr.close()


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running redis-server on a unix socket, stopped after the test."""
    executable = find_redis_server()
    # A short path of our own: unix socket paths are limited to ~107 bytes.
    directory = Path(tmp_path_factory.mktemp("redis", numbered=True))
    own_directory = len(str(directory / "redis.sock")) > 100
    if own_directory:
        directory = Path(tempfile.mkdtemp(prefix="rt-redis-"))
    server = RedisServer(executable, directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        if own_directory:
            shutil.rmtree(directory, ignore_errors=True)
