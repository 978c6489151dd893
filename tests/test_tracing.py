"""Spans: the tree a run makes (sync, async, concurrent runs), one trace across segments,
the SQLite span store, where time went, exporters that fail, and the tracing setting."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import re
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentrt import AgentRuntime, ConfigError, Decision, Policy, tool
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from agentrt.limits import ERROR_TEXT_CHARS, error_text
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tracing import attributes as A
from agentrt.tracing.ids import segment_span_id
from agentrt.tracing.spans import root_span_id
from tests.conftest import FakeClock, Ids


def memory_runtime(
    db: Path, clock: FakeClock, **kw: Any
) -> tuple[AgentRuntime, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    rt = refund_desk.build_runtime(db, clock=clock, new_id=Ids(), tracing=provider, **kw)
    return rt, exporter


def kind(span: ReadableSpan) -> str:
    """What a span is in agentrt's taxonomy (its name says it in the conventions' words)."""
    return str((span.attributes or {})[A.SPAN_KIND])


def tree(spans: list[ReadableSpan]) -> list[Any]:
    """Spans as nested [kind, what, children], siblings in the order they started."""
    by_id = {s.context.span_id: s for s in spans if s.context is not None}
    kids: dict[int | None, list[ReadableSpan]] = {}
    for span in spans:
        parent = span.parent.span_id if span.parent is not None else None
        kids.setdefault(parent if parent in by_id else None, []).append(span)

    def what(span: ReadableSpan) -> str:
        a = span.attributes or {}
        key = {
            A.AGENT_RUN: A.SEGMENT,
            A.AGENT_STEP: A.STEP_KIND,
            A.LLM_CALL: A.GEN_AI_REQUEST_MODEL,
            A.TOOL_CALL: A.GEN_AI_TOOL_NAME,
            A.POLICY_CHECK: A.POLICY_DECISION,
            A.APPROVAL_WAIT: A.APPROVAL_STATUS,
        }[kind(span)]
        return str(a.get(key))

    def build(parent: int | None) -> list[Any]:
        children = sorted(kids.get(parent, []), key=lambda s: (s.start_time, s.end_time))
        return [[kind(s), what(s), build(s.context.span_id)] for s in children]  # type: ignore[union-attr]

    return build(None)


def step(kind: str, *children: list[Any]) -> list[Any]:
    return ["agent.step", kind, list(children)]


LLM = ["llm.call", "refund-desk-script", []]


def policy(decision: str) -> list[Any]:
    return ["policy.check", decision, []]


def call(name: str) -> list[Any]:
    return ["tool.call", name, []]


def action(tool_name: str) -> list[list[Any]]:
    return [
        step("policy", policy("allow")),
        step("tool", call(tool_name)),
        step("verify"),
    ]


FIRST_STEPS = [
    step("plan", LLM),
    *action("lookup_order"),
    step("plan", LLM),
    *action("lookup_customer"),
    *action("add_order_note"),
    step("plan", LLM),
    step("policy", policy("require_approval")),
    step("approval"),
]
RESUMED = [
    "agent.run",
    "resume",
    [
        ["approval.wait", "approved", []],
        step("approval"),
        step("tool", call("issue_refund")),
        step("verify"),
        step("commit", call("issue_refund")),
        step("verify"),
        step("plan", LLM),
        step("finish"),
    ],
]
DESK_TREE = [["agent.run", "start", [*FIRST_STEPS, RESUMED]]]
"""The refund desk's run through its gate: one root, the first segment's; the resumed
segment under it, beginning with the wait for the person; every span where it belongs."""


def test_a_run_with_a_gate_makes_this_span_tree(db: Path, clock: FakeClock) -> None:
    rt, exporter = memory_runtime(db, clock)
    with rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        clock.advance(3600)  # the approver takes an hour
        rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
    spans = list(exporter.get_finished_spans())
    assert tree(spans) == DESK_TREE

    # One trace, whose id is in the runs row, with one root: the resumed segment hangs
    # under the first and links to it.
    with sqlite3.connect(db) as conn:
        trace_id = conn.execute("SELECT trace_id FROM runs").fetchone()[0]
    assert {format(s.context.trace_id, "032x") for s in spans if s.context} == {trace_id}
    first, second = (s for s in spans if kind(s) == A.AGENT_RUN)
    assert first.parent is None
    assert first.context is not None
    assert second.parent is not None
    assert second.parent.span_id == first.context.span_id
    assert [link.context.span_id for link in second.links] == [first.context.span_id]
    assert format(first.context.span_id, "016x") == root_span_id(trace_id)

    # The wait covers the hour between the request and the decision, on the runtime's
    # clock, inside the segment that resumed from it.
    (wait,) = (s for s in spans if kind(s) == A.APPROVAL_WAIT)
    assert wait.end_time is not None
    assert wait.start_time is not None
    assert (wait.end_time - wait.start_time) / 1e9 == pytest.approx(3600)
    assert wait.parent is not None
    assert second.context is not None
    assert wait.parent.span_id == second.context.span_id
    assert second.start_time is not None
    assert second.end_time is not None
    assert second.start_time <= wait.start_time <= wait.end_time <= second.end_time
    assert (wait.attributes or {})[A.APPROVAL_DECIDED_BY] == "bob"
    gate = next(s for s in spans if (s.attributes or {}).get(A.STEP_KIND) == "approval")
    assert (gate.attributes or {})[A.INTERRUPTED] is True
    assert gate.status.is_unset  # pausing for a person is not an error


def test_async_runs_make_the_same_tree(db: Path, clock: FakeClock) -> None:
    rt, exporter = memory_runtime(db, clock)

    async def scenario() -> None:
        run = await rt.astart(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        await rt.adecide(Decision.approve(run.pending_approval.id, by=APPROVER))

    with rt:
        asyncio.run(scenario())
    assert tree(list(exporter.get_finished_spans())) == DESK_TREE


def test_concurrent_async_runs_keep_their_own_traces(tmp_path: Path, clock: FakeClock) -> None:
    # Three runs interleave on one event loop (each on its own file: concurrent async runs
    # on one file wait on each other's SQLite locks); spans share one provider.
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    runtimes = [
        refund_desk.build_runtime(tmp_path / f"{i}.db", clock=clock, tracing=provider)
        for i in range(3)
    ]

    async def scenario() -> list[Any]:
        return list(await asyncio.gather(*(rt.astart(GOAL, principal=OPERATOR) for rt in runtimes)))

    runs = asyncio.run(scenario())
    for rt in runtimes:
        rt.close()
    spans = list(exporter.get_finished_spans())
    assert len({r.thread_id for r in runs}) == 3
    for run in runs:
        mine = [s for s in spans if (s.attributes or {}).get(A.RUN_ID) == run.thread_id]
        trace_ids = {s.context.trace_id for s in mine if s.context}
        assert len(trace_ids) == 1
        ours = [s for s in spans if s.context and s.context.trace_id in trace_ids]
        # Each run's trace holds exactly its own first segment, nested as a lone run's is.
        assert tree(ours) == [["agent.run", "start", FIRST_STEPS]]


def test_several_tool_calls_of_one_plan_are_sibling_steps(db: Path, clock: FakeClock) -> None:
    # The graph runs a plan's tool calls one after another, each in its own step.
    @tool
    def echo(text: str) -> str:
        """Echo text."""
        return text

    model = ScriptedChatModel(
        [ai("", tool_call("echo", {"text": "a"}), tool_call("echo", {"text": "b"})), "done"],
        model_name="m",
    )
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with AgentRuntime(
        model, tools=[echo], policy=Policy.allow_all(), db=db, clock=clock, tracing=provider
    ) as rt:
        rt.start("echo twice", principal=OPERATOR)
    m = ["llm.call", "m", []]
    assert tree(list(exporter.get_finished_spans())) == [
        [
            "agent.run",
            "start",
            [step("plan", m), *action("echo"), *action("echo"), step("plan", m), step("finish")],
        ]
    ]
    steps = [
        (s.attributes or {}).get(A.STEP_ID)
        for s in exporter.get_finished_spans()
        if kind(s) == A.TOOL_CALL
    ]
    assert steps == ["0.0", "0.1"]


def test_the_sqlite_span_store_is_the_default_and_feeds_rt_trace(db: Path) -> None:
    clock = FakeClock()

    def slow_model(turns: list[Any]) -> ScriptedChatModel:
        def timed(answer: Any) -> Any:
            def respond(messages: list[BaseMessage]) -> AIMessage:
                clock.advance(2.0)  # the model thinks for two seconds
                return answer if isinstance(answer, AIMessage) else AIMessage(answer)

            return respond

        return ScriptedChatModel([timed(t) for t in turns], model_name="slow")

    @tool(effect="read")
    def lookup(key: str) -> str:
        """Look a key up."""
        clock.advance(0.5)
        return key.upper()

    model = slow_model([ai("", tool_call("lookup", {"key": "k"})), "K"])
    with AgentRuntime(model, tools=[lookup], policy=Policy.allow_all(), db=db, clock=clock) as rt:
        run = rt.start("look k up", principal=OPERATOR)
        found = rt.trace(run.thread_id)
    went = found.time_went()
    assert went == {
        "model": 4.0,
        "tools": 0.5,
        "policy": 0.0,
        "waiting for people": 0.0,
        "runtime overhead": 0.0,
    }
    assert [(depth, s.kind, s.name) for depth, s in found.spans()][:3] == [
        (0, "agent.run", "invoke_agent agentrt"),
        (1, "agent.step", "plan"),
        (2, "llm.call", "chat slow"),
    ]
    text = found.render()
    assert "where time went:" in text
    assert "  model                     4.00s   88.9%" in text
    assert "  tools                   500.0ms   11.1%" in text
    assert re.search(r"\n    execute_tool lookup +500\.0ms  ok\n", text)


def test_rt_trace_without_stored_spans_says_why(db: Path, clock: FakeClock) -> None:
    with refund_desk.build_runtime(db, clock=clock, tracing=None) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        with pytest.raises(ConfigError, match=r"no spans are stored for run .*tracing='sqlite'"):
            rt.trace(run.thread_id)


def test_a_failing_exporter_neither_fails_nor_stops_a_run(
    db: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    with refund_desk.build_runtime(db, clock=clock) as rt:
        # Break the span store under the runtime: every export now raises.
        with sqlite3.connect(db) as conn:
            conn.execute("DROP TABLE spans")
        with caplog.at_level(logging.WARNING, logger="agentrt"):
            run = rt.start(GOAL, principal=OPERATOR)
            assert run.pending_approval is not None
            done = rt.decide(Decision.approve(run.pending_approval.id, by=APPROVER))
        assert done.status == "succeeded"
        # Spans go in batches, flushed as each segment ends: at least one lost batch a
        # segment, each counted, and every lost span named in the log.
        assert rt.export_failures >= 2
        lost = [
            int(n)
            for n in re.findall(r"the sqlite span exporter failed on (\d+) span", caplog.text)
        ]
        assert len(lost) == rt.export_failures
        assert sum(lost) > 20


def test_an_exporter_that_reports_failure_is_counted(db: Path, clock: FakeClock) -> None:
    from opentelemetry.sdk.trace.export import SpanExportResult

    with refund_desk.build_runtime(db, clock=clock, tracing="console") as rt:
        assert rt._tracing_setup.exporter is not None

        class Refusing:
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.FAILURE

        rt._tracing_setup.exporter.inner = Refusing()  # type: ignore[assignment]
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.status == "awaiting_approval"
        assert rt.export_failures > 0


@pytest.mark.parametrize(
    ("tracing", "message"),
    [
        ("jaeger", r"tracing='jaeger' is not a tracing mode; use 'sqlite'"),
        (42, r"tracing=42 is not a tracing mode"),
    ],
)
def test_bad_tracing_settings_are_refused(db: Path, tracing: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        refund_desk.build_runtime(db, tracing=tracing)


def test_otlp_without_its_extra_names_the_extra(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(ConfigError, match=r"optional extra 'otlp': pip install 'agentrt\[otlp\]'"):
        refund_desk.build_runtime(db, tracing="otlp")


def test_capture_content_must_be_a_bool(db: Path) -> None:
    with pytest.raises(ConfigError, match="capture_content must be True or False, got 'yes'"):
        refund_desk.build_runtime(db, capture_content="yes")


def test_content_stays_off_spans_unless_asked(db: Path, clock: FakeClock) -> None:
    rt, exporter = memory_runtime(db, clock)
    with rt:
        rt.start(GOAL, principal=OPERATOR)
    keys = {k for s in exporter.get_finished_spans() for k in (s.attributes or {})}
    assert not keys & A.CONTENT_KEYS
    assert {A.GEN_AI_OPERATION, A.GEN_AI_TOOL_NAME, A.GEN_AI_INPUT_TOKENS} <= keys


def test_content_capture_puts_redacted_content_on_spans(db: Path, clock: FakeClock) -> None:
    rt, exporter = memory_runtime(db, clock, capture_content=True)
    with rt:
        rt.start(GOAL, principal=OPERATOR)
    spans = list(exporter.get_finished_spans())
    (first_tool,) = [
        s for s in spans if (s.attributes or {}).get(A.STEP_ID) == "0.0" and kind(s) == A.TOOL_CALL
    ]
    attrs = first_tool.attributes or {}
    assert attrs[A.GEN_AI_TOOL_ARGUMENTS] == '{"order_id": "42"}'
    assert '"item": "blender"' in str(attrs[A.GEN_AI_TOOL_RESULT])
    llm = next(s for s in spans if kind(s) == A.LLM_CALL)
    assert GOAL in str((llm.attributes or {})[A.GEN_AI_INPUT_MESSAGES])


def test_retried_model_calls_are_attempts_of_one_step(db: Path, clock: FakeClock) -> None:
    from langgraph.types import RetryPolicy

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    model = ScriptedChatModel([ConnectionError("reset"), ConnectionError("reset"), "fine"])
    with AgentRuntime(
        model,
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        tracing=provider,
        model_retry=RetryPolicy(initial_interval=0.0, jitter=False, max_attempts=3),
    ) as rt:
        assert rt.start("x", principal=OPERATOR).output == "fine"
    plans = [
        s for s in exporter.get_finished_spans() if (s.attributes or {}).get(A.STEP_KIND) == "plan"
    ]
    assert [(s.attributes or {}).get(A.RETRY_COUNT) for s in plans] == [None, 1, 2]
    assert [s.status.status_code.name for s in plans] == ["ERROR", "ERROR", "UNSET"]
    assert [e.attributes["exception.message"] for e in plans[0].events if e.attributes] == ["reset"]


def _stored(db: Path, *names: str) -> list[str]:
    with sqlite3.connect(db) as conn:
        marks = ",".join("?" * len(names))
        rows = conn.execute(f"SELECT name FROM spans WHERE name IN ({marks})", names)
        return sorted(name for (name,) in rows)


def test_a_locked_database_holds_spans_for_the_next_batch_instead_of_waiting(
    db: Path, clock: FakeClock
) -> None:
    from opentelemetry.sdk.trace.export import SpanExportResult

    from agentrt.store.sqlite.spans import SPAN_LOCK_WAIT_MS

    with refund_desk.build_runtime(db, clock=clock) as rt:
        guarded = rt._tracing_setup.exporter
        assert guarded is not None
        first, second, third = (TracerProvider().get_tracer("t").start_span(n) for n in "abc")
        for span in (first, second, third):
            span.end()
        assert guarded.export([first]) is SpanExportResult.SUCCESS  # type: ignore[list-item]
        # Spans wait a quarter second for the lock, where the runtime's own writes wait 10 s.
        conn = rt.store._span_conn  # type: ignore[attr-defined]
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == SPAN_LOCK_WAIT_MS == 250
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            assert guarded.export([second]) is SpanExportResult.FAILURE  # type: ignore[list-item]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert (guarded.held, guarded.failures) == (1, 0)
        assert _stored(db, "a", "b", "c") == ["a"]
        # The held span goes with the next batch: nothing is lost.
        assert guarded.export([third]) is SpanExportResult.SUCCESS  # type: ignore[list-item]
        assert _stored(db, "a", "b", "c") == ["a", "b", "c"]
        assert rt.export_failures == 0


def test_spans_held_by_a_busy_database_are_written_as_the_runtime_closes(
    db: Path, clock: FakeClock
) -> None:
    rt = refund_desk.build_runtime(db, clock=clock)
    guarded = rt._tracing_setup.exporter
    assert guarded is not None
    span = TracerProvider().get_tracer("t").start_span("held")
    span.end()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        guarded.export([span])  # type: ignore[list-item]
        rt.deps.tracing.flush()  # a segment's flush while still locked: held again
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert guarded.held == 2
    rt.close()
    assert _stored(db, "held") == ["held"]
    assert rt.export_failures == 0


def test_spans_a_database_never_takes_before_closing_are_counted_lost(
    db: Path, clock: FakeClock, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agentrt.tracing import store_spans

    monkeypatch.setattr(store_spans, "CLOSING_PATIENCE", 0.3)
    rt = refund_desk.build_runtime(db, clock=clock)
    guarded = rt._tracing_setup.exporter
    assert guarded is not None
    span = TracerProvider().get_tracer("t").start_span("never")
    span.end()
    blocker = sqlite3.connect(db, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        guarded.export([span])  # type: ignore[list-item]
        with caplog.at_level(logging.WARNING, logger="agentrt"):
            rt.close()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert rt.export_failures == 1
    assert "the sqlite span exporter failed on 1 span(s): the database stayed busy" in caplog.text
    assert _stored(db, "never") == []


def test_a_run_started_inside_an_app_span_keeps_its_trace_and_links_back(
    db: Path, clock: FakeClock
) -> None:
    rt, exporter = memory_runtime(db, clock)
    app_tracer = TracerProvider().get_tracer("app")
    with rt, app_tracer.start_as_current_span("POST /refunds") as request:
        rt.start(GOAL, principal=OPERATOR)
    (run_span,) = (s for s in exporter.get_finished_spans() if kind(s) == A.AGENT_RUN)
    assert run_span.parent is None
    assert run_span.context is not None
    assert run_span.context.trace_id != request.get_span_context().trace_id
    assert [(link.context, dict(link.attributes or {})) for link in run_span.links] == [
        (request.get_span_context(), {A.SEGMENT: "caller"})
    ]


def test_a_resumed_segment_killed_before_its_span_left_is_the_parent_of_its_spans() -> None:
    """A later segment's span id is worked out from the segment before it
    (tracing.ids.segment_span_id), as the root's is from the trace: the node spans a killed
    segment left (stored; its own span never left its process) hang under the segment
    that next resumes the run from the same point, in another process."""
    from agentrt.tracing.spans import RunTracing, new_trace_id

    exporter = InMemorySpanExporter()

    def tracing() -> RunTracing:  # each process its own provider and ids
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return RunTracing(provider.get_tracer("agentrt"), clock=lambda: 1.0)

    trace_id = new_trace_id()
    with tracing().run("t-1", trace_id=trace_id, root=True) as first:
        pass
    first_id = format(first.get_span_context().span_id, "016x")

    def killed() -> None:
        segment = tracing().run("t-1", trace_id=trace_id, root=False, previous_span_id=first_id)
        segment.__enter__()  # never left: its process was killed in a tool
        with tracing().tool_call(None, {"tool": "step", "args": {}}):
            pass

    contextvars.copy_context().run(killed)  # what it attached dies with it
    with tracing().run("t-1", trace_id=trace_id, root=False, previous_span_id=first_id) as again:
        pass
    (orphan,) = (s for s in exporter.get_finished_spans() if kind(s) == A.TOOL_CALL)
    assert orphan.parent is not None
    assert orphan.parent.span_id == again.get_span_context().span_id
    assert again.get_span_context().span_id not in (first.get_span_context().span_id, 0)
    # The segment after that one has an id of its own, not one met before.
    again_id = format(again.get_span_context().span_id, "016x")
    assert segment_span_id(trace_id, again_id) not in (first_id, again_id)
    assert segment_span_id(trace_id, None) == root_span_id(trace_id) == first_id


@pytest.mark.parametrize("previous", ["", "abc", "g" * 16, "0" * 17])
def test_a_previous_span_id_that_is_not_one_is_refused_by_name(previous: str) -> None:
    """A segment after "" would take the root's own id, and be its own parent."""
    with pytest.raises(ValueError, match=re.escape(repr(previous))):
        segment_span_id("0af7651916cd43dd8448eb211c80319c", previous)


