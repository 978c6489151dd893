"""A notes service as an MCP server on Streamable HTTP (the SDK's MCPServer, once FastMCP),
for the HTTP transport's tests: ``python -m tests.mcp_notes_server PORT DIR``.

Notes live in DIR/notes.txt, one a line with the idempotency key the call carried in its
``_meta``, so a test reads what reached the server, across restarts of it.
``hold_note`` writes DIR/holding and then waits to be killed: a call in flight when its
server dies. ``grow`` adds a tool and announces that the list changed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import uvicorn
from mcp.server.mcpserver import Context, MCPServer
from mcp.types import ToolAnnotations

PORT = int(sys.argv[1])
DIR = Path(sys.argv[2])
NOTES = DIR / "notes.txt"

mcp = MCPServer("notes")


def _key(ctx: Context) -> str:
    meta: Any = ctx.request_context.meta or {}
    return str(meta.get("agentrt/idempotency-key", "-"))


def _notes() -> list[str]:
    return NOTES.read_text().splitlines() if NOTES.exists() else []


@mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
def count_notes() -> int:
    """How many notes there are."""
    return len(_notes())


@mcp.tool()
def add_note(text: str, ctx: Context) -> str:
    """Add a note."""
    with NOTES.open("a") as f:
        f.write(f"{text}\t{_key(ctx)}\n")
    return f"note {len(_notes())} added"


@mcp.tool()
async def hold_note(text: str) -> str:
    """Add a note, slowly."""
    (DIR / "holding").write_text(text)
    await asyncio.Event().wait()  # until the test kills the server
    return "never"


@mcp.tool(annotations=ToolAnnotations(read_only_hint=True))
async def grow(ctx: Context) -> str:
    """Offer one more tool from now on."""

    def shout(text: str) -> str:
        """Say it louder."""
        return text.upper()

    mcp.add_tool(shout)
    await ctx.notify_tools_changed()
    return "grown"


if __name__ == "__main__":
    uvicorn.run(mcp.streamable_http_app(), host="127.0.0.1", port=PORT, log_level="warning")
