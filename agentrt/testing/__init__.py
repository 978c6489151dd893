"""Deterministic, offline stand-ins for testing agents and agentrt's own parts.

The centrepiece is `ScriptedChatModel`, a LangChain chat model that answers
from a fixed script instead of calling a provider. Because it picks its answer
from the conversation it is given rather than from how often it was called, a
run that is checkpointed, killed and resumed in another process keeps following
the same script, which is what durable-runtime tests need.

Example:
    ```python
    from agentrt.testing import ScriptedChatModel, ai, tool_call

    model = ScriptedChatModel(
        [
            ai("", tool_call("lookup_order", {"order_id": "42"})),
            TimeoutError("provider hiccup"),
            "Your order ships tomorrow.",
        ]
    )
    ```

For one node without a runtime, ``node_deps`` and ``run_state`` (agentrt.testing.nodes).
"""

from agentrt.testing.nodes import action, node_deps, run_state
from agentrt.testing.scripted import (
    ScriptedCall,
    ScriptedChatModel,
    ScriptExhausted,
    ai,
    tool_call,
)

__all__ = [
    "ScriptExhausted",
    "ScriptedCall",
    "ScriptedChatModel",
    "action",
    "ai",
    "node_deps",
    "run_state",
    "tool_call",
]
