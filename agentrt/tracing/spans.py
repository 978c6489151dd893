"""RunTracing: the runtime's spans, opened with explicit parents, attributes set in one place.

agent.run spans are roots of the run's one trace (its id lives in the runs row, so every
segment of a run, in any process, joins the same trace); agent.step spans take the run
span of their thread as explicit parent, not whatever context LangGraph's executor
happens to carry; llm.call, tool.call, policy.check and approval.wait nest under the step
that opens them. Every time comes from the runtime's clock, so a test's clock and the
span store agree.

``RunTracing.set`` is the one place an attribute is set: content (prompts, arguments,
results) goes on a span only with capture_content=True, and only as ``shown`` makes it (the
Redactor, with the tool's declared sensitive fields: in a model call's messages too, for
each tool call and tool result they hold). An error's message goes on the span whether
capture is on or not, so it is shown the same way, with the failing call's secrets.
"""

from __future__ import annotations

import contextvars
import json
import secrets
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from langgraph.errors import GraphBubbleUp
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import Link, Span, SpanContext, Status, StatusCode, TraceFlags

from agentrt.redaction import Redactor
from agentrt.tracing import attributes as A
from agentrt.tracing.shown import SensitiveOf, secret_values, shown, shown_messages

__all__ = ["ModelCallSpan", "PolicySpan", "RunTracing", "ToolCallSpan", "new_trace_id"]

_RUN_TRACE: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "agentrt_run_trace", default=None
)


def new_trace_id() -> str:
    """A fresh W3C trace id, as 32 hex digits."""
    return secrets.token_hex(16)


class _RunTraceIds(IdGenerator):
    """Gives an agent.run root span the trace id its run already has; else the usual."""

    def __init__(self, inner: IdGenerator) -> None:
        self.inner = inner

    def generate_span_id(self) -> int:
        return self.inner.generate_span_id()

    def generate_trace_id(self) -> int:
        wanted = _RUN_TRACE.get()
        return wanted if wanted is not None else self.inner.generate_trace_id()


