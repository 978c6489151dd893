"""tool: run the current action, or, for an irreversible tool, only prepare a preview."""

from __future__ import annotations

from typing import Any

from agentrt.graphs.deps import RunDeps
from agentrt.nodes.common import budget_stop, current_action, spent, tool_context
from agentrt.state import ObservationKind, Outcome, RunState, Stop
from agentrt.tools.contract import Effect, ToolSpec, to_json_text
from agentrt.tools.ledger import EffectInDoubt

__all__ = ["run_action", "tool"]


def run_action(state: RunState, deps: RunDeps, spec: ToolSpec) -> dict[str, Any]:
    """Call the tool for the current action, through the ledger if it has a side effect.

    Budget is checked first, so not one call past a limit starts. A tool's failure becomes
    an Outcome the planner will see; an effect in doubt ends the run rather than risk a
    second charge, card, email.
    """
    action = current_action(state)
    node = "commit" if spec.effect is Effect.IRREVERSIBLE else "tool"
    stop = budget_stop(state, deps, node=node, action=action, tool_calls=1, cost_usd=spec.cost_usd)
    if stop is not None:
        return stop
    ctx = tool_context(state, action, deps)
    usage = spent(state["usage"], spec)
    deps.store.set_usage(state["thread_id"], usage)  # the row shows the call before it runs
    try:
        if spec.effect is Effect.READ:
            result = spec.call(action["args"], ctx)
        else:
            result = deps.ledger.execute(spec, action["args"], ctx).result
    except EffectInDoubt as exc:
        return {"usage": usage, "stop": Stop(status="failed", reason=str(exc)), "route": "finish"}
    except Exception as exc:  # the error contract: a tool failure is an observation
        return {"usage": usage, "outcome": _failed(action["step_id"], exc), "route": "verify"}
    outcome = Outcome(
        step_id=action["step_id"],
        phase="done",
        kind=ObservationKind.OK.value,
        content=to_json_text(result),
        data=result,
    )
    return {"usage": usage, "outcome": outcome, "route": "verify"}


def _failed(step_id: str, exc: Exception) -> Outcome:
    kind = getattr(exc, "kind", "permanent")
    return Outcome(
        step_id=step_id,
        phase="done",
        kind=ObservationKind.ERROR.value,
        content=f"{kind} error: {type(exc).__name__}: {exc}",
        data=None,
    )


def tool(state: RunState, deps: RunDeps) -> dict[str, Any]:
    action = current_action(state)
    spec = deps.tools.get(action["tool"])
    assert spec is not None, "policy lets no unknown tool through"
    if spec.effect is not Effect.IRREVERSIBLE:
        return run_action(state, deps, spec)
    # Plan, execute, verify, commit: an irreversible tool only previews here; commit acts.
    try:
        preview = spec.call_prepare(action["args"], tool_context(state, action, deps))
    except Exception as exc:  # a failed preview is an observation too
        return {"outcome": _failed(action["step_id"], exc), "route": "verify"}
    outcome = Outcome(
        step_id=action["step_id"],
        phase="preview",
        kind=ObservationKind.OK.value,
        content=to_json_text(preview),
        data=preview,
    )
    return {"outcome": outcome, "route": "verify"}
