"""One tool call of an app's own graph, governed: policy, human gate, budget, ledger, spans.

The same parts the run graph's nodes use, applied around one call instead of spread over
nodes: ``nodes.policy.judge`` decides, ``nodes.approval.request_for`` writes the request
(ids deterministic from the thread and the step, so a re-run finds it), decisions are read
from the approvals table after ``interrupt()`` (a decision handed in as the resume value is
recorded first, with every check ``rt.decide`` makes), every call goes through the ledger
(a read too: a node run again replays it), and an effect in doubt goes to a reconcile
request. The call is written once as steps (agentrt.steps) and driven in the caller's
thread or on its event loop.

The step id is ``<superstep>.<tool call id>``: the same when LangGraph runs the node again
(after an interrupt is answered, or after a crash), so the ledger key and the request ids
are too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

from langchain_core.messages import ToolMessage
from langgraph.types import interrupt

from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.budget import Budget, first_exceeded, report
from agentrt.errors import ApprovalError, BudgetExceeded, RunError
from agentrt.governed.threads import live_record, thread_id_of, thread_state, to_running
from agentrt.logs import get_logger
from agentrt.nodes.approval import request_for, settled
from agentrt.nodes.common import (
    gate_request,
    public_request,
    spent,
    tool_context,
    with_credentials,
)
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.policy import MAX_RECHECKS, judge
from agentrt.nodes.reconcile import what_stopped
from agentrt.records import RunRecord
from agentrt.runs import lifecycle
from agentrt.runs.decisions import record_decision
from agentrt.runs.segments import SegmentTrace, segment_span
from agentrt.state import Action, GateItem, RunState, RunStatus, Usage
from agentrt.steps import Steps, blocking
from agentrt.tools.contract import ToolArgsError, ToolSpec, to_json_text
from agentrt.tools.credentials import CredentialError
from agentrt.tools.execution import ToolFailure
from agentrt.tools.ledger import EffectInDoubt
from agentrt.tracing import new_trace_id

__all__ = ["Governor", "segment", "stop_thread"]

logger = get_logger()


class Governor:
    """Governs tool calls of apps' own graphs for one runtime."""

    def __init__(self, deps: Callable[[], RunDeps]) -> None:
        self._deps = deps
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def _lock(self, thread_id: str) -> threading.Lock:
        # One governed call of a thread at a time in this process: parallel tool calls of
        # one message would otherwise race for the same run row, gate and trace segment.
        with self._guard:
            return self._locks.setdefault(thread_id, threading.Lock())

    # the call -----------------------------------------------------------------------------

    def call(
        self, tool_call: Mapping[str, Any], config: Mapping[str, Any], *, offered: frozenset[str]
    ) -> Steps[ToolMessage]:
        """The ToolMessage answering ``tool_call`` (name, args, id) of the graph call whose
        config is ``config``; raises BudgetExceeded when a limit stops the thread."""
        deps = self._deps()
        thread_id = thread_id_of(config)
        metadata = config.get("metadata") or {}
        call_id = str(tool_call.get("id") or "")
        step_id = f"{metadata.get('langgraph_step', 0)}.{call_id}"
        name = str(tool_call["name"])
        action = Action(
            step_id=step_id, call_id=call_id, tool=name, args=dict(tool_call.get("args") or {})
        )
        lock = self._lock(thread_id)
        yield blocking(lock.acquire)
        try:
            record = yield blocking(self._begin, deps, thread_id)
            with segment(deps, record), deps.tracing.step("tool", thread_id, step_id):
                message: ToolMessage = yield from self._govern(deps, record, action, offered)
            return message
        finally:
            lock.release()

    def _begin(self, deps: RunDeps, thread_id: str) -> RunRecord:
        record = live_record(deps.store, thread_id)
        if record.cancel_requested is not None:
            reason = record.cancel_requested
            lifecycle.move(
                deps.store,
                thread_id,
                RunStatus.CANCELLED,
                now=deps.clock(),
                where=deps.store.location,
                error=reason,
            )
            raise RunError(f"run {thread_id!r} was cancelled: {reason}", thread_id=thread_id)
        return to_running(deps.store, record, now=deps.clock())

    def _govern(
        self, deps: RunDeps, record: RunRecord, action: Action, offered: frozenset[str]
    ) -> Steps[ToolMessage]:
        state = thread_state(record)
        if offered and action["tool"] not in offered:
            return _error(action, "denied", f"tool {action['tool']!r} is not offered here")
        for _ in range(MAX_RECHECKS):
            try:
                args, verdict = judge(action, state, deps)
            except (ToolArgsError, ValueError) as exc:
                return _error(action, "invalid_args", str(exc))
            action = Action(**{**action, "args": args})  # validated: what runs is what is keyed
            if verdict["outcome"] == "deny":
                return _error(
                    action, "denied", f"policy denied {action['tool']!r}: {verdict['reason']}"
                )
            if verdict["outcome"] == "allow":
                break
            request = request_for(state, GateItem(action=action, verdict=verdict), now=deps.clock())
            request = yield from self._await(deps, request)
            status = request.status
            if status is ApprovalStatus.EDITED and request.edited_args == request.args:
                status = ApprovalStatus.APPROVED
            if status is ApprovalStatus.APPROVED:
                break
            if status is ApprovalStatus.EDITED:
                assert request.edited_args is not None
                # An edit never bypasses a rule: the edited call goes back through policy.
                action = Action(**{**action, "args": dict(request.edited_args)})
                action["edited_from"] = request.id
                if request.decided_by is not None:
                    action["edited_by"] = request.decided_by
                continue
            if status is ApprovalStatus.REJECTED:
                return _error(
                    action,
                    "rejected",
                    f"{request.decided_by!r} rejected {request.tool!r}: {request.comment}",
                )
            if status is ApprovalStatus.EXPIRED:
                return _error(
                    action,
                    "expired",
                    f"nobody decided on {request.tool!r} before its approval expired",
                )
            raise RunError(f"approval {request.id!r} was cancelled", thread_id=state["thread_id"])
        else:
            return _error(
                action, "denied", f"{action['tool']!r} came back to policy too often; not run"
            )
        spec = deps.tools.get(action["tool"])
        assert spec is not None, "policy lets no unknown tool through"
        message: ToolMessage = yield from self._run(deps, state, action, spec)
        return message

    # the human gate -----------------------------------------------------------------------

    def _await(self, deps: RunDeps, request: ApprovalRequest) -> Steps[ApprovalRequest]:
        """The request as decided: recorded (a no-op on a re-run), waited for with
        interrupt() while pending, its decision read from the approvals table."""
        put = yield blocking(deps.store.put_approval, request)
        request = yield blocking(settled, deps.store, put)
        refused: dict[str, str] | None = None
        while request.status is ApprovalStatus.PENDING:
            yield blocking(self._move, deps, request.thread_id, RunStatus.AWAITING_APPROVAL)
            asked: dict[str, Any] = {"approvals": [public_request(request)]}
            if refused is not None:
                asked["refused"] = refused
            given = interrupt(asked)
            refused = None
            for decision in _decisions_for(given, request.id):
                # Handed in with the app's own Command(resume=...): checked as decide checks
                # it. A refused one is not raised: LangGraph keeps a resume value for good,
                # so raising would refuse every later resume of this thread too. The gate
                # asks again instead, saying why (``refused`` in the next interrupt).
                try:
                    yield blocking(
                        record_decision,
                        deps.store,
                        deps.tools,
                        decision,
                        clock=deps.clock,
                        where=deps.store.location,
                        redactor=deps.tracing.redactor,
                    )
                except ApprovalError as exc:
                    logger.warning("decision on %r refused: %s", request.id, exc)
                    refused = {"error": type(exc).__name__, "message": str(exc)}
            stored = yield blocking(deps.store.get_approval, request.id)
            request = yield blocking(settled, deps.store, stored or request)
        yield blocking(self._move, deps, request.thread_id, RunStatus.RUNNING)
        deps.tracing.approval_wait(request)
        return request

    def _move(self, deps: RunDeps, thread_id: str, status: RunStatus) -> None:
        record = deps.store.get_run(thread_id)
        if record is not None and record.status is not status:
            lifecycle.move(
                deps.store, thread_id, status, now=deps.clock(), where=deps.store.location
            )

    # running ------------------------------------------------------------------------------

    def _run(
        self, deps: RunDeps, state: RunState, action: Action, spec: ToolSpec
    ) -> Steps[ToolMessage]:
        try:
            ctx = yield blocking(with_credentials, tool_context(state, action, deps), spec, deps)
        except CredentialError as exc:  # nothing was called, nothing is spent
            return _error(action, "permanent", f"permanent error: {exc}")
        # A read goes through the ledger too: LangGraph runs the whole tool node again when
        # a gate of the same message is answered, and the read that ran before the gate
        # is replayed from its record, not called and counted a second time.
        effect = yield blocking(deps.store.get_effect, ctx.idempotency_key)
        if effect is None:  # not counted yet: a re-run of a recorded call spends nothing
            yield blocking(self._spend, deps, state, action, spec)
        while True:
            try:
                with deps.tracing.tool_call(spec, action, "call") as span:
                    done = yield from deps.ledger.steps(spec, action["args"], ctx, deps.runner)
                    span.result(done.result, retries=done.retries)
                    result = done.result
            except EffectInDoubt:
                settled_result = yield from self._reconcile(deps, state, action, spec)
                if settled_result is _RETRY:
                    # The ledger now calls again, so the call needs its credentials (none
                    # were resolved while the ledger answered for it).
                    try:
                        ctx = yield blocking(with_credentials, ctx, spec, deps)
                    except CredentialError as exc:
                        return _error(action, "permanent", f"permanent error: {exc}")
                    continue
                result = settled_result
            except ToolFailure as failure:
                tried = f" (after {failure.retries} retries)" if failure.retries else ""
                return _error(
                    action, failure.kind, f"{failure.kind} error{tried}: {failure.message}"
                )
            return ToolMessage(
                content=to_json_text(result),
                tool_call_id=action["call_id"],
                name=action["tool"],
                status="success",
            )

    def _spend(self, deps: RunDeps, state: RunState, action: Action, spec: ToolSpec) -> None:
        """Count the call in the run's usage, or stop the thread before it if a limit would
        break (the row says budget_exceeded and BudgetExceeded is raised)."""
        record = deps.store.get_run(state["thread_id"])
        assert record is not None
        usage = record.usage
        exceeded = first_exceeded(
            _budget(record),
            usage,
            now=deps.clock(),
            next_tool_calls=1,
            next_cost_usd=spec.cost_usd,
        )
        if exceeded is not None:
            stop_thread(
                deps,
                record,
                exceeded,
                what=f"tool call {action['tool']} (step {action['step_id']})",
                node="tool",
                step_id=action["step_id"],
                tool=action["tool"],
            )
        deps.store.set_usage(state["thread_id"], spent(usage, spec))

    def _reconcile(
        self, deps: RunDeps, state: RunState, action: Action, spec: ToolSpec
    ) -> Steps[Any]:
        """Ask a person whether an effect in doubt happened: its result, or _RETRY."""
        key = tool_context(state, action, deps).idempotency_key
        effect = yield blocking(deps.store.get_effect, key)
        assert effect is not None
        stopped = what_stopped(effect, spec, action["args"], deps.tracing.redactor)
        why = (
            f"{spec.name!r} is not idempotent and its call (attempt {effect.attempts}) has no "
            f"recorded outcome: {stopped}"
        )
        request = gate_request(
            state,
            kind="reconcile",
            key=f"{effect.key}:{effect.attempts}",
            step_id=action["step_id"],
            tool=spec.name,
            args=action["args"],
            reason=f"{why}. Check the target system: resolve with the result if the effect "
            "happened, retry if not",
            required_role=spec.reconcile_role,
            required_roles=(spec.reconcile_role,) if spec.reconcile_role else (),
            now=deps.clock(),
        )
        decided = yield from self._await(deps, request)
        if decided.status is ApprovalStatus.RESOLVED:
            yield blocking(
                deps.store.settle_effect, key, effect.attempts, happened=True, result=decided.result
            )
            return decided.result
        if decided.status is ApprovalStatus.RETRIED:
            yield blocking(deps.store.settle_effect, key, effect.attempts, happened=False)
            return _RETRY
        raise RunError(f"reconcile {decided.id!r} was cancelled", thread_id=state["thread_id"])


