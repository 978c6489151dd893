"""RunTracing: the runtime's spans, opened with explicit parents, attributes set in one place.

A run is one trace (its id lives in the runs row) with one root: the agent.run span of its
first segment (the first to end, if one was killed). Every later segment (a resume, in any
process) is an agent.run under that root, linked to the segment before it; a segment that
resumes from a human gate begins where the wait for the person began, so the
approval.wait it holds lies inside it.
agent.step spans take the run span of their thread as explicit parent, not whatever
context LangGraph's executor happens to carry; llm.call, tool.call and policy.check nest
under the step that opens them. Every time comes from the runtime's clock, so a test's
clock and the span store agree.

``RunTracing.set`` is the one place an attribute is set: content (the goal and the answer,
prompts, arguments, results) goes on a span only with capture_content=True, and only as
``shown`` makes it (the Redactor, with the tool's declared sensitive fields: in a model
call's messages too, for each tool call and tool result they hold). An error's message goes
on the span whether capture is on or not, so it is shown the same way, with the failing
call's secrets.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from langgraph.errors import GraphBubbleUp
from opentelemetry import trace
from opentelemetry.context import Context, attach, detach
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    Span,
    Status,
    StatusCode,
)

from agentrt.redaction import Redactor
from agentrt.tracing import attributes as A
from agentrt.tracing.handles import ModelCallSpan, PolicySpan, ToolCallSpan
from agentrt.tracing.ids import (
    RUN_ROOT,
    RUN_TRACE,
    RunTraceIds,
    new_trace_id,
    remote_context,
    root_span_id,
)
from agentrt.tracing.messages import model_names, model_temperature, split_system, tool_definitions
from agentrt.tracing.metrics import RunMetrics
from agentrt.tracing.shown import MessagesShown, SensitiveOf, secret_values, shown, shown_again

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


Lazy = Callable[[], Collection[Any]]
"""Secret values to mask with, asked for only when something is to be shown."""


class RunTracing:
    """Opens the runtime's spans and is the one place their attributes are set."""

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
        self._failed: dict[str, tuple[str, str | None, int]] = {}
        self._messages_shown = MessagesShown(self.redactor, self.sensitive_of)

    def flush(self) -> None:
        """Deliver the spans still held for export: a segment's spans are readable (by
        `agentrt trace`, in any process) once it ends."""
        if self._flush is not None:
            self._flush()

    def _ns(self, at: float | None = None) -> int:
        return int((self.clock() if at is None else at) * 1e9)

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
            span = self.tracer.start_span(
                name, context=context, links=links, start_time=self._ns(began), attributes=given
            )
        else:
            # What RunTraceIds gives this span, and no other.
            token, root_token = RUN_TRACE.set(trace_id), RUN_ROOT.set(span_id)
            try:
                span = self.tracer.start_span(
                    name,
                    context=context,
                    links=links,
                    start_time=self._ns(began),
                    attributes=given,
                )
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
            message = shown(str(exc), self.redactor, sensitive=sensitive, known=secrets)
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
    def run(
        self,
        thread_id: str,
        *,
        trace_id: str,
        root: bool,
        previous_span_id: str | None = None,
        since: float | None = None,
        goal: str | None = None,
        user: str | None = None,
        tenant: str | None = None,
        message: int | None = None,
    ) -> Iterator[Span]:
        """agent.run: one segment of a run, in the run's trace.

        The ``root`` segment (the run's first to end) is the trace's root, with the span id
        root_span_id() gives; every other segment hangs under it, wherever it runs, and
        links to the segment before it (``previous_span_id``, the last that ended).
        ``since``: when the wait this segment resumes from began (the span starts there,
        so the wait lies inside it). A segment started inside an app's span links to that
        span too. The goal is the span's input (content); the principal and tenant say
        whose run it is. A segment that takes a follow-up ``message`` (its index; the goal
        is then its text) is named ``send <agent>``.
        """
        tid = int(trace_id, 16)
        rid = int(root_span_id(trace_id), 16)
        links = []
        if previous_span_id:
            links.append(Link(remote_context(tid, previous_span_id), {A.SEGMENT: "previous"}))
        caller = trace.get_current_span().get_span_context()
        if caller.is_valid:
            # Called inside the app's own span (a request, a job): the run keeps its own
            # trace, which outlives that span, and links back to it.
            links.append(Link(caller, {A.SEGMENT: "caller"}))
        segment = "message" if message else "start" if root else "resume"
        named = {"message": "send", "start": "invoke_agent", "resume": "resume"}[segment]
        with self._span(
            A.AGENT_RUN,
            f"{named} {self.agent_name}",
            {
                A.RUN_ID: thread_id,
                A.SEGMENT: segment,
                A.MESSAGE_INDEX: message,
                A.DRIVEN_FROM: self.clock() if since is not None else None,
                A.GEN_AI_OPERATION: "invoke_agent",
                A.GEN_AI_AGENT_NAME: self.agent_name,
                A.GEN_AI_CONVERSATION: thread_id,
                A.SESSION_ID: thread_id,
                A.USER_ID: user,
                A.TENANT: tenant,
                A.METADATA: {"tenant": tenant} if tenant is not None else None,
                A.INPUT_VALUE: goal,
                A.INPUT_MIME_TYPE: "text/plain" if self.capture_content and goal else None,
                A.OPENINFERENCE_KIND: "AGENT",
            },
            parent=None if root else NonRecordingSpan(remote_context(tid, rid)),
            links=links,
            root=root,
            trace_id=tid,
            span_id=rid if root else None,
            start=since,
        ) as span:
            self._runs[thread_id] = span
            try:
                yield span
            finally:
                self._runs.pop(thread_id, None)

    def settled(
        self, span: Span, status: str, *, output: str | None, error: str | None, known: Lazy = tuple
    ) -> None:
        """Record how a segment ended on its agent.run span: the run's status, and as its
        output the answer (content) or why it failed, masked too with the secret values of
        ``known`` (its log's: an answer may repeat a sensitive argument). A run that failed
        or ran out of budget is an error, said by its status, unless an exception said more."""
        self.set(span, {A.RUN_STATUS: status})
        said = output if output is not None else error
        keep = said is not None and self.capture_content
        erred = status in ("failed", "budget_exceeded") and not _errored(span)
        secrets = known() if keep or erred else ()
        if keep:
            self.set(span, {A.OUTPUT_VALUE: said, A.OUTPUT_MIME_TYPE: "text/plain"}, known=secrets)
        if erred:
            message = shown(error or status, self.redactor, known=secrets)
            span.set_status(Status(StatusCode.ERROR, message))
            self.set(span, {A.ERROR_TYPE: status})

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

    def failed(self, span: Span, exc: BaseException, message: str) -> None:
        """Mark ``span`` as ended by ``exc`` (a run's segment that failed, or stopped to
        wait for a retry): status ERROR with ``message`` as shown, and error.type."""
        shown_message = shown(message, self.redactor)
        span.set_status(Status(StatusCode.ERROR, shown_message))
        self.set(span, {A.ERROR_TYPE: type(exc).__name__})

    @contextmanager
    def llm_call(
        self,
        model: Any,
        messages: list[Any],
        *,
        max_tokens: int | None = None,
        tools: list[dict[str, Any]] | None = None,
    ) -> Iterator[ModelCallSpan]:
        """llm.call (``chat {model}``): one call of the planner's model, with GenAI
        attributes; ``max_tokens`` is the output cap it is called with, if any, and
        ``tools`` the function schemas it is offered."""
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
            failing=lambda: self._messages_shown.secrets(messages),
        ) as span:
            handle = ModelCallSpan(self, span)
            if self.capture_content:  # the whole conversation: build it only when kept
                system, history = split_system(messages)
                # The answer may repeat what its tools were given or gave back: masked too.
                handle.asked = self._messages_shown.secrets(history)
                handle.content(A.GEN_AI_SYSTEM_INSTRUCTIONS, system or None)
                handle.content(A.GEN_AI_INPUT_MESSAGES, self.conversation(history))
                handle.content(A.GEN_AI_TOOL_DEFINITIONS, tool_definitions(tools or ()) or None)
            yield handle

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

    def approval_wait(self, request: Any) -> None:
        """approval.wait (``await_approval {tool}``): from the request (the interrupt) to the
        decision, emitted once decided, under the segment that resumed from it (which
        began when the wait did).

        Its times are the approvals table's, so the wait is right even when the request and
        the decision happened in different processes. A person's review is a guardrail, not
        a tool call: the tool is named by agentrt.tool.name.
        """
        if request.decided_at is None:
            return
        parent = self._runs.get(request.thread_id)
        context = trace.set_span_in_context(parent) if parent is not None else None
        span = self.tracer.start_span(
            f"await_approval {request.tool}",
            context=context,
            start_time=self._ns(request.requested_at),
        )
        self.set(
            span,
            {
                A.SPAN_KIND: A.APPROVAL_WAIT,
                A.HUMAN_GATE: request.id,
                A.RUN_ID: request.thread_id,
                A.STEP_ID: request.step_id,
                A.TOOL_NAME: request.tool,
                A.APPROVAL_KIND: request.kind,
                A.APPROVAL_STATUS: request.status.value,
                A.APPROVAL_DECIDED_BY: request.decided_by,
                A.APPROVAL_ROLE: request.required_role,
                A.OPENINFERENCE_KIND: "GUARDRAIL",
            },
        )
        span.end(end_time=self._ns(max(request.decided_at, request.requested_at)))
        self.metrics.approval_waited(
            request.decided_at - request.requested_at,
            status=request.status.value,
            rule=request.rule_id,
            role=request.required_role,
        )


def _errored(span: Span) -> bool:
    return isinstance(span, ReadableSpan) and span.status.status_code is StatusCode.ERROR
