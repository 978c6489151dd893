"""The run graph and what its nodes are given."""

from agentrt.graphs.run_graph import ROUTES, build_run_graph
from agentrt.nodes.deps import DEFAULT_INSTRUCTIONS, RunDeps

__all__ = ["DEFAULT_INSTRUCTIONS", "ROUTES", "RunDeps", "build_run_graph"]
