"""The run graph is derived from the nodes' declarations; its shape is the design.

Also what agentrt.testing gives for testing one node without a runtime.
"""

from __future__ import annotations

from typing import get_args

from agentrt import Policy, Principal, tool
from agentrt.graphs import build_run_graph
from agentrt.nodes import NODES
from agentrt.nodes.policy import policy
from agentrt.nodes.tool import tool as tool_node
from agentrt.nodes.verify import verify
from agentrt.state import Route
from agentrt.steps import drive
from agentrt.testing import action, node_deps, run_state

# Every edge of the design, as LangGraph draws the compiled graph.
DESIGN = [
    ("__start__", "plan"),
    ("approval", "finish"),
    ("approval", "plan"),
    ("approval", "policy"),
    ("approval", "tool"),
    ("budget_gate", "commit"),
    ("budget_gate", "finish"),
    ("budget_gate", "plan"),
    ("budget_gate", "tool"),
    ("commit", "budget_gate"),
    ("commit", "finish"),
    ("commit", "reconcile"),
    ("commit", "verify"),
    ("finish", "__end__"),
    ("plan", "budget_gate"),
    ("plan", "finish"),
    ("plan", "policy"),
    ("plan", "summarize"),
    ("policy", "approval"),
    ("policy", "finish"),
    ("policy", "plan"),
    ("policy", "policy"),
    ("policy", "tool"),
    ("reconcile", "commit"),
    ("reconcile", "finish"),
    ("reconcile", "tool"),
    ("reconcile", "verify"),
    ("summarize", "budget_gate"),
    ("summarize", "finish"),
    ("summarize", "plan"),
    ("tool", "budget_gate"),
    ("tool", "finish"),
    ("tool", "reconcile"),
    ("tool", "verify"),
    ("verify", "commit"),
    ("verify", "finish"),
    ("verify", "plan"),
    ("verify", "policy"),
]


def test_the_compiled_graph_has_exactly_the_designed_edges() -> None:
    graph = build_run_graph(node_deps()).get_graph()
    assert sorted((e.source, e.target) for e in graph.edges) == DESIGN


def test_the_route_type_names_every_node_and_nothing_else() -> None:
    assert set(get_args(Route)) == {n.name for n in NODES}
    assert len({n.name for n in NODES}) == len(NODES)
    assert [n.name for n in NODES if n.entry] == ["plan"]
    assert [n.name for n in NODES if not n.routes] == ["finish"]
    for node in NODES:
        assert set(node.routes) <= set(get_args(Route)), node.name


@tool(effect="read", scopes=["orders:read"])
def lookup(order_id: str) -> dict[str, str]:
    """Look an order up.

    Args:
        order_id: Which.
    """
    return {"order": order_id, "state": "shipped"}


def test_one_node_is_tested_without_a_runtime() -> None:
    deps = node_deps(tools=[lookup], policy=Policy.allow_all())
    state = run_state(
        deps,
        principal=Principal("p", scopes=["orders:read"]),
        actions=[action("lookup", {"order_id": "42"})],
    )
    checked = policy(state, deps)
    assert (checked["route"], checked["verdict"]["outcome"]) == ("tool", "allow")

    state = state | {"verdict": checked["verdict"]}  # type: ignore[assignment]
    ran = drive(tool_node(state, deps))  # a body written as steps, driven here
    assert ran["route"] == "verify"
    assert ran["outcome"]["data"] == {"order": "42", "state": "shipped"}
    assert deps.store.get_run("t") is not None  # the harness wrote the run's row

    verified = verify(state | {"outcome": ran["outcome"]}, deps)  # type: ignore[operator]
    assert verified["route"] == "plan"
    [observed] = [e for e in verified["events"] if e["type"] == "observation"]
    assert (observed["data"]["tool"], observed["data"]["kind"]) == ("lookup", "ok")
