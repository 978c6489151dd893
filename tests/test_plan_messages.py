"""The planner's conversation: built from the event log, extended turn by turn."""

from __future__ import annotations

import copy
from typing import Any

from langchain_core.messages import BaseMessage

from agentrt.nodes.plan import build_messages
from agentrt.state import Event


def _turn(k: int, kind: str = "ok") -> list[Event]:
    action = {"step_id": f"{k}.0", "call_id": f"call_{k}_0", "tool": "noop", "args": {"i": k}}
    observation = {**action, "kind": kind, "content": f'{{"i": {k}}}'}
    del observation["args"]
    return [
        Event(type="plan", data={"revision": k, "content": f"turn {k}", "actions": [action]}),
        Event(type="policy", step_id=f"{k}.0", data={"outcome": "allow"}),
        Event(type="observation", step_id=f"{k}.0", data=observation),
    ]


def _state(thread_id: str, events: list[Event], goal: str = "the goal") -> Any:
    return {"thread_id": thread_id, "goal": goal, "events": events}


def _dump(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return [m.model_dump() for m in messages]


def test_a_growing_log_gives_what_a_fresh_build_gives() -> None:
    events: list[Event] = []
    for k in range(6):
        extended = build_messages(_state("grow", events), "be brief")
        fresh = build_messages(_state(f"cold-{k}", copy.deepcopy(events)), "be brief")
        assert _dump(extended) == _dump(fresh)
        assert len(extended) == 2 + 2 * k
        # the log grows as the DeltaChannel grows it: a new list, the same event objects
        events = [*events, *_turn(k, "ok" if k % 2 else "error")]
    assert [m.type for m in extended[:4]] == ["system", "human", "ai", "tool"]
    assert extended[3].content.startswith("[error] ")


def test_a_different_log_under_the_same_thread_is_rebuilt() -> None:
    first = [*_turn(0), *_turn(1)]
    build_messages(_state("fork", first), "x")
    # Same length and content, different history: a forked or reloaded log.
    other = [*_turn(0), *_turn(7)]
    assert _dump(build_messages(_state("fork", other), "x")) == _dump(
        build_messages(_state("fork-cold", copy.deepcopy(other)), "x")
    )
    # Shorter than before (a thread rewound), then a new goal and new instructions.
    assert len(build_messages(_state("fork", other[:3]), "x")) == 4
    changed = build_messages(_state("fork", other[:3], goal="another goal"), "y")
    assert (changed[0].content, changed[1].content) == ("y", "another goal")


def test_changing_the_returned_list_does_not_change_the_next_turn() -> None:
    events = _turn(0)
    messages = build_messages(_state("mine", events), "x")
    messages.clear()
    assert len(build_messages(_state("mine", events), "x")) == 4
