"""Decisions an app hands its own graph's gate with ``Command(resume=...)``.

Every decision in the resume value on a pending request of the thread is recorded, with
every check ``rt.decide`` makes, whichever request the interrupt being answered names: the
queue shows a message's requests together, and a person may answer any of them. One that
cannot apply (another thread's request, a malformed one, a decider not allowed) is
refused with the reason, which the gate's next interrupt says (``refused``). A refusal is
never raised: LangGraph keeps a resume value for good, so raising would refuse every later
resume of the thread too. The same value is handed in again each time LangGraph runs the
node again; a decision it carries that is already recorded is not refused for that.

A refusal quotes what it was given, so it is masked as everything a person or a log sees
is: the values of the request's tool's sensitive fields (an edit's new account number)
are cut out of the log line and the refusal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.approvals.model import Decision
from agentrt.errors import ApprovalError
from agentrt.logs import get_logger
from agentrt.nodes.deps import RunDeps
from agentrt.runs.decisions import record_decision
from agentrt.tools.registry import EVERY_FIELD
from agentrt.tracing.shown import secret_values, shown

__all__ = ["decisions_given"]

logger = get_logger()

_RECORDED_AS = {
    "approve": (ApprovalStatus.APPROVED,),
    "reject": (ApprovalStatus.REJECTED,),
    "edit": (ApprovalStatus.EDITED, ApprovalStatus.APPROVED),  # an edit changing nothing
    "resolve": (ApprovalStatus.RESOLVED,),
    "retry": (ApprovalStatus.RETRIED,),
}


def decisions_given(deps: RunDeps, thread_id: str, given: Any) -> dict[str, str] | None:
    """Record the decisions ``given`` (a Decision, its dict, a list of them or
    ``{"decisions": [...]}``) on the thread's pending requests; why any was refused, or
    None. A value with no decision in it (``{"decided": True}``) records nothing."""
    refusals: list[tuple[str, str]] = []
    for item in _items(given):
        named = _approval_id(item)
        request = deps.store.get_approval(named) if isinstance(named, str) else None
        if request is not None and request.thread_id != thread_id:
            why = (
                "InvalidDecision",
                f"approval {named!r} is not a request of thread {thread_id!r}; decide it "
                "with rt.decide, or name one of this thread's requests (rt.approvals("
                f"thread_id={thread_id!r}))",
            )
        elif request is not None and _recorded(request, item):
            continue  # the same value, handed in again as LangGraph runs the node again
        else:
            try:
                record_decision(
                    deps.store,
                    deps.tools,
                    item,
                    clock=deps.store.clock,
                    where=deps.store.location,
                    redactor=deps.tracing.redactor,
                )
                continue
            except ApprovalError as exc:
                why = (type(exc).__name__, str(exc))
        kind, message = why[0], _masked(deps, request, item, why[1])
        logger.warning("decision on %r refused: %s", named, message)
        refusals.append((kind, message))
    if not refusals:
        return None
    return {"error": refusals[0][0], "message": "; ".join(m for _, m in refusals)}


def _items(given: Any) -> list[Any]:
    """The decisions in a resume value: each item that names an approval id."""
    if isinstance(given, Mapping) and "decisions" in given:
        given = given["decisions"]
    items = given if isinstance(given, list | tuple) else [given]
    return [i for i in items if _approval_id(i) is not None]


def _approval_id(item: Any) -> Any:
    named = item.get("approval_id") if isinstance(item, Mapping) else None
    return getattr(item, "approval_id", named)


def _recorded(request: ApprovalRequest, item: Any) -> bool:
    """True if ``request`` was decided as ``item`` says, by whom it names."""
    if request.status is ApprovalStatus.PENDING:
        return False
    try:
        parsed = Decision.parse(item)
    except ApprovalError:
        return False
    return parsed.by.id == request.decided_by and request.status in _RECORDED_AS.get(
        parsed.outcome, ()
    )


def _masked(deps: RunDeps, request: ApprovalRequest | None, item: Any, text: str) -> str:
    """``text`` as a log or a person may see it: the values of the sensitive fields of the
    request's tool cut out (every field's, when the request is not known)."""
    redactor = deps.tracing.redactor
    sensitive = deps.tools.sensitive_of(request.tool) if request is not None else EVERY_FIELD
    carried = {
        "args": item.get("args") if isinstance(item, Mapping) else getattr(item, "args", None),
        "result": item.get("result")
        if isinstance(item, Mapping)
        else getattr(item, "result", None),
    }
    known = secret_values(carried, redactor, sensitive)
    if request is not None:
        known += secret_values(request.args, redactor, sensitive)
    return str(shown(text, redactor, sensitive=sensitive, known=known))
