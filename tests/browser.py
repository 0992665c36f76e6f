"""Headless Chromium driven over the DevTools protocol, for the pages' browser tests.

:func:`chromium_or_skip` finds Debian's ``chromium`` (``make chromium`` installs it):
absent, a test skips with a hint locally and fails under ``CI=true``.  :class:`Browser`
starts it on loopback only (every host name resolves to nothing but 127.0.0.1 and
localhost, so a page cannot reach the network even by mistake), opens a page, and
collects what a test checks: console errors and uncaught exceptions, every URL the page
requested, a screenshot, and values read with JavaScript.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--hide-scrollbars",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
    "--window-size=1280,1800",
)
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def chromium_or_skip() -> str:
    """The Chromium binary; skip (fail in CI) when it is not installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = "chromium not found: `make chromium` installs Debian's package (root + apt-get)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " -- CI must install it, not skip these tests")
    pytest.skip(message)


def is_local(url: str) -> bool:
    """Whether loading ``url`` stays on this machine (loopback, a file, inline data)."""
    parts = urlsplit(url)
    if parts.scheme in ("file", "data", "about", "blob", "chrome-error"):
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname in LOCAL_HOSTS


class Browser:
    """One headless Chromium with one page, talked to over the DevTools websocket."""

    def __init__(self, binary: str) -> None:
        from websockets.sync.client import connect

        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        endpoint = self._wait_for_endpoint(deadline=time.monotonic() + 30)
        self._stack = contextlib.ExitStack()
        self._socket = self._stack.enter_context(connect(endpoint, max_size=None, open_timeout=10))
        self._ids = itertools.count(1)
        self.console_errors: list[str] = []
        self.requests: list[str] = []
        target = self._send("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self._send("Target.attachToTarget", {"targetId": target, "flatten": True})
        self._session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self._send(f"{domain}.enable", session=True)

    def _wait_for_endpoint(self, deadline: float) -> str:
        port_file = Path(self._profile) / "DevToolsActivePort"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"chromium exited at start ({self.process.returncode})")
            if port_file.exists():
                lines = port_file.read_text().split()
                if len(lines) >= 2:
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.05)
        raise AssertionError("chromium did not open its DevTools port within 30 s")

    def _send(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = False
    ) -> dict[str, Any]:
        number = next(self._ids)
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self._session
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + 30
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == number:
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def _receive(self, deadline: float) -> dict[str, Any]:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no answer from chromium")
        message: dict[str, Any] = json.loads(self._socket.recv(timeout=remaining))
        self._note(message)
        return message

    def _note(self, event: dict[str, Any]) -> None:
        method, params = event.get("method"), event.get("params", {})
        if method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            texts = [str(a.get("value", a.get("description", ""))) for a in params["args"]]
            self.console_errors.append("console: " + " ".join(texts))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            self.console_errors.append(f"exception: {text}")
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            entry = params["entry"]
            self.console_errors.append(f"log: {entry.get('text')} ({entry.get('url', '')})")

    def open(self, url: str, timeout: float = 30) -> None:
        """Navigate and wait for the load event."""
        self._send("Page.navigate", {"url": url}, session=True)
        deadline = time.monotonic() + timeout
        while self._receive(deadline).get("method") != "Page.loadEventFired":
            pass

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self._send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session=True
        )
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20) -> None:
        """Poll until ``expression`` is truthy in the page (events keep being collected)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {expression}")
            time.sleep(0.1)

    def settle(self, seconds: float) -> None:
        """Let the page run a while, collecting its events."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                self._note(json.loads(self._socket.recv(timeout=deadline - time.monotonic())))
            except TimeoutError:
                return

    def screenshot(self, path: Path, *, full_page: bool = True, max_height: int = 8000) -> bytes:
        """A PNG of the page (the whole page by default, at most ``max_height`` pixels),
        also written to ``path``."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": full_page}
        if full_page:
            size = self._send("Page.getLayoutMetrics", session=True)["cssContentSize"]
            params["clip"] = {
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": min(size["height"], max_height),
                "scale": 1,
            }
        data = base64.b64decode(self._send("Page.captureScreenshot", params, session=True)["data"])
        path.write_bytes(data)
        return data

    def outside_loopback(self) -> list[str]:
        return [url for url in self.requests if not is_local(url)]

    def close(self) -> None:
        try:
            self._stack.close()
        finally:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            shutil.rmtree(self._profile, ignore_errors=True)
