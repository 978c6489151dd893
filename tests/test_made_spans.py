"""The spans agentrt makes itself for an SDK tracer (agentrt.tracing.made_spans) are the
spans the SDK's own tracer would have made: the same tree, attributes, events, status and
times; the tracer's processors see each start and end, its sampler decides, its span limits
apply; any other tracer makes its own."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanLimits, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    Decision,
    Sampler,
    SamplingResult,
)
from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.util.types import Attributes

from agentrt import AgentRuntime, Policy, tool
from agentrt import Decision as GateDecision
from agentrt.examples import refund_desk
from agentrt.examples.refund_desk import APPROVER, GOAL, OPERATOR
from agentrt.testing import ScriptedChatModel, ai, tool_call
from agentrt.tracing import attributes as A
from agentrt.tracing.made_spans import MadeSpan, SpanMaker
from tests.conftest import FakeClock, Ids


@tool(effect="read")
def flaky(key: str) -> str:
    """Fails for the key "bad", with a message quoting it."""
    if key == "bad":
        raise ValueError(f"no such key {key!r}")
    return key


def desk_run(db: Path, provider: TracerProvider, clock: FakeClock) -> None:
    """The refund desk through its gate, then a run whose tool fails once."""
    with refund_desk.build_runtime(db, clock=clock, new_id=Ids(), tracing=provider) as rt:
        run = rt.start(GOAL, principal=OPERATOR)
        assert run.pending_approval is not None
        clock.advance(3600)
        rt.decide(GateDecision.approve(run.pending_approval.id, by=APPROVER))
    model = ScriptedChatModel(
        [
            ai("", tool_call("flaky", {"key": "bad"})),
            ai("", tool_call("flaky", {"key": "ok"})),
            "done",
        ]
    )
    with AgentRuntime(
        model,
        tools=[flaky],
        policy=Policy.allow_all(),
        db=db.with_name("flaky.db"),
        tracing=provider,
        clock=clock,
        new_id=Ids(),
    ) as rt:
        assert rt.start("look it up", principal=OPERATOR).status == "succeeded"


def seen(spans: Sequence[ReadableSpan]) -> list[tuple[Any, ...]]:
    """Each span as an exporter reads it, ids aside (random on both sides), its parent by
    name; in the order they ended."""
    names = {s.context.span_id: s.name for s in spans if s.context is not None}
    return [
        (
            s.name,
            names.get(s.parent.span_id) if s.parent is not None else None,
            s.kind,
            dict(s.attributes or {}),
            [(e.name, dict(e.attributes or {}), e.timestamp) for e in s.events],
            len(s.links),
            s.status.status_code,
            s.status.description,
            s.start_time,
            s.end_time,
            s.instrumentation_scope,
            s.resource.attributes,
            s.dropped_attributes,
            bool(s.context and s.context.trace_flags.sampled),
        )
        for s in spans
    ]


def exported(tmp_path: Path, name: str, **provider: Any) -> tuple[tuple[ReadableSpan, ...], Any]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(**provider)
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    (tmp_path / name).mkdir()
    desk_run(tmp_path / name / "agentrt.db", tracer_provider, FakeClock())
    return exporter.get_finished_spans(), tracer_provider


def sdk_spans_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, agentrt's spans are the SDK tracer's own."""
    monkeypatch.setattr(SpanMaker, "of", classmethod(lambda cls, tracer: None))


