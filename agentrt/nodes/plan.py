"""plan: ask the model for the next steps, given the goal and everything observed so far."""

from __future__ import annotations

import json
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

from agentrt.graphs.deps import RunDeps
from agentrt.nodes.common import budget_stop
from agentrt.principal import Principal
from agentrt.state import Action, Event, ObservationKind, Plan, RunState, RunStatus

__all__ = ["build_messages", "plan"]


def build_messages(state: RunState, instructions: str) -> list[BaseMessage]:
    """The conversation the model sees, rebuilt from the event log every time.

    The log is the only record, so a resumed run in a new process asks the model exactly
    what the original process would have asked.
    """
    messages: list[BaseMessage] = [SystemMessage(instructions), HumanMessage(state["goal"])]
    for event in state.get("events", []):
        data = event["data"]
        if event["type"] == "plan":
            messages.append(
                AIMessage(
                    content=data["content"],
                    tool_calls=[
                        {
                            "id": a["call_id"],
                            "name": a["tool"],
                            "args": a["args"],
                            "type": "tool_call",
                        }
                        for a in data["actions"]
                    ],
                )
            )
        elif event["type"] == "observation":
            kind = data["kind"]
            messages.append(
                ToolMessage(
                    content=data["content"]
                    if kind == ObservationKind.OK
                    else f"[{kind}] {data['content']}",
                    tool_call_id=data["call_id"],
                    name=data["tool"],
                    status="success" if kind == ObservationKind.OK else "error",
                )
            )
    return messages


def _actions(response: AIMessage, revision: int) -> list[Action]:
    actions: list[Action] = []
    for call in response.tool_calls:
        index = len(actions)
        actions.append(
            Action(
                step_id=f"{revision}.{index}",
                call_id=call.get("id") or f"call_{revision}_{index}",
                tool=call["name"],
                args=dict(call["args"]),
            )
        )
    # Calls whose arguments were not even JSON still get a step, so the model is told.
    for bad in response.invalid_tool_calls:
        index = len(actions)
        actions.append(
            Action(
                step_id=f"{revision}.{index}",
                call_id=bad.get("id") or f"call_{revision}_{index}",
                tool=bad.get("name") or "",
                args={},
                parse_error=f"arguments are not valid JSON: {bad.get('args')!r} "
                f"({bad.get('error') or 'parse error'})",
            )
        )
    return actions


def plan(state: RunState, deps: RunDeps) -> dict[str, Any]:
    stop = budget_stop(state, deps, steps=1)
    if stop is not None:
        return stop
    principal = Principal.from_dict(state["principal"])
    offered = [t.schema() for t in deps.tools.offered_to(principal)]
    model = deps.model.bind_tools(offered) if offered else deps.model
    response = model.invoke(build_messages(state, deps.instructions))
    if not isinstance(response, AIMessage):
        raise TypeError(f"the model returned {type(response).__name__}, expected an AIMessage")

    usage = state["usage"]
    meta = response.usage_metadata
    revision = usage["steps"]
    usage = {
        **usage,
        "input_tokens": usage["input_tokens"] + (meta["input_tokens"] if meta else 0),
        "output_tokens": usage["output_tokens"] + (meta["output_tokens"] if meta else 0),
        "steps": revision + 1,
    }

    content = (
        response.content if isinstance(response.content, str) else json.dumps(response.content)
    )
    actions = _actions(response, revision)
    new_plan = Plan(
        revision=revision,
        content=content,
        actions=actions,
        final=None if actions else content,
    )
    event = Event(
        type="plan",
        data={"revision": revision, "content": content, "actions": [dict(a) for a in actions]},
    )
    return {
        "plan": new_plan,
        "cursor": 0,
        "verdict": None,
        "outcome": None,
        "usage": usage,
        "status": RunStatus.RUNNING.value,
        "events": [event],
        "route": "policy" if actions else "finish",
    }
