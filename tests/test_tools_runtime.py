"""Tools inside runs: every failure an observation, nothing runs on bad arguments, and an
effect in doubt goes to a person (the reconcile gate), never repeated blindly."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.tools import StructuredTool
from langchain_core.tools import tool as lc_tool
from langgraph.types import RetryPolicy
from typer.testing import CliRunner

from agentrt import (
    AgentRuntime,
    AlreadyDecided,
    ApprovalStatus,
    Decision,
    InvalidDecision,
    NotAuthorized,
    Policy,
    Principal,
    RunStatus,
    ToolContext,
    ToolError,
    tool,
)
from agentrt.cli import app
from agentrt.examples.refund_desk import GOAL, OPERATOR
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tools import as_tool
from tests.conftest import FakeClock, Ids

OPS = Principal("ops", tenant="acme")
CLERK = Principal("clerk", tenant="acme")


class Crash(BaseException):
    """Stands for the process dying mid-call: nothing in agentrt catches it."""


class Sink:
    """An external system: records each effect, can fail, block, or 'crash' the caller."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.crash_next = False
        self.transient_failures = 0
        self.block: threading.Event | None = None

    def send(self, to: str, key: str) -> dict[str, str]:
        if self.transient_failures:
            self.transient_failures -= 1
            raise ToolError("mail server busy", kind="transient")
        self.sent.append((to, key))
        if self.block is not None:
            self.block.wait()
        if self.crash_next:
            self.crash_next = False
            raise Crash
        return {"sent_to": to}


@pytest.fixture
def sink() -> Sink:
    return Sink()


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_rt(
    db: Path, clock: FakeClock, sink: Sink, sleeps: list[float], script: list[Any], **kw: Any
) -> AgentRuntime:
    @tool(effect="write", retry=RetryPolicy(max_attempts=3, initial_interval=2.0), **kw)
    def send_email(to: str, ctx: ToolContext) -> dict[str, str]:
        """Send an email (the mail server has no idempotency keys)."""
        return sink.send(to, ctx.idempotency_key)

    @tool
    def lookup(order_id: int) -> dict[str, int]:
        """Look an order up."""
        return {"order_id": order_id}

    return AgentRuntime(
        ScriptedChatModel(script),
        tools=[send_email, lookup],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        new_id=Ids(),
        sleep=sleeps.append,
        rand=lambda: 0.5,
    )


@pytest.fixture
def rt(db: Path, clock: FakeClock, sink: Sink, sleeps: list[float]) -> Iterator[AgentRuntime]:
    runtime = make_rt(
        db, clock, sink, sleeps, [ai("", tool_call("send_email", {"to": "al"})), "done"]
    )
    yield runtime
    runtime.close()


def observations(rt: AgentRuntime, thread_id: str) -> list[dict[str, Any]]:
    return [e["data"] for e in rt.events(thread_id) if e["type"] == "observation"]


# invalid arguments from the model ----------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        (
            tool_call("lookup", {"order_id": "forty-two"}),
            "invalid_args",
            "order_id: Input should be a valid integer",
        ),
        (tool_call("lookup", {}), "invalid_args", "order_id: Field required"),
        (
            tool_call("lookup", {"order_id": 1, "admin": True}),
            "invalid_args",
            "admin: Extra inputs are not permitted",
        ),
        (
            tool_call("send_email", {"to": "x" * 10_000_000, "cc": 1}),
            "invalid_args",
            "the arguments are 10,000,016 bytes, over the runtime's limit of 262,144",
        ),
        (tool_call("wipe_disk", {"all": True}), "denied", "'wipe_disk'"),
    ],
    ids=["wrong-type", "missing", "extra", "10MB-string", "unknown-tool"],
)
def test_invalid_tool_calls_are_observations_and_nothing_runs(
    db: Path, clock: FakeClock, sink: Sink, case: tuple[Any, str, str]
) -> None:
    call, kind, message = case
    with make_rt(db, clock, sink, [], [ai("", call), "gave up"]) as rt:
        run = rt.start("do it", principal=OPS)
        assert (run.status, run.output) == (RunStatus.SUCCEEDED, "gave up")
        [obs] = observations(rt, run.thread_id)
        assert obs["kind"] == kind
        assert message in obs["content"]
        assert len(obs["content"]) < 2_000  # a 10 MB argument is not echoed back
        assert rt.store.list_effects(run.thread_id) == []
    assert sink.sent == []


# the error contract inside a run ------------------------------------------------------------


