"""Human gates. This package's door holds the values every layer shares: the request, its
status, a person's decision, and the checks a decision passes. Its other rooms work on a
store and are imported by name: ``queue`` (pages of the review queue), ``expiry`` (what
becomes of a request nobody decided), ``decisions`` (recording one), ``display`` (a request
as a person sees it)."""

from agentrt.approvals.checks import check_decision
from agentrt.approvals.model import ApprovalPage, ApprovalRequest, ApprovalStatus, Decision

__all__ = [
    "ApprovalPage",
    "ApprovalRequest",
    "ApprovalStatus",
    "Decision",
    "check_decision",
]
