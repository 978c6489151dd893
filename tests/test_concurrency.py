"""Many runs driven at once on one runtime, from one event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from agentrt import AgentRuntime, Budget, Policy, Principal, RunStatus, tool
from agentrt.testing import ScriptedChatModel, ai, tool_call


@tool(effect="read")
def echo(i: int) -> dict[str, Any]:
    """Echo the number back.

    Args:
        i: Any number.
    """
    return {"i": i}


def test_concurrent_astart_runs_all_finish(db: Path) -> None:
    # Store writes made on the event loop while another run's aiosqlite transaction
    # waited for the loop used to stall until busy_timeout, then fail "database is locked".
    script = [ai("", tool_call("echo", {"i": k})) for k in range(3)]
    model = ScriptedChatModel([*script, "done"])
    with AgentRuntime(
        model, tools=[echo], policy=Policy.allow_all(), db=db, budget=Budget(max_steps=5)
    ) as rt:

        async def drive() -> list[Any]:
            return await asyncio.gather(
                *(
                    rt.astart("echo three numbers", principal=Principal("p"), thread_id=f"t{i}")
                    for i in range(24)
                )
            )

        runs = asyncio.run(drive())
        assert [(r.thread_id, r.status, r.output, r.usage["tool_calls"]) for r in runs] == [
            (f"t{i}", RunStatus.SUCCEEDED, "done", 3) for i in range(24)
        ]
        assert {r.status for r in rt.runs(limit=100)} == {RunStatus.SUCCEEDED}
