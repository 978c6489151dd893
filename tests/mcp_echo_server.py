"""A stdio MCP server that echoes the token its environment holds: in an answer
(``whoami``), in an error (``fail``) and on stderr as it starts, as a server's debug line
or auth error may."""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

_NO_ARGS: dict[str, Any] = {"type": "object", "properties": {}}
_READ = types.ToolAnnotations(read_only_hint=True)


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(
        tools=[
            types.Tool(
                name="whoami", description="Who am I.", input_schema=_NO_ARGS, annotations=_READ
            ),
            types.Tool(name="fail", description="Fails.", input_schema=_NO_ARGS, annotations=_READ),
        ]
    )


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    token = os.environ.get("NOTES_TOKEN", "")
    if params.name == "whoami":
        said = f"logged in with {token} at {os.environ.get('NOTES_SITE', '')}"
        return types.CallToolResult(content=[types.TextContent(type="text", text=said)])
    refused = f"token {token} rejected"
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=refused)], is_error=True
    )


server = Server("echo", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    print(f"echo starting with token {os.environ.get('NOTES_TOKEN', '')}", file=sys.stderr)
    sys.stderr.flush()
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
