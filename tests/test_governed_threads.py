"""Threads of an app's own graph as runs: async graphs, cancel, workers leave them alone,
an effect in doubt goes to a person, the model-call budget of create_agent, and the
examples as a user runs them."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import tools_condition
from langgraph.types import Command

from agentrt import (
    AgentRuntime,
    ApprovalStatus,
    Budget,
    BudgetExceeded,
    ConfigError,
    Decision,
    Policy,
    Principal,
    RunError,
    RunStatus,
    tool,
)
from agentrt.budget import DEFAULT_PRICES
from agentrt.examples.own_graph import POLICY, build_runtime, scripted_model
from agentrt.examples.refund_desk import APPROVER, OPERATOR
from agentrt.records import LeaseRecord
from agentrt.testing import ScriptedChatModel, ai, tool_call
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


def test_a_model_calls_count_keeps_what_another_driver_counted_meanwhile(
    tmp_path: Path,
) -> None:
    # Two processes may drive one own-graph thread (its lease names the graph): a count
    # read, added to and written whole would drop the other's step made in between.
    planner = ScriptedChatModel(["unused"], model_name="gpt-4o-mini")
    with AgentRuntime(planner, db=tmp_path / "agentrt.db") as rt:
        agent = _agent(rt, ScriptedChatModel(["an answer"], model_name="gpt-4o"))
        config = rt.thread(principal=OPERATOR, thread_id=THREAD, budget=Budget(max_steps=9))
        store = rt.store
        real_swap, real_set = store.swap_usage, store.set_usage
        others: list[int] = []

        def another_driver_counts_first() -> None:
            if not others:
                others.append(1)
                now = store.get_run(THREAD)
                assert now is not None
                assert real_swap(THREAD, now.usage, {**now.usage, "steps": now.usage["steps"] + 1})

        def swap(thread_id: str, expected: Any, usage: Any) -> bool:
            if usage["steps"] > expected["steps"]:  # a model call's count
                another_driver_counts_first()
            return real_swap(thread_id, expected, usage)

        def set_usage(thread_id: str, usage: Any) -> None:
            another_driver_counts_first()
            real_set(thread_id, usage)

        store.swap_usage = swap  # type: ignore[method-assign]
        store.set_usage = set_usage  # type: ignore[method-assign]
        agent.invoke({"messages": [HumanMessage("hi")]}, config)
        assert others == [1]
        assert rt.get(THREAD).usage["steps"] == 2  # the other driver's step, and this one


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


# Parallel calls, cancels, resume values, keys and limits of own-graph threads ---------------

NOTES = """
  - id: notes
    match: {tools: [write_note]}
    decision: allow
    reason: Notes need no approval.
  - id: wires
    match: {tools: [wire]}
    decision: require_approval
    approval: {role: refund-approver}
    reason: A wire needs a person.
