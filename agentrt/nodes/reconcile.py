"""reconcile: the human gate for an effect in doubt.

A non-idempotent tool whose call started and never recorded an outcome (its process died
mid-call, or the call timed out) may or may not have acted. Calling it again could charge
the card twice; assuming it failed could lose the charge. So a person looks at the target
system and answers: it happened, with this result (resolve), or it did not (retry).

Like the approval node this one runs twice around its interrupt. The request id is
deterministic from the effect key and the attempt in doubt, and the decision is applied to
the ledger with a conditional update on that attempt, so a re-run finds the ledger already
settled and carries on from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.approvals.model import ApprovalQuery
from agentrt.nodes.common import (
    await_decision,
    current_action,
    gate_request,
    observation_event,
    tool_context,
)
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.spec import Node
from agentrt.nodes.tool import failed_outcome, ok_outcome
from agentrt.records import EffectRecord
from agentrt.redaction import Redactor
from agentrt.state import Action, Event, ObservationKind, RunState, Stop
from agentrt.store.protocols import EffectStore
from agentrt.tools.contract import Effect, ToolSpec
from agentrt.tools.execution import ToolFailure
from agentrt.tools.ledger import failure_kind
from agentrt.tracing.shown import secret_values, shown

__all__ = ["NODE", "in_doubt", "reconcile", "what_stopped"]


def _request(
    state: RunState, deps: RunDeps, spec: ToolSpec, effect: EffectRecord
) -> ApprovalRequest:
    action = current_action(state)
    if spec.idempotent:  # only a call that kept killing its process comes here
        why = (
            f"{spec.name!r} was started {effect.attempts} times and its process died each "
            "time before the call returned; it may be what kills the process"
        )
    else:
        stopped = what_stopped(effect, spec, action["args"], deps.tracing.redactor)
        why = (
            f"{spec.name!r} is not idempotent and its call (attempt {effect.attempts}) has no "
            f"recorded outcome: {stopped}"
        )
    # Settling says whether an effect happens (again): by default it takes the person the
    # action's own approval took, so its requester cannot retry it alone.
    approved = _approval_of(state, deps, action)
    roles = approved.roles if approved is not None else ()
    if spec.reconcile_role is not None:
        roles = (spec.reconcile_role,)
    return gate_request(
        state,
        kind="reconcile",
        key=f"{effect.key}:{effect.attempts}",
        step_id=action["step_id"],
        tool=spec.name,
        args=action["args"],
        reason=f"{why}. Check the target system: resolve with the result if the effect "
        "happened, retry if not",
        required_role=roles[0] if roles else None,
        required_roles=roles,
        four_eyes=approved.four_eyes if approved is not None else False,
        now=deps.store.clock(),  # the store's, as the request's decision and expiry are
    )


def what_stopped(
    effect: EffectRecord, spec: ToolSpec, args: Mapping[str, Any], redactor: Redactor
) -> str:
    """What stopped the call in doubt, for its request's reason: the tool's error as a person
    may see it. A reason is shown and sent as it is kept (the review queue, webhooks, the
    run's log), and an error may quote the call's sensitive arguments or a detected secret;
    the ledger keeps the error exact."""
    if not effect.error:
        return "the process stopped mid-call"
    known = secret_values(args, redactor, spec.sensitive)
    return str(shown(effect.error, redactor, sensitive=spec.sensitive, known=known))


def in_doubt(
    store: EffectStore, thread_id: str, state: Mapping[str, Any] | None
) -> tuple[list[Event], str | None]:
    """The run's calls in doubt as a cancel leaves them: an observation each for its log,
    and what its error says of them; ``([], None)`` if none.

    A cancel ends a run between steps, never calling again, so a call that started and
    recorded no outcome (its process died mid-call, or it timed out) stays in doubt for
    good: it may have acted, and nobody would know from the run. ``state``: the run's,
    whose plan names the model's call each answers."""
    doubtful = [e for e in store.list_effects(thread_id) if e.status == "started"]
    if not doubtful:
        return [], None
    plan = (state or {}).get("plan") or {}
    calls = {a["step_id"]: a.get("call_id", "") for a in plan.get("actions", ())}
    told: list[Event] = []
    said: list[str] = []
    for effect in doubtful:
        # Only the names: the row's error may quote a sensitive argument.
        text = (
            f"{effect.tool!r} (step {effect.step_id}, attempt {effect.attempts}) started and "
            "recorded no outcome, so it may have acted: check the target system before "
            "calling it again"
        )
        action = Action(
            step_id=effect.step_id,
            call_id=calls.get(effect.step_id, ""),
            tool=effect.tool,
            args={},
        )
        told.append(observation_event(action, ObservationKind.ERROR, f"in doubt: {text}"))
        said.append(text)
    return told, "an effect may have happened: " + "; ".join(said)


def _approval_of(state: RunState, deps: RunDeps, action: Action) -> ApprovalRequest | None:
    """The request whose approval let this action run, if one did."""
    decided = deps.store.list_approvals(
        ApprovalQuery(status=None, thread_id=state["thread_id"], limit=10_000)
    )
    approved = [
        r
        for r in decided
        if r.kind == "action"
        and r.step_id == action["step_id"]
        and r.status is ApprovalStatus.APPROVED
    ]
    return approved[-1] if approved else None


def reconcile(state: RunState, deps: RunDeps) -> dict[str, Any]:
    action = current_action(state)
    spec = deps.tools.get(action["tool"])
    assert spec is not None
    key = tool_context(state, action, deps).idempotency_key
    # An irreversible tool's effect belongs to commit; the others act in tool.
    again = "commit" if spec.effect is Effect.IRREVERSIBLE else "tool"
    effect = deps.store.get_effect(key)
    events: list[Event] = []
    if effect is not None and effect.status == "started":
        request, event = await_decision(deps, _request(state, deps, spec, effect))
        events.append(event)
        if request.status is ApprovalStatus.RESOLVED:
            deps.store.settle_effect(key, effect.attempts, happened=True, result=request.result)
        elif request.status is ApprovalStatus.RETRIED:
            deps.store.settle_effect(key, effect.attempts, happened=False)
        else:
            return {
                "events": events,
                "stop": Stop(status="cancelled", reason=f"reconcile {request.id!r} was cancelled"),
                "route": "finish",
            }
        effect = deps.store.get_effect(key)
    # The ledger now says what happened (this run's decision, or one applied before a crash).
    if effect is None or effect.status in ("retry", "started"):
        return {"events": events, "outcome": None, "route": again}
    if effect.status == "failed":
        failure = ToolFailure(
            failure_kind(effect.error_kind), effect.error or "failed", retries=effect.retries
        )
        outcome = failed_outcome(action["step_id"], failure)
    else:
        outcome = ok_outcome(action["step_id"], "done", effect.result, effect.retries)
    return {"events": events, "outcome": outcome, "route": "verify"}


NODE = Node(name="reconcile", body=reconcile, routes=("verify", "tool", "commit", "finish"))