class _Retry:
    """Marker: a person said the effect in doubt did not happen; call again."""


_RETRY: Any = _Retry()


@contextmanager
def segment(deps: RunDeps, record: RunRecord) -> Iterator[None]:
    """One agent.run segment of the thread's one trace, around one governed call: the
    first to end is the run's root, later ones hang under it (agentrt.runs.segments)."""
    trace_id, previous = deps.store.run_trace(record.thread_id)
    known = SegmentTrace(
        thread_id=record.thread_id,
        trace_id=trace_id or record.trace_id or new_trace_id(),
        previous=previous,
        since=None,
        goal=record.goal,
        user=record.principal.get("id"),
        tenant=record.tenant,
    )
    began = deps.clock()
    try:
        with segment_span(deps.tracing, known) as span:
            try:
                yield
            finally:
                # Active time is counted here (the app's graph keeps no agentrt state);
                # waiting for a person happens between segments and never counts.
                now = deps.store.get_run(record.thread_id)
                if now is not None:
                    spent = max(0.0, deps.clock() - began)
                    usage = {**now.usage, "active_seconds": now.usage["active_seconds"] + spent}
                    deps.store.set_usage(record.thread_id, cast(Usage, usage))
                    deps.tracing.settled(span, now.status.value, output=now.output, error=now.error)
    finally:
        deps.tracing.flush()
        if known.span_id is not None:
            deps.store.set_trace(record.thread_id, known.trace_id, known.span_id)


