"""Helpers the nodes share: the current action, observations, and where to go next."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from typing import Any, Literal, Required, TypedDict

from langgraph.types import interrupt
from typing_extensions import Unpack

from agentrt import events
from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.budget import Budget, first_exceeded, report
from agentrt.digests import approval_id, args_digest, effect_key
from agentrt.errors import BudgetExceeded
from agentrt.message_budget import as_set, own_limit
from agentrt.nodes.deps import RunDeps
from agentrt.principal import Principal
from agentrt.state import Action, Event, Observation, ObservationKind, RunState, Stop, Usage
from agentrt.tools.artifacts import ToolArtifacts
from agentrt.tools.contract import Effect, ToolContext, ToolSpec
from agentrt.tools.credentials import resolve_for
from agentrt.tools.execution import ToolFailure
from agentrt.tools.ledger import EffectInDoubt, outcome_of
from agentrt.tools.memory import Memory

__all__ = [
    "abandon_plan",
    "advance",
    "budget_stop",
    "current_action",
    "next_action",
    "observation_event",
    "over_budget",
    "tool_context",
    "wait_for_people",
    "with_credentials",
]


def next_action(state: RunState) -> Action | None:
    """The plan's action at the cursor; None when there is no plan or none is left."""
    plan = state.get("plan")
    cursor = state.get("cursor", 0)
    if not plan or cursor >= len(plan["actions"]):
        return None
    return plan["actions"][cursor]


def current_action(state: RunState) -> Action:
    action = next_action(state)
    if action is None:
        raise RuntimeError("no current action: the graph routed to an action node without one")
    return action


def observation_event(
    action: Action, kind: ObservationKind | str, content: str, *, retries: int = 0
) -> Event:
    obs = Observation(
        step_id=action["step_id"],
        call_id=action["call_id"],
        tool=action["tool"],
        kind=ObservationKind(kind).value,
        content=content,
    )
    if retries:
        obs["retries"] = retries
    return events.observation_event(obs)


def abandon_plan(
    state: RunState, kind: ObservationKind | str, content: str, *, retries: int = 0
) -> dict[str, Any]:
    """The current action failed (or was refused): tell the planner, skip the rest, replan.

    Every remaining action still gets an observation, so the model sees an answer to each
    tool call it made.
    """
    plan = state["plan"]
    assert plan is not None
    cursor = state.get("cursor", 0)
    action = plan["actions"][cursor]
    events = [observation_event(action, kind, content, retries=retries)]
    events += [
        observation_event(
            rest,
            ObservationKind.SKIPPED,
            f"not run: step {action['step_id']} ({action['tool']}) before it ended {kind}",
        )
        for rest in plan["actions"][cursor + 1 :]
    ]
    return {"events": events, "cursor": len(plan["actions"]), "route": "plan"}


def advance(state: RunState) -> dict[str, Any]:
    """The current action is done: on to the next one, or back to the planner."""
    plan = state["plan"]
    assert plan is not None
    cursor = state.get("cursor", 0) + 1
    more = cursor < len(plan["actions"])
    # The outcome stays till the next action's: verify runs in the tool's step
    # (agentrt.graphs.onward), so the checkpoint after it is the one that holds what a read
    # returned, which replay plays back (agentrt.replay.recording).
    return {"cursor": cursor, "verdict": None, "route": "policy" if more else "plan"}


def budget_stop(
    state: RunState,
    deps: RunDeps,
    *,
    node: str,
    action: Action | None = None,
    steps: int = 0,
    tool_calls: int = 0,
    cost_usd: float = 0.0,
) -> dict[str, Any] | None:
    """Pre-flight: if the next spend would break a limit, the update that stops before it.

    ``action`` is the tool call about to run; None means the next model call.
    """
    exceeded = first_exceeded(
        Budget.from_dict(state.get("budget")),
        state["usage"],
        now=deps.clock(),
        next_steps=steps,
        next_tool_calls=tool_calls,
        next_cost_usd=cost_usd,
    )
    if exceeded is None:
        return None
    return over_budget(state, exceeded, node=node, action=action)


