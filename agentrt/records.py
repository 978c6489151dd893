"""The records agentrt keeps, as plain values every layer may read.

The store (agentrt.store) writes and returns them; the runtime, the tracing view and the
service read them. They hold data only: the rules about them live with the code that
drives runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentrt.approvals.model import ApprovalStatus
from agentrt.principal import Principal
from agentrt.state import RunStatus, Usage

__all__ = [
    "ApiKey",
    "ApprovalQuery",
    "Decided",
    "EffectRecord",
    "LeaseRecord",
    "ModelCall",
    "NewRun",
    "RunRecord",
    "SpanRow",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRun:
    """A run's row as it is first written (status pending)."""

    thread_id: str
    goal: str
    principal: dict[str, Any]
    budget: dict[str, Any]
    usage: Usage
    trace_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApprovalQuery:
    """Which approval requests to list: each given field must match."""

    status: str | None = "pending"
    """None: every status."""
    tenant: str | None = None
    role: str | None = None
    """Any role a request needs."""
    thread_id: str | None = None
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


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of the runs table."""

    thread_id: str
    status: RunStatus
    goal: str
    principal: dict[str, Any]
    tenant: str | None
    budget: dict[str, Any]
    usage: Usage
    output: str | None
    error: str | None
    trace_id: str | None
    created_at: float
    updated_at: float
    lease_owner: str | None
    budget_report: dict[str, Any] | None = None
    waited_seconds: float = 0.0
    """Time spent in awaiting_approval, summed over every gate."""
    cancel_requested: str | None = None
    """Why someone asked to cancel the run while another process drove it; the driver
    stops at its next step."""
    retry_at: float | None = None
    """For status waiting_retry: when the run may be carried on again."""
    transient_failures: int = 0
    """Failures that may pass, in a row (the wait before the next try grows with them)."""
    retry_waited_seconds: float = 0.0
    """Time spent in waiting_retry, summed."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """Who holds a run's lease, and until when."""

    owner: str
    """The owner's label: host, pid and token."""
    host: str
    pid: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class EffectRecord:
    """One row of the effects ledger."""

    key: str
    thread_id: str
    step_id: str
    tool: str
    status: str
    """started, done, failed, or retry (a person said the in-doubt attempt did not act)."""
    result: Any
    error: str | None
    error_kind: str | None = None
    """The error contract kind of a failure: transient, permanent or timeout."""
    attempts: int = 1
    """How many times the key was reserved (each resume or retry decision adds one)."""
    retries: int = 0
    """Transient retries within the last attempt."""


@dataclass(frozen=True, slots=True)
class ModelCall:
    """One recorded model response of a run."""

    revision: int
    """The plan revision it produced (0 for the first plan)."""
    model: str | None
    request_digest: str
    """sha256 of the messages the model was sent."""
    response: dict[str, Any]
    """The AIMessage, as langchain_core.load.dumpd wrote it."""


@dataclass(frozen=True, slots=True)
class SpanRow:
    """One stored span."""

    span_id: str
    trace_id: str
    parent_id: str | None
    thread_id: str | None
    name: str
    start_ns: int
    end_ns: int | None
    status: str
    attributes: dict[str, Any]
    events: list[dict[str, Any]]
    links: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key as the store keeps it (never the key itself)."""

    key_id: str
    """Public handle of the key: listed, revoked, and part of the key's own text."""
    principal: Principal
    """Who a request made with this key acts as: id, roles, tenant, scopes."""
    label: str | None
    """What the key is for, in words."""
    created_at: float
    revoked_at: float | None = field(default=None)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "principal": self.principal.to_dict(),
            "label": self.label,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }
