"""Human gates: approval requests, decisions, and the checks a decision must pass.

The approvals table is the truth. The approval node writes a request before it interrupts
the graph; AgentRuntime.decide validates a decision against the stored request before any
graph runs, and records it with a conditional update so that of two racing deciders
exactly one wins.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agentrt.errors import (
    AlreadyDecided,
    ApprovalExpired,
    ConfigError,
    InvalidDecision,
    NotAuthorized,
)
from agentrt.principal import Principal

if TYPE_CHECKING:
    from agentrt.tools.registry import ToolRegistry
    from agentrt.tracing.redact import Redactor

__all__ = [
    "ApprovalPage",
    "ApprovalRequest",
    "ApprovalStatus",
    "Decision",
    "approval_id",
    "args_digest",
    "check_decision",
    "decode_cursor",
    "encode_cursor",
    "escalation_of",
    "masked",
    "shown_args",
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


def canonical_json(value: Any) -> str:
    """One spelling per value: sorted keys, no spaces, so digests are stable."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def args_digest(args: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of a tool call's arguments."""
    return hashlib.sha256(canonical_json(dict(args)).encode()).hexdigest()


def approval_id(thread_id: str, step_id: str, kind: str) -> str:
    """Deterministic id, so a re-run of the approval node finds its own request again."""
    digest = hashlib.sha256(canonical_json([thread_id, step_id, kind]).encode()).hexdigest()
    return f"apr_{digest[:20]}"


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
    rule_id: str | None
    """Policy rule that asked for approval."""
    reason: str
    """Why approval is needed, from the rule."""
    required_role: str | None
    """Role the approver must hold; None means any principal may decide. When several
    rules asked, the deciding rule's role (every one is in ``required_roles``)."""
    four_eyes: bool
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
    expires_at: float | None
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