def test_transient_errors_are_retried_and_the_retries_recorded(
    rt: AgentRuntime, sink: Sink, sleeps: list[float]
) -> None:
    sink.transient_failures = 2
    run = rt.start("mail al", principal=OPS)
    assert run.status is RunStatus.SUCCEEDED
    [obs] = observations(rt, run.thread_id)
    assert (obs["kind"], obs["retries"]) == ("ok", 2)
    [effect] = rt.store.list_effects(run.thread_id)
    assert (effect.status, effect.retries, effect.attempts) == ("done", 2, 1)
    assert sleeps == [2.5, 4.5]  # 2 s then 4 s, plus the injected jitter
    assert len(sink.sent) == 1


def test_transient_errors_that_outlast_the_retries_are_a_transient_observation(
    rt: AgentRuntime, sink: Sink
) -> None:
    sink.transient_failures = 5
    run = rt.start("mail al", principal=OPS)
    assert run.status is RunStatus.SUCCEEDED  # the planner saw it and answered
    [obs] = observations(rt, run.thread_id)
    assert (obs["kind"], obs["retries"]) == ("transient", 2)
    assert obs["content"] == "transient error (after 2 retries): mail server busy"
    [effect] = rt.store.list_effects(run.thread_id)
    assert (effect.status, effect.error_kind, effect.retries) == ("failed", "transient", 2)
    assert sink.sent == []


def test_a_result_off_its_schema_is_a_permanent_observation(db: Path, clock: FakeClock) -> None:
    @tool
    def count(n: int) -> int:
        """Count."""
        return "many"  # type: ignore[return-value]

    model = ScriptedChatModel([ai("", tool_call("count", {"n": 1})), "hm"])
    with AgentRuntime(model, tools=[count], policy=Policy.allow_all(), db=db, clock=clock) as rt:
        run = rt.start("count", principal=OPS)
        [obs] = observations(rt, run.thread_id)
    assert obs["kind"] == "permanent"
    assert obs["content"].startswith("the result of 'count' does not match its schema")


# the reconcile gate ---------------------------------------------------------------------------


def crash_then_resume(rt: AgentRuntime, sink: Sink) -> str:
    """Die inside the call after the effect happened, then resume: the run waits for a person."""
    sink.crash_next = True
    with pytest.raises(Crash):
        rt.start("mail al", principal=OPS, thread_id="t1")
    assert rt.get("t1").status is RunStatus.RUNNING
    run = rt.resume("t1")
    assert run.status is RunStatus.AWAITING_APPROVAL
    assert run.pending_approval is not None
    assert run.pending_approval.kind == "reconcile"
    assert len(sink.sent) == 1  # the resume did not call the tool again
    return run.pending_approval.id


def test_resolve_records_the_result_and_the_run_goes_on_without_a_call(
    rt: AgentRuntime, sink: Sink
) -> None:
    rid = crash_then_resume(rt, sink)
    request = rt.approvals()[0]
    assert (request.id, request.tool, request.args) == (rid, "send_email", {"to": "al"})
    assert "attempt 1" in request.reason

    done = rt.decide(Decision.resolve(rid, result={"sent_to": "al"}, by=CLERK))

    assert done.status is RunStatus.SUCCEEDED
    assert len(sink.sent) == 1
    [effect] = rt.store.list_effects("t1")
    assert (effect.status, effect.result) == ("done", {"sent_to": "al"})
    [obs] = observations(rt, "t1")
    assert (obs["kind"], obs["content"]) == ("ok", '{"sent_to": "al"}')
    assert rt.store.get_approval(rid).status is ApprovalStatus.RESOLVED  # type: ignore[union-attr]
    assert rt.resume("t1").status is RunStatus.SUCCEEDED  # nothing left: no second call


def test_retry_calls_again_with_the_same_key(rt: AgentRuntime, sink: Sink) -> None:
    rid = crash_then_resume(rt, sink)
    done = rt.decide(Decision.retry(rid, by=CLERK, reason="the mail log shows nothing"))
    assert done.status is RunStatus.SUCCEEDED
    assert [to for to, _ in sink.sent] == ["al", "al"]
    assert sink.sent[0][1] == sink.sent[1][1]  # the same idempotency key both times
    [effect] = rt.store.list_effects("t1")
    assert (effect.status, effect.attempts) == ("done", 2)


