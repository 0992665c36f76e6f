"""The tool model: types, the tool protocol and the registry."""

from runtime.tools.model import ToolContext, ToolResult, ToolType
from runtime.tools.registry import Tool, ToolRegistry, ToolSpec, safe_execute

__all__ = [
    "Tool",
    "ToolContext",
    "ToolRegistry",
    "ToolResult",
    "ToolSpec",
    "ToolType",
    "safe_execute",
]
