"""The Model Context Protocol faces of the runtime (extra ``mcp``).

* :func:`create_server` -- the runtime as an MCP server (:mod:`runtime.mcp.server`);
* :mod:`runtime.mcp.http` -- that server over streamable HTTP, mountable in Starlette;
* :mod:`runtime.mcp.client` -- a remote MCP server's tools as tools of a registry.

See docs/mcp.md.
"""

from runtime.mcp.server import ServerSettings, create_server

__all__ = ["ServerSettings", "create_server"]
