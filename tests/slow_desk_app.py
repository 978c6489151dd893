"""The refund desk with a model that takes a second to answer, for watching a run live."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agentrt import AgentRuntime
from agentrt.examples import refund_desk


def build_runtime(db: str | Path = "agentrt.db", **kwargs: Any) -> AgentRuntime:
    model = refund_desk.demo_model().model_copy(update={"latency": 1.0})
    return refund_desk.build_runtime(db, model=model, **kwargs)