def test_a_timed_out_non_idempotent_call_goes_to_reconcile(
    db: Path, clock: FakeClock, sink: Sink, sleeps: list[float]
) -> None:
    sink.block = threading.Event()
    script = [ai("", tool_call("send_email", {"to": "al"})), "done"]
    try:
        with make_rt(db, clock, sink, sleeps, script, timeout=0.05) as rt:
            run = rt.start("mail al", principal=OPS)
            assert run.status is RunStatus.AWAITING_APPROVAL
            assert run.pending_approval is not None
            assert "did not finish within its timeout of 0.05s" in run.pending_approval.reason
            assert len(sink.sent) == 1  # never retried blindly
            assert sleeps == []
            sink.block.set()
            done = rt.decide(
                Decision.resolve(run.pending_approval.id, result={"sent_to": "al"}, by=CLERK)
            )
            assert done.status is RunStatus.SUCCEEDED
    finally:
        sink.block.set()
    assert len(sink.sent) == 1


def test_reconcile_decisions_are_validated(rt: AgentRuntime, sink: Sink) -> None:
    rid = crash_then_resume(rt, sink)
    with pytest.raises(InvalidDecision, match="is of kind 'reconcile', which takes"):
        rt.decide(Decision.approve(rid, by=CLERK))
    with pytest.raises(InvalidDecision, match="result of 'send_email' does not match its schema"):
        rt.decide(Decision.resolve(rid, result=["not", "a", "dict"], by=CLERK))
    with pytest.raises(InvalidDecision, match="a resolve decision needs the result"):
        Decision.parse({"approval_id": rid, "outcome": "resolve", "by": CLERK})
    with pytest.raises(InvalidDecision, match="result belongs to a resolve decision"):
        Decision.parse({"approval_id": rid, "outcome": "retry", "by": CLERK, "result": 1})
    assert rt.get("t1").status is RunStatus.AWAITING_APPROVAL  # refused: nothing changed
    rt.decide(Decision.retry(rid, by=CLERK))
    with pytest.raises(AlreadyDecided):
        rt.decide(Decision.resolve(rid, result={"sent_to": "al"}, by=CLERK))


def test_a_reconcile_role_limits_who_may_settle(
    db: Path, clock: FakeClock, sink: Sink, sleeps: list[float]
) -> None:
    script = [ai("", tool_call("send_email", {"to": "al"})), "done"]
    with make_rt(db, clock, sink, sleeps, script, reconcile_role="mail-admin") as rt:
        rid = crash_then_resume(rt, sink)
        with pytest.raises(NotAuthorized, match="it requires role 'mail-admin'"):
            rt.decide(Decision.retry(rid, by=CLERK))
        admin = Principal("root", roles=["mail-admin"], tenant="acme")
        assert rt.decide(Decision.retry(rid, by=admin)).status is RunStatus.SUCCEEDED


def test_action_approvals_refuse_reconcile_outcomes(desk: AgentRuntime) -> None:
    run = desk.start(GOAL, principal=OPERATOR)
    assert run.pending_approval is not None
    with pytest.raises(InvalidDecision, match="is of kind 'action', which takes"):
        desk.decide(Decision.retry(run.pending_approval.id, by=CLERK))


