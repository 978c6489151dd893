"""The refund desk under a LangGraph API server: ``langgraph dev`` with the repository's
langgraph.json, driven through its HTTP API with langgraph-sdk, and the served graph itself
on an in-memory checkpointer (the server's kind) for what a person can get wrong."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agentrt import AgentRuntime, Decision, RunStatus
from agentrt.errors import ConfigError, RunError, ThreadTaken
from agentrt.examples.refund_desk import APPROVER, OPERATOR, build_runtime
from tests.serving import ROOT, free_port

BOB = {"id": "bob", "roles": ["refund-approver"], "tenant": "acme"}
"""A refund approver, as a person types the decider into Studio's resume."""


def _refunds(db: Path) -> list[tuple[Any, ...]]:
    payments = db.with_name(db.stem + ".payments.db")
    if not payments.exists():
        return []
    with closing(sqlite3.connect(payments)) as conn:
        return conn.execute("SELECT order_id, amount FROM refunds").fetchall()


# the served graph, in this process --------------------------------------------------------


@pytest.fixture
def desk(tmp_path: Path) -> Iterator[tuple[AgentRuntime, Any, Path]]:
    db = tmp_path / "agentrt.db"
    with build_runtime(db) as rt:
        graph = rt.served_graph(principal=OPERATOR).copy(update={"checkpointer": InMemorySaver()})
        yield rt, graph, db


def _at_gate(graph: Any, thread_id: str) -> dict[str, Any]:
    snapshot = graph.get_state({"configurable": {"thread_id": thread_id}})
    assert snapshot.next == ("approval",)
    (asked,) = snapshot.interrupts
    value: dict[str, Any] = asked.value
    return value


def test_a_thread_runs_to_its_gate_and_a_decision_takes_it_past(desk: Any) -> None:
    rt, graph, db = desk
    config = {"configurable": {"thread_id": "t-1"}}
    graph.invoke({"goal": "Refund order 42"}, config)
    asked = _at_gate(graph, "t-1")
    (request,) = asked["approvals"]
    assert (request["tool"], request["args"]) == (
        "issue_refund",
        {"order_id": "42", "amount": 89.0},
    )
    run = rt.get("t-1")
    assert (run.status.value, run.pending_approval is not None) == ("awaiting_approval", True)
    assert [r.id for r in rt.approvals(thread_id="t-1")] == [request["id"]]
    assert _refunds(db) == []

    graph.invoke(
        Command(resume={"approval_id": request["id"], "outcome": "approve", "by": BOB}), config
    )
    values = graph.get_state(config).values
    assert values["status"] == "succeeded"
    assert rt.get("t-1").status.value == "succeeded"
    assert rt.get("t-1").output == values["output"]
    assert _refunds(db) == [("42", 89.0)]
    # Invoking the finished thread again runs nothing twice.
    graph.invoke(None, config)
    assert _refunds(db) == [("42", 89.0)]