def _budget(record: RunRecord) -> Budget:
    return Budget.from_dict(record.budget)


def stop_thread(
    deps: RunDeps,
    record: RunRecord,
    exceeded: BudgetExceeded,
    *,
    what: str,
    node: str,
    step_id: str,
    tool: str,
) -> None:
    """End the thread budget_exceeded, with the report of what it stopped before, and
    raise ``exceeded`` to the app's graph."""
    found = report(exceeded, record.usage, action=what, node=node, step_id=step_id, tool=tool)
    lifecycle.move(
        deps.store,
        record.thread_id,
        RunStatus.BUDGET_EXCEEDED,
        now=deps.clock(),
        where=deps.store.location,
        error=found["message"],
        budget_report=found,
    )
    exceeded.thread_id = record.thread_id
    raise exceeded


def _decisions_for(given: Any, approval_id: str) -> list[Any]:
    """The decisions on ``approval_id`` in a resume value: a Decision, its dict, a list of
    them or ``{"decisions": [...]}``; anything else (``{"decided": True}``) carries none."""
    if isinstance(given, Mapping) and "decisions" in given:
        given = given["decisions"]
    items = given if isinstance(given, list | tuple) else [given]
    found = []
    for item in items:
        named = item.get("approval_id") if isinstance(item, Mapping) else None
        named = getattr(item, "approval_id", named)
        if named == approval_id:
            found.append(item)
    return found


def _error(action: Action, kind: str, content: str) -> ToolMessage:
    """A call that did not run or failed, as the model sees it: status error, the kind first."""
    text = content if content.startswith(f"{kind}") else f"{kind}: {content}"
    return ToolMessage(
        content=text, tool_call_id=action["call_id"], name=action["tool"], status="error"
    )
