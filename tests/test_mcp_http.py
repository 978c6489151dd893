"""MCP servers over Streamable HTTP (a notes server the tests own, on 127.0.0.1) and the
life of a server: down, killed mid-call, killed between calls, its list of tools changing.

Each test's server is a real process; a server is killed with SIGKILL, as a crash would.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import BaseMessage, HumanMessage

from agentrt import AgentRuntime, Decision, Policy, Principal, RunStatus
from agentrt.digests import effect_key
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.mcp import MCPServer
from tests.mcp_helpers import TIME_SERVER, NotesServer, children, kill, notes_server, wait_for

pytestmark = pytest.mark.subprocess

ALICE = Principal("alice", roles=["operator"], tenant="acme")
BOB = Principal("bob", roles=["reviewer"], tenant="acme")


@pytest.fixture
def notes(tmp_path: Path) -> Iterator[NotesServer]:
    with notes_server(tmp_path) as server:
        yield server


def by_goal(script: dict[str, list[Any]]) -> ScriptedChatModel:
    """A model that follows one script per goal: runs of one runtime each start at turn 0."""

    def turn(index: int) -> Any:
        def answer(messages: list[BaseMessage]) -> Any:
            goal = next(str(m.content) for m in messages if isinstance(m, HumanMessage))
            steps = next(v for k, v in script.items() if k in goal)
            return steps[index]

        return answer

    return ScriptedChatModel([turn(i) for i in range(max(map(len, script.values())))])


def runtime(db: Path, model: ScriptedChatModel, *tools: object, **kwargs: object) -> AgentRuntime:
    return AgentRuntime(
        model,
        tools=list(tools),  # type: ignore[arg-type]
        policy=kwargs.pop("policy", Policy.allow_all()),  # type: ignore[arg-type]
        db=db,
        sleep=lambda _: None,  # retries back off without waiting
        **kwargs,  # type: ignore[arg-type]
    )


def observations(rt: AgentRuntime, thread_id: str) -> list[tuple[str, str]]:
    return [
        (e["data"]["tool"], e["data"]["kind"])
        for e in rt.events(thread_id)
        if e["type"] == "observation"
    ]


def test_a_call_over_http_carries_its_idempotency_key_in_meta(db: Path, notes: NotesServer) -> None:
    model = ScriptedChatModel([ai("", tool_call("add_note", {"text": "milk"})), "noted"])
    with runtime(db, model, MCPServer.http(notes.url, name="notes")) as rt:
        spec = rt.tools.get("add_note")
        assert spec is not None
        # No annotations: a write, through the ledger, never silently a read.
        assert (spec.effect.value, spec.idempotent, spec.server) == ("write", False, "notes")
        run = rt.start("note milk", principal=ALICE, thread_id="t1")
    assert run.status is RunStatus.SUCCEEDED
    assert notes.notes() == [("milk", effect_key("t1", "0.0", "add_note", {"text": "milk"}))]


def test_arguments_off_the_input_schema_are_invalid_args_and_nothing_is_sent(
    db: Path, notes: NotesServer
) -> None:
    model = ScriptedChatModel(
        [ai("", tool_call("add_note", {"text": 42, "colour": "red"})), "gave up"]
    )
    with runtime(db, model, MCPServer.http(notes.url, name="notes")) as rt:
        run = rt.start("note something", principal=ALICE)
        assert observations(rt, run.thread_id) == [("add_note", "invalid_args")]
        content = next(e for e in rt.events(run.thread_id) if e["type"] == "observation")
    assert "text: Input is not of type 'string'" in content["data"]["content"]
    assert "colour: Extra inputs are not permitted" in content["data"]["content"]
    assert notes.notes() == []


def test_a_server_that_is_down_is_a_transient_observation_until_it_is_back(
    db: Path, notes: NotesServer
) -> None:
    model = by_goal(
        {
            "note milk": [ai("", tool_call("add_note", {"text": "milk"})), "it is down"],
            "note eggs": [ai("", tool_call("add_note", {"text": "eggs"})), "noted"],
        }
    )
    with runtime(db, model, MCPServer.http(notes.url, name="notes")) as rt:
        notes.kill()
        down = rt.start("note milk", principal=ALICE)
        assert down.status is RunStatus.SUCCEEDED  # the model saw the failure and answered
        assert observations(rt, down.thread_id) == [("add_note", "transient")]
        said = next(e for e in rt.events(down.thread_id) if e["type"] == "observation")
        assert "could not be reached" in said["data"]["content"]
        assert "2 retries" in said["data"]["content"]

        notes.start()
        back = rt.start("note eggs", principal=ALICE)
        assert back.status is RunStatus.SUCCEEDED
        assert observations(rt, back.thread_id) == [("add_note", "ok")]
    assert [text for text, _ in notes.notes()] == ["eggs"]


def test_a_server_killed_mid_call_leaves_the_effect_in_doubt(db: Path, notes: NotesServer) -> None:
    model = ScriptedChatModel([ai("", tool_call("hold_note", {"text": "milk"})), "noted"])
    with runtime(db, model, MCPServer.http(notes.url, name="notes")) as rt:
        done: list[RunStatus] = []
        worker = threading.Thread(
            target=lambda: done.append(rt.start("note", principal=ALICE, thread_id="t").status)
        )
        worker.start()
        wait_for("the call to reach the server", (notes.directory / "holding").exists)
        notes.kill()
        worker.join(timeout=60)
        assert done == [RunStatus.AWAITING_APPROVAL]
        request = rt.get("t").pending_approval
        assert request is not None
        assert (request.kind, request.tool) == ("reconcile", "hold_note")
        assert "went away during the call of 'hold_note'" in (request.reason or "")
        # A person looked: the note is there. Settled as done, with what the tool gives.
        finished = rt.decide(Decision.resolve(request.id, result={"result": "added"}, by=BOB))
    assert finished.status is RunStatus.SUCCEEDED


def test_a_new_list_of_tools_is_picked_up_by_the_next_run(db: Path, notes: NotesServer) -> None:
    model = by_goal(
        {
            "grow": [ai("", tool_call("grow", {})), "grown"],
            "shout hi": [ai("", tool_call("shout", {"text": "hi"})), "shouted"],
        }
    )
    with runtime(db, model, MCPServer.http(notes.url, name="notes")) as rt:
        assert "shout" not in rt.tools.names()
        first = rt.start("grow", principal=ALICE)
        assert first.status is RunStatus.SUCCEEDED
        second = rt.start("shout hi", principal=ALICE)
        assert second.status is RunStatus.SUCCEEDED
        assert "shout" in rt.tools.names()
        shouted = [e for e in rt.events(second.thread_id) if e["type"] == "observation"]
    assert model.calls[0].tool_names == ("count_notes", "add_note", "hold_note", "grow")
    assert "shout" in model.calls[2].tool_names
    assert shouted[0]["data"]["content"] == '{"result": "HI"}'


def test_a_stdio_server_killed_between_calls_is_started_again(db: Path) -> None:
    model = ScriptedChatModel(
        [
            ai(
                "",
                tool_call("get_current_time", {"timezone": "Europe/Paris"}),
                tool_call(
                    "convert_time",
                    {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"},
                ),
            ),
            "it is 21:00 in Tokyo",
        ]
    )
    policy = Policy(
        [
            {"id": "ask", "match": {"tools": ["convert_time"]}, "decision": "require_approval"},
        ],
        default="allow",
    )
    with runtime(db, model, MCPServer.stdio(TIME_SERVER, name="time"), policy=policy) as rt:
        first = children("mcp-server-time")
        assert len(first) == 1
        run = rt.start("time in Tokyo", principal=ALICE)
        assert run.status is RunStatus.AWAITING_APPROVAL
        kill(first[0])  # the server dies while the run waits for a person
        request = run.pending_approval
        assert request is not None
        done = rt.decide(Decision.approve(request.id, by=BOB))
        assert done.status is RunStatus.SUCCEEDED
        assert observations(rt, run.thread_id) == [
            ("get_current_time", "ok"),
            ("convert_time", "ok"),
        ]
        again = children("mcp-server-time")
        assert len(again) == 1
        assert again != first
    assert children("mcp-server-time") == []  # closed with the runtime