@pytest.mark.parametrize(
    "limits",
    [SpanLimits(), SpanLimits(max_span_attributes=4, max_span_attribute_length=6)],
    ids=["default limits", "tight limits"],
)
def test_a_run_exports_what_the_sdks_own_spans_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, limits: SpanLimits
) -> None:
    made, _ = exported(tmp_path, "made", span_limits=limits)
    assert made
    assert all(isinstance(s, MadeSpan) for s in made)
    sdk_spans_only(monkeypatch)
    sdks, _ = exported(tmp_path, "sdk", span_limits=limits)
    assert not any(isinstance(s, MadeSpan) for s in sdks)
    assert seen(made) == seen(sdks)
    kinds = {str((s.attributes or {}).get(A.SPAN_KIND)) for s in made}
    if limits.max_span_attributes == 4:  # the limits were applied, oldest attributes dropped
        assert all(len(s.attributes or {}) <= 4 for s in made)
        assert any(s.dropped_attributes for s in made)
        assert all(
            len(v) <= 6 for s in made for v in (s.attributes or {}).values() if isinstance(v, str)
        )
    else:  # the whole taxonomy, an error's event and status among them
        assert {
            A.AGENT_RUN,
            A.AGENT_STEP,
            A.LLM_CALL,
            A.TOOL_CALL,
            A.POLICY_CHECK,
            A.APPROVAL_WAIT,
        } <= kinds
        assert any(e.name == "exception" for s in made for e in s.events)
        assert any(s.status.status_code is trace.StatusCode.ERROR for s in made)
        assert any(s.links for s in made)


class Stamping(SpanProcessor):
    """Adds an attribute to every span as it starts, as a processor propagating a session
    or a user does; counts what it sees."""

    def __init__(self) -> None:
        self.started: list[Span] = []
        self.ended: list[ReadableSpan] = []

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        span.set_attribute("app.session", "s-42")
        self.started.append(span)

    def on_end(self, span: ReadableSpan) -> None:
        self.ended.append(span)


def test_processors_see_each_span_start_and_may_add_to_it(tmp_path: Path) -> None:
    stamping = Stamping()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(stamping)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    desk_run(tmp_path / "agentrt.db", provider, FakeClock())
    spans = exporter.get_finished_spans()
    assert len(stamping.started) == len(stamping.ended) == len(spans) > 20
    assert all((s.attributes or {}).get("app.session") == "s-42" for s in spans)