def _plain(value: Any) -> Any:
    """An attribute value OpenTelemetry accepts: scalars, lists of str, else JSON text."""
    if isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return list(value)
    return json.dumps(value, sort_keys=True, default=str)


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
    ) -> None:
        if isinstance(tracer, SdkTracer) and not isinstance(tracer.id_generator, _RunTraceIds):
            # Only this tracer is changed, never the provider: the caller's other tracers
            # keep their own ids.
            tracer.id_generator = _RunTraceIds(tracer.id_generator)
        self.tracer = tracer
        self.clock = clock
        self.capture_content = capture_content
        self.redactor = redactor or Redactor()
        self.sensitive_of: SensitiveOf = sensitive_of or (lambda name: ())
        """A tool's declared sensitive fields by name, for the tool calls in messages."""
        self._flush = flush
        self._runs: dict[str, Span] = {}
        self._failed: dict[str, tuple[str, str | None, int]] = {}

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
        """Set ``attrs`` on ``span``: the one place an attribute is set.

        None values are skipped. Content keys are set only when content capture is on, and
        then only as shown: the tool's declared ``sensitive`` fields and the ``known``
        secret values of its call masked.
        """
        if not span.is_recording():
            return
        for key, value in attrs.items():
            if value is None:
                continue
            if key in A.CONTENT_KEYS:
                if not self.capture_content:
                    continue
                masked = shown(value, self.redactor, sensitive=sensitive, known=known)
                span.set_attribute(key, _plain(masked))
                continue
            span.set_attribute(key, _plain(value))

    @contextmanager
    def _span(
        self,
        name: str,
        attrs: Mapping[str, Any],
        *,
        parent: Span | None = None,
        links: list[Link] | None = None,
        root: bool = False,
        trace_id: int | None = None,
        sensitive: Collection[str] = (),
        known: Collection[Any] = (),
    ) -> Iterator[Span]:
        """A span under ``parent`` (or the current span); ``root``: under none, in trace
        ``trace_id`` if given (a run's own trace), else a new trace."""
        if root:
            context: Context | None = Context()
        elif parent is not None:
            context = trace.set_span_in_context(parent)
        else:
            context = None  # the current one: the step this node runs in
        token = _RUN_TRACE.set(trace_id)  # what _RunTraceIds gives this span, and no other
        try:
            span = self.tracer.start_span(name, context=context, links=links, start_time=self._ns())
        finally:
            _RUN_TRACE.reset(token)
        self.set(span, attrs)
        try:
            with trace.use_span(
                span, end_on_exit=False, record_exception=False, set_status_on_exception=False
            ):
                yield span
        except GraphBubbleUp:
            # An interrupt is LangGraph's way of pausing, not a failure.
            self.set(span, {A.INTERRUPTED: True})
            raise
        except BaseException as exc:
            # Not span.record_exception: an error message can quote arguments, so it is
            # shown like content (capture on or off), and the stack trace stays in the logs.
            message = shown(str(exc), self.redactor, sensitive=sensitive, known=known)
            span.add_event(
                "exception",
                {"exception.type": type(exc).__name__, "exception.message": message},
                timestamp=self._ns(),
            )
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"))
            raise
        finally:
            span.end(end_time=self._ns())

    # the spans ----------------------------------------------------------------------------

    @contextmanager
    def run(
        self,
        thread_id: str,
        *,
        trace_id: str,
        segment: str,
        previous_span_id: str | None = None,
    ) -> Iterator[Span]:
        """agent.run: one segment of a run, a root span of the run's trace.

        A resumed segment links to the one before it (``previous_span_id``), which may
        have been written by another process; a segment started inside an app's span
        links to that span too.
        """
        links = []
        if previous_span_id:
            links.append(
                Link(
                    SpanContext(
                        trace_id=int(trace_id, 16),
                        span_id=int(previous_span_id, 16),
                        is_remote=True,
                        trace_flags=TraceFlags(TraceFlags.SAMPLED),
                    ),
                    {A.SEGMENT: "previous"},
                )
            )
        caller = trace.get_current_span().get_span_context()
        if caller.is_valid:
            # Called inside the app's own span (a request, a job): the run keeps its own
            # trace, which outlives that span, and links back to it.
            links.append(Link(caller, {A.SEGMENT: "caller"}))
        with self._span(
            A.AGENT_RUN,
            {
                A.RUN_ID: thread_id,
                A.SEGMENT: segment,
                A.GEN_AI_CONVERSATION: thread_id,
                A.OPENINFERENCE_KIND: "AGENT",
            },
            links=links,
            root=True,
            trace_id=int(trace_id, 16),
        ) as span:
            self._runs[thread_id] = span
            try:
                yield span
            finally:
                self._runs.pop(thread_id, None)

    @contextmanager
    def step(self, kind: str, thread_id: str, step_id: str | None = None) -> Iterator[Span]:
        """agent.step: one node of the run graph, under its thread's agent.run span.

        A node that LangGraph retries after an error makes one span an attempt; the
        retries carry agentrt.retry_count.
        """
        last = self._failed.pop(thread_id, None)
        retries = last[2] + 1 if last is not None and last[:2] == (kind, step_id) else 0
        try:
            with self._span(
                A.AGENT_STEP,
                {
                    A.STEP_KIND: kind,
                    A.RUN_ID: thread_id,
                    A.STEP_ID: step_id,
                    A.RETRY_COUNT: retries or None,
                    A.OPENINFERENCE_KIND: "CHAIN",
                },
                parent=self._runs.get(thread_id),
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
        self, model: Any, messages: list[Any], *, max_tokens: int | None = None
    ) -> Iterator[ModelCallSpan]:
        """llm.call: one call of the planner's model, with GenAI attributes; ``max_tokens``
        is the output cap it is called with, if any."""
        name, provider = _model_names(model)
        with self._span(
            A.LLM_CALL,
            {
                A.GEN_AI_OPERATION: "chat",
                A.GEN_AI_REQUEST_MODEL: name,
                A.GEN_AI_REQUEST_MAX_TOKENS: max_tokens,
                A.GEN_AI_PROVIDER: provider,
                A.OPENINFERENCE_KIND: "LLM",
            },
        ) as span:
            handle = ModelCallSpan(self, span)
            if self.capture_content:  # the whole conversation: build it only when kept
                handle.content(A.GEN_AI_INPUT_MESSAGES, self.conversation(messages))
            yield handle

    @contextmanager
    def tool_call(
        self,
        spec: Any,
        action: Mapping[str, Any],
        phase: str = "call",
    ) -> Iterator[ToolCallSpan]:
        """tool.call: one call of a tool, with GenAI attributes; arguments are content."""
        sensitive = tuple(spec.sensitive) if spec is not None else ()
        # Its sensitive arguments' values, to cut out of the result and of an error text.
        known = secret_values(action.get("args"), self.redactor, sensitive)
        with self._span(
            A.TOOL_CALL,
            {
                A.GEN_AI_OPERATION: "execute_tool",
                A.GEN_AI_TOOL_NAME: action["tool"],
                A.GEN_AI_TOOL_CALL_ID: action.get("call_id"),
                A.GEN_AI_TOOL_TYPE: "function",
                A.STEP_ID: action.get("step_id"),
                A.TOOL_EFFECT: str(spec.effect.value) if spec is not None else None,
                A.TOOL_PHASE: phase,
                A.OPENINFERENCE_KIND: "TOOL",
            },
            sensitive=sensitive,
            known=known,
        ) as span:
            handle = ToolCallSpan(self, span, sensitive, known)
            handle.content(A.GEN_AI_TOOL_ARGUMENTS, action.get("args"))
            yield handle

    @contextmanager
    def policy_check(self, action: Mapping[str, Any]) -> Iterator[PolicySpan]:
        """policy.check: one evaluation of the policy for an action."""
        with self._span(
            A.POLICY_CHECK,
            {
                A.GEN_AI_TOOL_NAME: action["tool"],
                A.STEP_ID: action.get("step_id"),
                A.OPENINFERENCE_KIND: "GUARDRAIL",
            },
        ) as span:
            yield PolicySpan(self, span)

    def conversation(self, messages: list[Any]) -> list[dict[str, Any]]:
        """Chat messages in GenAI's shape (role, content, tool calls), as shown."""
        return shown_messages(messages, self.redactor, self.sensitive_of)

    def approval_wait(self, request: Any) -> None:
        """approval.wait: from the request (the interrupt) to the decision, emitted once decided.

        Its times are the approvals table's, so the wait is right even when the request and
        the decision happened in different processes.
        """
        if request.decided_at is None:
            return
        span = self.tracer.start_span(A.APPROVAL_WAIT, start_time=self._ns(request.requested_at))
        self.set(
            span,
            {
                A.HUMAN_GATE: request.id,
                A.STEP_ID: request.step_id,
                A.GEN_AI_TOOL_NAME: request.tool,
                A.APPROVAL_KIND: request.kind,
                A.APPROVAL_STATUS: request.status.value,
                A.APPROVAL_DECIDED_BY: request.decided_by,
                A.APPROVAL_ROLE: request.required_role,
            },
        )
        span.end(end_time=self._ns(max(request.decided_at, request.requested_at)))