def over_budget(
    state: RunState,
    exceeded: BudgetExceeded,
    *,
    node: str,
    action: Action | None,
    usage: Usage | None = None,
    what: str | None = None,
) -> dict[str, Any]:
    """The update for a tripped limit: end the run, or ask a person if the budget says so.

    ``action`` is the tool call it stops before (None: a model call); ``what`` overrides
    how that is put in words.
    """
    usage = usage or state["usage"]
    if action is None:
        step_id, tool = str(state["usage"]["steps"]), ""
        what = what or f"model call (plan step {step_id})"
    else:
        step_id, tool = action["step_id"], action["tool"]
        what = what or f"tool call {tool} (step {step_id})"
    # A limit the thread's current message set is answered as its sender set it.
    own = own_limit(state, exceeded.limit)
    found = report(
        as_set(state, exceeded), usage, action=what, node=node, step_id=step_id, tool=tool
    )
    on_exceed = Budget.from_dict(state.get("budget")).on_exceed
    if own is not None:
        found["message"] = f"message #{state.get('message', 0)}'s {found['message']}"
        on_exceed = own.on_exceed or on_exceed
    update: dict[str, Any] = {"usage": usage}
    if on_exceed == "ask":
        return update | {"over_budget": found, "route": "budget_gate"}
    stop = Stop(status="budget_exceeded", reason=found["message"], budget=found)
    return update | {"stop": stop, "route": "finish"}


def tool_context(
    state: RunState, action: Action, deps: RunDeps, *, preview: bool = False
) -> ToolContext:
    """The context of the current action's call (``preview``: of its prepare step, which
    may read memory but not write it, as a read tool may not)."""
    principal = Principal.from_dict(state["principal"])
    spec = deps.tools.get(action["tool"])
    writes = not preview and spec is not None and spec.effect is not Effect.READ
    return ToolContext(
        thread_id=state["thread_id"],
        step_id=action["step_id"],
        idempotency_key=effect_key(
            state["thread_id"], action["step_id"], action["tool"], action["args"]
        ),
        principal=principal,
        deadline=work_deadline(state, deps.clock()),
        artifacts=ToolArtifacts(
            deps.store,
            state["thread_id"],
            tenant=state["principal"].get("tenant"),
            step_id=action["step_id"],
            max_bytes=deps.limits.result_bytes,
        ),
        memory=Memory(
            deps.memories,
            tenant=principal.tenant,
            principal=principal.id,
            writable=writes,
            tool=action["tool"],
        ),
    )


def with_credentials(ctx: ToolContext, spec: ToolSpec, deps: RunDeps) -> ToolContext:
    """``ctx`` with the credentials ``spec`` declares, resolved now for the run's principal
    (and told to the Redactor); CredentialError naming the first that cannot be.

    A side effect the ledger answers for without calling the tool (its recorded result or
    failure, or a call in doubt, which only a person settles) resolves nothing: a provider
    down at a re-run must not turn an effect in doubt into "the tool was not called"."""
    if not spec.credentials:
        return ctx
    if spec.effect is not Effect.READ and ledger_answers(spec, ctx, deps):
        return ctx
    secrets = resolve_for(
        spec.name,
        spec.credentials,
        ctx.principal,
        deps.credentials,
        remember=deps.tracing.redactor.remember,
    )
    # The call's memory and artifacts cut the values out of what the tool writes there too.
    return replace(
        ctx,
        credentials=secrets,
        memory=ctx.memory.scrubbing(secrets),
        artifacts=ctx.artifacts.scrubbing(secrets),
    )


def ledger_answers(spec: ToolSpec, ctx: ToolContext, deps: RunDeps) -> bool:
    """True if the ledger's record of this call settles it without calling the tool."""
    record = deps.store.get_effect(ctx.idempotency_key)
    try:
        return outcome_of(spec, ctx.idempotency_key, record) is not None
    except (ToolFailure, EffectInDoubt):  # a recorded failure, or in doubt: no call either
        return True


def work_deadline(state: RunState, now: float) -> float | None:
    """When the budget stops further work: its deadline, or when active time runs out."""
    budget = Budget.from_dict(state.get("budget"))
    ends = [budget.deadline] if budget.deadline is not None else []
    if budget.max_active_seconds is not None:
        left = budget.max_active_seconds - state["usage"]["active_seconds"]
        ends.append(now + max(0.0, left))
    return min(ends, default=None)


