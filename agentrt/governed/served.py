"""The run graph served by a LangGraph API server (``langgraph dev``, LangGraph Studio).

There the server owns the checkpointer and the thread ids, and no agentrt driver is around
a run: so the graph compiled here has no checkpointer, and it does itself what the driver
does around a segment. Its first node, ``open``, takes the goal (and a budget) as input and
writes the run's row under the server's thread id, leased to the graph for good (like an
app's own graph, governed/threads.py: agentrt's workers never drive it); the gates move the
row to awaiting_approval when they interrupt and back when they are answered; ``finish``
writes the end into the row. A person answers a gate with the server's resume
(``Command(resume=decision)``): the decision is recorded with every check ``rt.decide``
makes, and a refused one leaves the gate asking, saying why. Policy, the ledger and the
budgets are the run graph's own nodes, unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired

from langchain_core.runnables import RunnableConfig
from langgraph.errors import GraphInterrupt
from langgraph.graph import START
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict

from agentrt.approvals import ApprovalRequest
from agentrt.budget import Budget, empty_usage
from agentrt.errors import AgentRuntimeError, ApprovalError, ConfigError, RunError, ThreadTaken
from agentrt.governed.threads import graph_lease, graph_name, is_own_graph, thread_id_of
from agentrt.graphs.run_graph import run_graph_builder
from agentrt.nodes import NODES, Node
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.spec import NodeBody, NodeSteps
from agentrt.principal import Principal
from agentrt.records import RunRecord
from agentrt.runs.decisions import record_decision
from agentrt.runs.driver import Driver
from agentrt.runs.record import initial_state
from agentrt.runs.stats import denials_of
from agentrt.state import TERMINAL, RunState, RunStatus
from agentrt.steps import Steps, blocking

__all__ = ["GATES", "ServedInput", "ServedOutput", "served_graph"]

GATES = frozenset({"approval", "budget_gate", "reconcile"})
"""The nodes that wait for a person (they call interrupt())."""

_SHOWN = 300
"""How much of a resume value a refusal quotes."""


# typing_extensions' TypedDict: the server makes Studio's forms from these with pydantic,
# which refuses typing's on Python 3.11.


class ServedInput(TypedDict):
    """What a served thread is started with (Studio's input form)."""

    goal: str
    """What the run is to do, in words."""
    budget: NotRequired[dict[str, Any]]
    """Limits over the runtime's (Budget fields: max_tokens, max_cost_usd, max_tool_calls,
    max_steps, ...); none: the runtime's."""


class ServedOutput(TypedDict):
    """What a served run answers with when it stops (the whole state is the thread's)."""

    thread_id: str
    """The run's id: the server's thread id."""
    status: str
    """Where the run is: running (at a gate), succeeded, failed, budget_exceeded..."""
    output: str | None
    """The final answer, once succeeded."""
    error: str | None
    """Why the run failed or stopped, if it did."""
    usage: dict[str, Any]
    """What the run has spent: tokens, cost, tool calls, steps, active seconds."""


def served_graph(
    deps: RunDeps,
    driver: Driver,
    *,
    principal: Principal,
    name: str = "studio",
) -> CompiledStateGraph[RunState, None, Any, Any]:
    """The run graph for a LangGraph API server: no checkpointer (the server's), an ``open``
    node first, each thread a run acting for ``principal`` (see the module docstring)."""
    if not isinstance(principal, Principal):
        raise ConfigError(
            f"a served graph's threads act for an agentrt Principal, got {principal!r}; "
            "e.g. Principal('alice', roles=['operator'], tenant='acme', scopes=[...])"
        )
    served = _Served(driver, principal, name)
    deps = dataclasses.replace(deps, decisions_in_resume=served.decisions)
    builder = run_graph_builder(
        deps,
        nodes=served.nodes(NODES),
        input_schema=ServedInput,
        output_schema=ServedOutput,
        each_a_step=True,  # Studio shows each node's step and update on its own
    )
    builder.add_node("open", served.open)
    builder.add_edge(START, "open")
    builder.add_edge("open", "plan")
    compiled: CompiledStateGraph[RunState, None, Any, Any] = builder.compile(name=name)
    return compiled


class _Served:
    """What the driver does around a run, done inside the served graph."""

    def __init__(self, driver: Driver, principal: Principal, name: str) -> None:
        self.driver = driver
        self.store = driver.store
        self.principal = principal
        self.name = name

    # the nodes ----------------------------------------------------------------------------

    def nodes(self, nodes: Sequence[Node]) -> list[Node]:
        """The run graph's nodes, entered from ``open``, gates and finish keeping the row."""
        served = []
        for declared in nodes:
            node = dataclasses.replace(declared, entry=False)
            if node.name in GATES:
                assert node.body is not None, "a gate is a plain body"
                node = dataclasses.replace(node, body=self._gate(node.body))
            elif node.name == "finish":
                assert node.body is not None
                node = dataclasses.replace(node, body=self._finish(node.body))
            elif node.body is not None:
                node = dataclasses.replace(node, body=self._checked(node.body))
            else:
                assert node.steps is not None
                node = dataclasses.replace(node, steps=self._checked_steps(node.steps))
            served.append(node)
        return served

    def open(self, state: RunState, config: RunnableConfig) -> dict[str, Any]:
        """The run's row under the server's thread id, and the state the run starts from."""
        thread_id = thread_id_of(config)
        if state.get("thread_id"):
            raise ConfigError(
                f"thread {thread_id!r} already ran its goal; start a new thread for another "
                "goal (its run is in agentrt's store under the same id)"
            )
        goal = state.get("goal")
        budget = _budget(state.get("budget"))
        found = self.store.get_run(thread_id)
        if found is None:
            self.driver.create(
                goal,  # type: ignore[arg-type]  # checked by create
                principal=self.principal,
                budget=budget,
                thread_id=thread_id,
                lease=graph_lease(self.name),
            )
        else:
            self._written_by_an_earlier_try(found, goal, budget)
        # Also for an earlier try that died between writing the row and this move: from
        # pending, finish could not write the run's end, and the row leased to this graph
        # would be pending for good.
        record = self._running(thread_id)
        return dict(initial_state(record))

    def _written_by_an_earlier_try(self, found: RunRecord, goal: Any, budget: Any) -> None:
        """Refuse the row ``found`` under this thread's id unless an earlier try of ``open``
        with this same input wrote it (and died before its checkpoint): the row as created,
        for the same goal, principal and budget, not yet past pending or running.

        Anything else is another run whose server thread is gone (deleted in Studio, the
        dev server's state wiped) and whose id a new thread was given again. Its goal must
        not run in the new one's place, and the new goal must not run under its id either:
        the id keys the run's row, ledger, approvals and trace, so a new run under it would
        replay the old one's recorded effects and decisions as its own, and overwrite the
        history of what the old one did."""
        thread_id = found.thread_id
        if not is_own_graph(found) or graph_name(found) != self.name:
            raise ThreadTaken(
                f"thread id {thread_id!r} already names a run in {self.store.location!r} "
                f"that is not a thread of graph {self.name!r}; use a new thread"
            )
        given = {
            "goal": goal,
            "principal": self.principal.to_dict(),
            "budget": self.driver.budgets.for_run(self.principal, budget).to_dict(),
        }
        kept = {"goal": found.goal, "principal": found.principal, "budget": found.budget}
        fresh = found.status in (RunStatus.PENDING, RunStatus.RUNNING) and found.usage == (
            empty_usage()
        )
        if fresh and given == kept:
            return
        raise ThreadTaken(
            f"thread id {thread_id!r} already names a run of graph {self.name!r} in "
            f"{self.store.location!r} (status {found.status.value}, goal {found.goal!r}) "
            "that this thread did not start: its server thread is gone and the id was given "
            "again. The id is that run's history (its ledger, approvals and trace), so no "
            "other run goes on under it; start a new thread, with a new id. The old run is "
            f"in agentrt's store: rt.get({thread_id!r})"
        )

    # A run cancelled (rt.cancel ends a served thread's row at once) stops before any
    # node's work, as the driver's runs do: never inside an effect.

    def _checked(self, body: NodeBody) -> NodeBody:
        def checked(state: RunState, deps: RunDeps) -> dict[str, Any]:
            self._live(state["thread_id"], state)
            return body(state, deps)

        return checked

    def _checked_steps(self, steps: NodeSteps) -> NodeSteps:
        def checked(state: RunState, deps: RunDeps) -> Steps[dict[str, Any]]:
            yield blocking(self._live, state["thread_id"], state)
            update: dict[str, Any] = yield from steps(state, deps)
            return update

        return checked

    def _gate(self, body: NodeBody) -> NodeBody:
        def gate(state: RunState, deps: RunDeps) -> dict[str, Any]:
            thread_id = state["thread_id"]
            self._running(thread_id, state)  # answered (or reached): the run goes on
            try:
                return body(state, deps)
            except GraphInterrupt:
                self._move(thread_id, RunStatus.AWAITING_APPROVAL, usage=state["usage"])
                raise

        return gate

    def _finish(self, body: NodeBody) -> NodeBody:
        def finish(state: RunState, deps: RunDeps) -> dict[str, Any]:
            update = body(state, deps)
            record = self._live(state["thread_id"], state)
            if record.status not in TERMINAL:  # a re-run of this step finds it written
                stop = state.get("stop")
                self.driver.move(
                    state["thread_id"],
                    RunStatus(update["status"]),
                    output=update.get("output"),
                    error=update.get("error"),
                    usage=state["usage"],
                    budget_report=stop.get("budget") if stop else None,
                    denials=denials_of([*state.get("events", ()), *update.get("events", ())]),
                )
            return update

        return finish

    # the row ------------------------------------------------------------------------------

    def _live(self, thread_id: str, state: RunState | None = None) -> RunRecord:
        record = self.driver.record(thread_id)
        if record.status is RunStatus.CANCELLED:
            raise RunError(
                f"run {thread_id!r} was cancelled: {record.error or 'no reason given'}; "
                "start a new thread",
                thread_id=thread_id,
            )
        if state is not None:
            _unedited(state, record)
        return record

    def _running(self, thread_id: str, state: RunState | None = None) -> RunRecord:
        record = self._live(thread_id, state)
        if record.status in (RunStatus.PENDING, RunStatus.AWAITING_APPROVAL):
            record = self.driver.move(thread_id, RunStatus.RUNNING)
        return record

    def _move(self, thread_id: str, status: RunStatus, **change: Any) -> None:
        if self._live(thread_id).status is not status:
            self.driver.move(thread_id, status, **change)

    # decisions handed in with the server's resume --------------------------------------------

    def decisions(self, given: Any, pending: Sequence[ApprovalRequest]) -> dict[str, str] | None:
        """Record the decisions ``given`` hands the gate's ``pending`` requests (RunDeps
        ``decisions_in_resume``); why the value decided none of them, or None."""
        waiting = sorted(r.id for r in pending)
        items = _decision_items(given)
        if not items:
            return _refusal(
                "InvalidDecision",
                f"the resume value {_short(given)} carries no decision; this gate waits for "
                f"{waiting!r}: resume with a decision such as {{'approval_id': "
                f"{waiting[0]!r}, 'outcome': 'approve', 'by': {{'id': 'bob', 'roles': "
                "['refund-approver'], 'tenant': 'acme'}} (outcome approve, reject with a "
                "reason, or edit with args; a list of them decides several)",
            )
        refused = None
        for item in items:
            named = _approval_id(item)
            if named not in waiting:
                refused = _refusal(
                    "InvalidDecision",
                    f"approval {named!r} does not wait at this gate, which waits for "
                    f"{waiting!r}; name one of those in approval_id",
                )
                continue
            try:
                record_decision(
                    self.store,
                    self.driver.tools,
                    item,
                    clock=self.driver.store.clock,
                    where=self.store.location,
                    redactor=self.driver.redactor,
                )
            except ApprovalError as exc:
                refused = _refusal(type(exc).__name__, str(exc))
        return refused


def _budget(given: Any) -> Budget | None:
    if given is None:
        return None
    if not isinstance(given, Mapping):
        raise ConfigError(
            f"budget is an object of Budget fields (max_tokens, max_cost_usd, max_tool_calls, "
            f"max_steps, ...), got {given!r}"
        )
    try:
        return Budget.from_dict(given)
    except AgentRuntimeError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"budget {dict(given)!r} is not a Budget: {exc}") from None