@pytest.mark.parametrize(
    ("resume", "error", "words"),
    [
        ("yes", "InvalidDecision", "carries no decision"),
        ({"decided": True}, "InvalidDecision", "carries no decision"),
        (
            {"approval_id": "apr_nope", "outcome": "approve", "by": BOB},
            "InvalidDecision",
            "apr_nope",
        ),
        ({"outcome": "maybe", "by": BOB}, "InvalidDecision", "maybe"),
        ({"outcome": "reject", "by": BOB}, "InvalidDecision", "reason"),
        (
            {"outcome": "approve", "by": {**OPERATOR.to_dict(), "roles": ["refund-approver"]}},
            "NotAuthorized",
            "four-eyes",
        ),
        ({"outcome": "approve", "by": {"id": "carol", "tenant": "acme"}}, "NotAuthorized", "role"),
        # A decider typed wrong: refused as any bad decision is, never raised (LangGraph
        # keeps a resume value for good: raised, it would fail every later resume too).
        (
            {"outcome": "approve", "by": {**BOB, "roles": "refund-approver"}},
            "InvalidDecision",
            "write roles=['refund-approver']",
        ),
        (
            {"outcome": "approve", "by": {"roles": ["refund-approver"], "tenant": "acme"}},
            "InvalidDecision",
            "a Principal needs a non-empty id, got None",
        ),
        (
            {"outcome": "approve", "by": {**BOB, "role": "refund-approver"}},
            "InvalidDecision",
            "by has no field ['role']; a decider is written {'id': 'bob', 'roles': [",
        ),
    ],
)
def test_a_bad_resume_is_refused_clearly_and_the_thread_stays_at_its_gate(
    desk: Any, resume: Any, error: str, words: str
) -> None:
    rt, graph, db = desk
    config = {"configurable": {"thread_id": "t-2"}}
    graph.invoke({"goal": "Refund order 42"}, config)
    (request,) = _at_gate(graph, "t-2")["approvals"]
    if isinstance(resume, dict) and "outcome" in resume and "approval_id" not in resume:
        resume = {"approval_id": request["id"], **resume}

    graph.invoke(Command(resume=resume), config)
    asked = _at_gate(graph, "t-2")
    assert asked["refused"]["error"] == error
    assert words in asked["refused"]["message"]
    assert [r["id"] for r in asked["approvals"]] == [request["id"]]
    assert rt.get("t-2").status.value == "awaiting_approval"
    assert [r.status.value for r in rt.approvals(None, thread_id="t-2")] == ["pending"]
    assert _refunds(db) == []

    # Nothing lost: the next resume with a good decision goes on.
    graph.invoke(Command(resume=Decision.approve(request["id"], by=APPROVER)), config)
    assert graph.get_state(config).values["status"] == "succeeded"
    assert _refunds(db) == [("42", 89.0)]


def test_the_readmes_decision_answers_the_gate(desk: Any) -> None:
    rt, graph, db = desk
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```json\n(.*?)```", readme, re.S) if "approval_id" in b]
    graph.invoke({"goal": "Refund order 42"}, _cfg("t-9"))
    (request,) = rt.approvals(thread_id="t-9")
    decision = json.loads(block.replace("apr_...", request.id))
    graph.invoke(Command(resume=decision), _cfg("t-9"))
    assert rt.get("t-9").status.value == "succeeded"
    assert _refunds(db) == [("42", 89.0)]


def test_running_again_from_a_checkpoint_before_the_refund_refunds_nothing_twice(
    desk: Any,
) -> None:
    rt, graph, db = desk
    graph.invoke({"goal": "Refund order 42"}, _cfg("t-10"))
    (request,) = rt.approvals(thread_id="t-10")
    graph.invoke(Command(resume={**_decision(request.id), "by": BOB}), _cfg("t-10"))
    assert _refunds(db) == [("42", 89.0)]
    # Studio's replay: the thread run again from the checkpoint where the refund was next.
    (before,) = [
        s
        for s in graph.get_state_history(_cfg("t-10"))
        if s.next == ("tool",) and s.values["plan"]["actions"][0]["tool"] == "issue_refund"
    ]
    graph.invoke(None, before.config)
    assert graph.get_state(_cfg("t-10")).values["status"] == "succeeded"
    assert _refunds(db) == [("42", 89.0)]
    assert rt.get("t-10").status.value == "succeeded"


def _decision(approval_id: str) -> dict[str, Any]:
    return {"approval_id": approval_id, "outcome": "approve"}


def test_a_decision_made_elsewhere_counts_when_the_thread_is_resumed(desk: Any) -> None:
    rt, graph, db = desk
    config = {"configurable": {"thread_id": "t-3"}}
    graph.invoke({"goal": "Refund order 42"}, config)
    (request,) = _at_gate(graph, "t-3")["approvals"]
    # The review queue, the service or the CLI: the thread is left for its server to go on.
    run = rt.decide(Decision.reject(request["id"], by=APPROVER, reason="not broken"))
    assert run.status.value == "awaiting_approval"
    graph.invoke(Command(resume="decided in the review page"), config)
    values = graph.get_state(config).values
    assert values["status"] == "succeeded"
    assert "did not refund" in values["output"]
    assert _refunds(db) == []


