"""Long runs: the summarize node keeps the planner's prompt in bounds, the run still ends
as it should, the log keeps everything, and replay of a summarized run is identical."""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.types import RetryPolicy

from agentrt import AgentRuntime, Budget, ConfigError, Policy, Principal, Summarize, tool
from agentrt.events import observation_event, plan_event
from agentrt.faults import retryable_model_error
from agentrt.state import RunStatus
from agentrt.summaries import cut_point, kept_decisions, summary_request
from agentrt.testing import ScriptedChatModel, ai, tool_call
from tests.conftest import FakeClock, Ids

OPS = Principal("ops", tenant="acme", scopes=["records:read"])
FILLER = "lorem ipsum dolor sit amet " * 12  # a result worth condensing (~80 tokens)
_RECORD = re.compile(r"record (\d+):")


@tool(effect="read", scopes=["records:read"])
def lookup(n: int) -> str:
    """Read record n.

    Args:
        n: Which record.
    """
    return f"record {n}: {FILLER}"


def last_record(messages: list[BaseMessage]) -> int | None:
    for message in reversed(messages):
        if isinstance(message, ToolMessage):
            found = _RECORD.search(str(message.content))
            return int(found.group(1)) if found else None
    return None


def reader(total: int) -> Any:
    """A planner that reads records 0..total-1 one a turn, then says how far it got: it
    decides from the conversation alone, so a condensed one serves as well as a whole."""

    def turn(messages: list[BaseMessage]) -> AIMessage:
        seen = last_record(messages)
        nxt = 0 if seen is None else seen + 1
        if nxt >= total:
            condensed = any("[Earlier in this run, condensed]" in str(m.content) for m in messages)
            return AIMessage(f"read {total} records (condensed: {condensed})")
        return ai("", tool_call("lookup", {"n": nxt}))

    return turn


def condense(messages: list[BaseMessage]) -> str:
    """A summarizer: which records the turns it is given (and the summary before) read."""
    text = "\n".join(str(m.content) for m in messages)
    read = sorted({int(n) for n in _RECORD.findall(text)} | _summarized(text))
    return f"Records {read[0]} to {read[-1]} were read." if read else "Nothing read yet."


def _summarized(text: str) -> set[int]:
    found = re.search(r"Records (\d+) to (\d+) were read", text)
    return set(range(int(found.group(1)), int(found.group(2)) + 1)) if found else set()


def runtime(
    db: Path, clock: FakeClock, total: int, summarize: Summarize | None, **kwargs: Any
) -> tuple[AgentRuntime, ScriptedChatModel]:
    planner = ScriptedChatModel([reader(total)] * (total + 2), model_name="planner")
    rt = AgentRuntime(
        planner,
        tools=[lookup],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        new_id=Ids(),
        summarize=summarize,
        **{
            "budget": Budget(max_steps=10 * total),
            "prices": {"planner": (1.0, 2.0), "summarizer": (10.0, 20.0)},
            **kwargs,
        },
    )
    return rt, planner


def largest_prompt(model: ScriptedChatModel) -> int:
    return max(model.get_num_tokens_from_messages(list(c.messages)) for c in model.calls)


LIMIT = 2_000


