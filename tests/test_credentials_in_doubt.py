"""A call in doubt stays in doubt whatever the credential provider does: a write tool with
credentials whose process died mid-call is settled by a person at the reconcile gate, even
when the provider fails at the resume (it is never asked: nothing is called)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from agentrt import AgentRuntime, Decision, Policy, Principal, RunStatus, ToolContext, tool
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools.credentials import Credentials

pytestmark = pytest.mark.subprocess

ROOT = Path(__file__).resolve().parent.parent
TREASURER = Principal("tess", roles=["treasury"], tenant="acme")
BANK_KEY = "bank-acme-Marble4Heron"

POLICY = """
version: 1
name: bank
default: allow
credentials:
  bank:
    roles: [treasury]
"""


def bank_path(db: str | Path) -> Path:
    return Path(db).with_name("bank.db")


def build(db: str | Path, *, sealed: bool = False) -> AgentRuntime:
    """The bank app: one transfer, not idempotent; ``sealed``: the vault refuses."""

    @tool(effect="write", credentials=["bank"])
    def transfer(to: str, cents: int, ctx: ToolContext) -> dict[str, Any]:
        """Move money to an account; the bank does not dedupe."""
        assert ctx.credentials["bank"] == BANK_KEY
        with sqlite3.connect(bank_path(db), isolation_level=None) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS transfers (too TEXT, cents INT)")
            conn.execute("INSERT INTO transfers VALUES (?, ?)", (to, cents))
        if os.environ.get("AGENTRT_TEST_DIE_IN_CALL"):
            os._exit(9)  # the money moved; the process dies before the ledger hears of it
        return {"sent": cents, "to": to}

    def vault(name: str, principal: Principal) -> str:
        if sealed:
            raise RuntimeError("the vault is sealed")
        return BANK_KEY

    script = [ai("", tool_call("transfer", {"to": "acct-9", "cents": 5000})), "Sent."]
    return AgentRuntime(
        ScriptedChatModel(script),
        tools=[transfer],
        policy=Policy.from_yaml(POLICY),
        db=db,
        credentials=Credentials.from_callable(vault),
    )


def transfers(db: Path) -> list[tuple[str, int]]:
    with sqlite3.connect(bank_path(db)) as conn:
        return conn.execute("SELECT too, cents FROM transfers").fetchall()


def test_a_call_in_doubt_goes_to_the_reconcile_gate_though_the_provider_fails(
    tmp_path: Path,
) -> None:
    db = tmp_path / "agentrt.db"
    starter = (
        "import sys\n"
        "from tests.test_credentials_in_doubt import TREASURER, build\n"
        "build(sys.argv[1]).start('Send 50 to acct-9.', principal=TREASURER, thread_id='t-pay')\n"
    )
    died = subprocess.run(
        [sys.executable, "-c", starter, str(db)],
        cwd=ROOT,
        env={**os.environ, "AGENTRT_TEST_DIE_IN_CALL": "1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert died.returncode == 9, died.stderr
    assert transfers(db) == [("acct-9", 5000)]
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT tool, status FROM effects").fetchall() == [
            ("transfer", "started")
        ]

    # The vault is down at the resume: the ledger, not the provider, says what happens.
    with build(db, sealed=True) as rt:
        run = rt.resume("t-pay")
        assert run.status is RunStatus.AWAITING_APPROVAL
        assert run.pending_approval is not None
        assert (run.pending_approval.kind, run.pending_approval.tool) == ("reconcile", "transfer")
        contents = [e["data"]["content"] for e in rt.events("t-pay") if e["type"] == "observation"]
        assert not any("could not be resolved" in c for c in contents)
    assert transfers(db) == [("acct-9", 5000)]  # not sent twice
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT status FROM effects").fetchall() == [("started",)]

    # The bank says nothing arrived, the vault is back: the retry is given the key.
    with build(db) as rt:
        assert run.pending_approval is not None
        done = rt.decide(
            Decision.retry(run.pending_approval.id, by=Principal("rita", tenant="acme"))
        )
        assert done.status is RunStatus.SUCCEEDED
    assert transfers(db) == [("acct-9", 5000), ("acct-9", 5000)]


class Crash(BaseException):
    """The process dying mid-call, in this process: nothing catches it, the ledger keeps
    the call started."""


def test_an_apps_own_graph_asks_a_person_then_retries_with_the_credential(
    tmp_path: Path,
) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langgraph.checkpoint.memory import InMemorySaver

    from agentrt.examples.own_graph import build_graph

    sent: list[str] = []
    crash = [True]
    sealed = [False]

    @tool(effect="write", credentials=["bank"])
    def transfer(to: str, cents: int, ctx: ToolContext) -> dict[str, Any]:
        """Move money to an account; the bank does not dedupe."""
        sent.append(ctx.credentials["bank"])
        if crash.pop() if crash else False:
            raise Crash
        return {"sent": cents, "to": to}

    def vault(name: str, principal: Principal) -> str:
        if sealed[0]:
            raise RuntimeError("the vault is sealed")
        return BANK_KEY

    def runtime() -> AgentRuntime:
        return AgentRuntime(
            ScriptedChatModel([]),
            tools=[transfer],
            policy=Policy.from_yaml(POLICY),
            db=tmp_path / "agentrt.db",
            credentials=Credentials.from_callable(vault),
        )

    saver = InMemorySaver()
    call = ai("", tool_call("transfer", {"to": "acct-9", "cents": 5000}))
    with runtime() as rt:
        graph = build_graph(rt, ScriptedChatModel([call]), saver)
        config = rt.thread(principal=TREASURER, thread_id="t-own")
        with pytest.raises(Crash):
            graph.invoke({"messages": [HumanMessage("Send 50 to acct-9.")]}, config)
    assert sent == [BANK_KEY]

    sealed[0] = True  # down at the resume: the call in doubt goes to a person all the same
    with runtime() as rt:
        graph = build_graph(rt, ScriptedChatModel([call, "Sent."]), saver)
        rt.attach(graph)
        graph.invoke(None, config)
        assert rt.get("t-own").status is RunStatus.AWAITING_APPROVAL
        (request,) = rt.approvals(tenant="acme")
        assert (request.kind, request.tool) == ("reconcile", "transfer")
        assert sent == [BANK_KEY]
        # The bank says nothing arrived; the vault is back: the retry is given the key.
        sealed[0] = False
        rt.decide(Decision.retry(request.id, by=Principal("rita", tenant="acme")))
        messages = graph.get_state(config).values["messages"]
    (message,) = [m for m in messages if isinstance(m, ToolMessage)]
    assert message.status == "success", message.content
    assert sent == [BANK_KEY, BANK_KEY]
