"""MCP servers as toolsets: ``MCPServer.stdio(...)`` and ``MCPServer.http(...)`` (the mcp
extra: ``pip install 'agentrt[mcp]'``)."""

from agentrt.tools.mcp.server import IDEMPOTENCY_KEY_META, MCPServer

__all__ = ["IDEMPOTENCY_KEY_META", "MCPServer"]
