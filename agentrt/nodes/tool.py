"""tool: run the current action, or, for an irreversible tool, only prepare a preview."""

from __future__ import annotations

from typing import Any, Literal

from agentrt.nodes.common import (
    budget_stop,
    current_action,
    next_action,
    spent,
    tool_context,
    with_credentials,
)
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.spec import Node
from agentrt.state import ObservationKind, Outcome, RunState, Usage
from agentrt.steps import Steps, blocking
from agentrt.tools.contract import Effect, ToolContext, ToolSpec, to_json_text
from agentrt.tools.credentials import CredentialError
from agentrt.tools.execution import ToolFailure
from agentrt.tools.ledger import EffectInDoubt

__all__ = ["NODE", "failed_outcome", "ok_outcome", "only_reads", "run_action", "tool"]


def run_action(state: RunState, deps: RunDeps, spec: ToolSpec) -> Steps[dict[str, Any]]:
    """Call the tool for the current action, through the ledger if it has a side effect.

    Budget is checked first, so not one call past a limit starts. A failure of any kind
    becomes an Outcome the planner will see; an effect in doubt (the process died mid-call,
    or a non-idempotent call timed out) goes to the reconcile gate, never called again
    blindly. Under the async runtime the call is awaited (an async tool on the runtime's
    tool loop), and the store is written from a worker thread.
    """
    action = current_action(state)
    node = "commit" if spec.effect is Effect.IRREVERSIBLE else "tool"
    stop = budget_stop(state, deps, node=node, action=action, tool_calls=1, cost_usd=spec.cost_usd)
    if stop is not None:
        return stop
    usage = spent(state["usage"], spec)
    try:
        ctx = yield blocking(_ready, tool_context(state, action, deps), spec, deps, usage)
    except CredentialError as exc:  # nothing was called, nothing is spent
        return {"outcome": unresolved(action["step_id"], exc), "route": "verify"}
    try:
        with deps.tracing.tool_call(spec, action, "commit" if node == "commit" else "call") as call:
            if spec.effect is Effect.READ:
                called = yield from deps.runner.attempts(spec, action["args"], ctx)
                result, retries = called.result, called.retries
            else:
                held = deps.held_leases.get(ctx.thread_id)
                recorded = yield from deps.ledger.steps(
                    spec,
                    action["args"],
                    ctx,
                    deps.runner,
                    owner=None if held is None else held.owner,
                )
                result, retries = recorded.result, recorded.retries
            call.result(result, retries=retries)
    except EffectInDoubt:
        return {"usage": usage, "outcome": None, "route": "reconcile"}
    except ToolFailure as failure:
        return {
            "usage": usage,
            "outcome": failed_outcome(action["step_id"], failure),
            "route": "verify",
        }
    return {
        "usage": usage,
        "outcome": ok_outcome(action["step_id"], "done", result, retries),
        "route": "verify",
    }


def _ready(ctx: ToolContext, spec: ToolSpec, deps: RunDeps, usage: Usage) -> ToolContext:
    """The call's context with its credentials, then the run's usage with the call
    counted, on its row: one trip to a worker thread. A credential that cannot be resolved
    spends nothing.

    An effect's count is written before it runs. A read's goes with the tool's checkpoint,
    in its transaction, where the checkpointer can carry it: a transaction fewer a read,
    and the row keeps up with every checkpoint (a read cut short by a crash is made, and
    counted, again on resume, from the checkpoint before it)."""
    ready = with_credentials(ctx, spec, deps)
    saver = deps.checkpoints if spec.effect is Effect.READ else None
    if saver is None or not saver.hold_usage(ctx.thread_id, usage):
        deps.store.set_usage(ctx.thread_id, usage)
    return ready


def only_reads(kind: str, state: RunState, deps: RunDeps) -> bool:
    """Whether node ``kind`` is about to call a read, which acts on nothing: what policy
    decided need not be stored before it (agentrt.store.held), as a read is made again
    on resume after any crash before the tool's checkpoint, decided again first."""
    action = next_action(state) if kind == "tool" else None
    if action is None:
        return False  # no action to call: nothing to judge by (the node says what is wrong)
    spec = deps.tools.get(action["tool"])
    return spec is not None and spec.effect is Effect.READ


def ok_outcome(
    step_id: str, phase: Literal["preview", "done"], data: Any, retries: int = 0
) -> Outcome:
    """A successful result (or preview), as the planner and verify will see it."""
    return Outcome(
        step_id=step_id,
        phase=phase,
        kind=ObservationKind.OK.value,
        content=to_json_text(data),
        data=data,
        retries=retries,
    )


def failed_outcome(step_id: str, failure: ToolFailure) -> Outcome:
    """A failure with its contract kind; the content says the kind and how many retries."""
    tried = f" (after {failure.retries} retries)" if failure.retries else ""
    return Outcome(
        step_id=step_id,
        phase="done",
        kind=ObservationKind(failure.kind).value,
        content=f"{failure.kind} error{tried}: {failure.message}",
        data=None,
        retries=failure.retries,
    )


def unresolved(step_id: str, error: CredentialError) -> Outcome:
    """A call that did not happen because a credential it needs could not be resolved."""
    return failed_outcome(step_id, ToolFailure("permanent", str(error)))


def tool(state: RunState, deps: RunDeps) -> Steps[dict[str, Any]]:
    action = current_action(state)
    spec = deps.tools.get(action["tool"])
    assert spec is not None, "policy lets no unknown tool through"
    if spec.effect is not Effect.IRREVERSIBLE:
        update: dict[str, Any] = yield from run_action(state, deps, spec)
        return update
    # Plan, execute, verify, commit: an irreversible tool only previews here; commit acts.
    if spec.prepare is None:
        return {
            "outcome": ok_outcome(
                action["step_id"], "preview", {"tool": spec.name, "args": action["args"]}
            ),
            "route": "verify",
        }
    try:
        ctx = yield blocking(
            with_credentials, tool_context(state, action, deps, preview=True), spec, deps
        )
    except CredentialError as exc:
        return {"outcome": unresolved(action["step_id"], exc), "route": "verify"}
    try:
        with deps.tracing.tool_call(spec, action, "preview") as call:
            called = yield from deps.runner.attempts(spec, action["args"], ctx, fn=spec.prepare)
            call.result(called.result, retries=called.retries)
    except ToolFailure as failure:  # a failed preview is an observation too
        return {"outcome": failed_outcome(action["step_id"], failure), "route": "verify"}
    return {  # the preview in its JSON form, credentials cut out (ToolRunner.attempts)
        "outcome": ok_outcome(action["step_id"], "preview", called.result, called.retries),
        "route": "verify",
    }


NODE = Node(
    name="tool", steps=tool, routes=("verify", "budget_gate", "reconcile", "finish"), acts=True
)
