"""The Model Context Protocol faces of the runtime (extra ``mcp``).

* :func:`create_server` / :class:`ServerSettings` -- the runtime as an MCP server
  (:mod:`runtime.mcp.server`); :mod:`runtime.mcp.http` serves it over streamable HTTP;
* :mod:`runtime.mcp.client` -- a remote MCP server's tools as tools of a registry;
* :mod:`runtime.mcp.command` -- ``python -m runtime mcp``.

Names resolve lazily, so ``runtime.mcp.command`` (which the CLI imports to build its
parser) loads without the ``mcp`` package.  See docs/mcp.md.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["RemoteServer", "ServerSettings", "connect_remote_servers", "create_server"]

_WHERE = {
    "ServerSettings": "runtime.mcp.server",
    "create_server": "runtime.mcp.server",
    "RemoteServer": "runtime.mcp.client",
    "connect_remote_servers": "runtime.mcp.client",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'runtime.mcp' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