class NoSteps(Sampler):
    """Drops agent.step spans (and so, parent-based, nothing under them is kept), keeps the
    rest with an attribute of its own."""

    def should_sample(  # noqa: PLR0917  # the Sampler interface
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        if (attributes or {}).get(A.SPAN_KIND) == A.AGENT_STEP:
            return SamplingResult(Decision.DROP)
        return SamplingResult(
            Decision.RECORD_AND_SAMPLE, {**(attributes or {}), "sampled.by": "me"}
        )

    def get_description(self) -> str:
        return "NoSteps"


def test_the_tracers_sampler_decides(tmp_path: Path) -> None:
    spans, _ = exported(tmp_path, "off", sampler=ALWAYS_OFF)
    assert spans == ()
    spans, _ = exported(tmp_path, "steps", sampler=NoSteps())
    kinds = {str((s.attributes or {})[A.SPAN_KIND]) for s in spans}
    assert A.AGENT_RUN in kinds
    assert A.AGENT_STEP not in kinds
    assert all((s.attributes or {})["sampled.by"] == "me" for s in spans)


def test_an_ended_span_takes_no_more_and_is_handed_on_once(tmp_path: Path) -> None:
    stamping = Stamping()
    provider = TracerProvider()
    provider.add_span_processor(stamping)
    maker = SpanMaker.of(provider.get_tracer("t"))
    assert maker is not None
    span = maker.start("s", context=None, links=None, start_time=5, attributes={"a": 1})
    span.set_attributes({"b": [1, 2], "": "no key"})  # checked as it ends, as the SDK would
    span.add_event("e", {"k": "v"}, timestamp=6)
    span.end(end_time=7)
    span.set_attribute("c", 3)
    span.add_event("late")
    span.set_status(trace.StatusCode.ERROR)
    span.end(end_time=9)
    assert stamping.ended == [span]
    assert dict(span.attributes or {}) == {"a": 1, "b": (1, 2), "app.session": "s-42"}
    assert [e.name for e in span.events] == ["e"]
    assert span.end_time == 7
    assert span.status.status_code is trace.StatusCode.UNSET


def test_a_tracer_not_of_the_sdk_makes_its_own_spans(tmp_path: Path) -> None:
    assert SpanMaker.of(trace.NoOpTracer()) is None
    assert SpanMaker.of(trace.ProxyTracer("x")) is None
    model = ScriptedChatModel([ai("", tool_call("flaky", {"key": "ok"})), "done"])
    with AgentRuntime(
        model,
        tools=[flaky],
        policy=Policy.allow_all(),
        db=tmp_path / "agentrt.db",
        tracing=trace.NoOpTracerProvider(),
    ) as rt:
        assert rt.start("look it up", principal=OPERATOR).status == "succeeded"


def both(limits: SpanLimits, act: Any) -> tuple[ReadableSpan, ReadableSpan]:
    """``act(span)`` on a span agentrt makes and on the SDK tracer's own, each as exported."""
    out = []
    for made in (True, False):
        exporter = InMemorySpanExporter()
        provider = TracerProvider(span_limits=limits)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        maker = SpanMaker.of(tracer)
        assert maker is not None
        span = (
            maker.start("s", context=None, links=None, start_time=5, attributes={"z": 0})
            if made
            else tracer.start_span("s", start_time=5, attributes={"z": 0})
        )
        act(span)
        span.end(end_time=7)
        (one,) = exporter.get_finished_spans()
        out.append(one)
    return out[0], out[1]


def test_at_its_limits_a_span_keeps_and_counts_what_the_sdks_own_would() -> None:
    other = SpanContext(1, 2, is_remote=False, trace_flags=TraceFlags(1))

    def act(span: Any) -> None:
        span.set_attribute("a", 1)
        span.set_attributes({"b": 2, "a": 3})  # set again: the newest, the last dropped
        span.set_attribute("c", 4)
        span.set_attribute("bad", [1, "mixed"])
        for i in range(3):
            span.add_event(f"e{i}")
            span.add_link(other)

    made, sdk = both(SpanLimits(max_span_attributes=2, max_events=0, max_links=0), act)
    assert list((sdk.attributes or {}).items()) == [("c", 4), ("bad", (1, "mixed"))]
    assert [*(made.attributes or {}).items()] == [*(sdk.attributes or {}).items()]
    assert (sdk.dropped_attributes, sdk.dropped_events, sdk.dropped_links) == (3, 3, 3)
    assert (made.dropped_attributes, made.dropped_events, made.dropped_links) == (3, 3, 3)


@pytest.mark.parametrize("sampled", [True, False], ids=["sampled", "not-sampled"])
def test_under_a_local_parent_the_default_sampler_decides_as_the_sdks_own(sampled: bool) -> None:
    state = TraceState([("vendor", "v1")])
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    parent = trace.NonRecordingSpan(
        SpanContext(7, 9, is_remote=False, trace_flags=flags, trace_state=state)
    )
    context = trace.set_span_in_context(parent)
    made_and_sdk = []
    for made in (True, False):
        exporter = InMemorySpanExporter()
        provider = TracerProvider()  # ParentBased(ALWAYS_ON), the SDK's default
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        maker = SpanMaker.of(tracer)
        assert maker is not None
        span = (
            maker.start("s", context=context, links=None, start_time=5, attributes={"a": 1})
            if made
            else tracer.start_span("s", context=context, start_time=5, attributes={"a": 1})
        )
        ctx = span.get_span_context()
        made_and_sdk.append((span.is_recording(), ctx.trace_id, ctx.trace_flags, ctx.trace_state))
        span.end(end_time=7)
        assert len(exporter.get_finished_spans()) == (1 if sampled else 0)
    made_one, sdk_one = made_and_sdk
    assert made_one == sdk_one
    assert made_one[0] is sampled