def test_cli_resolves_and_retries(rt: AgentRuntime, sink: Sink, db: Path) -> None:
    rid = crash_then_resume(rt, sink)
    cli = CliRunner()
    app_spec = ["--app", "tests.test_tools_runtime:cli_runtime", "--db", str(db)]
    bad = cli.invoke(
        app,
        [
            "reconcile",
            "resolve",
            rid,
            "--as",
            "clerk",
            "--tenant",
            "acme",
            "--result",
            "{",
            *app_spec,
        ],
    )
    assert bad.exit_code == 2
    assert "--result '{' is not JSON" in bad.output
    ok = cli.invoke(
        app,
        [
            "reconcile",
            "resolve",
            rid,
            "--as",
            "clerk",
            "--tenant",
            "acme",
            "--result",
            '{"sent_to": "al"}',
            *app_spec,
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert f"resolve recorded for {rid}; the run is now succeeded" in ok.output
    again = cli.invoke(
        app, ["reconcile", "retry", rid, "--as", "clerk", "--tenant", "acme", *app_spec]
    )
    assert again.exit_code == 1  # a refused decision, not a usage error
    assert f"approval {rid!r} was already resolved by 'clerk'" in again.output


def test_cli_retry_calls_the_tool_again(rt: AgentRuntime, sink: Sink, db: Path) -> None:
    rid = crash_then_resume(rt, sink)
    app_spec = ["--app", "tests.test_tools_runtime:cli_runtime", "--db", str(db)]
    done = CliRunner().invoke(
        app, ["reconcile", "retry", rid, "--as", "clerk", "--tenant", "acme", *app_spec]
    )
    assert done.exit_code == 0, done.output
    assert f"retry recorded for {rid}; the run is now succeeded" in done.output
    [effect] = rt.store.list_effects("t1")
    assert (effect.status, effect.attempts) == ("done", 2)


def cli_runtime(db: str) -> AgentRuntime:
    """The runtime the CLI test loads: the same tools, a planner that only answers."""
    sink = Sink()
    return make_rt(
        Path(db), FakeClock(), sink, [], [ai("", tool_call("send_email", {"to": "al"})), "done"]
    )


# LangChain tools ----------------------------------------------------------------------------


def test_langchain_tools_are_accepted_as_they_are(db: Path, clock: FakeClock) -> None:
    seen: list[dict[str, Any]] = []

    @lc_tool
    def multiply(a: int, b: int) -> int:
        """Multiply two integers."""
        return a * b

    async def shout(text: str) -> str:
        return text.upper()

    loud = StructuredTool.from_function(coroutine=shout, name="shout", description="Shout it.")

    def record(text: str, **_: Any) -> str:
        seen.append({"text": text})
        return "noted"

    note = as_tool(
        StructuredTool.from_function(record, name="note", description="Note it."),
        effect="write",
        idempotent=True,
        scopes=["notes:write"],
    )
    model = ScriptedChatModel(
        [
            ai(
                "",
                tool_call("multiply", {"a": 6, "b": 7}),
                tool_call("shout", {"text": "hi"}),
                tool_call("note", {"text": "x"}),
                tool_call("multiply", {"a": "six", "b": 7}),
            ),
            "42",
        ]
    )
    tools = [multiply, loud, note]
    with AgentRuntime(model, tools=tools, policy=Policy.allow_all(), db=db, clock=clock) as rt:
        spec = rt.tools.get("multiply")
        assert spec is not None
        assert (spec.effect, spec.idempotent, spec.schema()["function"]["parameters"]) == (
            "write",
            False,
            {
                "additionalProperties": False,
                "description": "Multiply two integers.",
                "properties": {
                    "a": {"title": "A", "type": "integer"},
                    "b": {"title": "B", "type": "integer"},
                },
                "required": ["a", "b"],
                "type": "object",
            },
        )
        run = rt.start("go", principal=Principal("p", scopes=["notes:write"]))
        kinds = [(o["tool"], o["kind"], o["content"][:20]) for o in observations(rt, run.thread_id)]
        effects = [(e.tool, e.status) for e in rt.store.list_effects(run.thread_id)]
    assert kinds[:3] == [("multiply", "ok", "42"), ("shout", "ok", "HI"), ("note", "ok", "noted")]
    assert kinds[3][:2] == ("multiply", "invalid_args")
    # write by default, so through the ledger
    assert effects == [("multiply", "done"), ("shout", "done"), ("note", "done")]
    assert seen == [{"text": "x"}]


def test_an_irreversible_call_in_doubt_is_retried_in_commit_not_previewed_again(
    db: Path, clock: FakeClock
) -> None:
    calls: list[str] = []
    previews: list[int] = []
    crash = [True]

    def preview(cents: int) -> dict[str, int]:
        previews.append(cents)
        return {"cents": cents}

    @tool(effect="irreversible", prepare=preview)
    def wire(cents: int, ctx: ToolContext) -> dict[str, int]:
        """Wire money (the bank has no idempotency key)."""
        calls.append(ctx.idempotency_key)
        if crash.pop() if crash else False:
            raise Crash
        return {"cents": cents}

    model = ScriptedChatModel([ai("", tool_call("wire", {"cents": 5})), "sent"])

    def runtime() -> AgentRuntime:
        return AgentRuntime(model, tools=[wire], policy=Policy.allow_all(), db=db, clock=clock)

    with runtime() as rt, pytest.raises(Crash):
        rt.start("wire 5", principal=OPS, thread_id="w")

    async def settle() -> tuple[Any, Any]:
        with runtime() as rt:
            waiting = await rt.aresume("w")
            assert waiting.pending_approval is not None
            done = await rt.adecide(Decision.retry(waiting.pending_approval.id, by=CLERK))
            return waiting, done

    waiting, done = asyncio.run(settle())
    assert waiting.status is RunStatus.AWAITING_APPROVAL
    assert done.status is RunStatus.SUCCEEDED
    assert previews == [5]  # verified once, before anything happened
    assert len(calls) == 2
    assert calls[0] == calls[1]
