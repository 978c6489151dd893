"""What the policy engine answers: a decision about one action, and its explanation."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Literal

from agentrt.policies.model import Rule

__all__ = ["Explanation", "Outcome", "PolicyDecision", "RuleCheck"]

Outcome = Literal["allow", "deny", "require_approval"]


@dataclass(frozen=True, kw_only=True, slots=True)
class PolicyDecision:
    """What the policy decided about one action, and why."""

    outcome: Outcome
    """allow, deny or require_approval."""
    rule_id: str | None
    """The rule that decided; None for the scopes check and for the default."""
    matched: tuple[str, ...]
    """Every rule that matched, in file order (the deciding one among them)."""
    reason: str
    """Why, in words."""
    required_role: str | None = None
    """For require_approval: who may approve (the deciding rule's role)."""
    required_roles: tuple[str, ...] = ()
    """For require_approval: every role the approver must hold, one per matching
    approval rule that names one, the deciding rule's first."""
    four_eyes: bool = False
    """For require_approval: the requester may not approve."""
    expires_in: float | None = None
    """For require_approval: seconds until the request expires."""
    on_expiry: Literal["reject", "escalate"] = "reject"
    """For require_approval: what an expired request becomes."""
    escalate_to: str | None = None
    """For require_approval with on_expiry escalate: the role asked next."""
    policy: str = ""
    """Policy name."""
    policy_version: str = ""
    """Content hash of the policy that decided."""

    def __post_init__(self) -> None:
        if self.required_role and not self.required_roles:
            object.__setattr__(self, "required_roles", (self.required_role,))

    def to_dict(self) -> dict[str, Any]:
        """The decision as plain JSON data (tuples as lists), as a run's state keeps it."""
        return {
            k: list(v) if isinstance(v, tuple) else v
            for k, v in ((f.name, getattr(self, f.name)) for f in fields(self))
        }


@dataclass(frozen=True, kw_only=True, slots=True)
class RuleCheck:
    """How one rule fared against one action."""

    rule: Rule
    """The rule, as the file says it."""
    matched: bool
    """Whether it took part in the decision."""
    why: str
    """What made it match or not, in words."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Explanation:
    """A decision with the story of every rule: what `agentrt policy explain` prints."""

    decision: PolicyDecision
    """What evaluate() decides for the same action."""
    checks: tuple[RuleCheck, ...]
    """Every rule in file order; empty when the action was denied before any rule ran
    (an unknown tool, or scopes the principal lacks)."""
