"""The runtime's side of apps' own graphs: opening a thread, the graphs attached, and
carrying a thread on after a decision or a crash.

A thread is opened with ``rt.thread(principal=...)``: its row is written (leased to the
graph for good, see threads.py) and the config to invoke the graph with comes back. A graph
attached with ``rt.attach(graph)`` is resumed by ``rt.decide`` (and the expiry sweep) once
its thread's gate has no pending request left, and by ``rt.resume`` after a crash; a thread
of a graph the runtime does not know keeps its decision in the approvals table until the
app resumes the graph itself with ``Command(resume=...)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextlib import suppress
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import Command

from agentrt.approvals.model import ApprovalQuery, ApprovalStatus
from agentrt.errors import ConfigError, RunError
from agentrt.governed.threads import graph_lease, graph_name, is_own_graph
from agentrt.principal import Principal
from agentrt.records import RunRecord
from agentrt.runs import lifecycle
from agentrt.runs.record import Run, run_of
from agentrt.state import RunStatus
from agentrt.steps import Step, Steps, blocking
from agentrt.store.protocols import Store

__all__ = ["OwnGraphs", "thread_config"]


def thread_config(thread_id: str) -> RunnableConfig:
    """The config to invoke an app's graph with for one thread."""
    return {"configurable": {"thread_id": thread_id}}


class OwnGraphs:
    """Apps' graphs this runtime knows, by name, and the threads they drive."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.graphs: dict[str, Any] = {}

    def attach(self, graph: Any, name: str) -> None:
        if not callable(getattr(graph, "invoke", None)) or not callable(
            getattr(graph, "get_state", None)
        ):
            raise ConfigError(
                f"attach takes a compiled LangGraph graph (graph.compile(checkpointer=...) or "
                f"create_agent(...)), got {graph!r}"
            )
        if getattr(graph, "checkpointer", None) in (None, False):
            raise ConfigError(
                f"graph {name!r} has no checkpointer: a thread that waits for a person or "
                "survives a crash needs one; compile it with checkpointer=..."
            )
        self.graphs[name] = graph

    def lease_for(self, name: str) -> Any:
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"graph= names the app's graph in words, got {name!r}")
        return graph_lease(name)

    def reopened(self, record: RunRecord, principal: Principal, name: str) -> RunnableConfig:
        """The config of a thread opened before, for the same principal and graph."""
        if not is_own_graph(record) or graph_name(record) != name:
            raise ConfigError(
                f"thread id {record.thread_id!r} already names a run that is not a thread of "
                f"graph {name!r}; pass a new thread id"
            )
        if not isinstance(principal, Principal) or principal.to_dict() != record.principal:
            raise ConfigError(
                f"thread {record.thread_id!r} acts for {record.principal.get('id')!r}; it "
                f"cannot be reopened for {principal!r}: open a new thread for another principal"
            )
        return thread_config(record.thread_id)

    def resumer(self, thread_id: str) -> Steps[Run] | None:
        """How to carry this thread on if an app's graph drives it; None if it is a run of
        agentrt's run graph."""
        record = self.store.get_run(thread_id)
        if record is None or not is_own_graph(record):
            return None
        return self._carry_on(record)

    def _carry_on(self, record: RunRecord) -> Steps[Run]:
        graph = self.graphs.get(graph_name(record))
        pending = yield blocking(
            self.store.list_approvals,
            ApprovalQuery(status=ApprovalStatus.PENDING, thread_id=record.thread_id, limit=1),
        )
        if graph is not None and not pending:
            config = thread_config(record.thread_id)
            snapshot = yield Step(
                lambda: graph.get_state(config),
                lambda: _awaited(graph.aget_state, graph.get_state, config),
            )
            if snapshot.interrupts or snapshot.next:
                # The gate reads its decision from the approvals table, not from this value.
                resume = (
                    {i.id: {"decided": True} for i in snapshot.interrupts}
                    if snapshot.interrupts
                    else None
                )
                graph_input: Any = Command(resume=resume) if resume is not None else None
                with suppress(RunError):  # a budget stop or a cancel: the row says so
                    # Each step checkpointed before the next, as agentrt's own graph runs.
                    yield Step(
                        lambda: graph.invoke(graph_input, config, durability="sync"),
                        lambda: _awaited(
                            graph.ainvoke, graph.invoke, graph_input, config, durability="sync"
                        ),
                    )
        now = yield blocking(self.store.get_run, record.thread_id)
        assert now is not None
        return run_of(now, self.store)

    def cancel(self, thread_id: str, *, reason: str, now: float) -> Run | None:
        """End an own-graph thread as cancelled at once, its pending requests with it
        (None: a run of agentrt's run graph, which the driver cancels). A governed call in
        flight elsewhere finishes its effect; the thread's next one is refused."""
        record = self.store.get_run(thread_id)
        if record is None or not is_own_graph(record):
            return None
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(f"cancelling a run needs a reason in words, got {reason!r}")
        moved = lifecycle.move(
            self.store,
            thread_id,
            RunStatus.CANCELLED,
            now=now,
            where=self.store.location,
            error=reason,
        )
        return run_of(moved, self.store)

    def for_resume(self, thread_id: str) -> Steps[Run] | None:
        """For rt.resume: how to carry on an own-graph thread (None: a run of agentrt's run
        graph). A thread whose graph is not attached is left as it is: the app carries it
        on with graph.invoke(None, config) or Command(resume=...)."""
        return self.resumer(thread_id)


async def _awaited(
    aio: Callable[..., Awaitable[Any]], sync: Callable[..., Any], *args: Any, **kwargs: Any
) -> Any:
    """``aio(*args, **kwargs)``; on a checkpointer with no async side (SqliteSaver, which
    says so before any node runs), ``sync(...)`` in a worker thread: a service awaits every
    graph it carries on, and the app's checkpointer is the app's choice."""
    try:
        return await aio(*args, **kwargs)
    except NotImplementedError:
        return await asyncio.to_thread(sync, *args, **kwargs)
