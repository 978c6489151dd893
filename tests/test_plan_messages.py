"""The planner's conversation: built from the event log, extended turn by turn."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage

from agentrt import AgentRuntime, Policy, Principal, RunStatus, tool
from agentrt.nodes.plan import build_messages
from agentrt.state import Event
from agentrt.testing import ScriptedChatModel, tool_call


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


@tool(effect="read")
def look_up(order_id: str) -> dict[str, Any]:
    """Look an order up.

    Args:
        order_id: The order's id.
    """
    return {"order_id": order_id, "total": 89.0}


def test_a_turn_with_reasoning_goes_back_as_its_blocks_and_the_output_is_its_text(
    db: Path,
) -> None:
    # A provider that reasons before a tool call wants that turn back as it gave it, the
    # thinking block's signature too (Anthropic refuses the next request otherwise); the
    # run's output is the final answer's text, never the model's reasoning.
    thinking = {"type": "thinking", "thinking": "Look the order up.", "signature": "sig-1"}
    odd = {"type": "thinking", "thinking": "half \ud800 of a pair", "signature": 2**70}
    first = AIMessage(
        content=[thinking, odd], tool_calls=[tool_call("look_up", {"order_id": "42"}, id="c1")]
    )
    last = AIMessage(
        content=[
            {"type": "reasoning", "reasoning": "The user is alice; the ledger says $89."},
            {"type": "text", "text": "Order 42 cost "},
            {"type": "text", "text": "$89.00."},
        ]
    )
    model = ScriptedChatModel([first, last])
    with AgentRuntime(model, tools=[look_up], policy=Policy.allow_all(), db=db) as rt:
        run = rt.start("What did order 42 cost?", principal=Principal("alice"), thread_id="t")
        events = rt.events("t")
    assert (run.status, run.output) == (RunStatus.SUCCEEDED, "Order 42 cost $89.00."), run.error
    kept = {"type": "thinking", "thinking": "half \ufffd of a pair", "signature": str(2**70)}
    sent = model.calls[1].messages
    [turn] = [m for m in sent if isinstance(m, AIMessage)]
    assert turn.content == [thinking, kept]
    assert [c["id"] for c in turn.tool_calls] == ["c1"]
    plans = [e["data"] for e in events if e["type"] == "plan"]
    assert [p["content"] for p in plans] == ["", "Order 42 cost $89.00."]
    assert plans[0]["blocks"] == [thinking, kept]
    assert plans[1]["blocks"][0]["type"] == "reasoning"  # kept for a later turn, not shown
    # Read back from the log in another process, the conversation is the same.
    rebuilt = build_messages(_state("elsewhere", events[:3], "What did order 42 cost?"), "x")
    assert rebuilt[2].content == [thinking, kept]
    # A log an earlier version wrote (no blocks) still sends the turn back as its text.
    older = [{**events[0], "data": {k: v for k, v in plans[0].items() if k != "blocks"}}]
    assert build_messages(_state("older", older), "x")[2].content == ""


def test_a_refusal_stop_fails_and_content_a_translator_chokes_on_is_read_as_it_is(
    db: Path,
) -> None:
    # Anthropic says a refusal by its stop reason; LangChain's standard blocks carry it.
    refused = AIMessage(
        "", response_metadata={"model_provider": "anthropic", "stop_reason": "refusal"}
    )
    # A malformed block that LangChain's OpenAI translator raises on: the answer's text stands.
    odd = AIMessage(
        content=[{"type": "reasoning", "summary": "not a list"}, {"type": "text", "text": "ok"}],
        response_metadata={"model_provider": "openai", "finish_reason": "stop"},
    )
    with AgentRuntime(ScriptedChatModel([refused]), db=db) as rt:
        first = rt.start("do it", principal=Principal("alice"))
    with AgentRuntime(ScriptedChatModel([odd]), db=db) as rt:
        second = rt.start("do it", principal=Principal("alice"))
    assert (first.status, first.error) == (
        RunStatus.FAILED,
        "the model refused to answer plan step 0 (it gave no reason); change the goal or "
        "the instructions, or have a person take the task",
    )
    assert (second.status, second.output) == (RunStatus.SUCCEEDED, "ok"), second.error
