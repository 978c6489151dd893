"""verify: check what the tool returned before the planner (or commit) relies on it."""

from __future__ import annotations

import json
from typing import Any

from agentrt.artifacts import ArtifactRef, is_artifact_ref
from agentrt.nodes.common import abandon_plan, advance, current_action, observation_event
from agentrt.nodes.deps import RunDeps
from agentrt.nodes.spec import Node
from agentrt.state import ObservationKind, RunState, storable_text
from agentrt.tools.contract import ToolSpec

__all__ = ["NODE", "verify"]


def _postcondition(spec: ToolSpec, args: dict[str, Any], data: Any) -> str | None:
    """None if the tool's own check accepts the result, else why not."""
    if spec.verify is None:
        return None
    try:
        verdict = spec.verify(args, data)
    except Exception as exc:  # a check that crashes is a check that failed
        return f"postcondition of {spec.name!r} raised {type(exc).__name__}: {exc}"
    if verdict is False:
        return f"postcondition of {spec.name!r} rejected the result"
    if isinstance(verdict, str):
        return f"postcondition of {spec.name!r} failed: {verdict}"
    return None


def _as_returned(spec: ToolSpec, data: Any, deps: RunDeps, *, preview: bool) -> Any:
    """What the tool returned: a result the runtime kept as an artifact (too large to
    inline) is read back when the tool's result schema does not take the reference."""
    if not is_artifact_ref(data) or spec.check_output(data, preview=preview) is None:
        return data
    ref = ArtifactRef.from_json(data)
    content = deps.store.artifact_content(ref.digest)
    if content is None:
        return data
    text = content.decode("utf-8", errors="replace")
    return json.loads(text) if ref.media_type == "application/json" else text


def verify(state: RunState, deps: RunDeps) -> dict[str, Any]:
    action = current_action(state)
    outcome = state["outcome"]
    assert outcome is not None
    assert outcome["step_id"] == action["step_id"]
    retries = outcome.get("retries", 0)
    if outcome["kind"] != ObservationKind.OK:
        return abandon_plan(state, outcome["kind"], outcome["content"], retries=retries)
    spec = deps.tools.get(action["tool"])
    assert spec is not None
    preview = outcome["phase"] == "preview"
    # The schema first (a result of the wrong shape makes the postcondition meaningless),
    # then the tool's own check. Either failing is permanent: the same call would fail again.
    data = _as_returned(spec, outcome["data"], deps, preview=preview)
    problem = spec.check_output(data, preview=preview) or _postcondition(spec, action["args"], data)
    if problem is not None:
        # The tool's check says why in its own words (or its exception's), which may quote
        # raw bytes: made text here, as the observation goes to the log and the next prompt.
        return abandon_plan(
            state, ObservationKind.PERMANENT, storable_text(problem), retries=retries
        )
    if preview:
        # The preview of an irreversible effect passed: only now may commit perform it.
        return {"route": "commit"}
    update = advance(state)
    update["events"] = [
        observation_event(action, ObservationKind.OK, outcome["content"], retries=retries)
    ]
    return update


NODE = Node(name="verify", body=verify, routes=("policy", "plan", "commit", "finish"), pure=True)
