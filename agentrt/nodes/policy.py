"""policy: validate the current action's arguments, then ask the policy whether it may run."""

from __future__ import annotations

from typing import Any

from agentrt.graphs.deps import RunDeps
from agentrt.nodes.common import abandon_plan, current_action
from agentrt.policies import PolicyDecision
from agentrt.principal import Principal
from agentrt.state import Event, ObservationKind, PolicyVerdict, RunState
from agentrt.tools.contract import ToolArgsError

__all__ = ["policy"]


def policy(state: RunState, deps: RunDeps) -> dict[str, Any]:
    action = current_action(state)
    spec = deps.tools.get(action["tool"])
    args = action["args"]
    if spec is not None:
        if "parse_error" in action:
            return abandon_plan(
                state,
                ObservationKind.INVALID_ARGS,
                f"arguments for tool {action['tool']!r}: {action['parse_error']}",
            )
        try:
            args = spec.validate_args(action["args"])
        except ToolArgsError as exc:
            return abandon_plan(state, ObservationKind.INVALID_ARGS, str(exc))

    decision = deps.policy.evaluate(
        spec,
        action["tool"],
        args,
        Principal.from_dict(state["principal"]),
        run={"thread_id": state["thread_id"], "goal": state["goal"], "step_id": action["step_id"]},
        usage=state["usage"],
        budget=state.get("budget"),
    )
    verdict = PolicyVerdict(
        step_id=action["step_id"],
        outcome=decision.outcome,
        rule_id=decision.rule_id,
        matched=list(decision.matched),
        reason=decision.reason,
        required_role=decision.required_role,
        four_eyes=decision.four_eyes,
        expires_in=decision.expires_in,
        policy=decision.policy,
        policy_version=decision.policy_version,
    )
    events = [
        *_version_change(state, decision),
        Event(type="policy", step_id=action["step_id"], data=dict(verdict)),
    ]
    if decision.outcome == "deny":
        update = abandon_plan(
            state, ObservationKind.DENIED, f"policy denied {action['tool']!r}: {decision.reason}"
        )
        update["events"][:0] = events
        return update | {"verdict": verdict}

    # Validation may have normalised the arguments (e.g. "42" -> 42): what runs, what is
    # approved and what the idempotency key covers must be the same thing.
    allowed: dict[str, Any] = {
        "verdict": verdict,
        "events": events,
        "route": "tool" if decision.outcome == "allow" else "approval",
    }
    if args != action["args"]:
        allowed["plan"] = _with_args(state, args)
    return allowed


def _with_args(state: RunState, args: dict[str, Any]) -> Any:
    plan = state["plan"]
    assert plan is not None
    cursor = state.get("cursor", 0)
    actions = [dict(a) for a in plan["actions"]]
    actions[cursor]["args"] = args
    return {**plan, "actions": actions}


def _version_change(state: RunState, decision: PolicyDecision) -> list[Event]:
    """A policy_changed event if this decision used another policy than the run's last one.

    A policy can be swapped between runs and while a run waits; the run's history says
    when its decisions started coming from another version.
    """
    for event in reversed(state.get("events", [])):
        if event["type"] in ("policy", "policy_changed"):
            before = event["data"]
            name = before.get("policy", before.get("to_policy"))
            version = before.get("policy_version", before.get("to_version"))
            if (name, version) == (decision.policy, decision.policy_version):
                return []
            return [
                Event(
                    type="policy_changed",
                    data={
                        "from_policy": name,
                        "from_version": version,
                        "to_policy": decision.policy,
                        "to_version": decision.policy_version,
                    },
                )
            ]
    return []
