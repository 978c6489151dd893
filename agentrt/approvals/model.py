"""Human gates as values: a request for a person, its status, and a person's decision.

The approvals table is the truth. A gate node writes a request before it interrupts the
graph; a decision is checked against the stored request (approvals.checks) before any graph
runs, and recorded with a conditional update, so of two racing deciders exactly one wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal, TypedDict

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from typing_extensions import Unpack

from agentrt.errors import ConfigError, InvalidDecision
from agentrt.principal import Principal

__all__ = [
    "ApprovalPage",
    "ApprovalQuery",
    "ApprovalRequest",
    "ApprovalStatus",
    "Decided",
    "Decision",
]


class ApprovalStatus(StrEnum):
    """Where an approval request is in its life."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EDITED = "edited"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    RESOLVED = "resolved"
    """reconcile: a person said the effect happened, and gave its result."""
    RETRIED = "retried"
    """reconcile: a person said the effect did not happen; the call runs again."""


@dataclass(frozen=True, kw_only=True, slots=True)
class ApprovalRequest:
    """A request for a person to approve one action (or, kind "reconcile", to settle one;
    kind "budget", to raise a limit the run reached)."""

    id: str
    """Deterministic from thread, step and kind."""
    thread_id: str
    """The run that waits."""
    step_id: str
    """The plan step the action belongs to."""
    kind: Literal["action", "reconcile", "budget"]
    """action: may this run? reconcile: did an interrupted effect happen? budget: raise a
    limit? (args then hold the limit, its value, the usage and what the next action needs)"""
    tool: str
    """Tool the action calls."""
    args: dict[str, Any]
    """Arguments, exactly as they will run."""
    args_digest: str
    """sha256 of the canonical arguments; a decision may bind itself to it."""
    edited_args: dict[str, Any] | None = None
    """For an edit decision: the arguments to run instead (validated against the schema)."""
    result: Any = None
    """For a resolve decision (kind reconcile): the result the effect had."""
    rule_id: str | None = None
    """Policy rule that asked for approval."""
    reason: str
    """Why approval is needed, from the rule."""
    required_role: str | None
    """Role the approver must hold; None means any principal may decide. When several
    rules asked, the deciding rule's role (every one is in ``required_roles``)."""
    four_eyes: bool = False
    """If True, the run's own principal (and whoever edited the action into this request)
    may not approve."""
    requested_by: str
    """Principal id the run acts for."""
    required_roles: tuple[str, ...] = ()
    """Every role the approver must hold: each require_approval rule that matched named
    one. Empty on records from before combined requirements: then ``required_role``."""
    edited_by: str | None = None
    """Who edited the action into this request (an edit is a new request for the edited
    arguments); under four-eyes the editor may not approve it either."""
    edited_from: str | None = None
    """Id of the request whose edit made this one; each edit is a new link, never a cycle."""
    tenant: str | None
    """Tenant of the run."""
    requested_at: float
    """Epoch seconds."""
    expires_at: float | None = None
    """Epoch seconds after which a decision is refused; None: never."""
    status: ApprovalStatus = ApprovalStatus.PENDING
    """pending until decided."""
    decided_by: str | None = None
    """Principal id of the decider."""
    decided_at: float | None = None
    """Epoch seconds of the decision."""
    comment: str | None = None
    """The decider's reason or note."""
    on_expiry: Literal["reject", "escalate"] = "reject"
    """What the request becomes when it expires undecided (from the policy rule)."""
    escalate_to: str | None = None
    """For on_expiry escalate: the role the follow-up request requires."""
    escalated_from: str | None = None
    """Id of the expired request this one escalates."""
    escalated_to: str | None = None
    """Id of the request that took over when this one expired."""
    superseded: str | None = None
    """Why a later message of the thread cancelled the request before its action ran
    (``superseded by message #2``); a decision given before keeps its decider, time and
    comment."""

    @property
    def roles(self) -> tuple[str, ...]:
        """Every role an approver must hold (empty: anyone may decide)."""
        if self.required_roles:
            return self.required_roles
        return (self.required_role,) if self.required_role else ()

    @property
    def requesters(self) -> tuple[str, ...]:
        """Who asked for these exact arguments: the run's principal, and the editor."""
        return (self.requested_by,) + ((self.edited_by,) if self.edited_by else ())

    @property
    def waited_seconds(self) -> float | None:
        """How long the request waited for a person; None while it is pending."""
        if self.decided_at is None:
            return None
        return max(0.0, self.decided_at - self.requested_at)


