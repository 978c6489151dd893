"""agentrt inside a langchain ``create_agent`` agent: ``rt.middleware()``.

Where ``HumanInTheLoopMiddleware`` would go, agentrt's middleware governs every tool call
(policy, a gate that is a row in the review queue with roles, four-eyes and expiry, the
exactly-once ledger, tool budgets) and checks the thread's budget before every model call.
It brings the runtime's tools to the agent. The agent is yours: its model, its prompt, its
checkpointer, its other middleware.

Run it offline (a scripted model): ``python -m agentrt.examples.create_agent``.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.types import Command

from agentrt import AgentRuntime, Decision
from agentrt.examples.own_graph import build_runtime, scripted_model
from agentrt.examples.refund_desk import APPROVER, OPERATOR

__all__ = ["build_agent", "main"]


def build_agent(rt: AgentRuntime, model: BaseChatModel, checkpointer: Any) -> Any:
    """A create_agent agent whose tools and budgets agentrt governs."""
    return create_agent(
        model,
        system_prompt="You are a refund desk agent.",
        middleware=[rt.middleware()],  # the runtime's tools come with it
        checkpointer=checkpointer,
    )


def main(workdir: Path) -> str:
    """Refund order 42 with a create_agent agent; the app resumes it with the decision."""
    model = scripted_model()
    with (
        build_runtime(workdir / "agentrt.db", model) as rt,
        SqliteSaver.from_conn_string(str(workdir / "checkpoints.db")) as saver,
    ):
        agent = build_agent(rt, model, saver)
        config = rt.thread(principal=OPERATOR, thread_id="refund-42")
        agent.invoke({"messages": [HumanMessage("Refund order 42")]}, config)
        (request,) = rt.approvals(tenant="acme")
        print(f"waiting: {request.tool} {request.args} for a {request.required_role}")
        # The app resumes its agent itself, handing the decision in: agentrt checks it
        # exactly as rt.decide would (role, four-eyes, expiry, digest) before it counts.
        decision = Decision.approve(request.id, by=APPROVER)
        result = agent.invoke(Command(resume=decision), config)
        answer = result["messages"][-1].content
        print(f"{rt.get('refund-42').status.value}: {answer}")
        return str(answer)


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tmp))
