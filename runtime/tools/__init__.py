"""The tool model: types, the tool protocol and the registry."""

from runtime.tools.model import ToolContext, ToolResult
from runtime.tools.registry import Tool, ToolRegistry, ToolSpec, safe_execute

__all__ = [
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "ToolSpec",
    "safe_execute",
]
