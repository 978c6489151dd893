"""Budgets on real runs: every limit at its boundary, the runaway loop, pre-flight of model and
tool calls, the raise-limit gate, spans, and the command line."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from typer.testing import CliRunner

from agentrt import (
    AgentRuntime,
    Budget,
    ConfigError,
    Decision,
    InvalidDecision,
    NotAuthorized,
    Policy,
    Principal,
    Run,
    RunStatus,
    ToolContext,
    tool,
)
from agentrt.budget import tokens_used
from agentrt.cli import app
from agentrt.state import Usage
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests import budget_app
from tests.conftest import FakeClock, Ids

OPS = Principal("ops", tenant="acme")
OWNER = Principal("fin", roles=["budget-owner"], tenant="acme")
PRICES = {"test-model": (1.0, 2.0)}


@contextmanager
def pinging(db: Path, clock: FakeClock, **kwargs: Any) -> Iterator[tuple[AgentRuntime, list[int]]]:
    """A run that pings twice (each ping takes a second of the clock and costs $0.01),
    then answers. Yields the runtime and the list of real ping executions."""
    executed: list[int] = []

    @tool(effect="read", cost_usd=0.01)
    def ping(turn: int) -> dict[str, Any]:
        """Ping."""
        executed.append(turn)
        clock.advance(1.0)
        return {"pong": turn}

    model = ScriptedChatModel(
        [
            ai("", tool_call("ping", {"turn": 0})),
            ai("", tool_call("ping", {"turn": 1})),
            "pinged twice",
        ],
        model_name="test-model",
        max_tokens=256,
    )
    kwargs.setdefault("prices", PRICES)
    rt = AgentRuntime(
        model,
        tools=[ping],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        new_id=Ids(),
        **kwargs,
    )
    try:
        yield rt, executed
    finally:
        rt.close()


def scripted(rt: AgentRuntime) -> ScriptedChatModel:
    model = rt.deps.model
    assert isinstance(model, ScriptedChatModel)
    return model


def test_usage_comes_from_usage_metadata_prices_and_tool_costs(db: Path, clock: FakeClock) -> None:
    with pinging(db, clock) as (rt, executed):
        run = rt.start("ping", principal=OPS)
        assert run.status is RunStatus.SUCCEEDED
        metas = [c.outcome.usage_metadata for c in scripted(rt).calls]  # type: ignore[union-attr]
        assert all(metas)
        inputs = sum(m["input_tokens"] for m in metas if m)
        outputs = sum(m["output_tokens"] for m in metas if m)
        assert run.usage == {
            "input_tokens": inputs,
            "output_tokens": outputs,
            "cost_usd": pytest.approx(0.02 + inputs * 1e-6 + outputs * 2e-6),
            "tool_calls": 2,
            "steps": 3,
            "active_seconds": 2.0,
        }
        assert executed == [0, 1]
        # The row holds the same usage the checkpoint does.
        assert (
            rt.get(run.thread_id).usage
            == rt.graph.get_state({"configurable": {"thread_id": run.thread_id}}).values["usage"]
        )


def need(db: Path, clock: FakeClock) -> tuple[Usage, float]:
    """What the pinging run spends without limits, and the clock when it asks for its answer."""
    start = clock.now
    with pinging(db.with_name("unlimited.db"), clock) as (rt, _):
        usage = rt.start("ping", principal=OPS).usage
    clock.now = start
    return usage, start + usage["active_seconds"]


UNITS = {
    "max_steps": 1,
    "max_tool_calls": 1,
    "max_tokens": 1,
    "max_cost_usd": 1e-6,
    "max_active_seconds": 1.0,
    "deadline": 1.0,
}


@pytest.mark.parametrize("limit", list(UNITS))
@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_each_limit_trips_exactly_at_its_boundary(
    db: Path, clock: FakeClock, limit: str, offset: int
) -> None:
    spent, answer_at = need(db, clock)
    needed: float = {
        "max_steps": spent["steps"],
        "max_tool_calls": spent["tool_calls"],
        "max_tokens": tokens_used(spent),
        "max_cost_usd": spent["cost_usd"],
        # Time is known only after it is spent: a run stops once it has used its time.
        "max_active_seconds": spent["active_seconds"],
        "deadline": answer_at,
    }[limit]
    value = needed + offset * UNITS[limit]
    # Counts, tokens and money: exactly enough is enough. Time: reaching it is the end.
    fits = offset >= 0 if limit not in ("max_active_seconds", "deadline") else offset > 0
    budget = Budget(**{limit: value})  # type: ignore[arg-type]
    with pinging(db, clock) as (rt, executed):
        run = rt.start("ping", principal=OPS, budget=budget)
        assert run.status is (RunStatus.SUCCEEDED if fits else RunStatus.BUDGET_EXCEEDED)
        assert len(executed) == run.usage["tool_calls"]
        if fits:
            assert run.budget_report is None
            assert run.usage == spent
            return
        report = run.budget_report
        assert report is not None
        assert report["limit"] == limit
        assert report["allowed"] == value
        assert report["usage"] == run.usage
        assert run.error == report["message"]
        # Nothing was spent past the limit.
        used = {
            "max_steps": run.usage["steps"],
            "max_tool_calls": run.usage["tool_calls"],
            "max_tokens": tokens_used(run.usage),
            "max_cost_usd": run.usage["cost_usd"],
        }
        if limit in used:
            assert used[limit] <= value + 1e-12


def test_a_model_call_the_tokens_cannot_cover_is_not_made(db: Path, clock: FakeClock) -> None:
    spent, _ = need(db, clock)
    with pinging(db.with_name("probe.db"), clock) as (rt, _):
        rt.start("ping", principal=OPS)
        last = scripted(rt).calls[-1].outcome.usage_metadata  # type: ignore[union-attr]
        assert last is not None
    # Room for the last prompt but not one token of answer: the call is not made.
    limit = tokens_used(spent) - last["output_tokens"]
    with pinging(db, clock) as (rt, executed):
        run = rt.start("ping", principal=OPS, budget=Budget(max_tokens=limit))
        assert run.status is RunStatus.BUDGET_EXCEEDED
        assert len(scripted(rt).calls) == 2
        assert executed == [0, 1]
        assert run.budget_report is not None
        assert run.budget_report["action"] == "model call (plan step 2)"
        assert run.budget_report["requested"] == last["input_tokens"] + 1
        assert run.error == (
            f"budget limit max_tokens={limit} reached: {tokens_used(run.usage)} used, and the "
            f"next action needs {last['input_tokens'] + 1} more; stopped before model call "
            "(plan step 2)"
        )


def test_the_output_cap_is_lowered_to_what_remains(db: Path, clock: FakeClock) -> None:
    spent, _ = need(db, clock)
    limit = tokens_used(spent) + 5
    with pinging(db, clock) as (rt, _):
        run = rt.start("ping", principal=OPS, budget=Budget(max_tokens=limit))
        assert run.status is RunStatus.SUCCEEDED
        calls = scripted(rt).calls
        used = 0
        caps = []
        for call in calls:
            meta = call.outcome.usage_metadata  # type: ignore[union-attr]
            assert meta is not None
            caps.append((call.max_tokens, min(256, limit - used - meta["input_tokens"])))
            used += meta["input_tokens"] + meta["output_tokens"]
        assert [asked for asked, _ in caps] == [room for _, room in caps]
        assert caps[-1][0] == (calls[-1].outcome.usage_metadata["output_tokens"] + 5)  # type: ignore[union-attr,index]


def test_an_answer_cut_at_a_lowered_cap_ends_the_run_at_the_limit(
    db: Path, clock: FakeClock
) -> None:
    spent, _ = need(db, clock)
    limit = tokens_used(spent) - 1
    with pinging(db, clock) as (rt, _):
        run = rt.start("ping", principal=OPS, budget=Budget(max_tokens=limit))
        assert run.status is RunStatus.BUDGET_EXCEEDED
        assert tokens_used(run.usage) == limit
        assert run.output is None
        assert run.budget_report is not None
        assert run.budget_report["action"].startswith("acting on model answer 2, cut at ")
        # The cut answer is not in the log: the run acted on nothing it said.
        assert [e["type"] for e in rt.events(run.thread_id)][-1] == "finish"
        assert sum(e["type"] == "plan" for e in rt.events(run.thread_id)) == 2


def test_no_tool_call_whose_cost_exceeds_what_remains(db: Path, clock: FakeClock) -> None:
    # Free model: only the pings cost. $0.015 pays for one ping, not two.
    with pinging(db, clock, prices={"test-model": (0.0, 0.0)}) as (rt, executed):
        run = rt.start("ping", principal=OPS, budget=Budget(max_cost_usd=0.015))
        assert run.status is RunStatus.BUDGET_EXCEEDED
        assert executed == [0]
        assert run.usage["cost_usd"] == pytest.approx(0.01)
        assert run.error == (
            "budget limit max_cost_usd=0.015 reached: 0.01 used, and the next action needs "
            "0.01 more; stopped before tool call ping (step 1.0)"
        )


@pytest.mark.parametrize(
    ("budget", "limit", "executions"),
    [(Budget(max_tool_calls=5), "max_tool_calls", 5), (Budget(max_steps=4), "max_steps", 4)],
)
def test_a_runaway_loop_stops_and_not_one_call_runs_past_the_limit(
    db: Path, clock: FakeClock, budget: Budget, limit: str, executions: int
) -> None:
    with budget_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        run = rt.start("ping forever", principal=OPS, budget=budget)
        assert run.status is RunStatus.BUDGET_EXCEEDED
        assert budget_app.executions(db) == executions
        assert run.usage["tool_calls"] == executions
        assert run.budget_report is not None
        assert run.budget_report["limit"] == limit
        # Resuming a finished run spends nothing more.
        assert rt.resume(run.thread_id) == run
        assert budget_app.executions(db) == executions


def test_runtime_tenant_and_run_budgets_layer(db: Path, clock: FakeClock) -> None:
    with budget_app.build_runtime(
        db,
        clock=clock,
        new_id=Ids(),
        budget=Budget(max_tool_calls=3, max_cost_usd=5.0),
        tenant_budgets={"acme": Budget(max_tool_calls=2, on_exceed="stop")},
    ) as rt:
        other = rt.start("ping", principal=Principal("x", tenant="globex"))
        assert other.usage["tool_calls"] == 3
        assert other.budget == Budget(max_steps=100, max_tool_calls=3, max_cost_usd=5.0)
        acme = rt.start("ping", principal=OPS)
        assert acme.usage["tool_calls"] == 2
        raised = rt.start("ping", principal=OPS, budget=Budget(max_tool_calls=4, max_steps=9))
        assert raised.budget == Budget(
            max_steps=9, max_tool_calls=4, max_cost_usd=5.0, on_exceed="stop"
        )
        assert raised.usage["tool_calls"] == 4
        assert rt.budget_for(OPS) == acme.budget


def test_a_cost_limit_on_a_model_with_no_price_is_refused(db: Path, clock: FakeClock) -> None:
    with pytest.raises(ConfigError, match="model 'test-model' has no price"):
        budget_app.build_runtime(db, budget=Budget(max_cost_usd=1.0), prices={})
    with pytest.raises(
        ConfigError, match=re.escape("tenant 'acme''s budget sets max_cost_usd=2.0")
    ):
        budget_app.build_runtime(db, tenant_budgets={"acme": Budget(max_cost_usd=2.0)}, prices={})
    with pinging(db, clock, prices={}) as (rt, executed):
        with pytest.raises(ConfigError) as caught:
            rt.start("ping", principal=OPS, budget=Budget(max_cost_usd=1.0))
        assert str(caught.value) == (
            "the run's budget sets max_cost_usd=1.0, but model 'test-model' has no price, so "
            "its calls would count as free; pass prices={'test-model': (input_usd, output_usd)} "
            "per million tokens"
        )
        assert rt.runs() == []
        assert executed == []


# The raise-limit gate -------------------------------------------------------------------------

ASK = Budget(max_tool_calls=2, on_exceed="ask", approver_role="budget-owner")


def test_a_person_raises_the_limit_and_the_run_goes_on(db: Path, clock: FakeClock) -> None:
    with budget_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        run = rt.start("ping forever", principal=OPS, budget=ASK)
        assert run.status is RunStatus.AWAITING_APPROVAL
        assert budget_app.executions(db) == 2
        request = run.pending_approval
        assert request is not None
        assert (request.kind, request.tool, request.required_role) == (
            "budget",
            "ping",
            "budget-owner",
        )
        assert request.args == {"limit": "max_tool_calls", "allowed": 2, "used": 2, "requested": 1}
        assert request.reason == (
            "budget limit max_tool_calls=2 reached: 2 used, and the next action needs 1 more; "
            "stopped before tool call ping (step 2.0)"
        )
        assert rt.approvals(tenant="acme") == [request]
        # Every gate interrupts with the same shape, whatever its kind.
        [gate] = rt.graph.get_state({"configurable": {"thread_id": run.thread_id}}).interrupts
        assert [(a["id"], a["kind"]) for a in gate.value["approvals"]] == [(request.id, "budget")]

        refused = [
            (Decision.approve(request.id, by=OWNER), InvalidDecision, "decide it with"),
            (
                Decision.raise_limit(request.id, limit="max_steps", to=50, by=OWNER),
                InvalidDecision,
                "asks to raise max_tool_calls, but the decision sets ['max_steps']",
            ),
            (
                Decision.raise_limit(request.id, limit="max_tool_calls", to=2, by=OWNER),
                InvalidDecision,
                "must be higher than the current 2, got 2",
            ),
            (
                Decision.raise_limit(request.id, limit="max_tool_calls", to=1, by=OWNER),
                InvalidDecision,
                "must be higher than the current 2, got 1",
            ),
            (
                Decision.raise_limit(request.id, limit="max_tool_calls", to=3.5, by=OWNER),
                InvalidDecision,
                "counts whole units, got 3.5",
            ),
            # Past 64 bits, the raised limit could not be stored with the run.
            (
                Decision.raise_limit(request.id, limit="max_tool_calls", to=1e20, by=OWNER),
                InvalidDecision,
                "cannot raise max_tool_calls of run 'id-1': the new max_tool_calls 1e+20 is past "
                "the largest limit a run can store (9223372036854775807, 2**63 - 1)",
            ),
            (
                Decision.raise_limit(request.id, limit="max_tool_calls", to=math.inf, by=OWNER),
                InvalidDecision,
                "the new max_tool_calls must be a finite number, got inf",
            ),
            (
                Decision.raise_limit(request.id, limit="max_tool_calls", to=9, by=OPS),
                NotAuthorized,
                "it requires role 'budget-owner'",
            ),
        ]
        for decision, error, message in refused:
            with pytest.raises(error, match=re.escape(message)):
                rt.decide(decision)
            assert rt.get(run.thread_id) == run
            assert rt.approvals() == [request]

        run = rt.decide(Decision.raise_limit(request.id, limit="max_tool_calls", to=4, by=OWNER))
        # Two more pings, and the raised limit asks again.
        assert run.status is RunStatus.AWAITING_APPROVAL
        assert budget_app.executions(db) == 4
        assert run.budget.max_tool_calls == 4
        second = run.pending_approval
        assert second is not None
        assert second.id != request.id
        assert second.args == {"limit": "max_tool_calls", "allowed": 4, "used": 4, "requested": 1}

        run = rt.decide(Decision.reject(second.id, by=OWNER, reason="enough pinging"))
        assert run.status is RunStatus.BUDGET_EXCEEDED
        assert budget_app.executions(db) == 4
        assert run.budget_report is not None
        assert run.budget_report["allowed"] == 4
        assert run.error == (
            "budget limit max_tool_calls=4 reached: 4 used, and the next action needs 1 more; "
            "stopped before tool call ping (step 4.0); the request to raise it was rejected "
            "by 'fin': enough pinging"
        )


@pytest.mark.parametrize(
    ("budget", "asked", "raises"),
    [
        # Time is measured after the spend: the run is at 2 s of its 1.5 s when it asks.
        (
            Budget(max_active_seconds=1.5, on_exceed="ask"),
            {"limit": "max_active_seconds", "allowed": 1.5, "used": 2.0, "requested": 0},
            (
                1.8,
                "the new max_active_seconds 1.8 would stop the run again: the run has used 2; "
                "give more than 2",
                2.5,
            ),
        ),
        # Money is checked before: the second ping needs $0.01 more than the $0.01 spent.
        (
            Budget(max_cost_usd=0.015, on_exceed="ask"),
            {"limit": "max_cost_usd", "allowed": 0.015, "used": 0.01, "requested": 0.01},
            (
                0.016,
                "the new max_cost_usd 0.016 would stop the run again: the run has used 0.01 "
                "and the next action needs 0.01 more; give at least 0.02",
                0.02,
            ),
        ),
    ],
    ids=["active-seconds", "cost"],
)
def test_a_raise_that_still_stops_the_run_is_refused(
    db: Path,
    clock: FakeClock,
    budget: Budget,
    asked: dict[str, Any],
    raises: tuple[float, str, float],
) -> None:
    # Higher than the limit, yet not past what the run used (and its next action needs):
    # accepted, it would be recorded as the person's decision and the run would ask again.
    with pinging(db, clock, prices={"test-model": (0.0, 0.0)}) as (rt, executed):
        run = rt.start("ping", principal=OPS, budget=budget)
        request = run.pending_approval
        assert request is not None
        assert request.args == asked
        limit = asked["limit"]
        short, refused, enough = raises  # too low (and why), then enough
        with pytest.raises(InvalidDecision, match=re.escape(f"of run 'id-1': {refused}")):
            rt.decide(Decision.raise_limit(request.id, limit=limit, to=short, by=OWNER))
        assert rt.get(run.thread_id) == run
        assert rt.approvals() == [request]

        run = rt.decide(Decision.raise_limit(request.id, limit=limit, to=enough, by=OWNER))
        assert (run.status, run.output) == (RunStatus.SUCCEEDED, "pinged twice")
        assert executed == [0, 1]


def test_a_cost_limit_past_any_output_cap_lets_the_run_finish(db: Path, clock: FakeClock) -> None:
    # $1e20 pays for more output tokens than a 64-bit cap can say: no cap is set, rather
    # than one that fails the run when the model call is recorded.
    model = ScriptedChatModel(["Done."], model_name="test-model")
    with AgentRuntime(
        model, policy=Policy.allow_all(), db=db, clock=clock, new_id=Ids(), prices=PRICES
    ) as rt:
        run = rt.start("hi", principal=OPS, budget=Budget(max_cost_usd=1e20))
        assert (run.status, run.output) == (RunStatus.SUCCEEDED, "Done.")
        assert model.calls[0].max_tokens is None


def test_a_model_call_over_budget_asks_too(db: Path, clock: FakeClock) -> None:
    with budget_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        run = rt.start("ping forever", principal=OPS, budget=Budget(max_steps=1, on_exceed="ask"))
        assert run.status is RunStatus.AWAITING_APPROVAL
        request = run.pending_approval
        assert request is not None
        assert (request.tool, request.args["limit"]) == ("", "max_steps")
        # Without an approver role anyone may raise it, except the run's own requester.
        with pytest.raises(NotAuthorized, match="never raises its budget"):
            rt.decide(Decision.raise_limit(request.id, limit="max_steps", to=3, by=OPS))
        run = rt.decide(Decision.raise_limit(request.id, limit="max_steps", to=3, by=OWNER))
        assert run.status is RunStatus.AWAITING_APPROVAL
        assert run.usage["steps"] == 3
        assert budget_app.executions(db) == 3


def test_a_tool_is_told_when_the_budget_stops_work(db: Path, clock: FakeClock) -> None:
    told: list[float | None] = []

    @tool(effect="read")
    def slow(ctx: ToolContext) -> str:
        """Take three seconds."""
        told.append(ctx.deadline)
        clock.advance(3.0)
        return "done"

    model = ScriptedChatModel([ai("", tool_call("slow")), ai("", tool_call("slow")), "ok"])
    start = clock.now
    with AgentRuntime(model, tools=[slow], policy=Policy.allow_all(), db=db, clock=clock) as rt:
        run = rt.start("go", principal=OPS, budget=Budget(max_active_seconds=10.0))
        assert run.status is RunStatus.SUCCEEDED
        # 10 s of active time from the start; then 7 s left when the second call starts.
        assert told == [start + 10.0, start + 3.0 + 7.0]
        # The earlier of the deadline and the end of active time; past it, no call starts.
        late = rt.start(
            "go", principal=OPS, budget=Budget(max_active_seconds=10.0, deadline=start + 8)
        )
        assert told[2:] == [start + 8.0]
        assert late.status is RunStatus.BUDGET_EXCEEDED
        assert late.error is not None
        assert late.error == (
            "budget deadline 2027-01-15T08:00:08Z reached: it is 2027-01-15T08:00:09Z; "
            "stopped before model call (plan step 1)"
        )


def test_waiting_for_a_person_is_not_active_time(db: Path, clock: FakeClock) -> None:
    with budget_app.build_runtime(db, clock=clock, new_id=Ids()) as rt:
        budget = Budget(max_tool_calls=1, max_active_seconds=60.0, on_exceed="ask")

        async def scenario() -> tuple[Run, Run]:
            waiting = await rt.astart("ping", principal=OPS, budget=budget)
            assert waiting.pending_approval is not None
            clock.advance(3600.0)  # an hour before anyone looks
            raised = Decision.raise_limit(
                waiting.pending_approval.id, limit="max_tool_calls", to=2, by=OWNER
            )
            return waiting, await rt.adecide(raised)

        waiting, run = asyncio.run(scenario())
        assert waiting.status is RunStatus.AWAITING_APPROVAL
        assert run.status is RunStatus.AWAITING_APPROVAL
        assert run.usage["tool_calls"] == 2
        assert run.usage["active_seconds"] == 0.0


def test_remaining_budget_is_on_every_step_span(db: Path, clock: FakeClock) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with budget_app.build_runtime(
        db, clock=clock, new_id=Ids(), tracing=provider, budget=Budget(max_tool_calls=2)
    ) as rt:
        rt.start("ping forever", principal=OPS)
    steps = [
        s
        for s in exporter.get_finished_spans()
        if (s.attributes or {}).get("agentrt.span.kind") == "agent.step"
    ]
    seen = [
        (
            s.attributes["agentrt.step.kind"],
            s.attributes["agentrt.budget.tool_calls_remaining"],
            s.attributes["agentrt.budget.steps_remaining"],
        )
        for s in steps
        if s.attributes is not None
    ]
    assert seen == [
        ("plan", 2, 99),
        ("policy", 2, 99),
        ("tool", 1, 99),
        ("verify", 1, 99),
        ("plan", 1, 98),
        ("policy", 1, 98),
        ("tool", 0, 98),
        ("verify", 0, 98),
        ("plan", 0, 97),
        ("policy", 0, 97),
        ("tool", 0, 97),
        ("finish", 0, 97),
    ]


def test_show_and_raise_limit_from_the_command_line(db: Path) -> None:
    runner = CliRunner()
    spec = ["--app", "tests.budget_app:build_runtime", "--db", str(db)]
    with budget_app.build_runtime(db) as rt:
        run = rt.start("ping forever", principal=OPS, budget=ASK)
    request = run.pending_approval
    assert request is not None

    shown = runner.invoke(app, ["show", run.thread_id, *spec])
    assert shown.exit_code == 0, shown.output
    assert "budget    max_tool_calls 2 (0 left), max_steps 100 (97 left), ask budget-owner" in (
        shown.output
    )
    assert "waiting for a person to raise a budget limit:" in shown.output
    assert "limit         max_tool_calls=2, 2 used, 1 more needed" in shown.output

    refused = runner.invoke(
        app,
        [
            "raise-limit",
            request.id,
            "--to",
            "1",
            "--as",
            "fin",
            "--role",
            "budget-owner",
            "--tenant",
            "acme",
            *spec,
        ],
    )
    assert refused.exit_code == 1
    assert "must be higher than the current 2, got 1" in refused.output

    raised = runner.invoke(
        app,
        [
            "raise-limit",
            request.id,
            "--to",
            "3",
            "--as",
            "fin",
            "--role",
            "budget-owner",
            "--tenant",
            "acme",
            *spec,
        ],
    )
    assert raised.exit_code == 0, raised.output
    assert f"max_tool_calls raised to 3 for {request.id}; the run is now awaiting_approval" in (
        raised.output
    )
    assert budget_app.executions(db) == 3

    shown = runner.invoke(app, ["show", run.thread_id, *spec])
    assert "budget max_tool_calls: raised to 3 by fin" in shown.output
