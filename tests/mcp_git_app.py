"""An app that keeps notes in a git repository through mcp-server-git (a real MCP server
from PyPI, over stdio): reads run, changes to the repository wait for a reviewer.

``build_runtime(db, repo)``; the scripted model checks the status, stages notes.md and
commits it.
"""

from __future__ import annotations

from pathlib import Path

from agentrt import AgentRuntime, Policy, Principal
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.mcp import MCPServer
from tests.mcp_helpers import GIT_SERVER

ALICE = Principal("alice", roles=["operator"], tenant="acme")
BOB = Principal("bob", roles=["reviewer"], tenant="acme")

POLICY = """
name: git-desk
default: deny
rules:
  - id: git-reads
    match: {servers: [git], effects: [read]}
    decision: allow
  - id: git-changes
    match: {servers: [git], effects: [write, irreversible]}
    decision: require_approval
    approval: {role: reviewer}
    reason: a change to the repository needs a reviewer
"""


def build_runtime(db: str | Path, repo: str | Path) -> AgentRuntime:
    where = str(repo)
    model = ScriptedChatModel(
        [
            ai("", tool_call("git_status", {"repo_path": where})),
            ai(
                "",
                tool_call("git_add", {"repo_path": where, "files": ["notes.md"]}),
                tool_call("git_commit", {"repo_path": where, "message": "Add notes"}),
            ),
            "committed the notes",
        ]
    )
    git = MCPServer.stdio(GIT_SERVER, ["--repository", where], name="git")
    return AgentRuntime(model, tools=[git], policy=Policy.from_yaml(POLICY), db=db)