class ApprovalPage(list[ApprovalRequest]):
    """One page of the review queue; pass ``next_cursor`` back for the following page."""

    next_cursor: str | None

    def __init__(self, items: Iterable[ApprovalRequest], next_cursor: str | None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor
        """None on the last page."""


_DECIDER = "{'id': 'bob', 'roles': ['approver'], 'tenant': 'acme', 'scopes': []}"
"""A decider's shape, as a refusal shows it (roles and scopes lists; tenant, scopes optional)."""
_DECIDER_FIELDS = frozenset({"id", "roles", "tenant", "scopes"})


class Terms(TypedDict, total=False):
    """What any decision may add: why, and the arguments it was made for."""

    reason: str | None
    """Why; kept with the decision (a reject must give one)."""
    args_digest: str | None
    """If set, the decision only applies to a request with exactly these arguments."""


class Decision(BaseModel):
    """A person's answer to an approval request.

    Build one with approve, reject or edit (kind action), or resolve or retry (kind
    reconcile: an effect whose outcome nobody recorded)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    approval_id: str = Field(min_length=1)
    """Id of the request this decides."""
    outcome: Literal["approve", "reject", "edit", "resolve", "retry"]
    """What the person decided."""
    by: Principal
    """Who decided."""
    reason: str | None = None
    """Why; required for reject."""
    args: dict[str, Any] | None = None
    """For edit: the arguments to run instead."""
    result: Any = None
    """For resolve: the result the effect had, as the tool would have returned it."""
    args_digest: str | None = None
    """If set, the decision only applies to a request with exactly these arguments."""

    @field_validator("by", mode="before")
    @classmethod
    def _principal(cls, value: Any) -> Any:
        if isinstance(value, Principal):
            return value
        if not isinstance(value, Mapping):
            raise ValueError(
                f"by must be a Principal, got {value!r}; a decider is written {_DECIDER}"
            )
        unknown = sorted(set(value) - _DECIDER_FIELDS, key=str)
        if unknown:
            raise ValueError(f"by has no field {unknown!r}; a decider is written {_DECIDER}")
        # Principal's own refusal is a ConfigError, which pydantic would let through (it
        # wraps only ValueError): as one it becomes this decision's InvalidDecision.
        try:
            return Principal.from_dict(value)
        except ConfigError as exc:
            raise ValueError(f"{exc}; a decider is written {_DECIDER}") from None

    @model_validator(mode="after")
    def _consistent(self) -> Decision:
        if self.outcome == "reject" and not (self.reason and self.reason.strip()):
            raise ValueError("a reject decision needs a reason")
        if self.outcome == "edit" and self.args is None:
            raise ValueError("an edit decision needs args")
        if self.outcome != "edit" and self.args is not None:
            raise ValueError(f"args belong to an edit decision, not to {self.outcome!r}")
        if self.outcome == "resolve" and "result" not in self.model_fields_set:
            raise ValueError("a resolve decision needs the result the effect had")
        if self.outcome != "resolve" and self.result is not None:
            raise ValueError(f"result belongs to a resolve decision, not to {self.outcome!r}")
        return self

    @classmethod
    def parse(cls, data: Any) -> Decision:
        """Validate a decision from outside (JSON, CLI); errors become InvalidDecision."""
        if isinstance(data, Decision):
            return data
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'decision'}: {e['msg']} "
                f"(got {e.get('input')!r})"
                for e in exc.errors()
            )
            raise InvalidDecision(
                f"malformed decision {data!r}: {problems}. Build one with Decision.approve(), "
                "Decision.reject(), Decision.edit(), Decision.resolve() or Decision.retry()",
                approval_id=data.get("approval_id") if isinstance(data, Mapping) else None,
            ) from None

    @classmethod
    def _of(cls, approval_id: str, outcome: str, **fields: Any) -> Decision:
        return cls.parse({"approval_id": approval_id, "outcome": outcome, **fields})

    @classmethod
    def approve(cls, approval_id: str, *, by: Principal, **terms: Unpack[Terms]) -> Decision:
        """Approve the action as requested."""
        return cls._of(approval_id, "approve", by=by, **terms)

    @classmethod
    def reject(
        cls, approval_id: str, *, by: Principal, reason: str, args_digest: str | None = None
    ) -> Decision:
        """Refuse the action; the planner sees the reason."""
        return cls._of(approval_id, "reject", by=by, reason=reason, args_digest=args_digest)

    @classmethod
    def edit(
        cls, approval_id: str, *, args: Mapping[str, Any], by: Principal, **terms: Unpack[Terms]
    ) -> Decision:
        """Run the action with other arguments; they go through the policy again."""
        # A copy of a mapping; anything else goes as it is, for parse to refuse by name.
        edited = dict(args) if isinstance(args, Mapping) else args
        return cls._of(approval_id, "edit", by=by, args=edited, **terms)

    @classmethod
    def raise_limit(
        cls, approval_id: str, *, limit: str, to: float, by: Principal, reason: str | None = None
    ) -> Decision:
        """Answer a "budget" request: set ``limit`` (the one that tripped) to ``to``, higher
        than before and past what the run used (and its next action needs), and let the run
        go on. Reject the request to end the run instead."""
        return cls._of(approval_id, "edit", by=by, reason=reason, args={limit: to})

    @classmethod
    def resolve(
        cls, approval_id: str, *, result: Any, by: Principal, **terms: Unpack[Terms]
    ) -> Decision:
        """Settle an effect in doubt: it happened, and ``result`` is what it returned."""
        return cls._of(approval_id, "resolve", by=by, result=result, **terms)

    @classmethod
    def retry(cls, approval_id: str, *, by: Principal, **terms: Unpack[Terms]) -> Decision:
        """Settle an effect in doubt: it did not happen; call the tool again (same key)."""
        return cls._of(approval_id, "retry", by=by, **terms)


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalQuery:
    """Which approval requests to list: each given field must match."""

    status: str | None = "pending"
    """None: every status."""
    tenant: str | None = None
    role: str | None = None
    """Any role a request needs."""
    thread_id: str | None = None
    tool: str | None = None
    """Requests to call this tool."""
    rule_id: str | None = None
    """Requests this rule asked for."""
    requested_before: float | None = None
    """Requests asked at or before this time (epoch seconds): waiting at least so long."""
    after: tuple[float, str] | None = None
    """Start past this (requested_at, id): the queue's cursor."""
    limit: int = 100


@dataclass(frozen=True, slots=True, kw_only=True)
class Decided:
    """A decision as it is written onto its request."""

    status: ApprovalStatus
    """What the request becomes."""
    by: str
    comment: str | None = None
    edited_args: dict[str, Any] | None = None
    """For an edit: the arguments to run instead."""
    result: Any = None
    """For a resolve: the result the effect had."""