def test_a_long_run_summarizes_and_still_finishes(db: Path, clock: FakeClock) -> None:
    writer = ScriptedChatModel([condense], model_name="summarizer")
    settings = Summarize(at_tokens=1_500, keep_turns=3, model=writer)
    rt, planner = runtime(db, clock, 80, settings)
    with rt:
        run = rt.start("Read every record", principal=OPS)
        assert run.status is RunStatus.SUCCEEDED
        assert run.output == "read 80 records (condensed: True)"
        events = rt.events(run.thread_id)
        state = rt.graph.get_state({"configurable": {"thread_id": run.thread_id}}).values
        spans = [span for _, span in rt.trace(run.thread_id).spans()]
        report = rt.replay(run.thread_id)

    # Every record read once, in order: the log keeps every turn, the summarized ones too.
    plans = [e["data"]["actions"] for e in events if e["type"] == "plan"]
    assert plans[-1] == []  # the answer
    reads = [actions[0]["args"]["n"] for actions in plans[:-1]]
    assert reads == list(range(80))
    assert len([e for e in events if e["type"] == "observation"]) == 80
    # The planner's prompt stayed under the limit; summaries were written along the way.
    assert largest_prompt(planner) < LIMIT
    summaries = len(writer.calls)
    assert summaries >= 3
    assert state["summary"]["text"].startswith("Records 0 to ")
    # The planner's last prompt: instructions, goal, the summary, then whole turns verbatim
    # (at least the 3 kept, and those since the last summary), never the first ones.
    last = list(planner.calls[-1].messages)
    assert isinstance(last[2], HumanMessage)
    assert str(last[2].content).startswith("[Earlier in this run, condensed]")
    assert isinstance(last[3], AIMessage)
    assert 3 <= sum(isinstance(m, AIMessage) for m in last) < 20
    assert last_record(last) == 79
    # The summaries' cost counts: each a model call (a step) at the summarizer's price.
    assert run.usage["steps"] == 81 + summaries
    summary_cost = sum(
        (
            c.outcome.usage_metadata["input_tokens"] * 10.0
            + c.outcome.usage_metadata["output_tokens"] * 20.0
        )
        / 1e6
        for c in writer.calls
        if isinstance(c.outcome, AIMessage) and c.outcome.usage_metadata
    )
    plan_cost = sum(
        (
            c.outcome.usage_metadata["input_tokens"] * 1.0
            + c.outcome.usage_metadata["output_tokens"] * 2.0
        )
        / 1e6
        for c in planner.calls
        if isinstance(c.outcome, AIMessage) and c.outcome.usage_metadata
    )
    assert run.usage["cost_usd"] == pytest.approx(plan_cost + summary_cost)
    # Traced as its own step, with its model call under it.
    steps = [s for s in spans if s.attributes.get("agentrt.step.kind") == "summarize"]
    assert len(steps) == summaries
    # Replay re-runs it from the recorded answers, summaries included: identical.
    assert report.identical, report.divergence


@pytest.mark.parametrize("condensed", [True, False], ids=["summarize", "without"])
def test_a_500_step_run_stays_under_its_context_size_only_with_summarize(
    db: Path, clock: FakeClock, condensed: bool
) -> None:
    writer = ScriptedChatModel([condense], model_name="summarizer")
    settings = Summarize(at_tokens=1_500, model=writer) if condensed else None
    rt, planner = runtime(db, clock, 500, settings)
    with rt:
        run = rt.start("Read every record", principal=OPS)
    assert run.status is RunStatus.SUCCEEDED
    assert run.output == f"read 500 records (condensed: {condensed})"
    if condensed:
        assert largest_prompt(planner) < LIMIT
    else:  # every result stays in the prompt: ~80 tokens a step
        assert largest_prompt(planner) > 15 * LIMIT


def up_to() -> Any:
    """A planner that reads records up to the number the person's latest turn asks for
    ("read up to N"), on from the last record it saw, then says how far it got."""

    def turn(messages: list[BaseMessage]) -> AIMessage:
        asked = [m for m in messages if isinstance(m, HumanMessage)]
        upto = int(re.findall(r"read up to (\d+)", str(asked[-1].content))[-1])
        seen = last_record(messages)
        nxt = 0 if seen is None else seen + 1
        if nxt >= upto:
            return AIMessage(f"read up to {upto}")
        return ai("", tool_call("lookup", {"n": nxt}))

    return turn