def encode_cursor(request: ApprovalRequest) -> str:
    """An opaque queue position just after ``request``.

    The queue is ordered by (requested_at, id) and a page starts strictly after its cursor,
    so requests added meanwhile never shift a page or make it repeat a row.
    """
    raw = canonical_json([request.requested_at, request.id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """Inverse of encode_cursor; ConfigError for anything else."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, rid = json.loads(raw)
        if isinstance(at, bool) or not isinstance(at, int | float) or not isinstance(rid, str):
            raise ValueError(cursor)
    except (ValueError, TypeError, binascii.Error):
        raise ConfigError(
            f"queue cursor {cursor!r} is not one this queue handed out; pass the next_cursor "
            "of the previous page, or None for the first page"
        ) from None
    return float(at), rid


def escalation_of(request: ApprovalRequest, *, now: float) -> ApprovalRequest:
    """The request that replaces ``request`` when it expires and its rule says escalate.

    Its id is deterministic from the expired one, so a sweep that runs twice (or two sweeps
    at once) make one follow-up, not two. It expires after the same time span and is then
    rejected: escalation happens once, it does not climb forever.
    """
    assert request.escalate_to is not None
    span = None if request.expires_at is None else request.expires_at - request.requested_at
    # The escalation role takes the deciding rule's place; any other tier still applies.
    roles = (request.escalate_to, *(r for r in request.roles[1:] if r != request.escalate_to))
    return replace(
        request,
        id=approval_id(request.thread_id, request.step_id, f"escalation:{request.id}"),
        required_role=request.escalate_to,
        required_roles=roles,
        reason=f"{request.reason} (escalated: {request.id!r} expired undecided)",
        requested_at=now,
        expires_at=None if span is None else now + span,
        status=ApprovalStatus.PENDING,
        decided_by=None,
        decided_at=None,
        comment=None,
        edited_args=None,
        on_expiry="reject",
        escalate_to=None,
        escalated_from=request.id,
        escalated_to=None,
    )


def masked(value: Any, sensitive: Iterable[str], redactor: Redactor | None = None) -> Any:
    """``value`` as a person may see it: the fields named in ``sensitive`` masked at any
    depth, and all else the Redactor finds (``agentrt.tracing.shown``, the one path)."""
    # Imported here: agentrt.tracing imports the store, which imports this module.
    from agentrt.tracing.shown import shown

    return shown(value, redactor, sensitive=tuple(sensitive))


def shown_args(
    request: ApprovalRequest,
    tools: ToolRegistry,
    args: Any = None,
    *,
    redactor: Redactor | None = None,
) -> Any:
    """A request's arguments (or ``args``, say its edited ones) for a person to read, as
    ``masked`` shows them with the tool's sensitive fields; a value the request's own
    sensitive arguments hold is masked wherever ``args`` repeat it. A tool the app no
    longer has cannot say which fields are sensitive: nothing is shown."""
    from agentrt.tracing.redact import Redactor
    from agentrt.tracing.shown import secret_values, shown

    value = request.args if args is None else args
    if request.kind == "budget":
        return shown(value, redactor)  # limits and usage: no tool fields to hide
    spec = tools.get(request.tool)
    if spec is None:
        return f"(hidden: this app has no tool {request.tool!r})"
    known = secret_values(request.args, redactor or Redactor(), spec.sensitive)
    return shown(value, redactor, sensitive=spec.sensitive, known=known)


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
        if isinstance(value, Mapping):
            return Principal.from_dict(value)
        if not isinstance(value, Principal):
            raise ValueError(f"by must be a Principal, got {value!r}")
        return value

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
    def approve(
        cls,
        approval_id: str,
        *,
        by: Principal,
        reason: str | None = None,
        args_digest: str | None = None,
    ) -> Decision:
        """Approve the action as requested."""
        return cls._of(approval_id, "approve", by=by, reason=reason, args_digest=args_digest)

    @classmethod
    def reject(
        cls, approval_id: str, *, by: Principal, reason: str, args_digest: str | None = None
    ) -> Decision:
        """Refuse the action; the planner sees the reason."""
        return cls._of(approval_id, "reject", by=by, reason=reason, args_digest=args_digest)

    @classmethod
    def edit(
        cls,
        approval_id: str,
        *,
        args: Mapping[str, Any],
        by: Principal,
        reason: str | None = None,
        args_digest: str | None = None,
    ) -> Decision:
        """Run the action with other arguments; they go through the policy again."""
        return cls._of(
            approval_id, "edit", by=by, reason=reason, args=dict(args), args_digest=args_digest
        )

    @classmethod
    def raise_limit(
        cls,
        approval_id: str,
        *,
        limit: str,
        to: float,
        by: Principal,
        reason: str | None = None,
    ) -> Decision:
        """Answer a "budget" request: set ``limit`` (the one that tripped) to ``to``, higher
        than before, and let the run go on. Reject the request to end the run instead."""
        return cls._of(approval_id, "edit", by=by, reason=reason, args={limit: to})

    @classmethod
    def resolve(
        cls,
        approval_id: str,
        *,
        result: Any,
        by: Principal,
        reason: str | None = None,
        args_digest: str | None = None,
    ) -> Decision:
        """Settle an effect in doubt: it happened, and ``result`` is what it returned."""
        return cls._of(
            approval_id, "resolve", by=by, reason=reason, result=result, args_digest=args_digest
        )

    @classmethod
    def retry(
        cls,
        approval_id: str,
        *,
        by: Principal,
        reason: str | None = None,
        args_digest: str | None = None,
    ) -> Decision:
        """Settle an effect in doubt: it did not happen; call the tool again (same key)."""
        return cls._of(approval_id, "retry", by=by, reason=reason, args_digest=args_digest)


_OUTCOMES_BY_KIND = {
    "action": ("approve", "reject", "edit"),
    "budget": ("approve", "reject", "edit"),
    "reconcile": ("resolve", "retry"),
}


def check_decision(request: ApprovalRequest, decision: Decision, *, now: float) -> None:
    """Raise the ApprovalError that refuses this decision, or return if it may be recorded."""
    rid = request.id
    if request.status is ApprovalStatus.EXPIRED:
        then = (
            f"; it was escalated to {request.escalated_to!r}, decide that one"
            if request.escalated_to
            else "; the run was told and went on without it"
        )
        raise ApprovalExpired(
            f"approval {rid!r} expired undecided at {request.decided_at or 0:.0f}{then}",
            approval_id=rid,
        )
    if request.status is ApprovalStatus.CANCELLED:
        raise AlreadyDecided(
            f"approval {rid!r} was cancelled because its run {request.thread_id!r} ended "
            f"({request.comment}); nothing to decide",
            approval_id=rid,
        )
    if request.status is not ApprovalStatus.PENDING:
        raise AlreadyDecided(
            f"approval {rid!r} was already {request.status.value} by {request.decided_by!r}; "
            "nothing to do",
            approval_id=rid,
        )
    allowed = _OUTCOMES_BY_KIND[request.kind]
    if decision.outcome not in allowed:
        raise InvalidDecision(
            f"approval {rid!r} is of kind {request.kind!r}, which takes {list(allowed)!r}, "
            f"not {decision.outcome!r}"
            + (
                "; say whether the effect happened with Decision.resolve(id, result=...) "
                "or Decision.retry(id)"
                if request.kind == "reconcile"
                else ""
            ),
            approval_id=rid,
        )
    if decision.args_digest is not None and decision.args_digest != request.args_digest:
        raise InvalidDecision(
            f"decision for {rid!r} was made for arguments with digest {decision.args_digest!r}, "
            f"but the request's arguments have digest {request.args_digest!r}; "
            "review the current arguments and decide again",
            approval_id=rid,
        )
    if request.expires_at is not None and now >= request.expires_at:
        raise ApprovalExpired(
            f"approval {rid!r} expired at {request.expires_at:.0f} (now {now:.0f}); "
            "the run must ask again",
            approval_id=rid,
        )
    missing = [role for role in request.roles if role not in decision.by.roles]
    if missing:
        needs = "role" if len(request.roles) == 1 else "every one of the roles"
        raise NotAuthorized(
            f"{decision.by.id!r} cannot decide {rid!r}: it requires {needs} "
            f"{_words(request.roles)}, and {decision.by.id!r} holds {list(decision.by.roles)!r} "
            f"(missing {missing!r})",
            approval_id=rid,
        )
    if (
        (request.four_eyes or request.kind == "budget")
        and decision.outcome != "reject"
        and decision.by.id in request.requesters
    ):
        asked = (
            "edited the action into"
            if decision.by.id == request.edited_by and decision.by.id != request.requested_by
            else "requested"
        )
        rule = (
            "a run's own requester never raises its budget"
            if request.kind == "budget"
            else ("four-eyes rule")
        )
        raise NotAuthorized(
            f"{decision.by.id!r} {asked} {rid!r} and cannot also approve it ({rule}); "
            "ask another approver",
            approval_id=rid,
        )
    if not decision.by.decides_for(request.tenant):
        raise NotAuthorized(
            f"{decision.by.id!r} of tenant {decision.by.tenant!r} cannot decide {rid!r} "
            f"of tenant {request.tenant!r}"
            + (
                f"; a principal decides across tenants only when it says so: "
                f"tenant={Principal.ALL_TENANTS!r}"
                if decision.by.tenant is None
                else ""
            ),
            approval_id=rid,
        )


def _words(roles: tuple[str, ...]) -> str:
    return " and ".join(repr(r) for r in roles)
