"""agentrt's guarantees inside an app's own graph: a governed ToolNode for any StateGraph,
an AgentMiddleware for create_agent, and the threads they drive as runs.

``AgentRuntime.tool_node()``, ``.middleware()``, ``.thread()`` and ``.attach()`` are the
door; this package is what they build on (the run graph's policy, gate, ledger, budget and
tracing parts, applied around one tool call at a time).
"""

from __future__ import annotations

from agentrt.governed.calls import Governor
from agentrt.governed.graphs import OwnGraphs, thread_config
from agentrt.governed.threads import graph_lease, is_own_graph
from agentrt.governed.tool_node import governed_tool_node

__all__ = [
    "Governor",
    "OwnGraphs",
    "governed_tool_node",
    "graph_lease",
    "is_own_graph",
    "thread_config",
]
