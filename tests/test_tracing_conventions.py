"""Spans as agent-tracing backends (Arize Phoenix, Langfuse) read them: content in the GenAI
conventions' shape, names that say what each span is, one root per run that says whose run
it is, what it was asked and how it ended, a person's review that is no tool call, and
agentrt's own cost on each model call."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from agentrt import AgentRuntime, Budget, ConfigError, Decision, Policy, Run
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from agentrt.testing import ScriptedChatModel
from agentrt.tracing import attributes as A
from agentrt.tracing.exporters import resource
from agentrt.tracing.messages import (
    finish_reason,
    input_message,
    output_message,
    split_system,
    tool_definitions,
)
from tests import genai_shapes as shapes
from tests.conftest import FakeClock, Ids
from tests.test_processes import run as run_process


def traced(db: Path, clock: FakeClock, **kw: Any) -> tuple[AgentRuntime, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    kw.setdefault("new_id", Ids())
    return refund_desk.build_runtime(db, clock=clock, tracing=provider, **kw), exporter


def of_kind(spans: Any, kind: str) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get(A.SPAN_KIND) == kind]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def desk_run(db: Path, clock: FakeClock, **kw: Any) -> tuple[list[ReadableSpan], AgentRuntime, Run]:
    """The refund desk's run through its gate, approved: its spans, runtime and end."""
    rt, exporter = traced(db, clock, **kw)
    with rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        clock.advance(60)
        done = rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
        assert done.status == "succeeded"
    return list(exporter.get_finished_spans()), rt, done


# the messages' shape ------------------------------------------------------------------------


def test_langchain_messages_take_the_conventions_shape() -> None:
    asked = [
        SystemMessage("Be careful."),
        HumanMessage("Refund order 42."),
        AIMessage(
            [{"type": "reasoning", "reasoning": "look first"}, {"type": "text", "text": "On it."}],
            tool_calls=[{"id": "call_1", "name": "lookup_order", "args": {"order_id": "42"}}],
        ),
        ToolMessage('{"order_id": "42", "total": 89.0}', tool_call_id="call_1"),
    ]
    system, history = split_system(asked)
    assert system == [{"type": "text", "content": "Be careful."}]
    sent = [input_message(m) for m in history]
    assert sent == [
        {"role": "user", "parts": [{"type": "text", "content": "Refund order 42."}]},
        {
            "role": "assistant",
            "parts": [
                {"type": "reasoning", "content": "look first"},
                {"type": "text", "content": "On it."},
                {
                    "type": "tool_call",
                    "id": "call_1",
                    "name": "lookup_order",
                    "arguments": {"order_id": "42"},
                },
            ],
        },
        {
            "role": "tool",
            "parts": [
                {
                    "type": "tool_call_response",
                    "id": "call_1",
                    "response": '{"order_id": "42", "total": 89.0}',
                }
            ],
        },
    ]
    shapes.check(system, shapes.SYSTEM_INSTRUCTIONS)
    shapes.check(sent, shapes.INPUT_MESSAGES)

    answer = AIMessage("Refunded.", response_metadata={"finish_reason": "stop"})
    said = [output_message(answer)]
    assert said == [
        {
            "role": "assistant",
            "parts": [{"type": "text", "content": "Refunded."}],
            "finish_reason": "stop",
        }
    ]
    shapes.check(said, shapes.OUTPUT_MESSAGES)

    # The message shape agentrt wrote before is refused: no parts.
    with pytest.raises(jsonschema.ValidationError, match="'parts' is a required property"):
        shapes.check([{"role": "user", "content": "Refund order 42."}], shapes.INPUT_MESSAGES)


@pytest.mark.parametrize(
    ("metadata", "calls", "reason"),
    [
        ({"finish_reason": "tool_calls"}, True, "tool_call"),
        ({"finish_reason": "length"}, False, "length"),
        ({"stop_reason": "end_turn"}, False, "stop"),
        ({"stop_reason": "tool_use"}, True, "tool_call"),
        ({"stop_reason": "max_tokens"}, False, "length"),
        ({"finish_reason": "content_filter"}, False, "content_filter"),
        ({}, True, "tool_call"),
        ({}, False, "stop"),
    ],
)
def test_providers_reasons_for_stopping_in_the_conventions_words(
    metadata: dict[str, str], calls: bool, reason: str
) -> None:
    message = AIMessage(
        "",
        response_metadata=metadata,
        tool_calls=[{"id": "c", "name": "t", "args": {}}] if calls else [],
    )
    assert finish_reason(message) == reason


