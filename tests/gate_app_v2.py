"""The gate app redeployed: same tools and policy, new instructions and a new planner script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentrt import AgentRuntime
from tests.gate_app import make_runtime


def build_runtime(db: str | Path = "agentrt.db", **kwargs: Any) -> AgentRuntime:
    return make_runtime(
        db, instructions="You pay people, carefully. v2.", closing="v2 settled:", **kwargs
    )
