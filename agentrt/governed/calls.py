"""One tool call of an app's own graph, governed: policy, human gate, budget, ledger, spans.

The same parts the run graph's nodes use, applied around one call instead of spread over
nodes: ``nodes.policy.judge`` decides, ``nodes.approval.request_for`` writes the request
(ids deterministic from the thread and the step, so a re-run finds it), decisions are read
from the approvals table after ``interrupt()`` (a decision handed in as the resume value is
recorded first, with every check ``rt.decide`` makes), every call goes through the ledger
(a read too: a node run again replays it), and an effect in doubt goes to a reconcile
request. The call is written once as steps (agentrt.steps) and driven in the caller's
thread or on its event loop.

The step id is ``<superstep>.<tool call id>@<node run>`` (step_id_of): the same when
LangGraph runs the node again (after an interrupt is answered, or after a crash), so the
ledger key and the request ids are too, and another for another run of the node.

A message's parallel calls act one at a time (agentrt.governed.turns). When one stops at a
gate, the others already begun go on as they would have (a read or an allowed call runs, a
gated one files its request), in sync and async graphs alike, before the interrupt reaches
the graph; the row says awaiting_approval while any request of the thread is pending.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, cast

from langchain_core.messages import ToolMessage
from langgraph.errors import GraphInterrupt
from langgraph.types import interrupt

from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.budget import Budget, first_exceeded, report
from agentrt.errors import BudgetExceeded, RunError
from agentrt.governed.decided import word_on
from agentrt.governed.resumed import decisions_given
from agentrt.governed.threads import live_record, thread_id_of, thread_state, to_running
from agentrt.governed.turns import Turns
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
from agentrt.runs.segments import SegmentTrace, segment_span
from agentrt.state import Action, GateItem, RunState, RunStatus, Usage
from agentrt.steps import Steps, blocking
from agentrt.tools.contract import ToolArgsError, ToolSpec, to_json_text
from agentrt.tools.credentials import CredentialError
from agentrt.tools.execution import ToolFailure
from agentrt.tools.ledger import EffectInDoubt
from agentrt.tracing import new_trace_id

__all__ = ["Governor", "segment", "step_id_of", "stop_thread"]

logger = get_logger()


class Governor:
    """Governs tool calls of apps' own graphs for one runtime."""

    def __init__(self, deps: Callable[[], RunDeps]) -> None:
        self._deps = deps
        self._turns = Turns()

    # the call -----------------------------------------------------------------------------

    def call(
        self, tool_call: Mapping[str, Any], config: Mapping[str, Any], *, offered: frozenset[str]
    ) -> Steps[ToolMessage]:
        """The ToolMessage answering ``tool_call`` (name, args, id) of the graph call whose
        config is ``config``; raises BudgetExceeded when a limit stops the thread."""
        deps = self._deps()
        thread_id = thread_id_of(config)
        call_id = str(tool_call.get("id") or "")
        step_id = step_id_of(config, call_id)
        name = str(tool_call["name"])
        action = Action(
            step_id=step_id, call_id=call_id, tool=name, args=dict(tool_call.get("args") or {})
        )
        turns = self._turns
        turns.enter(thread_id)
        left = False
        try:
            # One call of the thread at a time in this process: parallel tool calls of one
            # message would otherwise race for the same run row, gate and trace segment.
            yield turns.take(thread_id)
            try:
                record = yield blocking(self._begin, deps, thread_id)
                with segment(deps, record), deps.tracing.step("tool", thread_id, step_id):
                    message: ToolMessage = yield from self._govern(deps, record, action, offered)
                return message
            finally:
                turns.give(thread_id)
        except GraphInterrupt:
            # The message waits at a gate. Its other calls in flight here end first, each
            # acting (or asking) as it would have: an async ToolNode's gather returns at the
            # first interrupt and leaves them running, so the graph would say "waiting at
            # the gate" while a call of the thread still acts, as a sync one never does.
            turns.leave(thread_id)
            left = True
            yield turns.quiet(thread_id)
            raise
        finally:
            if not left:
                turns.leave(thread_id)

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
        if action["tool"] not in offered:  # the names a node offers; none offers none
            return _error(action, "denied", f"tool {action['tool']!r} is not offered here")
        for _ in range(MAX_RECHECKS):
            try:
                args, verdict = judge(action, state, deps)
            except (ToolArgsError, ValueError) as exc:
                return _error(action, "invalid_args", str(exc))
            action = Action(**{**action, "args": args})  # validated: what runs is what is keyed
            # A person's refusal or edit of this very call stands whatever the verdict is
            # by now (agentrt.governed.decided); a question still open is answered first.
            asked = yield blocking(word_on, deps.store, state["thread_id"], action)
            current = asked is None  # the question the verdict asks now, not an older one
            if asked is None:
                if verdict["outcome"] == "deny":
                    return _error(
                        action, "denied", f"policy denied {action['tool']!r}: {verdict['reason']}"
                    )
                if verdict["outcome"] == "allow":
                    break
                item = GateItem(action=action, verdict=verdict)
                asked = request_for(state, item, now=deps.store.clock())  # the store's clock
            elif verdict["outcome"] == "require_approval":
                item = GateItem(action=action, verdict=verdict)
                current = request_for(state, item, now=0.0).id == asked.id  # ids ignore times
            request = yield from self._await(deps, asked)
            status = request.status
            if status is ApprovalStatus.EDITED and request.edited_args == request.args:
                status = ApprovalStatus.APPROVED
            if status is ApprovalStatus.APPROVED:
                if current:
                    break
                continue  # approved on older terms: policy decides again, as in the run graph
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
            # Decisions handed in with the app's own Command(resume=...), on any pending
            # request of the thread, recorded as decide records them (agentrt.governed.resumed).
            refused = yield blocking(decisions_given, deps, request.thread_id, given)
            stored = yield blocking(deps.store.get_approval, request.id)
            request = yield blocking(settled, deps.store, stored or request)
        yield blocking(self._running, deps, request.thread_id)
        deps.tracing.approval_wait(request)
        return request

    def _running(self, deps: RunDeps, thread_id: str) -> None:
        """The row running again once its gate has no pending request (to_running)."""
        record = deps.store.get_run(thread_id)
        if record is not None and record.status is not RunStatus.RUNNING:
            to_running(deps.store, record, now=deps.clock())

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
        while True:
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
            # The check and the count are one conditional write: another process driving
            # the thread (an own-graph thread's lease never keeps one out) may have counted
            # a call since the read, and then this one is checked again against it.
            if deps.store.swap_usage(state["thread_id"], usage, spent(usage, spec)):
                return

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
                spent = max(0.0, deps.clock() - began)
                now = deps.store.get_run(record.thread_id)
                # Added with a conditional write: another driver's counts are kept.
                while now is not None:
                    usage = {**now.usage, "active_seconds": now.usage["active_seconds"] + spent}
                    if deps.store.swap_usage(record.thread_id, now.usage, cast(Usage, usage)):
                        break
                    now = deps.store.get_run(record.thread_id)
                if now is not None:
                    deps.tracing.settled(span, now.status.value, output=now.output, error=now.error)
    finally:
        deps.tracing.flush()
        if known.span_id is not None:
            deps.store.set_trace(record.thread_id, known.trace_id, known.span_id)


def step_id_of(config: Mapping[str, Any], call_id: str) -> str:
    """The step id of a call: ``<superstep>.<tool call id>``, and which run of the node it
    is. A subgraph's supersteps count from 0 at each invocation and a provider may number
    its calls per message (or give none), so the two alone would key a later turn's call
    as an earlier one's. The node run's checkpoint namespace holds its task id, which
    LangGraph derives from the checkpoint the node runs from: the same when it runs the
    node again (a retry, a resume, after a crash), another for another run of it."""
    metadata = config.get("metadata") or {}
    step = f"{metadata.get('langgraph_step', 0)}.{call_id}"
    namespace = (config.get("configurable") or {}).get("checkpoint_ns") or metadata.get(
        "langgraph_checkpoint_ns"
    )
    if not namespace:
        return step
    return f"{step}@{hashlib.sha256(str(namespace).encode()).hexdigest()[:16]}"


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


def _error(action: Action, kind: str, content: str) -> ToolMessage:
    """A call that did not run or failed, as the model sees it: status error, the kind first."""
    text = content if content.startswith(f"{kind}") else f"{kind}: {content}"
    return ToolMessage(
        content=text, tool_call_id=action["call_id"], name=action["tool"], status="error"
    )