def test_offered_tools_are_tool_definitions(db: Path) -> None:
    with refund_desk.build_runtime(db) as rt:
        offered = [t.schema() for t in rt.tools.offered_to(OPERATOR)]
    defined = tool_definitions(offered)
    shapes.check(defined, shapes.TOOL_DEFINITIONS)
    lookup = next(d for d in defined if d["name"] == "lookup_order")
    assert lookup["type"] == "function"
    assert lookup["parameters"]["properties"]["order_id"]["type"] == "string"
    assert lookup["description"].startswith("Look up an order")


def test_a_runs_model_calls_carry_their_content_in_the_conventions_shape(
    db: Path, clock: FakeClock
) -> None:
    spans, rt, _ = desk_run(db, clock, capture_content=True)
    calls = of_kind(spans, A.LLM_CALL)
    assert len(calls) == 4
    for call in calls:
        a = attrs(call)
        system = json.loads(a[A.GEN_AI_SYSTEM_INSTRUCTIONS])
        sent = json.loads(a[A.GEN_AI_INPUT_MESSAGES])
        said = json.loads(a[A.GEN_AI_OUTPUT_MESSAGES])
        shapes.check(system, shapes.SYSTEM_INSTRUCTIONS)
        shapes.check(sent, shapes.INPUT_MESSAGES)
        shapes.check(said, shapes.OUTPUT_MESSAGES)
        shapes.check(json.loads(a[A.GEN_AI_TOOL_DEFINITIONS]), shapes.TOOL_DEFINITIONS)
        # The system prompt is apart from the history, which begins with the goal.
        assert system == [{"type": "text", "content": rt.deps.instructions}]
        assert sent[0] == {"role": "user", "parts": [{"type": "text", "content": GOAL}]}
        # A model call's input is its messages: no input.value for a backend to show first.
        assert A.INPUT_VALUE not in a
    first = json.loads(attrs(calls[0])[A.GEN_AI_OUTPUT_MESSAGES])
    assert first[0]["finish_reason"] == "tool_call"
    assert first[0]["parts"][-1] == {
        "type": "tool_call",
        "id": first[0]["parts"][-1]["id"],
        "name": "lookup_order",
        "arguments": {"order_id": "42"},
    }
    last = json.loads(attrs(calls[-1])[A.GEN_AI_INPUT_MESSAGES])
    responses = [p for m in last if m["role"] == "tool" for p in m["parts"]]
    assert len(responses) == 4  # one for each action the model asked for
    assert all(p["type"] == "tool_call_response" and p["id"] for p in responses)
    assert json.loads(attrs(calls[-1])[A.GEN_AI_OUTPUT_MESSAGES])[0]["finish_reason"] == "stop"


def test_without_capture_no_content_reaches_a_span(db: Path, clock: FakeClock) -> None:
    spans, _, _ = desk_run(db, clock)
    keys = {k for s in spans for k in attrs(s)}
    assert not keys & A.CONTENT_KEYS
    assert not keys & {A.INPUT_MIME_TYPE, A.OUTPUT_MIME_TYPE}


# names and kinds ------------------------------------------------------------------------------


def test_span_names_say_what_each_span_is(db: Path, clock: FakeClock) -> None:
    spans, _, _ = desk_run(db, clock)
    names = [s.name for s in spans]
    assert {
        "invoke_agent refund-desk",
        "resume refund-desk",
        "plan",
        "policy 0.0",
        "tool 1.1",
        "verify 2.0",
        "approval 2.0",
        "commit 2.0",
        "finish",
        "chat refund-desk-script",
        "execute_tool lookup_order",
        "execute_tool issue_refund",
        "check_policy add_order_note",
        "await_approval issue_refund",
    } <= set(names)
    # The taxonomy stays an attribute, on every span.
    assert {attrs(s)[A.SPAN_KIND] for s in spans} == set(A.SPAN_KINDS)


