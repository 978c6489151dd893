"""A small MCP server over stdio, on the SDK's low-level Server, that says odd things on
purpose: a tool name no provider accepts, a result off its own outputSchema, an invalid
input schema (with --bad-schema), a secret on stderr as it starts, and (with --redos) a
tool whose schemas have a pattern that backtracks for hours on forty a's and a "!".

Run as ``python -m tests.mcp_odd_server [--bad-schema] [--redos]``.
"""

from __future__ import annotations

import sys
from typing import Any

import anyio
from mcp import types
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server

SECRET = "Bearer sk0dd5ecret0000000000042"
"""What the server writes to stderr as it starts: the log must never show it."""

BAD_SCHEMA = "--bad-schema" in sys.argv
REDOS = "--redos" in sys.argv

EVIL = "^(a|a)*$"
"""Exponential for a backtracking engine on a string of a's that does not end the match."""
EVIL_TEXT = "a" * 40 + "!"

COUNT = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def tools() -> list[types.Tool]:
    listed = [
        types.Tool(
            name="odd.name/with spaces",
            description="Echo the text.",
            input_schema={
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
            annotations=types.ToolAnnotations(read_only_hint=True),
        ),
        types.Tool(
            name="count_wrong",
            description="Count, but say it in the wrong type.",
            input_schema={"type": "object", "properties": {}},
            output_schema=COUNT,
            annotations=types.ToolAnnotations(read_only_hint=True),
        ),
        types.Tool(
            name="count_right",
            description="Count, in the right type.",
            input_schema={"type": "object", "properties": {}},
            output_schema=COUNT,
            annotations=types.ToolAnnotations(read_only_hint=True),
        ),
        types.Tool(
            name="wipe",
            description="Wipe everything.",
            input_schema={"type": "object", "properties": {}},
            annotations=types.ToolAnnotations(read_only_hint=False, destructive_hint=True),
        ),
    ]
    if REDOS:
        evil = {"type": "object", "properties": {"s": {"type": "string", "pattern": EVIL}}}
        listed.append(
            types.Tool(
                name="repeat",
                description="Repeat the text, or forty a's and a '!' if none.",
                input_schema=evil,
                output_schema=evil,
                annotations=types.ToolAnnotations(read_only_hint=True),
            )
        )
    if BAD_SCHEMA:
        listed.append(
            types.Tool(
                name="broken",
                description="Its schema is not JSON Schema.",
                input_schema={"type": "object", "properties": {"x": {"type": "nonsense"}}},
            )
        )
    return listed


async def list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
    return types.ListToolsResult(tools=tools())


async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
    args = params.arguments or {}
    if params.name == "odd.name/with spaces":
        text = str(args.get("text"))
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])
    if params.name == "count_wrong":
        return types.CallToolResult(
            content=[types.TextContent(type="text", text="three")], structured_content={"n": "3"}
        )
    if params.name == "count_right":
        return types.CallToolResult(
            content=[types.TextContent(type="text", text="3")], structured_content={"n": 3}
        )
    if params.name == "repeat":
        text = str(args.get("s") or EVIL_TEXT)
        return types.CallToolResult(content=[], structured_content={"s": text})
    if params.name == "wipe":
        return types.CallToolResult(
            content=[types.TextContent(type="text", text="refused: nothing to wipe")],
            is_error=True,
        )
    raise ValueError(f"no tool {params.name!r}")


server = Server("odd", on_list_tools=list_tools, on_call_tool=call_tool)


async def main() -> None:
    print(f"odd server starting; Authorization: {SECRET}", file=sys.stderr, flush=True)
    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