@tool(effect="read")
def fetch_report(name: str) -> str:
    """Fetch a report from a service that answers errors with its whole body.

    Args:
        name: The report.
    """
    raise RuntimeError("the service answered 502: " + "<html>bad gateway</html>" * 40_000)


def test_a_tool_errors_huge_message_is_cut_before_a_span_or_the_model_sees_it(
    db: Path, clock: FakeClock
) -> None:
    """A result past inline_result_bytes becomes an artifact; an error quoting a 1 MB body
    is cut to ERROR_TEXT_CHARS: on the tool's span (status and exception event, capture
    off too) and in what the next model call is given."""
    model = ScriptedChatModel([ai("", tool_call("fetch_report", {"name": "q3"})), "gave up"])
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with AgentRuntime(
        model,
        tools=[fetch_report],
        policy=Policy.allow_all(),
        db=db,
        clock=clock,
        tracing=provider,
        capture_content=True,
    ) as rt:
        run = rt.start("fetch the q3 report", principal=OPERATOR)
    assert run.status == "succeeded", run.error
    sizes = {}
    for s in exporter.get_finished_spans():
        sizes[(s.name, "status")] = len(s.status.description or "")
        for k, v in (s.attributes or {}).items():
            sizes[(s.name, k)] = len(str(v))
        for e in s.events:
            for k, v in (e.attributes or {}).items():
                sizes[(s.name, f"{e.name} {k}")] = len(str(v))
    bound = ERROR_TEXT_CHARS + 100  # the cut's note, and the status's error type
    # The next call's messages: the goal, the call, and the error as the tool result.
    assert sizes.pop(("chat scripted", "gen_ai.input.messages")) <= bound + 500
    assert {k: n for k, n in sizes.items() if n > bound} == {}
    tool_span = "execute_tool fetch_report"
    assert ERROR_TEXT_CHARS < sizes[(tool_span, "status")] <= bound
    assert ERROR_TEXT_CHARS < sizes[(tool_span, "exception exception.message")] <= bound
    told = str(model.calls[1].messages[-1].content)
    assert "RuntimeError: the service answered 502: <html>bad gateway</html>" in told
    assert re.search(r"\.\.\. \[\d+ more characters cut\]$", told), told[-80:]
    assert len(told) <= bound


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [
        ("", 10, ""),
        ("a" * 10, 10, "a" * 10),  # at the limit: kept whole
        ("one two three", 9, "one two ... [5 more characters cut]"),  # "three" is split
        ("key=sk-live-4eC39HqLyjWD", 12, "... [24 more characters cut]"),  # no part of it
        ("<p>bad</p><p>bad</p>", 12, "<p>bad</p><... [9 more characters cut]"),
    ],
)
def test_an_error_text_is_cut_at_a_word_saying_how_much(
    text: str, limit: int, expected: str
) -> None:
    assert error_text(text, limit) == expected
