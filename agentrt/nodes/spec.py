"""What a node module declares about itself; the run graph is built from these alone.

A node is its name, the routes it may take (it names one as ``"route"`` in its update), and
its body. A body that only computes is a plain function, which LangGraph runs in its thread
pool under ``ainvoke``. A body that waits on I/O (the model, a tool) is written once as
steps (agentrt.steps): under ``invoke`` it runs in the caller's thread, under ``ainvoke``
it awaits on the event loop with its blocking work in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from agentrt.errors import ConfigError
from agentrt.nodes.deps import RunDeps
from agentrt.state import Route, RunState
from agentrt.steps import Steps

__all__ = ["Node", "NodeBody", "NodeSteps"]

NodeBody = Callable[[RunState, RunDeps], dict[str, Any]]
NodeSteps = Callable[[RunState, RunDeps], Steps[dict[str, Any]]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Node:
    """One node of the run graph, as its module declares it."""

    name: Route
    """Its name in the graph, and the kind on its agent.step span."""
    routes: tuple[Route, ...]
    """Where it may go next; none: the run ends after it."""
    body: NodeBody | None = None
    """A body that only computes."""
    steps: NodeSteps | None = None
    """A body that waits on I/O, written once as steps."""
    retry: Literal["model"] | None = None
    """"model": retried with the runtime's model_retry (a provider's transient errors); a
    summarizer of its own as its client calls for (graphs.run_graph._retry_policy)."""
    entry: bool = False
    """The node a run starts at."""
    pure: bool = False
    """It only decides, from the state: no model call, no effect, no gate. What it writes to
    the checkpoint waits for the run's next write (agentrt.store.held): a crash before
    then costs deciding again on resume. (Before verify, where no interrupt stops a run, a
    run looks for stop requests only when one may be new: agentrt.nodes.stop_watch.)"""
    acts: bool = False
    """It acts on the decision of a pure node before it (an effect, a question to a
    person): what that node wrote is stored before this one begins."""

    def __post_init__(self) -> None:
        if (self.body is None) == (self.steps is None):
            raise ConfigError(f"node {self.name!r} needs exactly one of body= or steps=")