def test_a_budget_given_with_the_goal_binds_the_run(desk: Any) -> None:
    rt, graph, db = desk
    config = {"configurable": {"thread_id": "t-4"}}
    graph.invoke({"goal": "Refund order 42", "budget": {"max_tool_calls": 1}}, config)
    values = graph.get_state(config).values
    assert values["status"] == "budget_exceeded"
    run = rt.get("t-4")
    assert run.status.value == "budget_exceeded"
    assert run.usage["tool_calls"] <= 1
    assert _refunds(db) == []


def test_what_a_served_thread_is_given_is_checked(desk: Any) -> None:
    rt, graph, _ = desk
    with pytest.raises(ConfigError, match="max_bananas"):
        graph.invoke({"goal": "Refund order 42", "budget": {"max_bananas": 3}}, _cfg("t-5"))
    with pytest.raises(ConfigError, match="goal in words"):
        graph.invoke({"goal": "  "}, _cfg("t-6"))
    graph.invoke({"goal": "Refund order 42"}, _cfg("t-7"))
    (request,) = rt.approvals(thread_id="t-7")
    graph.invoke(Command(resume=Decision.approve(request.id, by=APPROVER)), _cfg("t-7"))
    with pytest.raises(ConfigError, match="already ran its goal"):
        graph.invoke({"goal": "Refund order 43"}, _cfg("t-7"))
    with pytest.raises(ConfigError, match="Principal"):
        rt.served_graph(principal="alice")


def test_a_cancelled_thread_stops_before_its_next_step(desk: Any) -> None:
    rt, graph, db = desk
    graph.invoke({"goal": "Refund order 42"}, _cfg("t-8"))
    (request,) = rt.approvals(thread_id="t-8")
    assert rt.cancel("t-8", reason="customer withdrew").status.value == "cancelled"
    with pytest.raises(RunError, match="customer withdrew"):
        graph.invoke(Command(resume=Decision.approve(request.id, by=APPROVER)), _cfg("t-8"))
    assert rt.get("t-8").status.value == "cancelled"
    assert _refunds(db) == []


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ({"principal": {"id": "mallory", "roles": ["operator"], "tenant": "globex"}}, "principal"),
        ({"goal": "Refund order 43 twice"}, "goal"),
        ({"budget": {"max_tool_calls": 1000, "max_steps": 1000}}, "budget"),
    ],
)
def test_state_edited_on_the_server_to_act_for_another_is_refused(
    desk: Any, edit: dict[str, Any], named: str
) -> None:
    rt, graph, db = desk
    # Studio may stop a thread before any node and write any channel of its state.
    graph.invoke({"goal": "Refund order 42"}, _cfg("t-9"), interrupt_before=["plan"])
    graph.update_state(_cfg("t-9"), edit)
    with pytest.raises(RunError, match=f"its state's {named} was changed on the server"):
        graph.invoke(None, _cfg("t-9"))
    assert rt.get("t-9").principal == OPERATOR
    assert rt.approvals(thread_id="t-9") == []
    assert _refunds(db) == []


def test_a_tighter_budget_written_into_the_state_is_kept(desk: Any) -> None:
    _, graph, db = desk
    graph.invoke({"goal": "Refund order 42"}, _cfg("t-10"), interrupt_before=["plan"])
    budget = graph.get_state(_cfg("t-10")).values["budget"]
    graph.update_state(_cfg("t-10"), {"budget": {**budget, "max_tool_calls": 1}})
    graph.invoke(None, _cfg("t-10"))
    assert graph.get_state(_cfg("t-10")).values["status"] == "budget_exceeded"
    assert _refunds(db) == []


def _served_again(rt: AgentRuntime) -> Any:
    """The served graph on a new checkpointer: the server's threads deleted (or the dev
    server's state wiped), agentrt's store kept."""
    return rt.served_graph(principal=OPERATOR).copy(update={"checkpointer": InMemorySaver()})


