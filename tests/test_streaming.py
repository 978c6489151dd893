"""rt.stream and rt.astream: a run's events as they happen, and a run left early resumes."""

from __future__ import annotations

import asyncio
import json
import re
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest
from langgraph.config import get_stream_writer

from agentrt import AgentRuntime, Budget, Decision, Policy, Principal, RunStatus, tool
from agentrt.events import KINDS, StreamEvent
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock, Ids
from tests.test_runtime import refunds

WORKER = Principal("w")


def logged(events: list[StreamEvent]) -> list[Any]:
    """The streamed entries of the run's log, as JSON (as the log keeps them)."""
    return json.loads(
        json.dumps(
            [
                {"type": e.type, "step_id": e.step_id, "data": e.data}
                for e in events
                if e.type in KINDS
            ]
        )
    )


def as_log(rt: AgentRuntime, thread_id: str) -> list[Any]:
    entries = [
        {"type": e["type"], "step_id": e.get("step_id"), "data": e["data"]}
        for e in rt.events(thread_id)
    ]
    return json.loads(json.dumps(entries))


def shape(events: list[StreamEvent]) -> list[str]:
    """The stream as one line an event, tokens of one answer run together."""
    lines: list[str] = []
    for e in events:
        if e.type == "token" and lines and lines[-1].startswith("token"):
            continue
        node = e.data.get("node") if e.type in ("step_started", "step_ended") else None
        lines.append(" ".join(str(p) for p in (e.type, e.step_id, node) if p is not None))
    return lines


def test_a_run_streams_every_event_in_order_to_its_gate_and_on(desk: AgentRuntime) -> None:
    events = list(desk.stream(GOAL, principal=OPERATOR))
    thread_id = events[0].thread_id
    assert {e.thread_id for e in events} == {thread_id}
    assert desk.get(thread_id).status is RunStatus.AWAITING_APPROVAL
    # The log's entries arrive as they are written: all of them, in the log's order.
    assert logged(events) == as_log(desk, thread_id)
    assert [e.index for e in events if e.type in KINDS] == list(range(len(as_log(desk, thread_id))))
    assert {e.index for e in events if e.type not in KINDS} == {None}
    # The first plan, then each action through policy, tool and verify, up to the gate.
    assert shape(events)[:14] == [
        "step_started plan",
        "token",
        "plan",
        "step_ended plan",
        "step_started 0.0 policy",
        "policy 0.0",
        "step_ended 0.0 policy",
        "step_started 0.0 tool",
        "tool_call 0.0",
        "tool_result 0.0",
        "step_ended 0.0 tool",
        "step_started 0.0 verify",
        "observation 0.0",
        "step_ended 0.0 verify",
    ]
    assert shape(events)[-3:] == ["step_started 2.0 approval", "gate", "step_ended 2.0 approval"]
    # The tokens of a plan step add up to the model's words.
    first_plan = events.index(next(e for e in events if e.type == "plan"))
    tokens = "".join(e.data["text"] for e in events[:first_plan] if e.type == "token")
    assert tokens == events[first_plan].data["content"]
    call = next(e for e in events if e.type == "tool_call")
    assert call.data == {
        "tool": "lookup_order",
        "args": {"order_id": "42"},
        "call_id": call.data["call_id"],
        "node": "tool",
    }
    gate = events[-2]
    pending = desk.get(thread_id).pending_approvals[0]
    assert [a["id"] for a in gate.data["approvals"]] == [pending.id]
    assert gate.describe() == f"gate: waits for a person on issue_refund ({pending.id})"

    decided = list(desk.stream_decide(Decision.approve(pending.id, by=APPROVER)))
    assert {e.thread_id for e in decided} == {thread_id}
    assert logged(events + decided) == as_log(desk, thread_id)
    assert decided[-2].type == "finish"
    assert decided[-2].data["status"] == "succeeded"
    assert desk.get(thread_id).status is RunStatus.SUCCEEDED


calls: list[dict[str, Any]] = []


