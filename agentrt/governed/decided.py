"""A person's word on one governed call, found whatever the policy says by now.

LangGraph runs an app's tool node again from the top when its gate is answered, and the
call is judged afresh then. If the policy changed meanwhile (``rt.set_policy``, or a rule
reading usage that flipped), the verdict may let the call through without asking, or ask
on other terms (a new request id). A person's rejection or edit of this very call must
stand all the same, as in the run graph (agentrt.nodes.approval), so the call's own
requests are looked up by its step before the verdict is acted on.
"""

from __future__ import annotations

from agentrt.approvals import ApprovalRequest, ApprovalStatus
from agentrt.approvals.model import ApprovalQuery
from agentrt.digests import args_digest
from agentrt.nodes.approval import settled
from agentrt.state import Action
from agentrt.store.protocols import ApprovalStore

__all__ = ["word_on"]

_PAGE = 500

# Which word wins when one call has several (asked again on other terms): a refusal, then
# an edit, then a question still open. An approval is no word here: policy decides again.
_RANK = {
    ApprovalStatus.REJECTED: 0,
    ApprovalStatus.EXPIRED: 0,
    ApprovalStatus.EDITED: 1,
    ApprovalStatus.PENDING: 2,
}


def word_on(store: ApprovalStore, thread_id: str, action: Action) -> ApprovalRequest | None:
    """The request asked about ``action`` (its step, its validated arguments and the edit
    it came from) whose decision stands over any verdict: rejected, expired or edited to
    other arguments, or still pending (its answer may be in the resume value). None if no
    such request was asked: the verdict decides."""
    digest = args_digest(action["args"])
    edited_from = action.get("edited_from")
    best: tuple[int, ApprovalRequest] | None = None
    for asked in _requests_of(store, thread_id, action["tool"]):
        if (
            asked.kind != "action"
            or asked.step_id != action["step_id"]
            or asked.edited_from != edited_from
            or asked.args_digest != digest
        ):
            continue
        final = settled(store, asked)  # an expired one hands over to its escalation
        if final.status is ApprovalStatus.EDITED and final.edited_args == final.args:
            continue  # an edit changing nothing approves
        rank = _RANK.get(final.status)
        if rank is not None and (best is None or rank <= best[0]):
            best = (rank, asked)  # the latest of a rank: asked in order
    return None if best is None else best[1]


def _requests_of(store: ApprovalStore, thread_id: str, tool: str) -> list[ApprovalRequest]:
    """Every request of the thread to call ``tool``, whatever its status, oldest first."""
    found: list[ApprovalRequest] = []
    after: tuple[float, str] | None = None
    while True:
        page = store.list_approvals(
            ApprovalQuery(status=None, thread_id=thread_id, tool=tool, after=after, limit=_PAGE)
        )
        found += page
        if len(page) < _PAGE:
            return found
        after = (page[-1].requested_at, page[-1].id)
