"""An app with one tool of each source: an @agentrt.tool function, a LangChain tool and an
MCP server's (mcp-server-time), under a policy with a rule per kind of decision."""

from __future__ import annotations

from pathlib import Path

from langchain_core.tools import StructuredTool

from agentrt import AgentRuntime, MCPServer, Policy, tool
from agentrt.testing import ScriptedChatModel
from tests.mcp_helpers import TIME_SERVER

POLICY = """
name: mixed
default: deny
rules:
  - id: lookups
    match: {effects: [read], tools: [lookup_order]}
    decision: allow
  - id: clocks
    match: {servers: [time]}
    decision: allow
  - id: big-notes
    match: {tools: [add_note]}
    when: size(args.text) > 100
    decision: require_approval
    approval: {role: lead}
  - id: notes
    match: {tools: [add_note]}
    decision: allow
tools:
  convert_time:
    scopes: [clock:convert]
"""


@tool(scopes=["orders:read"])
def lookup_order(order_id: str) -> dict[str, str]:
    """Look an order up."""
    return {"order_id": order_id}


def add_note(text: str) -> str:
    """Add a note."""
    return "added"


def build_runtime(db: str | Path = "agentrt.db") -> AgentRuntime:
    notes = StructuredTool.from_function(add_note)
    return AgentRuntime(
        ScriptedChatModel(["nothing to do"]),
        tools=[lookup_order, notes, MCPServer.stdio(TIME_SERVER, name="time")],
        policy=Policy.from_yaml(POLICY),
        db=db,
    )