class _Handle:
    def __init__(
        self,
        tracing: RunTracing,
        span: Span,
        sensitive: Collection[str] = (),
        known: Collection[Any] = (),
    ) -> None:
        self.tracing = tracing
        self.span = span
        self.sensitive = sensitive
        self.known = known

    def content(self, key: str, value: Any) -> None:
        """Put content on the span (only with capture on, always as shown)."""
        self.tracing.set(self.span, {key: value}, sensitive=self.sensitive, known=self.known)


class ModelCallSpan(_Handle):
    """The open llm.call span; record the model's response on it."""

    def response(self, message: Any) -> None:
        meta = getattr(message, "usage_metadata", None) or {}
        info = getattr(message, "response_metadata", None) or {}
        finish = info.get("finish_reason") or info.get("stop_reason")
        self.tracing.set(
            self.span,
            {
                A.GEN_AI_INPUT_TOKENS: meta.get("input_tokens"),
                A.GEN_AI_OUTPUT_TOKENS: meta.get("output_tokens"),
                A.GEN_AI_RESPONSE_MODEL: info.get("model_name") or info.get("model"),
                A.GEN_AI_RESPONSE_ID: _response_id(message, info),
                A.GEN_AI_FINISH_REASONS: [str(finish)] if finish else None,
            },
        )
        if self.tracing.capture_content:
            self.content(A.GEN_AI_OUTPUT_MESSAGES, self.tracing.conversation([message]))


class ToolCallSpan(_Handle):
    """The open tool.call span; record the result or the failure kind on it."""

    def result(self, value: Any, *, outcome: str = "ok", retries: int = 0) -> None:
        self.tracing.set(self.span, {A.TOOL_OUTCOME: outcome, A.RETRY_COUNT: retries or None})
        self.content(A.GEN_AI_TOOL_RESULT, value)


class PolicySpan(_Handle):
    """The open policy.check span; record the decision on it."""

    def decision(self, decision: Any) -> None:
        self.tracing.set(
            self.span,
            {
                A.POLICY_DECISION: decision.outcome,
                A.POLICY_RULE: decision.rule_id,
                A.POLICY_NAME: decision.policy,
                A.POLICY_VERSION: decision.policy_version,
                A.APPROVAL_ROLE: decision.required_role,
            },
        )


def _response_id(message: Any, info: Mapping[str, Any]) -> str | None:
    """The provider's id of the answer (chatcmpl-...), if the client carried it over. A
    message id LangChain made up (its run id, lc_run--...) names no response: left out."""
    given = info.get("id") or getattr(message, "id", None)
    return given if isinstance(given, str) and not given.startswith("lc_") else None


def _model_names(model: Any) -> tuple[str | None, str | None]:
    name = getattr(model, "model_name", None) or getattr(model, "model", None)
    provider = None
    try:
        params = model._get_ls_params()
        name = name or params.get("ls_model_name")
        provider = params.get("ls_provider")
    except Exception:  # naming is best effort; a model without ls params is still traced
        pass
    return (name if isinstance(name, str) else None, provider)
