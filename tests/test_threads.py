"""Threads that go on: rt.send continues a finished thread with its history; a message that
comes while the thread is busy is rejected, queued or interrupts it; usage and budgets per
message and per thread; the tenant check; the trace."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage

from agentrt import (
    AgentRuntime,
    ApprovalError,
    Budget,
    ConfigError,
    Decision,
    Policy,
    Principal,
    Run,
    RunStatus,
    ThreadBusy,
    ToolContext,
    UnknownRun,
    tool,
)
from agentrt.events import KINDS
from agentrt.runs.messages import thread_messages
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tracing import attributes as A
from tests import threads_app
from tests.conftest import FakeClock, Ids
from tests.threads_app import OPS, PAYER, STRANGER, effects

SUCCEEDED = RunStatus.SUCCEEDED


@pytest.fixture
def rt(db: Path, clock: FakeClock) -> Iterator[AgentRuntime]:
    with threads_app.build_runtime(db, clock=clock, new_id=Ids()) as runtime:
        yield runtime


def said(messages: list[BaseMessage]) -> list[tuple[str, Any]]:
    return [(m.type, m.content) for m in messages[1:]]  # the instructions left out


def test_a_follow_up_continues_the_finished_thread_with_its_history(rt: AgentRuntime) -> None:
    first = rt.start("note 1", principal=OPS)
    assert (first.status, first.output, first.message) == (SUCCEEDED, "noted 1", 0)
    second = rt.send(first.thread_id, "hello", principal=PAYER)
    assert (second.thread_id, second.status, second.output, second.message) == (
        first.thread_id,
        SUCCEEDED,
        "you said: hello",
        1,
    )
    # The planner saw the conversation so far, the follow-up as the person's next turn.
    model: ScriptedChatModel = rt.deps.model  # type: ignore[assignment]
    assert said(model.calls[-1].messages) == [
        ("human", "note 1"),
        ("ai", ""),
        ("tool", '{"noted": 1}'),
        ("ai", "noted 1"),
        ("human", "hello"),
    ]
    # The log keeps the whole thread, the message where it came.
    assert [e["type"] for e in rt.events(first.thread_id)] == [
        "plan",
        "policy",
        "observation",
        "plan",
        "finish",
        "message",
        "plan",
        "finish",
    ]
    assert [
        (m.index, m.text, m.principal.id, m.status, m.output) for m in rt.messages(first.thread_id)
    ] == [
        (0, "note 1", "olga", "succeeded", "noted 1"),
        (1, "hello", "bob", "succeeded", "you said: hello"),
    ]
    # And it goes on again, numbered in order.
    third = rt.send(first.thread_id, "note 1", principal=OPS)
    assert (third.message, third.output) == (2, "noted 1")
    assert effects(rt.db) == ["note 1/1", "note 1/1"]  # two calls, two keys


def test_a_thread_read_across_a_messages_opening_shows_each_message_its_own_answer(
    rt: AgentRuntime,
) -> None:
    # The row and the messages are two reads: a row read before a message opened, with the
    # messages read after, once gave the new message the one before's status and answer
    # (a worker's message listed "succeeded" while it still ran).
    first = rt.start("note 1", principal=OPS)
    before = rt.store.get_run(first.thread_id)  # message 0's row, as a reader first read it
    assert before is not None
    rt.send(first.thread_id, "hello", principal=PAYER)
    seen = thread_messages(rt.store, before)
    assert [(m.index, m.status, m.output) for m in seen] == [
        (0, "succeeded", "noted 1"),
        (1, "succeeded", "you said: hello"),
    ]


def test_a_message_keeps_its_end_time_when_the_thread_goes_on(
    rt: AgentRuntime, clock: FakeClock
) -> None:
    first = rt.start("note 1", principal=OPS)
    ended = rt.messages(first.thread_id)[0].ended_at
    assert ended == clock.now
    clock.advance(40 * 86_400)  # the follow-up comes 40 days later
    rt.send(first.thread_id, "hello", principal=PAYER)
    goal, follow = rt.messages(first.thread_id)
    assert (goal.ended_at, follow.started_at) == (ended, clock.now)


def test_usage_is_kept_per_message_and_per_thread(rt: AgentRuntime) -> None:
    run = rt.start("note 2", principal=OPS)
    run = rt.send(run.thread_id, "note 1", principal=OPS)
    goal, follow = rt.messages(run.thread_id)
    assert (goal.usage["steps"], goal.usage["tool_calls"]) == (3, 2)
    assert (follow.usage["steps"], follow.usage["tool_calls"]) == (2, 1)
    assert follow.usage["input_tokens"] > 0
    assert follow.usage["output_tokens"] > 0
    for field in ("input_tokens", "output_tokens", "steps", "tool_calls"):
        assert goal.usage[field] + follow.usage[field] == run.usage[field], field  # type: ignore[literal-required]
    assert run.usage["steps"] == 5  # the thread's usage goes on across its messages


def test_a_message_budget_binds_that_message_alone(rt: AgentRuntime) -> None:
    run = rt.start("note 2", principal=OPS)
    over = rt.send(run.thread_id, "note 2", principal=OPS, budget=Budget(max_tool_calls=1))
    assert over.status is RunStatus.BUDGET_EXCEEDED
    assert over.budget_report is not None
    assert over.budget_report["limit"] == "max_tool_calls"
    assert effects(rt.db) == ["note 1/2", "note 2/2", "note 1/2"]  # its second note never ran
    assert [m.status for m in rt.messages(run.thread_id)] == ["succeeded", "budget_exceeded"]
    # The thread goes on: the next message has the thread's limits only, and the planner
    # is told the call the budget stopped was never made.
    after = rt.send(run.thread_id, "note 1", principal=OPS)
    assert (after.status, after.output) == (SUCCEEDED, "noted 1")
    model: ScriptedChatModel = rt.deps.model  # type: ignore[assignment]
    told = said(model.calls[-2].messages)[-2:]
    assert told[0][0] == "tool"
    assert "not done" in str(told[0][1])
    assert told[1] == ("human", "note 1")


def test_the_thread_budget_binds_across_its_messages(db: Path, clock: FakeClock) -> None:
    with threads_app.build_runtime(db, clock=clock, budget=Budget(max_tool_calls=3)) as rt:
        run = rt.start("note 2", principal=OPS)
        assert run.status is SUCCEEDED
        # The message's own limit is looser: the thread's, tighter, stops it.
        over = rt.send(run.thread_id, "note 2", principal=OPS, budget=Budget(max_tool_calls=5))
        assert over.status is RunStatus.BUDGET_EXCEEDED
        assert over.budget_report is not None
        assert over.budget_report["allowed"] == 3
        assert effects(db) == ["note 1/2", "note 2/2", "note 1/2"]


ASKS_PAYER = Budget(max_steps=100, on_exceed="ask", approver_role="payer")


def test_a_message_that_says_stop_stops_at_its_own_limit_on_a_thread_that_asks(
    rt: AgentRuntime,
) -> None:
    run = rt.start("note 1", principal=OPS, budget=ASKS_PAYER)
    own = Budget(max_tool_calls=1, on_exceed="stop")
    stopped = rt.send(run.thread_id, "note 3", principal=OPS, budget=own)
    # No one is asked: the limit this message's sender set stops it, named as they set it.
    assert (stopped.status, stopped.pending_approval) == (RunStatus.BUDGET_EXCEEDED, None)
    assert rt.approvals(status=None, thread_id=run.thread_id) == []
    report = stopped.budget_report
    assert report is not None
    assert (report["limit"], report["allowed"], report["used"], report["requested"]) == (
        "max_tool_calls",
        1,
        1,
        1,
    )
    assert (
        stopped.error
        == report["message"]
        == (
            "message #1's budget limit max_tool_calls=1 reached: 1 used, and the next action "
            "needs 1 more; stopped before tool call note (step 3.0)"
        )
    )
    assert effects(rt.db) == ["note 1/1", "note 1/3"]
    assert stopped.budget == ASKS_PAYER  # the thread's limits are as they were


def test_a_message_that_says_ask_asks_to_raise_its_own_limit_alone(rt: AgentRuntime) -> None:
    run = rt.start("note 1", principal=OPS)  # the thread's limits stop it
    own = Budget(max_tool_calls=1, on_exceed="ask", approver_role="payer")
    asked = rt.send(run.thread_id, "note 3", principal=OPS, budget=own)
    assert asked.status is RunStatus.AWAITING_APPROVAL, asked.error
    request = asked.pending_approval
    assert request is not None
    assert (request.kind, request.required_role) == ("budget", "payer")
    assert request.args == {"limit": "max_tool_calls", "allowed": 1, "used": 1, "requested": 1}
    assert request.reason == (
        "message #1's budget limit max_tool_calls=1 reached: 1 used, and the next action "
        "needs 1 more; stopped before tool call note (step 3.0)"
    )
    # It is raised from the value the message set (the thread sets none), by its role.
    with pytest.raises(ApprovalError, match="must be higher than the current 1, got 1"):
        rt.decide(Decision.raise_limit(request.id, limit="max_tool_calls", to=1, by=PAYER))
    with pytest.raises(ApprovalError, match="requires role 'payer'"):
        rt.decide(Decision.raise_limit(request.id, limit="max_tool_calls", to=3, by=OPS))
    done = rt.decide(Decision.raise_limit(request.id, limit="max_tool_calls", to=3, by=PAYER))
    assert (done.status, done.output) == (SUCCEEDED, "noted 3")
    assert effects(rt.db) == ["note 1/1", "note 1/3", "note 2/3", "note 3/3"]
    # The message's limit was raised, not the thread's: the next message has none.
    assert done.budget == rt.budget_for(OPS)
    after = rt.send(run.thread_id, "note 2", principal=OPS)
    assert (after.status, after.output) == (SUCCEEDED, "noted 2")


def test_a_message_that_says_ask_leaves_the_threads_limits_to_the_thread(
    db: Path, clock: FakeClock
) -> None:
    with threads_app.build_runtime(db, clock=clock, budget=Budget(max_tool_calls=2)) as rt:
        run = rt.start("note 1", principal=OPS)
        own = Budget(max_tool_calls=5, on_exceed="ask", approver_role="payer")
        over = rt.send(run.thread_id, "note 3", principal=OPS, budget=own)
        # The thread's limit, tighter, trips first, and the thread's says stop.
        assert over.status is RunStatus.BUDGET_EXCEEDED
        assert over.error == (
            "budget limit max_tool_calls=2 reached: 2 used, and the next action needs 1 more; "
            "stopped before tool call note (step 3.0)"
        )
        assert rt.approvals(status=None, thread_id=run.thread_id) == []


def test_raising_the_threads_limit_during_a_message_with_its_own_keeps_the_threads(
    db: Path, clock: FakeClock
) -> None:
    thread = Budget(max_tool_calls=2, on_exceed="ask", approver_role="payer")
    with threads_app.build_runtime(db, clock=clock, budget=thread) as rt:
        run = rt.start("note 1", principal=OPS)
        asked = rt.send(run.thread_id, "note 3", principal=OPS, budget=Budget(max_steps=20))
        request = asked.pending_approval
        assert request is not None
        assert request.args == {"limit": "max_tool_calls", "allowed": 2, "used": 2, "requested": 1}
        assert request.reason.startswith("budget limit max_tool_calls=2 reached")
        done = rt.decide(Decision.raise_limit(request.id, limit="max_tool_calls", to=4, by=PAYER))
        assert (done.status, done.output) == (SUCCEEDED, "noted 3")
        # The thread's row holds the thread's limits, raised, not this message's own.
        assert done.budget == Budget(
            max_steps=100, max_tool_calls=4, on_exceed="ask", approver_role="payer"
        )


@pytest.mark.parametrize(
    ("thread", "own", "message"),
    [
        (
            None,
            Budget(on_exceed="stop"),
            "the message's budget sets on_exceed='stop' but no limit of its own; they answer "
            "for the limits the message sets (the thread's limits keep the thread's answer): "
            "add a limit, e.g. Budget(max_tool_calls=5, on_exceed='stop'), or leave them out",
        ),
        (
            ASKS_PAYER,
            Budget(approver_role="ops-lead"),
            "the message's budget sets approver_role='ops-lead' but no limit of its own",
        ),
        (
            None,
            Budget(max_tool_calls=1, approver_role="payer"),
            "the message's budget sets approver_role='payer', but its limits stop the message "
            "(on_exceed='stop'), so no one is asked; add on_exceed='ask', or leave "
            "approver_role out",
        ),
        (
            ASKS_PAYER,
            Budget(max_tool_calls=1, on_exceed="stop", approver_role="payer"),
            "approver_role='payer', but its limits stop the message (on_exceed='stop')",
        ),
    ],
)
def test_a_messages_budget_that_would_answer_nothing_is_refused_by_name(
    rt: AgentRuntime, thread: Budget | None, own: Budget, message: str
) -> None:
    run = rt.start("hello", principal=OPS, budget=thread)
    with pytest.raises(ConfigError) as refused:
        rt.send(run.thread_id, "note 1", principal=OPS, budget=own)
    assert message in str(refused.value)
    assert [m.index for m in rt.messages(run.thread_id)] == [0]  # nothing was kept
    with pytest.raises(UnknownRun):  # another tenant's thread: no word of its budget
        rt.send(run.thread_id, "note 1", principal=STRANGER, budget=own)


def test_another_tenants_thread_answers_as_no_thread_at_all(rt: AgentRuntime) -> None:
    run = rt.start("hello", principal=OPS)
    with pytest.raises(UnknownRun) as theirs:
        rt.send(run.thread_id, "what did they say?", principal=STRANGER)
    with pytest.raises(UnknownRun) as unknown:
        rt.send("no-such-thread", "what did they say?", principal=STRANGER)
    assert "'no-such-thread'" in str(unknown.value)
    assert str(theirs.value).replace(run.thread_id, "ID") == str(unknown.value).replace(
        "no-such-thread", "ID"
    )
    assert [m.index for m in rt.messages(run.thread_id)] == [0]  # nothing was kept
    with pytest.raises(UnknownRun):
        rt.messages(run.thread_id, principal=STRANGER)


def test_a_principal_of_every_tenant_sends_no_message_into_a_tenants_thread(
    rt: AgentRuntime,
) -> None:
    # README: "The sender must be of the thread's tenant". A principal of every tenant
    # decides any tenant's requests, but a turn it sent would act for tenant '*', past
    # every rule naming the thread's tenant: its thread is another tenant's, as for a stranger.
    run = rt.start("hello", principal=OPS)
    root = Principal("root", roles=OPS.roles, tenant=Principal.ALL_TENANTS, scopes=OPS.scopes)
    with pytest.raises(UnknownRun) as refused:
        rt.send(run.thread_id, "note 1", principal=root)
    with pytest.raises(UnknownRun) as stranger:
        rt.send(run.thread_id, "note 1", principal=STRANGER)
    assert str(refused.value) == str(stranger.value)
    assert [m.index for m in rt.messages(run.thread_id)] == [0]  # nothing was kept
    assert [m.index for m in rt.messages(run.thread_id, principal=root)] == [0]  # it reads


def test_bad_messages_and_policies_are_refused_by_name(rt: AgentRuntime, db: Path) -> None:
    run = rt.start("hello", principal=OPS)
    with pytest.raises(ConfigError, match="a message is text in words, got ''"):
        rt.send(run.thread_id, "", principal=OPS)
    with pytest.raises(ConfigError, match="principal must be an agentrt Principal, got 'olga'"):
        rt.send(run.thread_id, "hi", principal="olga")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"double_texting must be one of .* got 'later'"):
        rt.send(run.thread_id, "hi", principal=OPS, double_texting="later")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"this message cannot be stored: .* NUL"):
        rt.send(run.thread_id, "hi\x00", principal=OPS)
    with pytest.raises(ConfigError, match=r"double_texting must be one of .* got 'queue'"):
        threads_app.build_runtime(db.with_name("other.db"), double_texting="queue")
    assert [m.index for m in rt.messages(run.thread_id)] == [0]


def test_reject_refuses_a_message_while_the_thread_waits_at_a_gate(rt: AgentRuntime) -> None:
    run = rt.start("pay 500", principal=OPS)
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert run.pending_approval is not None
    with pytest.raises(ThreadBusy, match=f"thread {run.thread_id!r} is awaiting_approval"):
        rt.send(run.thread_id, "hello", principal=OPS)  # reject: the runtime's default
    assert [m.index for m in rt.messages(run.thread_id)] == [0]  # nothing kept
    assert rt.get(run.thread_id).pending_approval == run.pending_approval
    done = rt.decide(Decision.approve(run.pending_approval.id, by=PAYER))
    assert (done.status, done.output, done.message) == (SUCCEEDED, "paid", 0)


def test_enqueue_answers_the_message_once_the_current_one_has_ended(
    rt: AgentRuntime, db: Path
) -> None:
    run = rt.start("pay 500", principal=OPS)
    assert run.pending_approval is not None
    kept = rt.send(run.thread_id, "note 1", principal=OPS, double_texting="enqueue")
    assert (kept.status, kept.message) == (RunStatus.AWAITING_APPROVAL, 0)
    assert [(m.index, m.status) for m in rt.messages(run.thread_id)] == [
        (0, "awaiting_approval"),
        (1, "queued"),
    ]
    done = rt.decide(Decision.approve(run.pending_approval.id, by=PAYER))
    assert (done.status, done.message, done.output) == (SUCCEEDED, 1, "noted 1")
    assert [(m.index, m.status, m.output) for m in rt.messages(run.thread_id)] == [
        (0, "succeeded", "paid"),
        (1, "succeeded", "noted 1"),
    ]
    assert effects(db) == ["pay 500", "note 1/1"]


def test_the_runtimes_policy_holds_unless_a_call_says_otherwise(db: Path, clock: FakeClock) -> None:
    with threads_app.build_runtime(db, clock=clock, double_texting="enqueue") as rt:
        run = rt.start("pay 500", principal=OPS)
        rt.send(run.thread_id, "note 1", principal=OPS)
        assert [m.status for m in rt.messages(run.thread_id)] == ["awaiting_approval", "queued"]
        with pytest.raises(ThreadBusy):
            rt.send(run.thread_id, "note 2", principal=OPS, double_texting="reject")
        assert len(rt.messages(run.thread_id)) == 2


def test_interrupt_at_a_gate_supersedes_its_request_and_takes_the_message(
    rt: AgentRuntime, db: Path
) -> None:
    run = rt.start("pay 500", principal=OPS)
    request = run.pending_approval
    assert request is not None
    taken = rt.send(run.thread_id, "note 1", principal=OPS, double_texting="interrupt")
    assert (taken.status, taken.message, taken.output) == (SUCCEEDED, 1, "noted 1")
    [cancelled] = rt.approvals(status=None, thread_id=run.thread_id)
    assert (cancelled.status.value, cancelled.comment) == ("cancelled", "superseded by message #1")
    with pytest.raises(ApprovalError):
        rt.decide(Decision.approve(request.id, by=PAYER))
    assert effects(db) == ["note 1/1"]  # never paid
    goal, follow = rt.messages(run.thread_id)
    assert (goal.status, goal.output, goal.error) == (
        "interrupted",
        None,
        "interrupted by message #1",
    )
    assert (follow.status, follow.interrupt) == ("succeeded", True)
    # The planner is told the payment it asked for never ran, then reads the new message.
    log = [
        (e["type"], e["data"].get("kind"), e["data"].get("tool")) for e in rt.events(run.thread_id)
    ]
    at = log.index(("message", None, None))
    assert log[at - 1] == ("observation", "skipped", "pay")
    assert rt.events(run.thread_id)[at]["data"] == {
        "index": 1,
        "text": "note 1",
        "by": "olga",
        "interrupted": 0,
    }


def _latest(messages: list[BaseMessage]) -> tuple[str, int]:
    last = max(i for i, m in enumerate(messages) if isinstance(m, HumanMessage))
    return str(messages[last].content), sum(isinstance(m, AIMessage) for m in messages[last:])


class Held:
    """A runtime whose run "two steps" calls ``step`` twice in one plan; the first call
    holds until the test lets it go (the run is inside an effect meanwhile)."""

    def __init__(self, db: Path) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self.done: list[int] = []

        @tool(effect="write", idempotent=True)
        def step(n: int, ctx: ToolContext) -> dict[str, int]:
            """Do step n."""
            if n == 1:
                self.entered.set()
                assert self.release.wait(30)
            self.done.append(n)
            return {"n": n}

        def turn(messages: list[BaseMessage]) -> AIMessage | str:
            text, done = _latest(messages)
            if text == "two steps" and done == 0:
                return ai("", tool_call("step", {"n": 1}), tool_call("step", {"n": 2}))
            return "both done" if text == "two steps" else f"you said: {text}"

        model = ScriptedChatModel([turn] * 10)
        self.rt = AgentRuntime(model, tools=[step], policy=Policy.allow_all(), db=db)
        self.result: dict[str, Any] = {}
        self.driver = threading.Thread(
            target=lambda: self.result.setdefault(
                "run", self.rt.start("two steps", principal=OPS, thread_id="t")
            )
        )

    def __enter__(self) -> Held:
        self.driver.start()
        assert self.entered.wait(30)  # the first step is under way
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.driver.join(30)
        self.rt.close()


def test_interrupt_while_running_stops_at_the_next_safe_point_never_inside_an_effect(
    db: Path,
) -> None:
    with Held(db) as held:
        kept = held.rt.send("t", "stop that", principal=OPS, double_texting="interrupt")
        assert (kept.status, kept.message) == (RunStatus.RUNNING, 0)  # its driver has it
        assert [m.status for m in held.rt.messages("t")] == ["running", "queued"]
        held.release.set()
        held.driver.join(30)
        run = held.result["run"]
        # The step under way finished and was verified; the next never began.
        assert held.done == [1]
        assert (run.status, run.message, run.output) == (SUCCEEDED, 1, "you said: stop that")
        assert [m.status for m in held.rt.messages("t")] == ["interrupted", "succeeded"]
        log = [(e["type"], e.get("step_id"), e["data"].get("kind")) for e in held.rt.events("t")]
        assert log[:6] == [
            ("plan", None, None),
            ("policy", "0.0", None),
            ("observation", "0.0", "ok"),
            ("observation", "0.1", "skipped"),
            ("message", None, None),
            ("plan", None, None),
        ]


def test_enqueue_while_running_answers_after_the_current_message(db: Path) -> None:
    with Held(db) as held:
        kept = held.rt.send("t", "and then?", principal=OPS, double_texting="enqueue")
        assert (kept.status, kept.message) == (RunStatus.RUNNING, 0)
        held.release.set()
        held.driver.join(30)
        run = held.result["run"]
        assert held.done == [1, 2]
        assert (run.status, run.message, run.output) == (SUCCEEDED, 1, "you said: and then?")
        assert [(m.status, m.output) for m in held.rt.messages("t")] == [
            ("succeeded", "both done"),
            ("succeeded", "you said: and then?"),
        ]


def test_a_follow_up_is_a_send_segment_of_the_runs_one_trace(rt: AgentRuntime) -> None:
    run = rt.start("note 1", principal=OPS)
    rt.send(run.thread_id, "hello", principal=PAYER)
    trace = rt.trace(run.thread_id)
    [root] = trace.roots
    segments = trace.segments()
    assert [s.name for s in segments] == ["invoke_agent agentrt", "send agentrt"]
    sent = segments[1]
    assert sent in root.children  # under the run's root, in its trace
    assert sent.attributes[A.SEGMENT] == "message"
    assert sent.attributes[A.MESSAGE_INDEX] == 1
    assert sent.attributes[A.GEN_AI_OPERATION] == "invoke_agent"
    assert sent.attributes[A.GEN_AI_CONVERSATION] == run.thread_id
    assert sent.attributes[A.USER_ID] == "bob"


def test_stream_send_yields_the_follow_ups_events_as_they_happen(rt: AgentRuntime) -> None:
    run = rt.start("note 1", principal=OPS)
    before = len(rt.events(run.thread_id))
    events = list(rt.stream_send(run.thread_id, "note 1", principal=OPS))
    assert {e.thread_id for e in events} == {run.thread_id}
    logged = [(e.type, e.index) for e in events if e.type in KINDS]
    assert [t for t, _ in logged] == ["message", "plan", "policy", "observation", "plan", "finish"]
    assert [i for _, i in logged] == list(range(before, before + 6))
    assert rt.get(run.thread_id).output == "noted 1"


def test_asend_and_astream_send_on_the_event_loop(rt: AgentRuntime) -> None:
    async def go() -> tuple[Any, list[str]]:
        run = await rt.astart("hello", principal=OPS)
        sent = await rt.asend(run.thread_id, "again", principal=OPS)
        kinds = [e.type async for e in rt.astream_send(run.thread_id, "once more", principal=OPS)]
        return sent, kinds

    sent, kinds = asyncio.run(go())
    assert (sent.output, sent.message) == ("you said: again", 1)
    assert [k for k in kinds if k in KINDS] == ["message", "plan", "finish"]


def test_agentrt_show_lists_a_threads_messages_and_resume_answers_a_queued_one(db: Path) -> None:
    from tests.test_cli import cli

    with threads_app.build_runtime(db) as rt:
        run = rt.start("note 1", principal=OPS)
        rt.send(run.thread_id, "hello", principal=PAYER)
        rt.send(run.thread_id, "note 2", principal=OPS, resume=False)  # kept, not answered
    app = ["--app", "tests.threads_app:build_runtime", "--db", str(db)]
    code, out = cli("show", run.thread_id, *app)
    assert code == 0, out
    lines = out.split("messages:\n", 1)[1].split("events:\n", 1)[0].splitlines()
    assert [line.split("  (")[0].split() for line in lines] == [
        ["#0", "succeeded", "olga:", "note", "1", "->", "noted", "1"],
        ["#1", "succeeded", "bob:", "hello", "->", "you", "said:", "hello"],
        ["#2", "queued", "olga:", "note", "2"],
    ]
    assert "(2 steps, 1 tool calls" in lines[0]
    assert "message: #1 from bob: hello" in out  # the log says where it came
    code, out = cli("resume", run.thread_id, *app)  # ended, but a message waits: answered
    assert code == 0, out
    assert "output    noted 2" in out


def test_the_readmes_follow_up_example_prints_what_it_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.test_readme import python_block

    monkeypatch.chdir(tmp_path)
    block = python_block("rt.send(")
    exec(compile(block, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    said = [line.lstrip("# ") for line in block.splitlines() if line.startswith("# ")]
    assert printed == ["It cost $89.00. 1", *said]


def test_interrupt_waits_while_an_effect_in_doubt_is_settled(db: Path) -> None:
    release = threading.Event()
    sent: list[str] = []

    @tool(effect="write", timeout=0.05)
    def send_mail(to: str) -> dict[str, str]:
        """Send a mail (the mail server has no idempotency keys)."""
        sent.append(to)
        release.wait(30)
        return {"sent_to": to}

    script = [ai("", tool_call("send_mail", {"to": "al"})), "mailed", "you said: hello"]
    rt = AgentRuntime(
        ScriptedChatModel(script), tools=[send_mail], policy=Policy.allow_all(), db=db
    )
    try:
        run = rt.start("mail al", principal=OPS)
        request = run.pending_approval
        assert request is not None
        assert request.kind == "reconcile"
        kept = rt.send(run.thread_id, "hello", principal=OPS, double_texting="interrupt")
        # Not interrupted: the effect in doubt is settled first; the message waits its turn.
        assert (kept.status, kept.pending_approval) == (RunStatus.AWAITING_APPROVAL, request)
        assert [(m.status, m.interrupt) for m in rt.messages(run.thread_id)] == [
            ("awaiting_approval", False),
            ("queued", False),
        ]
        release.set()
        done = rt.decide(Decision.resolve(request.id, result={"sent_to": "al"}, by=OPS))
        assert (done.status, done.message, done.output) == (SUCCEEDED, 1, "you said: hello")
        assert [m.output for m in rt.messages(run.thread_id)] == ["mailed", "you said: hello"]
        assert sent == ["al"]
    finally:
        release.set()
        rt.close()


def test_a_thread_that_went_on_replays_identical(rt: AgentRuntime) -> None:
    idle = rt.start("note 1", principal=OPS)
    rt.send(idle.thread_id, "note 2", principal=PAYER, budget=Budget(max_steps=5))
    interrupted = rt.start("pay 500", principal=OPS)
    rt.send(interrupted.thread_id, "note 1", principal=OPS, double_texting="interrupt")
    queued = rt.start("pay 500", principal=OPS)
    rt.send(queued.thread_id, "note 1", principal=OPS, double_texting="enqueue")
    request = rt.get(queued.thread_id).pending_approval
    assert request is not None
    rt.decide(Decision.approve(request.id, by=PAYER))
    for thread_id in (idle.thread_id, interrupted.thread_id, queued.thread_id):
        assert str(rt.replay(thread_id)) == "identical", thread_id


def test_a_thread_cancelled_before_it_ran_goes_on_from_its_goal(rt: AgentRuntime) -> None:
    made = rt.create("note 1", principal=OPS)
    rt.cancel(made.thread_id, reason="not now")
    run = rt.send(made.thread_id, "hello", principal=OPS)
    assert (run.status, run.message, run.output) == (SUCCEEDED, 1, "you said: hello")
    assert [m.status for m in rt.messages(made.thread_id)] == ["cancelled", "succeeded"]
    model: ScriptedChatModel = rt.deps.model  # type: ignore[assignment]
    assert said(model.calls[-1].messages) == [("human", "note 1"), ("human", "hello")]


def test_a_long_threads_summary_keeps_the_latest_message_word_for_word() -> None:
    from agentrt.events import message_event, plan_event
    from agentrt.state import Summary
    from agentrt.summaries import condensed_conversation, cut_point

    def read(log: list[Any], upto: int) -> list[tuple[str, Any]]:
        summary = Summary(text="earlier", upto=upto, kept=[])
        return [(m.type, m.content) for m in condensed_conversation(log, summary)]

    turns = [plan_event(i, f"turn {i}", []) for i in range(6)]
    log = [*turns[:2], message_event(1, "and then?", "olga"), *turns[2:]]
    # The turns after the message are condensed as any others...
    assert cut_point(log, 0, keep_turns=4) == 3
    assert cut_point(log, 3, keep_turns=2) == 5
    # ...and the planner still reads the message word for word, right after the summary.
    assert read(log, 5) == [
        ("human", "[Earlier in this run, condensed]\nearlier"),
        ("human", "and then?"),
        ("ai", "turn 4"),
        ("ai", "turn 5"),
    ]
    # Where the summary stops before it, it is read where it came, once.
    assert read(log, 1) == [
        ("human", "[Earlier in this run, condensed]\nearlier"),
        ("ai", "turn 1"),
        ("human", "and then?"),
        *[("ai", f"turn {i}") for i in range(2, 6)],
    ]
    # Only the latest message is the question: an earlier one is condensed with its turns.
    log = [*log[:4], message_event(2, "and now?", "olga"), *log[4:]]
    assert read(log, 6)[:3] == [
        ("human", "[Earlier in this run, condensed]\nearlier"),
        ("human", "and now?"),
        ("ai", "turn 4"),
    ]
    assert cut_point(turns, 0, keep_turns=4) == 2  # no message: as before


def test_an_interrupt_sent_to_a_run_its_caller_left_between_an_effect_and_its_check(
    rt: AgentRuntime, db: Path
) -> None:
    # The caller stops reading once the call ran: the run is left free before verify.
    for event in rt.stream("note 2", principal=OPS, thread_id="t"):
        if event.type == "tool_result":
            break
    assert rt.get("t").status is RunStatus.RUNNING
    run = rt.send("t", "hello", principal=OPS, double_texting="interrupt")
    assert (run.status, run.message, run.output) == (SUCCEEDED, 1, "you said: hello")
    # The call that ran was verified and told to the planner as done, the next one skipped.
    log = [(e["type"], e.get("step_id"), e["data"].get("kind")) for e in rt.events("t")]
    assert log[:5] == [
        ("plan", None, None),
        ("policy", "0.0", None),
        ("observation", "0.0", "ok"),
        ("message", None, None),
        ("plan", None, None),
    ]
    kinds = [s.attributes[A.STEP_KIND] for _, s in rt.trace("t").spans() if s.kind == A.AGENT_STEP]
    assert kinds.count("verify") == 1
    assert effects(db) == ["note 1/2"]
    assert [m.status for m in rt.messages("t")] == ["interrupted", "succeeded"]


def test_of_two_messages_sent_at_once_to_an_idle_thread_reject_answers_one(
    rt: AgentRuntime, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = rt.start("hello", principal=OPS)
    # Both senders find the thread idle before either keeps its message, and both have
    # tried to keep it before either goes on.
    read, added, looks = (
        threading.Barrier(2, timeout=10),
        threading.Barrier(2, timeout=10),
        iter(range(2)),
    )
    get_run, add_message = rt.store.get_run, rt.store.add_message

    def read_together(thread_id: str) -> Any:
        found = get_run(thread_id)
        if next(looks, None) is not None:
            read.wait()
        return found

    def add_together(message: Any, **options: Any) -> Any:
        kept = add_message(message, **options)
        added.wait()
        return kept

    monkeypatch.setattr(rt.store, "get_run", read_together)
    monkeypatch.setattr(rt.store, "add_message", add_together)
    outcomes: list[Any] = []

    def send(text: str) -> None:
        try:
            outcomes.append(rt.send(run.thread_id, text, principal=OPS, double_texting="reject"))
        except ThreadBusy as busy:
            outcomes.append(busy)

    senders = [threading.Thread(target=send, args=(text,)) for text in ("one", "two")]
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(30)
    [answered] = [o for o in outcomes if isinstance(o, Run)]
    [refused] = [o for o in outcomes if isinstance(o, ThreadBusy)]
    assert answered.output in ("you said: one", "you said: two")
    assert refused.status in ("queued", "running")  # the other's message, kept first
    assert [m.index for m in rt.messages(run.thread_id)] == [0, 1]  # nothing else kept


def test_an_approval_given_after_an_interrupt_was_sent_is_superseded_with_the_gate(
    rt: AgentRuntime, db: Path
) -> None:
    run = rt.start("pay 500", principal=OPS)
    request = run.pending_approval
    assert request is not None
    # Kept to interrupt the gate; the payer approves before anyone carries the thread on.
    rt.send(run.thread_id, "note 1", principal=OPS, double_texting="interrupt", resume=False)
    taken = rt.decide(Decision.approve(request.id, by=PAYER))
    assert (taken.status, taken.message, taken.output) == (SUCCEEDED, 1, "noted 1")
    assert effects(db) == ["note 1/1"]  # never paid, and the request does not say it was
    [superseded] = rt.approvals(status=None, thread_id=run.thread_id)
    assert (superseded.status.value, superseded.superseded, superseded.decided_by) == (
        "cancelled",
        "superseded by message #1",
        "bob",
    )
    assert superseded.comment is None  # bob gave no reason; none is made up for him


def test_an_approval_superseded_after_its_decision_keeps_the_decision_and_its_wait(
    rt: AgentRuntime, clock: FakeClock
) -> None:
    run = rt.start("pay 500", principal=OPS)
    request = run.pending_approval
    assert request is not None
    clock.advance(10)  # the payer approves after 10 s
    rt.decide(Decision.approve(request.id, by=PAYER, reason="checked with finance"), resume=False)
    clock.advance(1000)  # a person interrupts much later, before anyone carried it on
    taken = rt.send(run.thread_id, "note 1", principal=OPS, double_texting="interrupt")
    assert (taken.status, taken.output) == (SUCCEEDED, "noted 1")
    [superseded] = rt.approvals(status=None, thread_id=run.thread_id)
    assert (
        superseded.status.value,
        superseded.decided_by,
        superseded.decided_at,
        superseded.comment,
        superseded.superseded,
    ) == (
        "cancelled",
        "bob",
        request.requested_at + 10,
        "checked with finance",
        "superseded by message #1",
    )
    # The wait is from the request to bob's decision, not to the later supersession.
    [wait] = rt.stats().approval_waits
    assert (wait.decided, wait.max_seconds) == (1, 10.0)
    # Deciding it again is refused with what happened to it, not bob's reason.
    with pytest.raises(ApprovalError, match="superseded by message #1"):
        rt.decide(Decision.approve(request.id, by=PAYER))