def test_a_long_follow_up_stays_under_its_context_size_and_keeps_its_question(
    db: Path, clock: FakeClock
) -> None:
    planner = ScriptedChatModel([up_to()] * 200, model_name="planner")
    writer = ScriptedChatModel([condense] * 100, model_name="summarizer")
    with AgentRuntime(
        planner,
        tools=[lookup],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        new_id=Ids(),
        summarize=Summarize(at_tokens=1_500, keep_turns=3, model=writer),
        budget=Budget(max_steps=1_000),
        prices={"planner": (1.0, 2.0), "summarizer": (10.0, 20.0)},
    ) as rt:
        first = rt.start("read up to 5", principal=OPS)
        assert (first.status, first.output) == (RunStatus.SUCCEEDED, "read up to 5")
        before = len(planner.calls), len(writer.calls)
        again = rt.send(first.thread_id, "now read up to 120", principal=OPS)
        assert (again.status, again.output) == (RunStatus.SUCCEEDED, "read up to 120")
        reads = [e for e in rt.events(first.thread_id) if e["type"] == "observation"]
        report = rt.replay(first.thread_id)
    # Every record read once, in order; the follow-up summarized again and again, and its
    # prompt stayed as small as a long first run's.
    assert [e["data"]["content"].split(":")[0] for e in reads] == [
        f"record {n}" for n in range(120)
    ]
    assert len(writer.calls) - before[1] >= 3
    prompts = [list(c.messages) for c in planner.calls[before[0] :]]
    assert max(planner.get_num_tokens_from_messages(p) for p in prompts) < LIMIT
    # The planner's last prompt: instructions, goal, the summary, the follow-up word for
    # word (the question it answers), then the latest turns verbatim.
    last = list(planner.calls[-1].messages)
    assert [type(m).__name__ for m in last[:4]] == [
        "SystemMessage",
        "HumanMessage",
        "HumanMessage",
        "HumanMessage",
    ]
    assert last[1].content == "read up to 5"
    assert str(last[2].content).startswith("[Earlier in this run, condensed]\nRecords 0 to ")
    assert last[3].content == "now read up to 120"
    assert isinstance(last[4], AIMessage)
    assert 3 <= sum(isinstance(m, AIMessage) for m in last) < 20
    assert report.identical, report.divergence


class Crash(BaseException):
    """The process dying while the summary is being written."""


def test_a_run_killed_while_summarizing_resumes_and_finishes(db: Path, clock: FakeClock) -> None:
    died: list[int] = []

    def dies_once(messages: list[BaseMessage]) -> str:
        if not died:
            died.append(1)
            raise Crash
        return condense(messages)

    writer = ScriptedChatModel([dies_once], model_name="summarizer")
    settings = Summarize(at_tokens=1_500, keep_turns=3, model=writer)
    rt, _ = runtime(db, clock, 40, settings)
    with rt, pytest.raises(Crash):
        rt.start("Read every record", principal=OPS, thread_id="long")
    # Another process (a new runtime on the same file) carries it on from the checkpoint
    # before the summarize step, which runs again.
    again, _ = runtime(db, clock, 40, settings)
    with again:
        assert again.get("long").status is RunStatus.RUNNING
        run = again.resume("long")
        assert run.status is RunStatus.SUCCEEDED
        assert run.output == "read 40 records (condensed: True)"
        reads = [e for e in again.events("long") if e["type"] == "observation"]
        assert [e["data"]["content"].split(":")[0] for e in reads] == [
            f"record {n}" for n in range(40)
        ]
        assert again.replay("long").identical


def test_the_runtime_model_writes_the_summary_when_none_is_given(
    db: Path, clock: FakeClock
) -> None:
    def either(messages: list[BaseMessage]) -> Any:
        if "Turns to fold into the summary:" in str(messages[-1].content):
            return condense(messages)
        return reader(30)(messages)

    model = ScriptedChatModel([either] * 40, model_name="planner")
    with AgentRuntime(
        model,
        tools=[lookup],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        new_id=Ids(),
        summarize=Summarize(at_tokens=1_000, keep_turns=2),
    ) as rt:
        run = rt.start("Read every record", principal=OPS)
        assert run.output == "read 30 records (condensed: True)"
        assert rt.replay(run.thread_id).identical


def test_approvals_and_denials_are_kept_word_for_word() -> None:
    events: list[Any] = [
        {"type": "plan", "step_id": "0", "data": {"actions": [{"call_id": "a"}]}},
        {
            "type": "observation",
            "step_id": "0.0",
            "data": {"call_id": "a", "tool": "wire", "kind": "denied", "content": "no wires"},
        },
        {"type": "plan", "step_id": "1", "data": {"actions": [{"call_id": "b"}]}},
        {
            "type": "observation",
            "step_id": "1.0",
            "data": {"call_id": "b", "tool": "look", "kind": "ok", "content": "fine"},
        },
        {"type": "plan", "step_id": "2", "data": {"actions": [{"call_id": "c"}]}},
        {"type": "plan", "step_id": "3", "data": {"actions": [{"call_id": "d"}]}},
    ]
    assert kept_decisions(events) == ["wire (step 0.0): [denied] no wires"]
    # Keep the last turn: the cut falls at plan 2, whose call "c" has no answer yet,
    # so it stays with the verbatim part, and so does everything after it.
    assert cut_point(events, 0, 1) == 4
    assert cut_point(events, 0, 4) is None  # fewer turns than kept: nothing to condense
    assert cut_point(events, 4, 1) is None


