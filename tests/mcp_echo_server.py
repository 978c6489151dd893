"""A stdio MCP server that echoes the token its environment holds: in an answer
(``whoami``), in an error (``fail``) and on stderr as it starts, as a server's debug line
or auth error may. Flags make it say more:

- ``--listing``: in its tool list too (a description, a title, a schema, an output
  schema, the name of a tool ``lookup_<token>``), with ``search`` answering off its
  output schema;
- ``--stdout``: on stdout as it starts, a line that is not JSON-RPC;
- ``--long-stderr``: on stderr, a line of 4 MiB with the token across the point where
  agentrt cuts a line, then a short line;
- ``--hang``: a tool ``hang`` that never answers;
- ``--huge``: a tool ``chatty`` whose description is 1 MiB, and a tool ``sprawling``
  whose inputSchema is 1 MiB of properties.

Run as ``python -m tests.mcp_echo_server [flags]``.
"""

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
TOKEN = os.environ.get("NOTES_TOKEN", "")
CUT_AT = 8192
"""Where agentrt cuts a long stderr line (connection.STDERR_LINE_BYTES)."""


def leaky() -> list[types.Tool]:
    return [
        types.Tool(
            name="search",
            title=f"Search as {TOKEN}",
            description=f"Search the notes (debug: authenticated as {TOKEN}).",
            input_schema={
                "type": "object",
                "properties": {
                    "q": {"type": "string", "description": f"the query; key {TOKEN}"},
                    "scope": {"enum": ["mine", TOKEN]},
                },
            },
            output_schema={"type": "object", "properties": {"who": {"const": TOKEN}}},
            annotations=types.ToolAnnotations(read_only_hint=True, title=f"as {TOKEN}"),
        ),
        types.Tool(
            name=f"lookup_{TOKEN}", description="Look up.", input_schema=_NO_ARGS, annotations=_READ
        ),
    ]


def huge() -> list[types.Tool]:
    properties = {f"field_{i}": {"type": "string", "description": "x" * 100} for i in range(8000)}
    return [
        types.Tool(
            name="chatty",
            description="Chat. " + "Very important. " * (1 << 16),
            input_schema=_NO_ARGS,
            annotations=_READ,
        ),
        types.Tool(
            name="sprawling",
            description="Sprawl.",
            input_schema={"type": "object", "properties": properties},
            annotations=_READ,
        ),
    ]


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    tools = [
        types.Tool(
            name="whoami", description="Who am I.", input_schema=_NO_ARGS, annotations=_READ
        ),
        types.Tool(name="fail", description="Fails.", input_schema=_NO_ARGS, annotations=_READ),
    ]
    if "--listing" in sys.argv:
        tools += leaky()
    if "--huge" in sys.argv:
        tools += huge()
    if "--hang" in sys.argv:
        tools.append(types.Tool(name="hang", description="Never answers.", input_schema=_NO_ARGS))
    return types.ListToolsResult(tools=tools)


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    if params.name == "whoami":
        said = f"logged in with {TOKEN} at {os.environ.get('NOTES_SITE', '')}"
        return types.CallToolResult(content=[types.TextContent(type="text", text=said)])
    if params.name == "search":
        return types.CallToolResult(content=[], structured_content={"who": "someone else"})
    if params.name == "hang":
        await anyio.sleep_forever()
    refused = f"token {TOKEN} rejected"
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=refused)], is_error=True
    )


server = Server("echo", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    print(f"echo starting with token {TOKEN}", file=sys.stderr)
    if "--long-stderr" in sys.argv:
        head = "x" * (CUT_AT - len(TOKEN) // 2)  # the cut falls in the middle of the token
        print(head + TOKEN + "y" * (4 << 20), file=sys.stderr)
        print("after the long line", file=sys.stderr)
    sys.stderr.flush()
    if "--stdout" in sys.argv:
        print(f"debug: token is {TOKEN}", flush=True)  # not JSON-RPC
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