@pytest.mark.parametrize(
    ("goal", "status"),
    [
        ("Refund order 42", "succeeded"),  # the old run's own goal, ended
        ("Refund order 7", "succeeded"),
        ("Refund order 42", "awaiting_approval"),  # the old run waits at its gate
    ],
)
def test_a_thread_id_given_again_after_its_server_thread_is_gone_is_refused(
    desk: Any, goal: str, status: str
) -> None:
    rt, graph, db = desk
    graph.invoke({"goal": "Refund order 42"}, _cfg("t-11"))
    if status == "succeeded":
        (request,) = rt.approvals(thread_id="t-11")
        graph.invoke(Command(resume=Decision.approve(request.id, by=APPROVER)), _cfg("t-11"))
    old = rt.get("t-11")
    assert old.status.value == status
    asked, refunded = rt.approvals(None, thread_id="t-11"), _refunds(db)
    again = _served_again(rt)
    # Neither the old goal in the new thread's place, nor the new goal under the old run's
    # id (its ledger and approvals would answer for the new run's calls and gates).
    with pytest.raises(ThreadTaken) as refused:
        again.invoke({"goal": goal}, _cfg("t-11"))
    assert str(refused.value) == (
        f"thread id 't-11' already names a run of graph 'studio' in {str(db)!r} "
        f"(status {status}, goal 'Refund order 42') that this thread did not start: its "
        "server thread is gone and the id was given again. The id is that run's history "
        "(its ledger, approvals and trace), so no other run goes on under it; start a new "
        "thread, with a new id. The old run is in agentrt's store: rt.get('t-11')"
    )
    assert (rt.get("t-11"), rt.approvals(None, thread_id="t-11")) == (old, asked)
    assert _refunds(db) == refunded
    # A new id runs the goal it is given.
    again.invoke({"goal": "Refund order 7"}, _cfg("t-12"))
    assert rt.get("t-12").goal == "Refund order 7"