def test_an_unpriced_summarizer_under_a_cost_limit_is_refused_as_an_unpriced_planner_is(
    db: Path, clock: FakeClock
) -> None:
    writer = ScriptedChatModel([condense], model_name="condenser")
    settings = Summarize(at_tokens=1_500, keep_turns=3, model=writer)
    refusal = (
        "sets max_cost_usd={}, but the summarizer (Summarize.model) 'condenser' "
        "has no price, so its summaries would count as free; pass "
        "prices={{'condenser': (input_usd, output_usd)}} per million tokens"
    )
    with pytest.raises(ConfigError) as caught:
        runtime(db, clock, 40, settings, budget=Budget(max_cost_usd=5.0))
    assert str(caught.value) == "the runtime's budget " + refusal.format(5.0)
    with pytest.raises(ConfigError) as caught:
        runtime(db, clock, 40, settings, tenant_budgets={"acme": Budget(max_cost_usd=2.0)})
    assert str(caught.value) == "tenant 'acme''s budget " + refusal.format(2.0)
    # Without a cost limit it runs, its tokens counted; a run's or a message's own cost
    # limit is refused as the planner's would be, before anything runs or is kept.
    rt, _ = runtime(db, clock, 3, settings)
    with rt:
        with pytest.raises(ConfigError) as caught:
            rt.start("Read every record", principal=OPS, budget=Budget(max_cost_usd=1.0))
        assert str(caught.value) == "the run's budget " + refusal.format(1.0)
        assert rt.runs() == []
        run = rt.start("Read every record", principal=OPS)
        assert run.status is RunStatus.SUCCEEDED
        with pytest.raises(ConfigError) as caught:
            rt.send(run.thread_id, "again", principal=OPS, budget=Budget(max_cost_usd=1.0))
        assert str(caught.value) == "the message's budget " + refusal.format(1.0)
        assert [m.index for m in rt.messages(run.thread_id)] == [0]  # nothing was kept
    # Priced (or the planner's own model, priced with it), the same limits are accepted.
    runtime(
        db,
        clock,
        3,
        settings,
        budget=Budget(max_cost_usd=5.0),
        prices={"planner": (1.0, 2.0), "condenser": (1.0, 1.0)},
    )[0].close()
    runtime(db, clock, 3, Summarize(at_tokens=1_500), budget=Budget(max_cost_usd=5.0))[0].close()


def test_a_priced_summarizers_calls_count_against_the_cost_limit(
    db: Path, clock: FakeClock
) -> None:
    # A summary of ~1,500 tokens at $1,000 per million costs about $1.50: the first fits
    # under $2.50 with the plans, the second does not, and is never asked for.
    writer = ScriptedChatModel([condense] * 3, model_name="summarizer")
    settings = Summarize(at_tokens=1_500, keep_turns=3, model=writer)
    rt, _ = runtime(
        db,
        clock,
        80,
        settings,
        budget=Budget(max_cost_usd=2.5, max_steps=800),
        prices={"planner": (1.0, 2.0), "summarizer": (1_000.0, 1_000.0)},
    )
    with rt:
        run = rt.start("Read every record", principal=OPS)
    assert len(writer.calls) == 1
    assert run.status is RunStatus.BUDGET_EXCEEDED
    report = run.budget_report
    assert report is not None
    assert report["limit"] == "max_cost_usd"
    assert report["action"].startswith("summarizing the run")
    first = writer.calls[0].outcome
    assert isinstance(first, AIMessage)
    assert first.usage_metadata is not None
    summary_cost = (
        first.usage_metadata["input_tokens"] + first.usage_metadata["output_tokens"]
    ) / 1e3
    assert summary_cost > 1.0
    assert report["used"] == pytest.approx(run.usage["cost_usd"])
    assert run.usage["cost_usd"] > summary_cost  # the summary's cost with the plans'
    assert report["used"] + report["requested"] > 2.5


class SelfRetrying(ScriptedChatModel):
    """A scripted model whose client retries on its own, as ChatOpenAI's does."""

    max_retries: int = 2


def retries(rt: AgentRuntime, node: str) -> int:
    policy = rt.graph.builder.nodes[node].retry_policy
    assert isinstance(policy, RetryPolicy), policy
    return policy.max_attempts


