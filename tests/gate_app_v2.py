"""The gate app redeployed: same tools and policy, new instructions and a new planner script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentrt import AgentRuntime, Policy
from agentrt.testing import ScriptedChatModel
from tests.gate_app import POLICY, clock_from_env, first_turn, report, tools


def build_runtime(db: str | Path = "agentrt.db", **kwargs: Any) -> AgentRuntime:
    kwargs.setdefault("clock", clock_from_env())
    kwargs.setdefault("policy", Policy.from_yaml(POLICY))
    kwargs.setdefault("model", ScriptedChatModel([first_turn(), report("v2 settled:")]))
    return AgentRuntime(
        tools=tools(db),
        db=db,
        instructions="You pay people, carefully. v2.",
        **kwargs,
    )
