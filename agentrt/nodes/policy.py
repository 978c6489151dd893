"""policy: validate the current action's arguments, then ask the policy whether it may run."""

from __future__ import annotations

from typing import Any, cast

from agentrt.events import policy_changed_event, policy_event
from agentrt.nodes.common import abandon_plan, advance, current_action, observation_event
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.spec import Node
from agentrt.principal import Principal
from agentrt.state import (
    Action,
    Event,
    GateItem,
    ObservationKind,
    PolicyVerdict,
    RunState,
    Stop,
)
from agentrt.tools.contract import ToolArgsError

__all__ = ["MAX_RECHECKS", "NODE", "judge", "policy"]


def judge(action: Action, state: RunState, deps: RunDeps) -> tuple[dict[str, Any], PolicyVerdict]:
    """The action's validated arguments and the policy's verdict on them.

    Raises ToolArgsError (or ValueError for a call whose arguments were not JSON) if the
    arguments do not fit the tool's schema.
    """
    spec = deps.tools.get(action["tool"])
    args = action["args"]
    if spec is not None:
        if "parse_error" in action:
            raise ValueError(f"arguments for tool {action['tool']!r}: {action['parse_error']}")
        args = spec.validate_args(action["args"])
    with deps.tracing.policy_check(action) as check:
        decision = deps.policy.evaluate(
            spec,
            action["tool"],
            args,
            Principal.from_dict(state["principal"]),
            run={
                "thread_id": state["thread_id"],
                "goal": state["goal"],
                "step_id": action["step_id"],
            },
            usage=state["usage"],
            budget=state.get("budget"),
        )
        check.decision(decision)
    # The verdict is the decision as state keeps it: plain JSON data, for this step.
    verdict = cast(PolicyVerdict, {"step_id": action["step_id"], **decision.to_dict()})
    return args, verdict


MAX_RECHECKS = 25
"""How often one action may come back to policy with no person deciding in between.

Every cycle of the run graph that does not pass the planner (whose model calls the budget
bounds) passes policy on one action; a legitimate one comes back once or twice (an edit, a
policy changed while the run waited), each time after a person acted. More means a loop:
the run stops with an error instead of spinning and filling the disk with checkpoints.
"""


def policy(state: RunState, deps: RunDeps) -> dict[str, Any]:
    action = current_action(state)
    rechecks = state.get("rechecks", 0) + 1 if state.get("checking") == action["step_id"] else 0
    if rechecks > MAX_RECHECKS:
        reason = (
            f"action {action['tool']!r} (step {action['step_id']}) came back to policy "
            f"{rechecks} times without running or a person deciding: the run went round a "
            "loop and was stopped; report it with this run's trace"
        )
        return {"stop": Stop(status="failed", reason=reason), "route": "finish"}
    loop_guard = {"checking": action["step_id"], "rechecks": rechecks}
    return _policy(state, deps, action) | loop_guard


def _policy(state: RunState, deps: RunDeps, action: Action) -> dict[str, Any]:
    try:
        args, verdict = judge(action, state, deps)
    except (ToolArgsError, ValueError) as exc:
        return abandon_plan(state, ObservationKind.INVALID_ARGS, str(exc))
    events = [
        *_version_change(state, verdict),
        policy_event(verdict),
    ]
    if action["step_id"] in (state.get("gate_decisions") or {}):
        # A person refused or edited this action in the gate it shared with an earlier one:
        # their word stands whatever the verdict is now, as for a lone action. The approval
        # node acts on it (an edit comes back here with the edited arguments).
        return {"verdict": verdict, "gate": None, "events": events, "route": "approval"}
    if verdict["outcome"] == "deny":
        update = abandon_plan(
            state, ObservationKind.DENIED, f"policy denied {action['tool']!r}: {verdict['reason']}"
        )
        update["events"][:0] = events
        return update | {"verdict": verdict}

    if verdict["outcome"] == "allow" and (refusal := _refused_earlier(state, action)):
        # A person refused an earlier action of this plan; a later one that no person
        # approved may depend on it ("tell the customer the refund went out"), so it does
        # not run. Later actions a person approved in the same gate still do: they were
        # decided knowing the refusal.
        update = advance(state)
        update["events"] = [
            *events,
            observation_event(
                action, ObservationKind.SKIPPED, f"not run: {refusal} earlier in this plan"
            ),
        ]
        return update | {"verdict": verdict}

    # Validation may have normalised the arguments (e.g. "42" -> 42): what runs, what is
    # approved and what the idempotency key covers must be the same thing.
    allowed: dict[str, Any] = {
        "verdict": verdict,
        "gate": None,
        "events": events,
        "route": "tool" if verdict["outcome"] == "allow" else "approval",
    }
    if args != action["args"]:
        allowed["plan"] = _with_args(state, args)
    if verdict["outcome"] == "require_approval":
        allowed["gate"] = [GateItem(action={**action, "args": args}, verdict=verdict)]
        allowed["gate"] += _later_gated(state, deps)
    return allowed


def _later_gated(state: RunState, deps: RunDeps) -> list[GateItem]:
    """The plan's later actions that will need a person too, so one gate asks about all.

    Each of them passes policy again when its turn comes; the decision made here is found
    then by its deterministic id, so nobody is asked twice.
    """
    plan = state["plan"]
    assert plan is not None
    decided = state.get("gate_decisions") or {}
    gated: list[GateItem] = []
    for action in plan["actions"][state.get("cursor", 0) + 1 :]:
        if action["step_id"] in decided:
            continue  # a person refused or edited it at an earlier gate: that word stands
        try:
            args, verdict = judge(action, state, deps)
        except (ToolArgsError, ValueError):
            continue  # told to the planner as invalid_args when its turn comes
        if verdict["outcome"] == "require_approval":
            gated.append(GateItem(action={**action, "args": args}, verdict=verdict))
    return gated


def _refused_earlier(state: RunState, action: Action) -> str | None:
    """How an earlier action of the current plan was refused by a person, if one was."""
    revision = action["step_id"].split(".", 1)[0]
    for event in reversed(state.get("events", [])):
        if event["type"] == "plan":
            return None  # reached the start of this plan
        data = event["data"]
        if (
            event["type"] == "observation"
            and event.get("step_id", "").split(".", 1)[0] == revision
            and data["kind"] in (ObservationKind.REJECTED, ObservationKind.EXPIRED)
        ):
            return f"{data['tool']} (step {event['step_id']}) was {data['kind']}"
    return None


def _with_args(state: RunState, args: dict[str, Any]) -> Any:
    plan = state["plan"]
    assert plan is not None
    cursor = state.get("cursor", 0)
    actions = [dict(a) for a in plan["actions"]]
    actions[cursor]["args"] = args
    return {**plan, "actions": actions}


def _version_change(state: RunState, verdict: PolicyVerdict) -> list[Event]:
    """A policy_changed event if this decision used another policy than the run's last one.

    A policy can be swapped between runs and while a run waits; the run's history says
    when its decisions started coming from another version.
    """
    for event in reversed(state.get("events", [])):
        if event["type"] in ("policy", "policy_changed"):
            before = event["data"]
            name = before.get("policy", before.get("to_policy"))
            version = before.get("policy_version", before.get("to_version"))
            if (name, version) == (verdict["policy"], verdict["policy_version"]):
                return []
            return [
                policy_changed_event(
                    from_policy=name,
                    from_version=version,
                    to_policy=verdict["policy"],
                    to_version=verdict["policy_version"],
                )
            ]
    return []


NODE = Node(
    name="policy",
    body=policy,
    routes=("tool", "approval", "policy", "plan", "finish"),
    pure=True,
)
