"""RunTracing: the runtime's spans, opened with explicit parents, attributes set in one place.

A run is one trace (its id lives in the runs row) with one root: the agent.run span of its
first segment (the first to end, if one was killed). Every later segment (a resume, in any
process) is an agent.run under that root, linked to the segment before it; a segment that
resumes from a human gate begins where the wait for the person began, so the
approval.wait it holds lies inside it (agentrt.tracing.segment_spans).
agent.step spans take the run span of their thread as explicit parent, not whatever
context LangGraph's executor happens to carry; llm.call, tool.call and policy.check nest
under the step that opens them. Every time comes from the runtime's clock, so a test's
clock and the span store agree.

``RunTracing.set`` is the one place an attribute is set: content (the goal and the answer,
prompts, arguments, results) goes on a span only with capture_content=True, and only as
``shown`` makes it (the Redactor, with the tool's declared sensitive fields: in a model
call's messages too, for each tool call and tool result they hold). An error's message goes
on the span whether capture is on or not, so it is shown the same way, with the failing
call's secrets, and cut to agentrt.limits.ERROR_TEXT_CHARS.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

from langgraph.errors import GraphBubbleUp
from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.trace import Link, Span, Status, StatusCode

from agentrt.limits import error_text
from agentrt.redaction import Redactor
from agentrt.tracing import attributes as A
from agentrt.tracing.handles import ModelCallSpan, PolicySpan, ToolCallSpan
from agentrt.tracing.ids import RUN_ROOT, RUN_TRACE, RunTraceIds, new_trace_id, root_span_id
from agentrt.tracing.made_spans import SpanMaker
from agentrt.tracing.messages import model_names, model_temperature, split_system, tool_definitions
from agentrt.tracing.metrics import RunMetrics
from agentrt.tracing.segment_spans import Lazy, SegmentSpans
from agentrt.tracing.shown import (
    MessagesShown,
    SensitiveOf,
    log_secrets,
    secret_values,
    shown,
    shown_again,
)

__all__ = [
    "ModelCallSpan",
    "PolicySpan",
    "RunTracing",
    "ToolCallSpan",
    "new_trace_id",
    "root_span_id",
]


def _plain(value: Any) -> Any:
    """An attribute value OpenTelemetry accepts: scalars, lists of str, else JSON text."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return json.dumps(value, sort_keys=True, default=str)