@pytest.mark.parametrize(
    ("planner", "writer", "attempts"),
    [
        (ScriptedChatModel([]), SelfRetrying([]), {"plan": 3, "summarize": 1}),
        (SelfRetrying([]), ScriptedChatModel([]), {"plan": 1, "summarize": 3}),
        (SelfRetrying([]), None, {"plan": 1, "summarize": 1}),  # the planner's model
        (ScriptedChatModel([]), None, {"plan": 3, "summarize": 3}),
    ],
)
def test_the_summarizer_is_retried_as_its_own_model_calls_for(
    db: Path, planner: ScriptedChatModel, writer: ScriptedChatModel | None, attempts: Any
) -> None:
    # A client that retries itself gets no retries on top (they multiply the requests a
    # rate limit sees); one that does not gets its three: whatever the planner's are.
    settings = Summarize(at_tokens=50, model=writer)
    with AgentRuntime(planner, tools=[lookup], db=db, summarize=settings) as rt:
        assert {node: retries(rt, node) for node in attempts} == attempts


def test_a_runtimes_own_model_retry_is_the_summarizers_when_it_is_the_planners(
    db: Path,
) -> None:
    mine = RetryPolicy(max_attempts=5, retry_on=retryable_model_error)
    settings = Summarize(at_tokens=50)
    with AgentRuntime(
        SelfRetrying([]), tools=[lookup], db=db, summarize=settings, model_retry=mine
    ) as rt:
        assert rt.graph.builder.nodes["summarize"].retry_policy is mine


