"""commit: perform an irreversible effect whose preview verify accepted, exactly once."""

from __future__ import annotations

from typing import Any

from agentrt.graphs.deps import RunDeps
from agentrt.nodes.common import current_action
from agentrt.nodes.tool import run_action
from agentrt.state import RunState

__all__ = ["commit"]


def commit(state: RunState, deps: RunDeps) -> dict[str, Any]:
    action = current_action(state)
    spec = deps.tools.get(action["tool"])
    assert spec is not None
    return run_action(state, deps, spec)