def _decision_items(given: Any) -> list[Any]:
    """The decisions in a resume value: one, a list of them or ``{"decisions": [...]}``."""
    if isinstance(given, Mapping) and "decisions" in given:
        given = given["decisions"]
    items = given if isinstance(given, list | tuple) else [given]
    return [i for i in items if _approval_id(i) is not None]


def _approval_id(item: Any) -> str | None:
    named = item.get("approval_id") if isinstance(item, Mapping) else None
    named = getattr(item, "approval_id", named)
    return named if isinstance(named, str) else None


def _refusal(kind: str, message: str) -> dict[str, str]:
    return {"error": kind, "message": message}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _unedited(state: RunState, record: RunRecord) -> None:
    """Refuse a thread whose state was edited where it must not be: the server lets anyone
    with Studio write any channel (``update_state``), and the nodes read who the run acts
    for, and its limits, from the state. The row, written by ``open`` and by a person's
    raise at a budget gate, says what they are: the same principal, goal and thread, and a
    budget no looser (a row raised by a gate whose step died before its checkpoint is
    looser than its state, never the other way)."""
    started = initial_state(record)
    edited = [key for key in ("thread_id", "goal", "principal") if state.get(key) != started[key]]
    budget = Budget.from_dict(state.get("budget"))
    try:
        looser = Budget.from_dict(record.budget).tightened(budget) != budget
    except ConfigError:  # it would let a limit be raised, or by someone else
        looser = True
    if looser:
        edited.append("budget")
    if edited:
        raise RunError(
            f"run {record.thread_id!r}: its state's {' and '.join(edited)} "
            f"{'was' if len(edited) == 1 else 'were'} changed on the server; a run acts for "
            "the principal, goal and budget its row was started with (agentrt's store), so "
            "it stops here; start a new thread",
            thread_id=record.thread_id,
        )
