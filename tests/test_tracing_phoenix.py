"""A run's spans in a real Arize Phoenix, read back through its REST API: the run stops at
its gate in one process and is approved and finished in another, with content capture on;
a second run fails. What a person sees in Phoenix is asserted: one root per run with the
goal as its input, messages on the model calls, the wait for a person as no tool call, a
failed run's root in error."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

from agentrt import AgentRuntime, Policy
from agentrt.examples.refund_desk import GOAL, OPERATOR
from agentrt.testing import ScriptedChatModel
from tests.phoenix import Phoenix, when
from tests.test_processes import run as run_process

pytestmark = pytest.mark.subprocess

DESK = """
import sys
from agentrt import Decision
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR, build_runtime

with build_runtime(sys.argv[1], tracing="otlp", capture_content=True) as rt:
    if len(sys.argv) == 2:
        print(rt.start(GOAL, principal=OPERATOR).thread_id)
    else:
        request = rt.get(sys.argv[2]).pending_approval
        print(rt.decide(Decision.approve(request.id, by=APPROVER)).status)
"""


def trace_of(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("SELECT trace_id FROM runs").fetchone()[0])


def roots(spans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in spans if s["parent_id"] is None]


def test_a_run_across_a_gate_and_two_processes_reads_as_one_agent_trace(
    phoenix: Phoenix, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", phoenix.otlp_endpoint)
    db = tmp_path / "agentrt.db"
    first = run_process([sys.executable, "-c", DESK, str(db)])
    assert first.returncode == 0, first.stderr
    thread_id = first.stdout.strip()
    second = run_process([sys.executable, "-c", DESK, str(db), thread_id])
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "succeeded"

    spans = phoenix.spans(
        trace_of(db), until=lambda got: any(s["name"] == "finish" for s in got) and len(got) > 30
    )
    by_id = {s["context"]["span_id"]: s for s in spans}

    # One root for the run, though two processes wrote it: the first segment, whose
    # input is the goal, with whose run it is beside it.
    (root,) = roots(spans)
    assert (root["name"], root["span_kind"]) == ("invoke_agent refund-desk", "AGENT")
    assert root["attributes"]["input.value"] == GOAL
    assert root["attributes"]["user.id"] == "alice"
    assert root["attributes"]["metadata.tenant"] == "acme"
    (resumed,) = [s for s in spans if s["name"] == "resume refund-desk"]
    assert resumed["parent_id"] == root["context"]["span_id"]
    assert resumed["attributes"]["output.value"].startswith("Refunded $89.00")

    # The model calls show their messages: Phoenix took them as the conventions' shape
    # (it drops a whole list for one message that does not fit it).
    calls = sorted((s for s in spans if s["span_kind"] == "LLM"), key=lambda s: s["start_time"])
    assert [c["name"] for c in calls] == ["chat refund-desk-script"] * 4
    first_call = calls[0]["attributes"]
    assert first_call["llm.input_messages.0.message.role"] == "system"
    assert first_call["llm.input_messages.1.message.role"] == "user"
    assert first_call["llm.input_messages.1.message.content"] == GOAL
    assert first_call["llm.output_messages.0.message.role"] == "assistant"
    called = "llm.output_messages.0.message.tool_calls.0.tool_call.function.name"
    assert first_call[called] == "lookup_order"
    last_call = calls[-1]["attributes"]
    assert any(k.startswith("llm.tools.") for k in last_call)
    roles = {v for k, v in last_call.items() if k.endswith(".message.role")}
    assert roles == {"system", "user", "assistant", "tool"}
    assert "input.value" not in last_call  # an LLM span's input is its messages

    # The wait for bob is a guardrail, not a tool call, inside the segment that resumed.
    (wait,) = [s for s in spans if s["name"] == "await_approval issue_refund"]
    assert wait["span_kind"] == "GUARDRAIL"
    parent = by_id[wait["parent_id"]]
    assert parent is resumed
    assert when(parent["start_time"]) <= when(wait["start_time"])
    assert when(wait["end_time"]) <= when(parent["end_time"])
    tools = {s["name"] for s in spans if s["span_kind"] == "TOOL"}
    assert tools == {
        "execute_tool lookup_order",
        "execute_tool lookup_customer",
        "execute_tool add_order_note",
        "execute_tool issue_refund",
    }


def test_a_failed_runs_root_is_an_error_in_phoenix(
    phoenix: Phoenix, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", phoenix.otlp_endpoint)
    db = tmp_path / "failed.db"
    failing = ScriptedChatModel([RuntimeError("the provider refused")] * 3)
    with AgentRuntime(
        failing, policy=Policy.allow_all(), db=db, tracing="otlp", capture_content=True
    ) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
    assert run.status == "failed"
    assert rt.export_failures == 0
    spans = phoenix.spans(trace_of(db), until=lambda got: bool(roots(got)))
    (root,) = roots(spans)
    assert root["status_code"] == "ERROR"
    assert "the provider refused" in root["status_message"]
    assert root["attributes"]["input.value"] == GOAL
    assert root["attributes"]["error.type"] == "RuntimeError"