def test_a_summarizer_that_retries_itself_is_asked_once_when_its_provider_fails(
    db: Path, clock: FakeClock
) -> None:
    # A scripted planner (three attempts its own) beside a summarizer whose client retried
    # already: the summarizer's failure is not asked again, the run waits to retry.
    writer = SelfRetrying([ConnectionError("reset")] * 3 + [condense])
    rt, _ = runtime(db, clock, 4, Summarize(at_tokens=50, keep_turns=1, model=writer))
    with rt:
        run = rt.start("Read every record", principal=OPS)
    assert run.status is RunStatus.WAITING_RETRY, run.error
    assert len(writer.calls) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"at_tokens": 0}, "Summarize.at_tokens must be > 0, got 0"),
        ({"at_tokens": "4k"}, "Summarize.at_tokens is a number of tokens, got '4k'"),
        ({"at_tokens": 10, "keep_turns": 0}, "Summarize.keep_turns must be >= 1"),
        ({"at_tokens": 10, "model": "gpt-4o"}, "Summarize.model must be a LangChain chat model"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Summarize(**kwargs)


@pytest.mark.parametrize("watched", [True, False])
def test_a_run_no_one_watches_gets_the_summary_whole_as_it_does_its_plans(
    db: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch, watched: bool
) -> None:
    """A streamed run whose tokens no one reads (RunDeps.quiet_threads, as the server marks
    its runs no page watches) asks the summarizer, as the planner, for whole answers."""
    asked: set[tuple[str, str]] = set()
    for hook, kind in (("_generate", "whole"), ("_stream", "streamed")):
        answer = getattr(ScriptedChatModel, hook)

        def counted(
            self: ScriptedChatModel, *args: Any, _a: Any = answer, _k: str = kind, **kw: Any
        ) -> Any:
            asked.add((str(self.model_name), _k))
            return _a(self, *args, **kw)

        monkeypatch.setattr(ScriptedChatModel, hook, counted)
    writer = ScriptedChatModel([condense], model_name="summarizer")
    rt, _ = runtime(db, clock, 30, Summarize(at_tokens=1_500, keep_turns=3, model=writer))
    with rt:
        if not watched:
            rt.deps.quiet_threads.add("t")
        for _ in rt.stream("Read every record", principal=OPS, thread_id="t"):
            pass
        assert rt.get("t").status is RunStatus.SUCCEEDED
    kind = "streamed" if watched else "whole"
    assert asked == {("planner", kind), ("summarizer", kind)}


PIN = "zebra-58213-quartz"  # no detector knows its shape: only its field says it is secret


@tool(effect="read", sensitive=["pin"])
def unlock(door: str, pin: str) -> str:
    """Unlock a door with its pin.

    Args:
        door: Which door.
        pin: The door's pin.
    """
    return f"door {door} is open {FILLER}"


def test_the_summarizers_call_does_not_show_a_sensitive_argument(
    db: Path, clock: FakeClock
) -> None:
    """The summarizer is given the condensed turns as prose (``calls unlock({... "pin":
    ...})``), where the pin is no longer a field its tool declared sensitive; its llm.call
    span, and the planner's calls that carry its summary, are masked with the secret values
    the run's log holds."""
    doors = ["front", "back", "side", "cellar", "attic", "garage"]

    def planner(messages: list[BaseMessage]) -> AIMessage:
        opened = sum(1 for m in messages if isinstance(m, ToolMessage))
        condensed = any("[Earlier in this run, condensed]" in str(m.content) for m in messages)
        opened += 4 if condensed else 0
        if opened >= len(doors):
            return AIMessage("all doors open")
        return ai("", tool_call("unlock", {"door": doors[opened], "pin": PIN}))

    def writer(messages: list[BaseMessage]) -> str:  # one that quotes what it read
        return "Doors were unlocked: " + "\n".join(str(m.content) for m in messages)[-300:]

    with AgentRuntime(
        ScriptedChatModel([planner] * 20, model_name="planner"),
        tools=[unlock],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        new_id=Ids(),
        capture_content=True,
        summarize=Summarize(
            at_tokens=400,
            keep_turns=1,
            model=ScriptedChatModel([writer] * 20, model_name="summarizer"),
        ),
        budget=Budget(max_steps=100),
    ) as rt:
        run = rt.start("open the doors", principal=OPS)
    assert run.status == "succeeded", run.error
    with sqlite3.connect(db) as conn:
        spans = conn.execute("SELECT name, attributes FROM spans").fetchall()
    summarizer = [attrs for name, attrs in spans if name == "chat summarizer"]
    assert summarizer, [name for name, _ in spans]
    assert "[REDACTED:field]" in summarizer[0]
    assert sorted({name for name, attrs in spans if PIN in attrs}) == []


def test_the_summarizer_reads_a_turn_as_its_text_not_its_reasoning_blocks() -> None:
    # A turn keeps its blocks for the planner (a thinking block goes back with its call);
    # the summarizer is told what the agent said and did, not its private reasoning.
    action = {"step_id": "0.0", "call_id": "c1", "tool": "lookup", "args": {"n": 1}}
    thinking = {"type": "thinking", "thinking": "secret musing", "signature": "sig-1"}
    result = {**action, "kind": "ok", "content": "record 1"}
    del result["args"]
    log = [
        plan_event(
            0, "Reading.", [action], blocks=[thinking, {"type": "text", "text": "Reading."}]
        ),
        observation_event(result),  # type: ignore[arg-type]
    ]
    [_, asked] = summary_request(log, None, "condense")
    assert asked.content == (
        'Turns to fold into the summary:\nagent: Reading. [calls lookup({"n": 1})]\n'
        "lookup returned: record 1"
    )


def test_a_summary_of_reasoning_blocks_and_zero_usage_is_its_text_and_estimated(
    db: Path, clock: FakeClock
) -> None:
    # A reasoning summarizer answers in blocks, and some servers report usage as zeros:
    # the summary the planner reads is its text (not the blocks as JSON, its musing with
    # them), and its tokens are estimated and said so, as a plan's are.
    def reasoned(messages: list[BaseMessage]) -> AIMessage:
        return AIMessage(
            content=[
                {"type": "reasoning", "reasoning": "private musing"},
                {"type": "text", "text": condense(messages)},
            ],
            usage_metadata={"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
        )

    writer = ScriptedChatModel([reasoned] * 10, model_name="summarizer")
    rt, planner = runtime(db, clock, 30, Summarize(at_tokens=1_500, keep_turns=3, model=writer))
    with rt:
        run = rt.start("Read every record", principal=OPS)
        state = rt.graph.get_state({"configurable": {"thread_id": run.thread_id}}).values
    assert run.status is RunStatus.SUCCEEDED
    assert writer.calls
    assert state["summary"]["text"].startswith("Records 0 to ")
    condensed = [
        str(m.content)
        for c in planner.calls
        for m in c.messages
        if str(m.content).startswith("[Earlier in this run, condensed]")
    ]
    assert condensed
    assert not any("musing" in text for text in condensed)
    # The planner reports its usage; the summaries' zeros were estimated, and said so.
    assert run.usage["estimated_tokens"] > 0
