"""The run graph's nodes, one a file, each declaring itself (agentrt.nodes.spec.Node).

The graph (agentrt.graphs) is built from NODES alone: a new node is its module, its entry
here, and its name in state.Route.
"""

from agentrt.nodes import (
    approval,
    budget_gate,
    commit,
    finish,
    plan,
    policy,
    reconcile,
    summarize,
    tool,
    verify,
)
from agentrt.nodes.spec import Node

__all__ = ["ACTING_NODES", "NODES", "PURE_NODES", "Node"]

NODES: tuple[Node, ...] = (
    plan.NODE,
    policy.NODE,
    approval.NODE,
    tool.NODE,
    verify.NODE,
    commit.NODE,
    budget_gate.NODE,
    reconcile.NODE,
    summarize.NODE,
    finish.NODE,
)
"""Every node of the run graph."""

PURE_NODES: frozenset[str] = frozenset(n.name for n in NODES if n.pure)
"""The nodes that only decide (Node.pure)."""

ACTING_NODES: frozenset[str] = frozenset(n.name for n in NODES if n.acts)
"""The nodes that act on a pure node's decision (Node.acts)."""
