"""finish: set the terminal status and the output."""

from __future__ import annotations

from typing import Any

from agentrt.events import finish_event
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.plan import forget_conversation
from agentrt.nodes.spec import Node
from agentrt.state import RunState, RunStatus

__all__ = ["NODE", "finish"]


def finish(state: RunState, deps: RunDeps) -> dict[str, Any]:
    stop = state.get("stop")
    if stop is not None:
        status, output, error = RunStatus(stop["status"]), None, stop["reason"]
    else:
        plan = state.get("plan")
        status, output, error = RunStatus.SUCCEEDED, plan["final"] if plan else None, None
    event = finish_event(status, output, error)
    forget_conversation(state.get("thread_id", ""))  # planned for the last time
    return {"status": status.value, "output": output, "error": error, "events": [event]}


NODE = Node(name="finish", body=finish, routes=())
