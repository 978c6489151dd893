"""Threads of an app's own graph as runs: async graphs, cancel, workers leave them alone,
an effect in doubt goes to a person, the model-call budget of create_agent, and the
examples as a user runs them."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agentrt import (
    AgentRuntime,
    ApprovalStatus,
    Budget,
    BudgetExceeded,
    ConfigError,
    Decision,
    Principal,
    RunError,
    RunStatus,
)
from agentrt.budget import DEFAULT_PRICES
from agentrt.examples.own_graph import build_runtime, scripted_model
from agentrt.examples.refund_desk import APPROVER, OPERATOR
from agentrt.records import LeaseRecord
from agentrt.testing import ScriptedChatModel
from tests.governed_app import KINDS, THREAD, app, refunds, start

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("kind", KINDS)
def test_an_async_graph_waits_at_the_gate_and_goes_on_after_adecide(
    kind: str, tmp_path: Path
) -> None:
    with app(kind, tmp_path, in_memory=True) as (rt, graph):
        rt.attach(graph)
        config = rt.thread(principal=OPERATOR, thread_id=THREAD)

        async def scenario() -> RunStatus:
            await graph.ainvoke({"messages": [HumanMessage("Refund the order")]}, config)
            (request,) = rt.approvals(tenant="acme")
            run = await rt.adecide(Decision.approve(request.id, by=APPROVER))
            return run.status

        assert asyncio.run(scenario()) is RunStatus.RUNNING
        assert [(o, a) for _, o, a in refunds(tmp_path)] == [("42", 89.0)]


@pytest.mark.parametrize("kind", KINDS)
def test_cancel_ends_a_waiting_thread_and_its_requests(kind: str, tmp_path: Path) -> None:
    with app(kind, tmp_path) as (rt, graph):
        config = start(rt, graph)
        (request,) = rt.approvals(tenant="acme")
        run = rt.cancel(THREAD, reason="customer withdrew")
        assert (run.status, run.error) == (RunStatus.CANCELLED, "customer withdrew")
        assert rt.approval(request.id).status is ApprovalStatus.CANCELLED
        with pytest.raises(RunError, match="ended cancelled: customer withdrew"):
            graph.invoke(Command(resume={"decided": True}), config)
        assert refunds(tmp_path) == []


def test_workers_never_claim_a_thread_of_the_apps_graph(tmp_path: Path) -> None:
    with app("graph", tmp_path, "small") as (rt, graph):
        rt.thread(principal=OPERATOR, thread_id=THREAD)
        claim = LeaseRecord(owner="worker", host="h", pid=1, expires_at=rt.clock() + 60)
        assert rt.store.claim_runs(claim, now=rt.clock(), limit=10).thread_ids == ()
        assert rt.get(THREAD).status is RunStatus.PENDING
        # Nor does resume start agentrt's run graph on it: the graph is not attached.
        assert rt.resume(THREAD).status is RunStatus.PENDING
        assert refunds(tmp_path) == []
        start(rt, graph)
        assert rt.get(THREAD).status is RunStatus.RUNNING


def test_a_thread_is_opened_once_for_one_principal(tmp_path: Path) -> None:
    with app("graph", tmp_path) as (rt, _):
        first = rt.thread(principal=OPERATOR, thread_id=THREAD)
        assert rt.thread(principal=OPERATOR, thread_id=THREAD) == first
        with pytest.raises(ConfigError, match="acts for 'alice'"):
            rt.thread(principal=Principal("mallory"), thread_id=THREAD)
        run = rt.start("a run of agentrt's own graph", principal=OPERATOR, thread_id="own")
        with pytest.raises(ConfigError, match="not a thread of graph 'app'"):
            rt.thread(principal=OPERATOR, thread_id=run.thread_id)


@pytest.mark.parametrize("kind", KINDS)
def test_a_graph_invoked_without_an_open_thread_is_told_how(kind: str, tmp_path: Path) -> None:
    with (
        app(kind, tmp_path, "small") as (_, graph),
        pytest.raises(ConfigError, match=r"open it first with config = rt.thread\(principal=..."),
    ):
        graph.invoke({"messages": [HumanMessage("hi")]}, {"configurable": {"thread_id": "x"}})


def test_the_agents_model_calls_are_budgeted_before_each_call(tmp_path: Path) -> None:
    with app("agent", tmp_path, "two_calls") as (rt, graph):
        with pytest.raises(BudgetExceeded, match="max_steps=2 reached"):
            start(rt, graph, budget=Budget(max_steps=2))
        run = rt.get(THREAD)
        assert run.status is RunStatus.BUDGET_EXCEEDED
        assert run.budget_report is not None
        assert run.budget_report["limit"] == "max_steps"
        assert run.usage["steps"] == 2
        assert run.usage["input_tokens"] > 0
        assert run.usage["tool_calls"] == 2
        assert rt.deps.model.calls.__len__() == 2  # type: ignore[attr-defined]


def _agent(rt: AgentRuntime, model: ScriptedChatModel) -> Any:
    """A create_agent agent on ``model`` (not the runtime's), governed by rt.middleware()."""
    from langchain.agents import create_agent

    return create_agent(model, middleware=[rt.middleware()], checkpointer=InMemorySaver())


def test_the_agents_model_is_priced_by_its_own_name_and_stops_at_the_cost_limit(
    tmp_path: Path,
) -> None:
    # The runtime plans with gpt-4o-mini; the agent talks to gpt-4o, and its calls cost
    # gpt-4o's price (it was once counted $0 for any model but the runtime's own).
    planner = ScriptedChatModel(["unused"], model_name="gpt-4o-mini")
    with AgentRuntime(planner, db=tmp_path / "agentrt.db") as rt:
        model = ScriptedChatModel(["word " * 2000, "never asked"], model_name="gpt-4o")
        agent = _agent(rt, model)
        config = rt.thread(principal=OPERATOR, thread_id=THREAD, budget=Budget(max_cost_usd=0.01))
        agent.invoke({"messages": [HumanMessage("say a lot")]}, config)
        usage = rt.get(THREAD).usage
        spent = DEFAULT_PRICES["gpt-4o"].cost(usage["input_tokens"], usage["output_tokens"])
        # Its answer capped to what $0.01 leaves at gpt-4o's price, not the 2,000 words.
        assert 900 < usage["output_tokens"] < 2000
        assert usage["cost_usd"] == pytest.approx(spent)
        assert 0.009 < spent <= 0.01
        with pytest.raises(BudgetExceeded, match="max_cost_usd"):
            agent.invoke({"messages": [HumanMessage("and more")]}, config)
        assert rt.get(THREAD).status is RunStatus.BUDGET_EXCEEDED
        assert len(model.calls) == 1  # the second call was refused before it was made


def test_the_agents_model_is_priced_by_the_runtimes_prices(tmp_path: Path) -> None:
    planner = ScriptedChatModel(["unused"], model_name="gpt-4o-mini")
    prices = {"my-local-model": (1.0, 3.0), "gpt-4o-mini": (0.0, 0.0)}
    with AgentRuntime(planner, db=tmp_path / "agentrt.db", prices=prices) as rt:
        agent = _agent(rt, ScriptedChatModel(["an answer"], model_name="my-local-model"))
        config = rt.thread(principal=OPERATOR, thread_id=THREAD, budget=Budget(max_cost_usd=1.0))
        agent.invoke({"messages": [HumanMessage("hi")]}, config)
        usage = rt.get(THREAD).usage
        tokens_in, tokens_out = usage["input_tokens"], usage["output_tokens"]
        assert tokens_in > 0
        assert tokens_out > 0
        assert usage["cost_usd"] == pytest.approx((tokens_in * 1.0 + tokens_out * 3.0) / 1e6)


def test_the_agents_answer_is_capped_to_what_the_token_limit_leaves(tmp_path: Path) -> None:
    # As the run graph's plan: the prompt is counted before the call, and the answer may
    # take only what the limit leaves after it, not the 2,000 words the model would say.
    planner = ScriptedChatModel(["unused"], model_name="gpt-4o-mini")
    with AgentRuntime(planner, db=tmp_path / "agentrt.db") as rt:
        model = ScriptedChatModel(["word " * 2000, "never asked"], model_name="gpt-4o")
        agent = _agent(rt, model)
        config = rt.thread(principal=OPERATOR, thread_id=THREAD, budget=Budget(max_tokens=300))
        agent.invoke({"messages": [HumanMessage("say a lot")]}, config)
        usage = rt.get(THREAD).usage
        assert 0 < usage["output_tokens"] < 300
        assert usage["input_tokens"] + usage["output_tokens"] <= 300
        with pytest.raises(BudgetExceeded, match="max_tokens"):
            agent.invoke({"messages": [HumanMessage("and more " * 100)]}, config)
        assert len(model.calls) == 1  # refused before the call: its prompt alone is past it
        assert rt.get(THREAD).status is RunStatus.BUDGET_EXCEEDED


@pytest.mark.parametrize(
    ("name", "said"),
    [
        ("my-local-model", "pass AgentRuntime(prices={'my-local-model': (input_usd, output_usd)})"),
        ("", "it has no model name (none of model_name, model, model_id on ScriptedChatModel)"),
    ],
)
def test_an_unpriced_agent_model_is_refused_under_a_cost_limit(
    name: str, said: str, tmp_path: Path
) -> None:
    planner = ScriptedChatModel(["unused"], model_name="gpt-4o-mini")
    with AgentRuntime(planner, db=tmp_path / "agentrt.db") as rt:
        model = ScriptedChatModel(["an answer", "another"], model_name=name)
        agent = _agent(rt, model)
        config = rt.thread(principal=OPERATOR, thread_id=THREAD, budget=Budget(max_cost_usd=1.0))
        with pytest.raises(ConfigError) as refused:
            agent.invoke({"messages": [HumanMessage("hi")]}, config)
        assert str(refused.value).startswith(
            f"thread {THREAD!r} sets max_cost_usd=1.0, but the agent's model "
            f"{name or 'ScriptedChatModel'!r} has no price, so its calls would count as free; "
        )
        assert said in str(refused.value)
        # Refused before the call: nothing spent, the thread as it was.
        assert model.calls == []
        run = rt.get(THREAD)
        assert (run.status, run.usage["steps"]) == (RunStatus.PENDING, 0)
        # Without a cost limit the same model runs, its tokens counted at no cost.
        free = rt.thread(principal=OPERATOR, thread_id="t2", budget=Budget(max_steps=5))
        agent.invoke({"messages": [HumanMessage("hi")]}, free)
        usage = rt.get("t2").usage
        assert (usage["steps"], usage["cost_usd"]) == (1, 0.0)
        assert usage["output_tokens"] > 0


@pytest.mark.parametrize("example", ["own_graph", "create_agent"])
def test_the_examples_run_as_a_user_runs_them(example: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", f"agentrt.examples.{example}", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert out.splitlines() == [
        "waiting: issue_refund {'order_id': '42', 'amount': 89.0} for a refund-approver",
        "running: Order 42 is refunded.",
    ]


def test_tool_messages_keep_the_call_ids_of_the_model(tmp_path: Path) -> None:
    with app("graph", tmp_path, "two_calls") as (rt, graph):
        config = start(rt, graph)
        messages = graph.get_state(config).values["messages"]
        asked = [c["id"] for m in messages for c in getattr(m, "tool_calls", [])]
        answered = [m.tool_call_id for m in messages if isinstance(m, ToolMessage)]
        assert answered == asked
        assert len(answered) == 2


def readme_block(containing: str) -> str:
    """The README's one ```python block that holds ``containing``."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (block,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if containing in b]
    return str(block)


def test_the_readme_own_graph_and_create_agent_blocks_run_as_printed(tmp_path: Path) -> None:
    model = scripted_model()
    with build_runtime(tmp_path / "agentrt.db", model) as rt:
        names = {
            "rt": rt,
            "model": model,
            "checkpointer": InMemorySaver(),
            "alice": OPERATOR,
            "bob": APPROVER,
            "Decision": Decision,
        }
        exec(compile(readme_block("rt.tool_node()"), "README.md", "exec"), names)
        exec(compile(readme_block("rt.middleware()"), "README.md", "exec"), names)
        for thread_id in ("refund-42", "refund-43"):
            assert rt.get(thread_id).status is RunStatus.RUNNING
            assert rt.approval(names["request"].id).status is ApprovalStatus.APPROVED
        payments = tmp_path / "agentrt.payments.db"
        with sqlite3.connect(payments) as db:
            assert db.execute("SELECT count(*) FROM refunds").fetchone() == (2,)