def test_open_tried_again_after_dying_before_the_move_to_running_takes_its_row_on(
    desk: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, graph, db = desk
    driver = rt._driver
    move = driver.move

    class Died(Exception):
        """The server's process, gone between writing the row and moving it on."""

    def dies(thread_id: str, status: RunStatus, *args: Any, **change: Any) -> Any:
        if status is RunStatus.RUNNING:
            raise Died
        return move(thread_id, status, *args, **change)

    given = {"goal": "Refund order 42", "budget": {"max_tool_calls": 0}}
    with monkeypatch.context() as patched:
        patched.setattr(driver, "move", dies)
        with pytest.raises(Died):
            graph.invoke(given, _cfg("t-14"))
    assert rt.get("t-14").status is RunStatus.PENDING
    # The server runs the step again: it takes the row its first try wrote, and the run
    # ends as it would have, its end written into the row.
    graph.invoke(None, _cfg("t-14"))
    assert graph.get_state(_cfg("t-14")).values["status"] == "budget_exceeded"
    assert rt.get("t-14").status is RunStatus.BUDGET_EXCEEDED
    assert _refunds(db) == []


def _cfg(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


# langgraph dev, in a subprocess -------------------------------------------------------------

OFFLINE = {
    # No analytics, no version check, no LangSmith tracing.
    "LANGGRAPH_CLI_NO_ANALYTICS": "1",
    "LANGGRAPH_NO_VERSION_CHECK": "true",
    "LANGSMITH_TRACING": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "NO_PROXY": "127.0.0.1,localhost",
}


class Doorman:
    """A proxy that lets nobody out: the server's HTTP(S)_PROXY, recording each call that
    tried to leave this machine (its first line, e.g. ``CONNECT host:443``)."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        threading.Thread(target=self._turn_away, daemon=True).start()

    def _turn_away(self) -> None:
        while True:
            try:
                conn, _ = self._socket.accept()
            except OSError:  # closed
                return
            with conn:
                conn.settimeout(5)
                try:
                    self.calls.append(conn.recv(4096).split(b"\r\n", 1)[0].decode())
                except OSError as exc:
                    self.calls.append(f"unreadable call: {exc}")

    def close(self) -> None:
        self._socket.close()


@pytest.fixture
def langgraph_dev(tmp_path: Path) -> Iterator[tuple[str, Doorman]]:
    """``langgraph dev`` with the repository's langgraph.json, run in ``tmp_path`` (where
    agentrt's database and the server's own files go); its URL once it answers, and the
    proxy that saw whatever it tried to send off this machine."""
    port = free_port()
    doorman = Doorman()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH", "LANGCHAIN"))}
    env.pop("AGENTRT_DB", None)
    log = (tmp_path / "langgraph-dev.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("langgraph")),
            "dev",
            "--config",
            str(ROOT / "langgraph.json"),
            "--no-browser",
            "--no-reload",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=tmp_path,
        env={**env, **OFFLINE, "HTTP_PROXY": doorman.url, "HTTPS_PROXY": doorman.url},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "langgraph-dev.log").read_text()
            try:
                if httpx.get(f"{url}/ok", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "langgraph-dev.log").read_text()
            time.sleep(0.2)
        yield url, doorman
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=20)
        log.close()
        doorman.close()


@pytest.mark.subprocess
def test_langgraph_dev_runs_a_thread_to_its_gate_and_past_it(
    langgraph_dev: tuple[str, Doorman], tmp_path: Path
) -> None:
    from langgraph_sdk import get_client

    url, doorman = langgraph_dev
    config = json.loads((ROOT / "langgraph.json").read_text())
    assert list(config["graphs"]) == ["refund_desk"]

    async def drive() -> tuple[dict[str, Any], ...]:
        async with get_client(url=url) as client:
            (assistant,) = await client.assistants.search(graph_id="refund_desk")
            schemas = await client.assistants.get_schemas(assistant["assistant_id"])
            thread = await client.threads.create()
            thread_id = thread["thread_id"]
            await client.runs.wait(thread_id, "refund_desk", input={"goal": "Refund order 42"})
            at_gate = await client.threads.get_state(thread_id)
            (request,) = at_gate["interrupts"][0]["value"]["approvals"]
            assert _refunds(tmp_path / "agentrt-studio.db") == []

            await client.runs.wait(
                thread_id,
                "refund_desk",
                command={"resume": {"approval_id": request["id"], "outcome": "approve"}},
            )
            refused = await client.threads.get_state(thread_id)

            answer = await client.runs.wait(
                thread_id,
                "refund_desk",
                command={"resume": {"approval_id": request["id"], "outcome": "approve", "by": BOB}},
            )
            done = await client.threads.get_state(thread_id)
            return schemas, at_gate, refused, done, answer

    schemas, at_gate, refused, done, answer = asyncio.run(drive())
    # Studio's forms: the goal (and a budget) in, the run's outcome out.
    assert schemas["input_schema"]["required"] == ["goal"]
    assert set(schemas["input_schema"]["properties"]) == {"goal", "budget"}
    assert set(answer) == {"thread_id", "status", "output", "error", "usage"}
    assert answer["status"] == "succeeded"
    thread_id = at_gate["values"]["thread_id"]
    assert at_gate["next"] == ["approval"]
    (request,) = at_gate["interrupts"][0]["value"]["approvals"]
    assert (request["tool"], request["required_role"]) == ("issue_refund", "refund-approver")

    # A decision without its decider: refused, said why, still at the gate.
    assert refused["next"] == ["approval"]
    (asked,) = refused["interrupts"]
    assert asked["value"]["refused"]["error"] == "InvalidDecision"
    assert "by" in asked["value"]["refused"]["message"]
    assert [r["id"] for r in asked["value"]["approvals"]] == [request["id"]]

    assert done["next"] == []
    assert done["values"]["status"] == "succeeded"
    assert done["values"]["output"].startswith("Refunded $89.00")
    db = tmp_path / "agentrt-studio.db"
    assert _refunds(db) == [("42", 89.0)]
    # agentrt's own record of the thread: its run and its decided request.
    with build_runtime(db) as rt:
        run = rt.get(thread_id)
        assert (run.status.value, run.principal) == ("succeeded", OPERATOR)
        (decided,) = rt.approvals("approved", thread_id=thread_id)
        assert (decided.id, decided.decided_by) == (request["id"], "bob")
    # All of it on this machine: the server tried to reach nothing beyond it.
    assert doorman.calls == []


def test_langgraph_json_names_the_refund_desk_factory() -> None:
    config = json.loads((ROOT / "langgraph.json").read_text())
    assert config["graphs"] == {"refund_desk": "agentrt.examples.studio:make_graph"}
    assert config["dependencies"] == ["."]