@tool(effect="write")
def move_stock(sku: str, units: int) -> dict[str, Any]:
    """Move units of a SKU; each call is counted, to see effects happen once."""
    calls.append({"sku": sku, "units": units})
    get_stream_writer()({"moved": units})  # a tool's own progress, streamed as "custom"
    return {"moved": units}


def stock_runtime(db: Path, clock: FakeClock, **kwargs: Any) -> AgentRuntime:
    model = ScriptedChatModel(
        [
            ai("Moving.", tool_call("move_stock", {"sku": "a", "units": 1})),
            ai("Again.", tool_call("move_stock", {"sku": "b", "units": 2})),
            "Moved both.",
        ]
    )
    return AgentRuntime(
        model,
        tools=[move_stock],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        new_id=Ids(),
        **kwargs,
    )


def test_leaving_a_stream_early_stops_the_run_resumable_and_effects_once(
    db: Path, clock: FakeClock
) -> None:
    calls.clear()
    with stock_runtime(db, clock) as rt:
        seen: list[StreamEvent] = []
        for event in rt.stream("move stock", principal=WORKER):
            seen.append(event)
            if event.type == "tool_result":
                break  # the tool has run; verify, the next node, does not
        thread_id = seen[0].thread_id
        run = rt.get(thread_id)
        assert run.status is RunStatus.RUNNING
        assert rt.store.get_run(thread_id).lease_owner is None  # let go: anyone resumes it
        assert calls == [{"sku": "a", "units": 1}]
        rest = list(rt.stream_resume(thread_id))
        assert rt.get(thread_id).status is RunStatus.SUCCEEDED
        assert calls == [{"sku": "a", "units": 1}, {"sku": "b", "units": 2}]
        # Together the two streams told the whole log, each entry once.
        assert logged(seen + rest) == as_log(rt, thread_id)
        assert [e.index for e in seen + rest if e.type in KINDS] == list(
            range(len(as_log(rt, thread_id)))
        )
        assert [e.data for e in rest if e.type == "custom"] == [{"moved": 2}]


def test_astream_left_early_resumes_with_aresume(db: Path, clock: FakeClock) -> None:
    calls.clear()

    async def go(rt: AgentRuntime) -> tuple[str, list[str]]:
        kinds: list[str] = []
        async with aclosing(rt.astream("move stock", principal=WORKER)) as events:
            async for event in events:
                kinds.append(event.type)
                if event.type == "tool_result":
                    thread_id = event.thread_id
                    break
        assert (await rt.aget(thread_id)).status is RunStatus.RUNNING
        assert calls == [{"sku": "a", "units": 1}]
        run = await rt.aresume(thread_id)
        assert run.status is RunStatus.SUCCEEDED
        return thread_id, kinds

    with stock_runtime(db, clock) as rt:
        _, kinds = asyncio.run(go(rt))
    assert kinds[-3:] == ["tool_call", "custom", "tool_result"]
    assert calls == [{"sku": "a", "units": 1}, {"sku": "b", "units": 2}]


def test_a_budget_warning_comes_once_a_limit_is_near(db: Path, clock: FakeClock) -> None:
    calls.clear()
    with stock_runtime(db, clock, budget=Budget(max_tool_calls=2)) as rt:
        events = list(rt.stream("move stock", principal=WORKER))
    warnings = [e for e in events if e.type == "budget_warning"]
    assert [dict(w.data) for w in warnings] == [{"limit": "max_tool_calls", "used": 2.0, "max": 2}]
    assert warnings[0].describe() == "budget: max_tool_calls at 2.0 of 2"
    assert events[-2].type == "finish"


def test_the_readme_example_streams_stops_and_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "rt.stream(" in b]
    names: dict[str, Any] = {}
    exec(compile(block, "README.md", "exec"), names)
    names["rt"].close()
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        'call 0.0: lookup_order({"order_id": "42"})',
        'call 1.0: lookup_customer({"customer_id": "c-7"})',
        'call 1.1: add_order_note({"order_id": "42", "note": "Customer reports the blender '
        'arrived broken."})',
        "running",
        "succeeded",
    ]
    assert "".join(names["words"]).startswith("Let me look at the order.")
    assert refunds(tmp_path / "streaming.db") == [("42", 89.0)]  # paid once
