"""A run's segment spans: its agent.run span, how the segment ended, the wait it resumed from.

Mixed into RunTracing (agentrt.tracing.spans), whose ``_span`` opens them and whose ``set``
sets their attributes. A segment's span id is worked out, never drawn
(agentrt.tracing.ids.segment_span_id), so the node spans of a segment killed before its
own span left the process find their parent in the segment that next resumes the run.
The goal goes on the span as the segment ends, masked as the answer is: with the secret
values the run's log holds by then (a goal may give the value a tool's sensitive field
later takes).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link, NonRecordingSpan, Span, Status, StatusCode

from agentrt.limits import error_text
from agentrt.redaction import Redactor
from agentrt.tracing import attributes as A
from agentrt.tracing.ids import remote_context, root_span_id, segment_span_id
from agentrt.tracing.metrics import RunMetrics
from agentrt.tracing.shown import shown

__all__ = ["Lazy", "SegmentSpans"]

Lazy = Callable[[], Collection[Any]]
"""Secret values to mask with, asked for only when something is to be shown."""


class SegmentSpans:
    """Mixed into RunTracing: the spans of a run's segments."""

    tracer: trace.Tracer
    clock: Callable[[], float]
    capture_content: bool
    redactor: Redactor
    agent_name: str
    metrics: RunMetrics
    _runs: dict[str, Span]
    _inputs: dict[int, str]
    """Each open segment span's goal, by the span's id(), until the segment ends."""

    if TYPE_CHECKING:  # RunTracing's own

        def set(
            self,
            span: Span,
            attrs: Mapping[str, Any],
            *,
            sensitive: Collection[str] = (),
            known: Collection[Any] = (),
        ) -> None: ...

        def _ns(self, at: float | None = None) -> int: ...

        def _start(
            self,
            name: str,
            *,
            context: Context | None,
            at: float,
            links: list[Link] | None = None,
            attributes: Mapping[str, Any] | None = None,
        ) -> Span: ...

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
        ) -> AbstractContextManager[Span]: ...

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
        root_span_id() gives; every other segment hangs under it, wherever it runs, links
        to the segment before it (``previous_span_id``, the last that ended), and takes the
        span id segment_span_id() gives after that one. ``since``: when the wait this
        segment resumes from began (the span starts there, so the wait lies inside it). A
        segment started inside an app's span links to that span too. The goal is the
        span's input (content), set as the segment ends (``settled``); the principal and
        tenant say whose run it is. A segment that takes a follow-up ``message`` (its
        index; the goal is then its text) is named ``send <agent>``.
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
                A.OPENINFERENCE_KIND: "AGENT",
            },
            parent=None if root else NonRecordingSpan(remote_context(tid, rid)),
            links=links,
            root=root,
            trace_id=tid,
            span_id=rid if root else _after(trace_id, previous_span_id),
            start=since,
        ) as span:
            self._runs[thread_id] = span
            if goal:
                self._inputs[id(span)] = goal
            try:
                yield span
            finally:
                self._runs.pop(thread_id, None)
                unsettled = self._inputs.pop(id(span), None)
                if unsettled is not None:  # ended before it settled: masked by the Redactor
                    self._input(span, unsettled, ())

    def _input(self, span: Span, goal: str, secrets: Collection[Any]) -> None:
        if self.capture_content:
            self.set(span, {A.INPUT_VALUE: goal, A.INPUT_MIME_TYPE: "text/plain"}, known=secrets)

    def settled(
        self, span: Span, status: str, *, output: str | None, error: str | None, known: Lazy = tuple
    ) -> None:
        """Record how a segment ended on its agent.run span: the run's status, its input
        (the goal), and as its output the answer (content) or why it failed, masked too with
        the secret values of ``known`` (its log's: a goal may give a sensitive argument, an
        answer repeat one). A run that failed or ran out of budget is an error, said by its
        status, unless an exception said more."""
        self.set(span, {A.RUN_STATUS: status})
        goal = self._inputs.pop(id(span), None)
        said = output if output is not None else error_text(error) if error else None
        keep = said is not None and self.capture_content
        asked = goal is not None and self.capture_content
        erred = status in ("failed", "budget_exceeded") and not _errored(span)
        secrets = known() if keep or erred or asked else ()
        if goal is not None:
            self._input(span, goal, secrets)
        if keep:
            self.set(span, {A.OUTPUT_VALUE: said, A.OUTPUT_MIME_TYPE: "text/plain"}, known=secrets)
        if erred:
            message = shown(error_text(error or status), self.redactor, known=secrets)
            span.set_status(Status(StatusCode.ERROR, message))
            self.set(span, {A.ERROR_TYPE: status})

    def failed(self, span: Span, exc: BaseException, message: str) -> None:
        """Mark ``span`` as ended by ``exc`` (a run's segment that failed, or stopped to
        wait for a retry): status ERROR with ``message`` as shown (cut: ``error_text``),
        and error.type."""
        shown_message = shown(error_text(message), self.redactor)
        span.set_status(Status(StatusCode.ERROR, shown_message))
        self.set(span, {A.ERROR_TYPE: type(exc).__name__})

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
        span = self._start(
            f"await_approval {request.tool}", context=context, at=request.requested_at
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


def _after(trace_id: str, previous_span_id: str | None) -> int | None:
    """The id of the segment after ``previous_span_id``; none known, a fresh one."""
    return int(segment_span_id(trace_id, previous_span_id), 16) if previous_span_id else None