def spent(usage: Usage, spec: ToolSpec) -> Usage:
    """Usage after one more call of ``spec``."""
    return {
        **usage,
        "tool_calls": usage["tool_calls"] + 1,
        "cost_usd": usage["cost_usd"] + spec.cost_usd,
    }


class RequestTerms(TypedDict, total=False):
    """What a gate asks a person, as ApprovalRequest names it (the id, the run's thread,
    principal and tenant, and the time come from the gate itself)."""

    tool: Required[str]
    args: Required[dict[str, Any]]
    reason: Required[str]
    required_role: Required[str | None]
    required_roles: tuple[str, ...]
    rule_id: str | None
    four_eyes: bool
    expires_at: float | None
    on_expiry: Literal["reject", "escalate"]
    escalate_to: str | None
    edited_by: str | None
    edited_from: str | None


def gate_request(
    state: RunState,
    *,
    kind: Literal["action", "reconcile", "budget"],
    key: str,
    step_id: str,
    now: float,
    **terms: Unpack[RequestTerms],
) -> ApprovalRequest:
    """A request of this run's, asked by its principal; its id is deterministic from the
    thread, the step and ``key`` (what makes it a new question), so a re-run finds it.
    """
    return ApprovalRequest(
        id=approval_id(state["thread_id"], step_id, f"{kind}:{key}"),
        thread_id=state["thread_id"],
        step_id=step_id,
        kind=kind,
        args_digest=args_digest(terms["args"]),
        requested_by=state["principal"]["id"],
        tenant=state["principal"].get("tenant"),
        requested_at=now,
        **terms,
    )


def public_request(request: ApprovalRequest) -> dict[str, Any]:
    """A request as plain data, for the interrupt value and the event log."""
    data = asdict(request)
    data["status"] = request.status.value
    data["waited_seconds"] = request.waited_seconds
    return data


def await_decision(deps: RunDeps, request: ApprovalRequest) -> tuple[ApprovalRequest, Event]:
    """Record ``request`` (a no-op if a re-run already did), wait for a person if it is
    still pending, and return it as decided, with its event for the log.

    A gate node runs twice around interrupt(): the id is deterministic and the insert
    ignores duplicates, and the decision is read from the approvals table (where
    AgentRuntime.decide validated it), never taken from the resume value.
    """
    request = deps.store.put_approval(request)
    if request.status is ApprovalStatus.PENDING:
        asked = request.id

        def reread() -> list[ApprovalRequest]:
            stored = deps.store.get_approval(asked)
            assert stored is not None
            return [stored]

        # The same shape as the action gate's, so code driving rt.graph reads one kind.
        (request,) = wait_for_people(deps, [request], reread)
    deps.tracing.approval_wait(request)
    return request, events.approval_event(public_request(request))


def wait_for_people(
    deps: RunDeps,
    requests: Sequence[ApprovalRequest],
    reread: Callable[[], list[ApprovalRequest]],
) -> list[ApprovalRequest]:
    """Interrupt for the pending ones of ``requests``; after the resume, the requests as
    the approvals table has them now (``reread``).

    Where the runtime takes decisions from resume values (``deps.decisions_in_resume``),
    those handed in are recorded first, each checked as rt.decide checks it, and while a
    request is still pending the gate asks again in the same step, saying why (``refused``):
    LangGraph keeps a resume value for the step it answered, so a refused value can only be
    followed by another interrupt, never replaced. Otherwise one interrupt, and the caller
    sees what is still pending.
    """
    pending = [r for r in requests if r.status is ApprovalStatus.PENDING]
    asked: dict[str, Any] = {"approvals": [public_request(r) for r in pending]}
    while True:
        given = interrupt(asked)
        if deps.decisions_in_resume is None:
            return reread()
        refused = deps.decisions_in_resume(given, pending)
        now = reread()
        pending = [r for r in now if r.status is ApprovalStatus.PENDING]
        if not pending:
            return now
        asked = {"approvals": [public_request(r) for r in pending]}
        if refused is not None:
            asked["refused"] = refused
