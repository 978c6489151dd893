"""AgentRuntime's side of an app's own graph: ``rt.thread``, ``rt.tool_node``,
``rt.middleware`` and ``rt.attach``. A part of the door (``agentrt.runtime``), kept in a
file of its own, over the attributes the runtime sets.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.runnables import RunnableConfig

from agentrt.budget import Budget, ModelPrice, find_price
from agentrt.governed.calls import Governor
from agentrt.governed.graphs import OwnGraphs, thread_config
from agentrt.governed.served import served_graph
from agentrt.governed.tool_node import governed_tool_node
from agentrt.graphs import RunDeps
from agentrt.graphs.drawing import GraphPicture
from agentrt.models import model_name_of
from agentrt.principal import Principal
from agentrt.runs.driver import Driver
from agentrt.store.protocols import Store
from agentrt.tools.contract import ToolSpec
from agentrt.tools.registry import ToolRegistry

__all__ = ["OwnGraphDoor"]


class OwnGraphDoor:
    """The runtime's parts offered to an app's own graph (mixed into AgentRuntime)."""

    store: Store
    graph: Any
    tools: ToolRegistry
    deps: RunDeps
    model_name: str | None
    model_price: ModelPrice | None
    _prices: Mapping[str, ModelPrice]  # the table with prices=: an agent's model is its own
    _driver: Driver

    def thread(
        self,
        *,
        principal: Principal,
        thread_id: str | None = None,
        budget: Budget | None = None,
        goal: str = "a thread of the app's own graph",
        graph: str = "app",
    ) -> RunnableConfig:
        """Open a thread of the app's own graph as a run (in rt.runs and the review queue)
        acting for ``principal`` under ``budget``; the config to invoke the graph with.

        ``graph``: the name it is attached by (``attach``). An open thread's id gives its
        config again (for the same principal).
        """
        if thread_id is not None and (found := self.store.get_run(thread_id)) is not None:
            return self._own.reopened(found, principal, graph)
        created, _ = self._driver.create(
            goal,
            principal=principal,
            budget=budget,
            thread_id=thread_id,
            lease=self._own.lease_for(graph),
        )
        return thread_config(created)

    def tool_node(self, tools: Sequence[str | ToolSpec] | None = None, **options: Any) -> Any:
        """A governed drop-in for LangGraph's ToolNode (a real ``ToolNode``): every call goes
        through the policy, the human gate, the budget and the ledger, traced. ``tools``:
        the runtime's tools it offers (None: all); ``name=``, ``messages_key=`` as ToolNode.
        """
        return governed_tool_node(self._governor, self.tools, tools, **options)

    def middleware(self, tools: Sequence[str | ToolSpec] | None = None) -> Any:
        """A langchain v1 AgentMiddleware for ``create_agent``: the same guarantees around
        tool calls, and budgets before each model call; it adds the runtime's tools (or
        ``tools``) to the agent. Needs ``agentrt[agents]``."""
        from agentrt.governed.middleware import governed_middleware

        return governed_middleware(
            self._governor, lambda: self.deps, self.tools, tools, self._price_of
        )

    def served_graph(self, *, principal: Principal, name: str = "studio") -> Any:
        """The run graph for a LangGraph API server (``langgraph dev``, LangGraph Studio):
        compiled without a checkpointer (the server's), each server thread a run acting for
        ``principal``, started with ``{"goal": ..., "budget": {...}}``; a gate is answered
        with ``Command(resume=decision)``, checked as ``decide`` checks it. Return it from
        the factory langgraph.json names."""
        return served_graph(self.deps, self._driver, principal=principal, name=name)

    def draw(self, graph: Any = None) -> GraphPicture:
        """The run graph's picture (or that of ``graph``, an app's own compiled graph),
        drawn on this machine: no web service. In a notebook it shows as SVG (Graphviz);
        ``.mermaid``, ``.dot``, ``.svg()`` and ``.png()`` give it as text or an image."""
        return GraphPicture((self.graph if graph is None else graph).get_graph())

    def attach(self, graph: Any, *, name: str = "app") -> None:
        """Let ``decide``, ``sweep_approvals`` and ``resume`` carry on the threads of this
        compiled graph (opened with ``thread(..., graph=name)``)."""
        self._own.attach(graph, name)

    @property
    def _own(self) -> OwnGraphs:
        """The app graphs' threads, which decide, the sweep and resume hand over to."""
        own: OwnGraphs = self._driver.own_graphs
        return own

    @cached_property
    def _governor(self) -> Governor:
        """Governs the tool calls of the app graphs' threads, on the runtime's parts now."""
        return Governor(lambda: self.deps)

    def _price_of(self, model: BaseChatModel) -> ModelPrice | None:
        """What an app's own agent's model charges, by its own name (it need not be the
        runtime's): agentrt's price table with the runtime's ``prices=`` on top."""
        return find_price(model_name_of(model), self._prices)