"""


class Desk:
    """A runtime on the examples' policy with a note and a wire beside the refund, what
    each tool did (in order), and a hand-written graph of it; ``hold`` keeps notes in
    their tool until set."""

    def __init__(self, tmp_path: Path, script: list[Any], **kw: Any) -> None:
        self.done: list[tuple[Any, ...]] = []
        self.hold: threading.Event | None = kw.pop("hold", None)
        self.entered = threading.Event()
        self.model = ScriptedChatModel(script)
        self.rt = AgentRuntime(
            self.model,
            tools=self.tools(),
            policy=Policy.from_yaml(POLICY + NOTES),
            db=tmp_path / "agentrt.db",
            **kw,
        )

    def tools(self) -> list[Any]:
        @tool(effect="irreversible", scopes=["payments:write"], idempotent=True)
        def issue_refund(order_id: str, amount: float) -> dict[str, Any]:
            """Refund an order.

            Args:
                order_id: The order's number.
                amount: How much, in USD.
            """
            self.done.append(("refund", order_id))
            return {"refunded": amount}

        @tool(effect="write")
        def write_note(text: str) -> dict[str, Any]:
            """Write a note.

            Args:
                text: The note.
            """
            self.entered.set()
            if self.hold is not None:
                assert self.hold.wait(30)
            self.done.append(("note", text))
            return {"noted": text}

        @tool(effect="write", sensitive=["account"])
        def wire(account: str, amount: float) -> dict[str, Any]:
            """Wire money.

            Args:
                account: The account.
                amount: How much, in USD.
            """
            self.done.append(("wire", account))
            return {"sent": amount}

        return [issue_refund, write_note, wire]

    def graph(self, node: Any = None, *, inner: bool = False) -> Any:
        """The model and a governed tool node (or ``node``); ``inner``: as a subgraph."""
        graph = StateGraph(MessagesState)
        graph.add_node("model", lambda state: {"messages": [self.model.invoke(state["messages"])]})
        graph.add_node("tools", node if node is not None else self.rt.tool_node())
        graph.add_edge(START, "model")
        graph.add_conditional_edges("model", tools_condition)
        graph.add_edge("tools", "model")
        if not inner:
            return graph.compile(checkpointer=InMemorySaver())
        outer = StateGraph(MessagesState)
        outer.add_node("agent", graph.compile())
        outer.add_edge(START, "agent")
        return outer.compile(checkpointer=InMemorySaver())


REFUND_AND_NOTE = [
    ai(
        "",
        tool_call("issue_refund", {"order_id": "42", "amount": 89.0}),
        tool_call("write_note", {"text": "hi"}),
    ),
    "done",
]
TWO_REFUNDS = [
    ai(
        "",
        tool_call("issue_refund", {"order_id": "42", "amount": 89.0}),
        tool_call("issue_refund", {"order_id": "44", "amount": 99.0}),
    ),
    "done",
]
GO = {"messages": [HumanMessage("go")]}


def in_flight(rt: AgentRuntime) -> int:
    """Threads with a governed call in flight in this process (what the Governor keeps)."""
    return len(rt._governor._turns)


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_parallel_call_beside_a_gate_runs_before_the_graph_returns_at_the_gate(
    mode: str, tmp_path: Path
) -> None:
    # The gated refund comes first (one call at a time in sync); the note beside it runs
    # all the same, and in both modes before invoke returns: an async ToolNode's gather
    # returns at the first interrupt, and the note must not act after it. The row stays
    # at the gate while the refund's request is pending.
    desk = Desk(tmp_path, REFUND_AND_NOTE)
    with desk.rt as rt:
        graph, config = desk.graph(), rt.thread(principal=OPERATOR, thread_id=THREAD)
        if mode == "sync":
            out = graph.invoke(GO, {**config, "max_concurrency": 1}, durability="sync")
        else:

            async def waiting() -> dict[str, Any]:
                out = await graph.ainvoke(GO, config, durability="sync")
                assert desk.done == [("note", "hi")]  # done before it returned
                assert in_flight(rt) == 0  # and nothing of the thread goes on after
                return dict(out)

            out = asyncio.run(waiting())
        assert len(out["__interrupt__"]) == 1
        assert desk.done == [("note", "hi")]
        (request,) = rt.approvals(thread_id=THREAD)
        assert rt.get(THREAD).status is RunStatus.AWAITING_APPROVAL
        assert [r.thread_id for r in rt.runs(status="awaiting_approval")] == [THREAD]
        graph.invoke(Command(resume=Decision.approve(request.id, by=APPROVER)), config)
        assert desk.done == [("note", "hi"), ("refund", "42")]  # the note replayed, not run
        assert (rt.get(THREAD).status, rt.get(THREAD).usage["tool_calls"]) == (
            RunStatus.RUNNING,
            2,
        )


def test_a_cancelled_async_graph_lets_go_of_the_thread(tmp_path: Path) -> None:
    # One note holds the thread's turn in its tool, the other waits for it; the app
    # cancels the ainvoke. The waiting call takes nothing, the holder gives its turn back:
    # the thread's next call (the graph carried on) answers, and nothing is kept.
    hold = threading.Event()
    notes = [tool_call("write_note", {"text": "a"}), tool_call("write_note", {"text": "b"})]
    desk = Desk(tmp_path, [ai("", *notes), "done"], hold=hold)
    with desk.rt as rt:
        graph, config = desk.graph(), rt.thread(principal=OPERATOR, thread_id=THREAD)

        async def cancelled() -> None:
            task = asyncio.create_task(graph.ainvoke(GO, config))
            assert await asyncio.to_thread(desk.entered.wait, 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            hold.set()  # the note cut off goes on in its worker thread, then ends

        # In a thread of its own, bounded: asyncio.run waits for its worker threads.
        loop = threading.Thread(target=asyncio.run, args=(cancelled(),), daemon=True)
        loop.start()
        loop.join(30)
        assert not loop.is_alive(), "the cancelled graph's loop never ends"
        answered = threading.Event()
        threading.Thread(
            target=lambda: (graph.invoke(None, config), answered.set()), daemon=True
        ).start()
        assert answered.wait(30), "the thread's next governed call hangs"
        assert in_flight(rt) == 0


def test_a_refused_edit_keeps_its_sensitive_argument_out_of_the_log_and_the_refusal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "ACCT-55550000-NEWX"
    wire = tool_call("wire", {"account": "ACCT-77441199-ZQX", "amount": 5.0})
    desk = Desk(tmp_path, [ai("", wire), "done"])
    with desk.rt as rt:
        graph, config = desk.graph(), rt.thread(principal=OPERATOR, thread_id=THREAD)
        graph.invoke(GO, config)
        (request,) = rt.approvals(thread_id=THREAD)
        bad = {"approval_id": request.id, "outcome": "edit", "by": "bob"}
        with caplog.at_level(logging.WARNING, logger="agentrt"):
            out = graph.invoke(Command(resume={**bad, "args": {"account": secret}}), config)
        refused = out["__interrupt__"][0].value["refused"]
        logged = "\n".join(r.getMessage() for r in caplog.records)
        assert refused["error"] == "InvalidDecision"
        assert f"decision on {request.id!r} refused: malformed decision" in logged
        for shown_text in (logged, refused["message"]):
            assert secret not in shown_text
            assert "ACCT-77441199-ZQX" not in shown_text
        assert desk.done == []


def test_two_drivers_of_one_thread_count_each_call_against_its_budget(tmp_path: Path) -> None:
    # Two runtimes on one database (two processes: the app's worker and the service) drive
    # one thread with max_tool_calls=1; both read the usage before either counts its call.
    meet = threading.Barrier(2, timeout=30)
    met: set[int] = set()

    def clock() -> float:
        if sys._getframe(1).f_code.co_name == "_spend" and threading.get_ident() not in met:
            met.add(threading.get_ident())
            meet.wait()
        return time.time()

    def driver(order: str) -> tuple[Desk, Any]:
        refund = tool_call("issue_refund", {"order_id": order, "amount": 10.0}, id=order)
        desk = Desk(tmp_path, [ai("", refund), "done"], clock=clock)
        return desk, desk.graph()

    (a, graph_a), (b, graph_b) = driver("1"), driver("2")
    with a.rt, b.rt:
        config = a.rt.thread(principal=OPERATOR, thread_id=THREAD, budget=Budget(max_tool_calls=1))
        raised: list[BaseException] = []

        def drive(graph: Any) -> None:
            try:
                graph.invoke(GO, config)
            except BudgetExceeded as exc:
                raised.append(exc)

        threads = [threading.Thread(target=drive, args=(g,)) for g in (graph_a, graph_b)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        made = a.done + b.done
        assert (len(made), len(raised)) == (1, 1), (made, raised)
        run = a.rt.get(THREAD)
        assert (run.status, run.usage["tool_calls"]) == (RunStatus.BUDGET_EXCEEDED, 1)


def test_a_later_turn_of_a_subgraph_makes_its_own_call(tmp_path: Path) -> None:
    # A subgraph's supersteps count from 0 at each turn; a provider that numbers its calls
    # per message asks again with the same id. Two turns, two refunds.
    same = tool_call("issue_refund", {"order_id": "9", "amount": 10.0}, id="call_1")
    desk = Desk(tmp_path, [ai("", same), "refunded", ai("", same), "refunded again"])
    with desk.rt as rt:
        graph, config = desk.graph(inner=True), rt.thread(principal=OPERATOR, thread_id=THREAD)
        graph.invoke(GO, config)
        graph.invoke(GO, config)
        assert desk.done == [("refund", "9"), ("refund", "9")]
        assert rt.get(THREAD).usage["tool_calls"] == 2
        assert len({e.key for e in rt.store.list_effects(THREAD)}) == 2


def test_a_tool_node_offering_no_tools_runs_none(tmp_path: Path) -> None:
    desk = Desk(
        tmp_path, [ai("", tool_call("issue_refund", {"order_id": "9", "amount": 10.0})), "done"]
    )
    with desk.rt as rt:
        node = rt.tool_node(tools=[])
        assert list(node.tools_by_name) == []
        graph, config = desk.graph(node), rt.thread(principal=OPERATOR, thread_id=THREAD)
        out = graph.invoke(GO, config)
        (message,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
        assert (message.status, message.content) == (
            "error",
            "denied: tool 'issue_refund' is not offered here",
        )
        assert desk.done == []


def test_the_governor_keeps_nothing_of_a_thread_once_its_calls_are_over(tmp_path: Path) -> None:
    note = ai("", tool_call("write_note", {"text": "n"}))
    desk = Desk(tmp_path, [note, "ok"] * 5)
    with desk.rt as rt:
        graph = desk.graph()
        for n in range(5):
            graph.invoke(GO, rt.thread(principal=OPERATOR, thread_id=f"t{n}"))
        assert len(desk.done) == 5
        assert in_flight(rt) == 0