def test_only_tool_executions_name_a_tool_with_gen_ai_keys(db: Path, clock: FakeClock) -> None:
    spans, _, _ = desk_run(db, clock)
    named = {attrs(s)[A.SPAN_KIND] for s in spans if A.GEN_AI_TOOL_NAME in attrs(s)}
    assert named == {A.TOOL_CALL}
    (wait,) = of_kind(spans, A.APPROVAL_WAIT)
    # A person's review is a guardrail, like the policy's check, never a TOOL.
    assert attrs(wait)[A.OPENINFERENCE_KIND] == "GUARDRAIL"
    assert attrs(wait)[A.TOOL_NAME] == "issue_refund"
    assert {attrs(s)[A.OPENINFERENCE_KIND] for s in of_kind(spans, A.POLICY_CHECK)} == {"GUARDRAIL"}
    assert {attrs(s)[A.OPENINFERENCE_KIND] for s in of_kind(spans, A.TOOL_CALL)} == {"TOOL"}


# one root per run, and what it says ---------------------------------------------------------------


def test_the_root_says_whose_run_what_it_was_asked_and_its_answer(
    db: Path, clock: FakeClock
) -> None:
    spans, _, done = desk_run(db, clock, capture_content=True)
    roots = [s for s in spans if s.parent is None]
    assert [s.name for s in roots] == ["invoke_agent refund-desk"]
    (root,) = roots
    a = attrs(root)
    assert a[A.INPUT_VALUE] == GOAL
    assert a[A.USER_ID] == "alice"
    assert a[A.SESSION_ID] == done.thread_id
    assert json.loads(a[A.METADATA]) == {"tenant": "acme"}
    assert a[A.GEN_AI_AGENT_NAME] == "refund-desk"
    assert a[A.GEN_AI_OPERATION] == "invoke_agent"
    # The run's answer is the output of the segment that gave it.
    resumed = next(s for s in of_kind(spans, A.AGENT_RUN) if s is not root)
    assert attrs(resumed)[A.OUTPUT_VALUE] == done.output
    # Those keys are the run's: no other span carries them.
    others = [s for s in spans if attrs(s)[A.SPAN_KIND] != A.AGENT_RUN]
    assert not {A.INPUT_VALUE, A.OUTPUT_VALUE, A.USER_ID} & {k for s in others for k in attrs(s)}


def test_a_run_that_fails_has_an_error_root(db: Path, clock: FakeClock) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    failing = ScriptedChatModel([RuntimeError("the provider refused")] * 3)
    with AgentRuntime(
        failing,
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        tracing=provider,
        capture_content=True,
    ) as rt:
        run = rt.start("fail", principal=OPERATOR)
    assert run.status == "failed"
    (root,) = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert root.status.status_code is StatusCode.ERROR
    assert attrs(root)[A.ERROR_TYPE] == "RuntimeError"
    assert attrs(root)[A.OUTPUT_VALUE] == run.error
    assert attrs(root)[A.INPUT_VALUE] == "fail"


def test_a_run_stopped_by_its_budget_has_an_error_root(db: Path, clock: FakeClock) -> None:
    rt, exporter = traced(db, clock, budget=Budget(max_tool_calls=1))
    with rt:
        run = rt.start(GOAL, principal=OPERATOR)
    assert run.status == "budget_exceeded"
    (root,) = [s for s in exporter.get_finished_spans() if s.parent is None]
    assert root.status.status_code is StatusCode.ERROR
    assert root.status.description == run.error
    assert attrs(root)[A.ERROR_TYPE] == "budget_exceeded"


def test_a_run_waiting_at_a_gate_is_no_error(db: Path, clock: FakeClock) -> None:
    rt, exporter = traced(db, clock)
    with rt:
        rt.start(GOAL, principal=OPERATOR)
    (root,) = exporter.get_finished_spans()[-1:]
    assert attrs(root)[A.SPAN_KIND] == A.AGENT_RUN
    assert root.status.status_code is StatusCode.UNSET


