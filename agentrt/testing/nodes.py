"""Testing one node without a runtime: its deps over an in-memory store, and a run's state.

    deps = node_deps(tools=[issue_refund], policy=Policy.from_file("refunds.yaml"))
    state = run_state(deps, actions=[action("issue_refund", {"order_id": "42", "amount": 80})])
    update = policy(state, deps)            # a node whose body only computes
    update = drive(tool(state, deps))       # a node written as steps (agentrt.steps.drive)

A gate node that would stop for a person calls LangGraph's interrupt(), which needs a
running graph: decide its request in ``deps.store`` first, or test the gate through a run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from opentelemetry.trace import NoOpTracer

from agentrt.budget import Budget, empty_usage
from agentrt.nodes.deps import RunDeps
from agentrt.policies import Policy
from agentrt.principal import Principal
from agentrt.records import NewRun
from agentrt.runs.record import initial_state
from agentrt.state import Action, Event, Plan, RunState
from agentrt.store.memory import MemoryStore
from agentrt.store.protocols import Store
from agentrt.testing.scripted import ScriptedChatModel
from agentrt.tools.execution import ToolRunner
from agentrt.tools.ledger import Ledger
from agentrt.tools.registry import ToolLike, ToolRegistry

__all__ = ["action", "node_deps", "run_state"]


def node_deps(
    *,
    model: BaseChatModel | None = None,
    tools: Sequence[ToolLike] = (),
    policy: Policy | None = None,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
    **overrides: Any,
) -> RunDeps:
    """What a node is given, with defaults for a test: a script that answers nothing, no
    tools, a policy that allows all, a fresh in-memory store, no spans, and a tool runner
    that never sleeps. ``overrides`` sets any other RunDeps field."""
    store = store or MemoryStore(clock=clock)
    return RunDeps(
        model=model or ScriptedChatModel([]),
        tools=ToolRegistry(tools),
        policy=policy or Policy.allow_all(),
        store=store,
        ledger=Ledger(store),
        tracer=NoOpTracer(),
        clock=clock,
        **{"runner": ToolRunner(sleep=lambda _: None, clock=clock), **overrides},
    )


def action(
    tool: str, args: dict[str, Any] | None = None, *, step_id: str = "0.0", call_id: str = ""
) -> Action:
    """One tool call of a plan."""
    return Action(step_id=step_id, call_id=call_id or f"call_{step_id}", tool=tool, args=args or {})


def run_state(
    deps: RunDeps,
    *,
    goal: str = "a test goal",
    principal: Principal | None = None,
    budget: Budget | None = None,
    actions: Sequence[Action] = (),
    cursor: int = 0,
    events: Sequence[Event] = (),
    thread_id: str = "t",
    **fields: Any,
) -> RunState:
    """A run's state as a node sees it mid-run: the current plan holds ``actions`` (plan
    revision from their step ids) and the cursor points at the one the node works on. The
    run's row is written to ``deps.store`` too, as a runtime would have."""
    principal = principal or Principal("tester", tenant="test")
    limits = (budget or Budget(max_steps=100)).to_dict()
    record = deps.store.get_run(thread_id) or deps.store.create_run(
        NewRun(
            thread_id=thread_id,
            goal=goal,
            principal=principal.to_dict(),
            budget=limits,
            usage=empty_usage(),
        )
    )
    assert record is not None
    revision = int(actions[0]["step_id"].split(".")[0]) if actions else 0
    state = initial_state(record)
    if actions:
        state["plan"] = Plan(revision=revision, content="", actions=list(actions), final=None)
    state["cursor"] = cursor
    state["events"] = list(events)
    state.update(fields)  # type: ignore[typeddict-item]
    return state