class RunTracing(SegmentSpans):
    """Opens the runtime's spans and is the one place their attributes are set (a run's
    segment spans: agentrt.tracing.segment_spans)."""

    def __init__(
        self,
        tracer: trace.Tracer,
        *,
        clock: Callable[[], float],
        capture_content: bool = False,
        redactor: Redactor | None = None,
        sensitive_of: SensitiveOf | None = None,
        flush: Callable[[], object] | None = None,
        stored: bool = False,
        agent_name: str = "agentrt",
        metrics: RunMetrics | None = None,
    ) -> None:
        if isinstance(tracer, SdkTracer) and not isinstance(tracer.id_generator, RunTraceIds):
            # Only this tracer is changed, never the provider: the caller's other tracers
            # keep their own ids.
            tracer.id_generator = RunTraceIds(tracer.id_generator)
        self.tracer = tracer
        self._maker = SpanMaker.of(tracer)
        self.clock = clock
        self.capture_content = capture_content
        self.redactor = redactor or Redactor()
        self.sensitive_of: SensitiveOf = sensitive_of or (lambda name: ())
        """A tool's declared sensitive fields by name, for the tool calls in messages."""
        self.agent_name = agent_name
        """gen_ai.agent.name, and what a run's spans are named after."""
        self._flush = flush
        self.stored = stored
        """True when the spans go to the run's database (tracing="sqlite"), where `agentrt
        trace` and the API read them."""
        self.metrics = metrics or RunMetrics.off()
        """Where runs, calls and decisions are counted (agentrt.tracing.metrics)."""
        self._runs: dict[str, Span] = {}
        self._inputs: dict[int, str] = {}
        self._failed: dict[str, tuple[str, str | None, int]] = {}
        self._messages_shown = MessagesShown(self.redactor, self.sensitive_of)

    def flush(self) -> None:
        """Deliver the spans still held for export, where they are ``stored``: a segment's
        spans are readable (by `agentrt trace`, in any process) once it ends. Elsewhere
        (OTLP) no one reads them back by the run's row, and the batch processor's thread
        sends them: a run never waits on a collector that does not answer."""
        if self._flush is not None and self.stored:
            self._flush()

    def log_secrets(self, events: Sequence[Mapping[str, Any]]) -> Lazy:
        """The secret values a run's log (``events``) holds, asked for only when something
        is to be shown (``tracing.shown.log_secrets``)."""
        return partial(log_secrets, events, self.redactor, self.sensitive_of)

    def _ns(self, at: float | None = None) -> int:
        return int((self.clock() if at is None else at) * 1e9)

    def _start(
        self,
        name: str,
        *,
        context: Context | None,
        at: float,
        links: list[Link] | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> Span:
        """A span begun at ``at``: made by agentrt for an SDK tracer (a fifth of the SDK's
        cost: agentrt.tracing.made_spans), by the tracer itself for any other."""
        given = attributes or {}
        if self._maker is not None:
            return self._maker.start(
                name, context=context, links=links, start_time=self._ns(at), attributes=given
            )
        return self.tracer.start_span(
            name, context=context, links=links, start_time=self._ns(at), attributes=given
        )

    def set(
        self,
        span: Span,
        attrs: Mapping[str, Any],
        *,
        sensitive: Collection[str] = (),
        known: Collection[Any] = (),
    ) -> None:
        """Set ``attrs`` on ``span``: the one place an attribute is set (``_attributes``
        says which and how)."""
        if span.is_recording():
            span.set_attributes(self._attributes(attrs, sensitive=sensitive, known=known))

    def _attributes(
        self, attrs: Mapping[str, Any], *, sensitive: Collection[str], known: Collection[Any]
    ) -> dict[str, Any]:
        """``attrs`` as a span may carry them. None values are skipped. Content keys are
        kept only when content capture is on, and then only as shown: the tool's declared
        ``sensitive`` fields and the ``known`` secret values of its call masked."""
        kept: dict[str, Any] = {}
        for key, value in attrs.items():
            if value is None:
                continue
            if key in A.CONTENT_KEYS:
                if not self.capture_content:
                    continue
                kept[key] = _plain(shown_again(value, self.redactor, sensitive, known))
                continue
            kept[key] = _plain(value)
        return kept

    @contextmanager
    def _span(
        self,
        kind: str,
        name: str,
        attrs: Mapping[str, Any],
        *,
        parent: Span | None = None,
        links: list[Link] | None = None,
        root: bool = False,
        trace_id: int | None = None,
        span_id: int | None = None,
        start: float | None = None,
        sensitive: Collection[str] = (),
        known: Collection[Any] = (),
        failing: Lazy = tuple,
    ) -> Iterator[Span]:
        """A span of agentrt's ``kind`` called ``name``, under ``parent`` (or the current
        span); ``root``: under none, in trace ``trace_id`` if given (a run's own trace),
        else a new trace, with id ``span_id`` if given. It starts now, or at ``start`` if
        that is earlier. ``failing``: what else an error that ends it is masked with."""
        if root:
            context: Context | None = Context()
        elif parent is not None:
            context = trace.set_span_in_context(parent)
        else:
            context = None  # the current one: the step this node runs in
        now = self.clock()
        began = now if start is None else min(now, start)
        # Given at the start, in one go: what a sampler sees, and cheaper than one by one.
        given = self._attributes({A.SPAN_KIND: kind, **attrs}, sensitive=sensitive, known=known)
        if trace_id is None and span_id is None:
            span = self._start(name, context=context, links=links, at=began, attributes=given)
        else:
            # What RunTraceIds gives this span, and no other.
            token, root_token = RUN_TRACE.set(trace_id), RUN_ROOT.set(span_id)
            try:
                span = self._start(name, context=context, links=links, at=began, attributes=given)
            finally:
                RUN_ROOT.reset(root_token)
                RUN_TRACE.reset(token)
        attached = attach(trace.set_span_in_context(span))  # use_span, less its generator
        try:
            yield span
        except GraphBubbleUp:
            # An interrupt is LangGraph's way of pausing, not a failure.
            self.set(span, {A.INTERRUPTED: True})
            raise
        except BaseException as exc:
            # Not span.record_exception: an error message can quote arguments, so it is
            # shown like content (capture on or off), and the stack trace stays in the logs.
            secrets = [*known, *failing()]
            said = error_text(str(exc))  # a body the error quotes whole: not on every span
            message = shown(said, self.redactor, sensitive=sensitive, known=secrets)
            span.add_event(
                "exception",
                {"exception.type": type(exc).__name__, "exception.message": message},
                timestamp=self._ns(),
            )
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"))
            raise
        finally:
            detach(attached)
            span.end(end_time=self._ns())

    # the spans ----------------------------------------------------------------------------

    @contextmanager
    def step(
        self, kind: str, thread_id: str, step_id: str | None = None, *, known: Lazy = tuple
    ) -> Iterator[Span]:
        """agent.step: one node of the run graph, under its thread's agent.run span, named
        for the node and the plan step it works on (``plan``, ``policy 1.0``); an error
        that ends it is masked too with the secret values ``known`` gives (its run's log's).

        A node that LangGraph retries after an error makes one span an attempt; the
        retries carry agentrt.retry_count.
        """
        last = self._failed.pop(thread_id, None)
        retries = last[2] + 1 if last is not None and last[:2] == (kind, step_id) else 0
        try:
            with self._span(
                A.AGENT_STEP,
                kind if step_id is None else f"{kind} {step_id}",
                {
                    A.STEP_KIND: kind,
                    A.RUN_ID: thread_id,
                    A.STEP_ID: step_id,
                    A.RETRY_COUNT: retries or None,
                    A.OPENINFERENCE_KIND: "CHAIN",
                },
                parent=self._runs.get(thread_id),
                failing=known,
            ) as span:
                yield span
        except GraphBubbleUp:
            raise
        except Exception:
            self._failed[thread_id] = (kind, step_id, retries)
            raise

    @contextmanager
    def llm_call(
        self,
        model: Any,
        messages: list[Any],
        *,
        max_tokens: int | None = None,
        tools: list[dict[str, Any]] | None = None,
        known: Lazy = tuple,
    ) -> Iterator[ModelCallSpan]:
        """llm.call (``chat {model}``): one call of a model, with GenAI attributes;
        ``max_tokens`` is the output cap it is called with, if any, ``tools`` the function
        schemas it is offered, and ``known`` the secret values of the run's log (a summary
        prompt quotes the calls as prose, a summary repeats them).

        The conversation goes on the span as the call ends, masked too with what the
        answer's tool calls were given: a goal may give the value a sensitive field then
        takes."""
        name, provider = model_names(model)
        with self._span(
            A.LLM_CALL,
            f"chat {name}" if name else "chat",
            {
                A.GEN_AI_OPERATION: "chat",
                A.GEN_AI_REQUEST_MODEL: name,
                A.GEN_AI_REQUEST_MAX_TOKENS: max_tokens,
                A.GEN_AI_REQUEST_TEMPERATURE: model_temperature(model),
                A.GEN_AI_PROVIDER: provider,
                A.OPENINFERENCE_KIND: "LLM",
            },
            # A provider's error may quote the conversation, and what its tools were given.
            failing=lambda: [*self._messages_shown.secrets(messages), *known()],
        ) as span:
            handle = ModelCallSpan(self, span)
            if not self.capture_content:  # the whole conversation: built only when kept
                yield handle
                return
            system, history = split_system(messages)
            # The answer may repeat what its tools were given or gave back: masked too.
            asked = self._messages_shown.secrets(history)
            handle.asked = [*asked, *_new(known(), asked)]
            try:
                yield handle
            finally:
                answered = self._messages_shown.secrets([handle.answer] if handle.answer else [])
                secrets = [*handle.asked, *_new(answered, handle.asked)]
                # Only what the conversation's own calls do not hold: it is shown once.
                extra = _new(secrets, asked)
                handle.content(A.GEN_AI_SYSTEM_INSTRUCTIONS, system or None, known=secrets)
                handle.content(A.GEN_AI_INPUT_MESSAGES, self.conversation(history, known=extra))
                handle.content(A.GEN_AI_TOOL_DEFINITIONS, tool_definitions(tools or ()) or None)

    @contextmanager
    def tool_call(
        self,
        spec: Any,
        action: Mapping[str, Any],
        phase: str = "call",
    ) -> Iterator[ToolCallSpan]:
        """tool.call (``execute_tool {tool}``): one call of a tool, with GenAI attributes;
        arguments are content."""
        sensitive = tuple(spec.sensitive) if spec is not None else ()
        # Its sensitive arguments' values, to cut out of the result and of an error text.
        known = secret_values(action.get("args"), self.redactor, sensitive)
        with self._span(
            A.TOOL_CALL,
            f"execute_tool {action['tool']}",
            {
                A.GEN_AI_OPERATION: "execute_tool",
                A.GEN_AI_TOOL_NAME: action["tool"],
                A.GEN_AI_TOOL_CALL_ID: action.get("call_id"),
                A.GEN_AI_TOOL_TYPE: "extension" if getattr(spec, "server", None) else "function",
                A.STEP_ID: action.get("step_id"),
                A.TOOL_EFFECT: str(spec.effect.value) if spec is not None else None,
                A.TOOL_SERVER: getattr(spec, "server", None),
                A.TOOL_PHASE: phase,
                A.OPENINFERENCE_KIND: "TOOL",
            },
            sensitive=sensitive,
            known=known,
        ) as span:
            handle = ToolCallSpan(self, span, sensitive, known)
            handle.content(A.GEN_AI_TOOL_ARGUMENTS, action.get("args"))
            try:
                yield handle
            except Exception as exc:
                self.metrics.tool_call(action["tool"], str(getattr(exc, "kind", "error")), phase)
                raise
            self.metrics.tool_call(action["tool"], handle.outcome, phase)

    @contextmanager
    def policy_check(self, action: Mapping[str, Any]) -> Iterator[PolicySpan]:
        """policy.check (``check_policy {tool}``): one evaluation of the policy for an
        action. The tool is named by agentrt.tool.name: this span executes nothing."""
        with self._span(
            A.POLICY_CHECK,
            f"check_policy {action['tool']}",
            {
                A.TOOL_NAME: action["tool"],
                A.STEP_ID: action.get("step_id"),
                A.OPENINFERENCE_KIND: "GUARDRAIL",
            },
        ) as span:
            yield PolicySpan(self, span)

    def conversation(
        self, messages: list[Any], *, output: bool = False, known: Collection[Any] = ()
    ) -> list[dict[str, Any]]:
        """Chat messages in the GenAI conventions' shape (role, parts; with ``output``,
        a finish_reason each), as shown; ``known``: secret values from elsewhere."""
        return self._messages_shown(messages, output=output, known=known)


def _new(values: Collection[Any], seen: Collection[Any]) -> list[Any]:
    """``values`` not among ``seen``, each once."""
    known = set(map(repr, seen))
    fresh: list[Any] = []
    for value in values:
        if repr(value) not in known:
            known.add(repr(value))
            fresh.append(value)
    return fresh