def test_a_run_resumed_long_after_its_decision_counts_the_idle_time_nowhere(
    db: Path, clock: FakeClock
) -> None:
    with refund_desk.build_runtime(db, clock=clock) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        clock.advance(60)  # bob decides after a minute; nobody drives the run then
        rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER), resume=False)
        clock.advance(600)  # a worker picks it up ten minutes later
        assert rt.resume(run.thread_id).status == "succeeded"
        found = rt.trace(run.thread_id)
    went = found.time_went()
    assert went["waiting for people"] == 60.0
    assert went["runtime overhead"] == 0.0
    (root,) = found.roots
    resumed = found.segments()[1]
    assert resumed.parent_id == root.span_id
    assert resumed.duration == 660.0  # from the request: the wait lies inside it


KILLED_ONCE = """
import os, signal, sys
from pathlib import Path
from agentrt import AgentRuntime, Policy, Principal, tool
from agentrt.testing import ScriptedChatModel, ai, tool_call

db, mark = sys.argv[1], Path(sys.argv[2])

@tool(effect="read")
def lookup(key: str) -> str:
    '''Look a key up.'''
    if not mark.exists():  # the first process dies here, mid-segment
        mark.write_text("killed")
        os.kill(os.getpid(), signal.SIGKILL)
    return key.upper()

model = ScriptedChatModel([ai("", tool_call("lookup", {"key": "k"})), "K"], model_name="m")
with AgentRuntime(model, tools=[lookup], policy=Policy.allow_all(), db=db) as rt:
    if len(sys.argv) > 3:
        print(rt.resume(sys.argv[3]).status)
    else:
        print(rt.start("look k up", principal=Principal("alice"), thread_id="t1").status)
"""


@pytest.mark.subprocess
def test_a_first_segment_killed_midway_leaves_no_missing_root(tmp_path: Path) -> None:
    db, mark = tmp_path / "agentrt.db", tmp_path / "killed"
    first = run_process([sys.executable, "-c", KILLED_ONCE, str(db), str(mark)])
    assert first.returncode == -9, first.stderr
    second = run_process([sys.executable, "-c", KILLED_ONCE, str(db), str(mark), "t1"])
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "succeeded"
    with AgentRuntime(ScriptedChatModel([]), policy=Policy.allow_all(), db=db) as rt:
        found = rt.trace("t1")
    # The killed segment's span never left its process: the segment that went on is the
    # run's root, not a child of a root nobody will ever see.
    (root,) = found.roots
    assert (root.kind, root.parent_id) == (A.AGENT_RUN, None)
    assert root.attributes[A.RUN_STATUS] == "succeeded"
    assert [s.kind for s in found.segments()] == [A.AGENT_RUN]


# cost, service, agent name ------------------------------------------------------------------------


def test_each_model_call_carries_what_it_cost_by_agentrts_prices(
    db: Path, clock: FakeClock
) -> None:
    spans, _, done = desk_run(db, clock, prices={"refund-desk-script": (3.0, 15.0)})
    calls = of_kind(spans, A.LLM_CALL)
    costs = [attrs(s)[A.COST_USD] for s in calls]
    assert sum(costs) == pytest.approx(done.usage["cost_usd"])
    first = attrs(calls[0])
    expected = (first[A.GEN_AI_INPUT_TOKENS] * 3.0 + first[A.GEN_AI_OUTPUT_TOKENS] * 15.0) / 1e6
    assert first[A.LLM_COST_TOTAL] == pytest.approx(expected)
    assert first[A.LLM_COST_PROMPT] + first[A.LLM_COST_COMPLETION] == pytest.approx(expected)


def test_a_model_without_a_price_carries_no_cost(db: Path, clock: FakeClock) -> None:
    spans, _, _ = desk_run(db, clock)
    assert not {A.COST_USD, A.LLM_COST_TOTAL} & {k for s in spans for k in attrs(s)}


def test_the_service_is_named_agentrt_unless_the_environment_names_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    assert resource().attributes["service.name"] == "agentrt"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=desk,deployment.environment=prod")
    assert resource().attributes["service.name"] == "desk"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "refunds")
    assert resource().attributes["service.name"] == "refunds"


def test_the_agent_name_must_be_words(db: Path) -> None:
    with pytest.raises(ConfigError, match="name must be the agent's name in words, got ''"):
        refund_desk.build_runtime(db, name="")
