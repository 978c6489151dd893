"""commit: perform an irreversible effect whose preview verify accepted, exactly once."""

from __future__ import annotations

from typing import Any

from agentrt.nodes.common import current_action
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.spec import Node
from agentrt.nodes.tool import run_action
from agentrt.state import RunState
from agentrt.steps import Steps

__all__ = ["NODE", "commit"]


def commit(state: RunState, deps: RunDeps) -> Steps[dict[str, Any]]:
    action = current_action(state)
    spec = deps.tools.get(action["tool"])
    assert spec is not None
    update: dict[str, Any] = yield from run_action(state, deps, spec)
    return update


NODE = Node(
    name="commit",
    steps=commit,
    routes=("verify", "budget_gate", "reconcile", "finish"),
    acts=True,
)
