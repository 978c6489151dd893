"""An app whose idempotent tool kills the process that calls it, as sandboxed code once
could: each call is counted in a file beside the database before the process dies."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from agentrt import AgentRuntime, Policy, Principal, ToolContext, tool
from agentrt.testing import ScriptedChatModel, ai, tool_call

OPS = Principal("ops", roles=["operator"], tenant="acme", scopes=["jobs"])
CLERK = Principal("clerk", roles=["operator"], tenant="acme")


def calls_path(db: str | Path) -> Path:
    return Path(db).with_name("calls.txt")


def calls(db: str | Path) -> int:
    path = calls_path(db)
    return len(path.read_text().splitlines()) if path.exists() else 0


def build_runtime(db: str | Path = "agentrt.db") -> AgentRuntime:
    @tool(effect="write", scopes=["jobs"], idempotent=True)
    def crunch(job: str, ctx: ToolContext) -> dict[str, str]:
        """Crunch a job.

        Args:
            job: Which job.
        """
        with calls_path(db).open("a") as f:
            f.write(f"{ctx.idempotency_key}\n")
        os.kill(os.getpid(), signal.SIGKILL)
        return {"job": job}

    model = ScriptedChatModel([ai("", tool_call("crunch", {"job": "j1"})), "all crunched"])
    return AgentRuntime(model, tools=[crunch], policy=Policy.allow_all(), db=db)
