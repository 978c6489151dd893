"""The records agentrt keeps, as plain values every layer may read.

The store (agentrt.store) writes and returns them; the runtime, the tracing view and the
service read them. They hold data only: the rules about them live with the code that
drives runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentrt.principal import Principal
from agentrt.state import RunStatus, Usage

__all__ = [
    "ApiKey",
    "AppIdentity",
    "Claim",
    "EffectOutcome",
    "EffectRecord",
    "LeaseRecord",
    "MessageOpening",
    "MessageRecord",
    "ModelCall",
    "NewMessage",
    "NewRun",
    "RunRecord",
    "SpanRow",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class NewRun:
    """A run's row as it is first written (status pending)."""

    thread_id: str
    """The run's id: the thread of the run graph."""
    goal: str
    """What the run is asked to do."""
    principal: dict[str, Any]
    """Who it acts for, as Principal.to_dict() writes it."""
    budget: dict[str, Any]
    """The limits in force, layered."""
    usage: Usage
    """What it has spent: nothing yet."""
    trace_id: str | None = None
    """Its OpenTelemetry trace, shared by every segment."""
    lease: LeaseRecord | None = None
    """Held from the start by a process that drives the run at once (``rt.start``), so no
    worker claims it meanwhile; None leaves a new run to whoever claims it."""
    app: str | None = None
    """The name of the app that made it (agentrt.runs.apps): only that app's workers claim
    it. None for an app with no name, whose ``tools`` say who may."""
    tools: tuple[str, ...] | None = None
    """The tools of the unnamed app that made it, sorted: a worker whose app has them all
    claims it. None with no ``app`` either: any worker (as runs made before rows recorded
    their app)."""


@dataclass(frozen=True, slots=True)
class RunRecord:
    """One row of the runs table."""

    thread_id: str
    """The run's id."""
    status: RunStatus
    """Where it is in its life (state.TRANSITIONS)."""
    goal: str
    """What it was asked to do."""
    principal: dict[str, Any]
    """Who it acts for, as Principal.to_dict() writes it."""
    tenant: str | None
    """The principal's tenant, kept apart for the queue's filters."""
    budget: dict[str, Any]
    """The limits in force (people may have raised one)."""
    usage: Usage
    """What it has spent, as its last step recorded."""
    output: str | None
    """The final answer, once succeeded."""
    error: str | None
    """Why it failed, stopped or waits to retry."""
    trace_id: str | None
    """Its OpenTelemetry trace."""
    created_at: float
    """Epoch seconds."""
    updated_at: float
    """Epoch seconds of the last status change."""
    lease_owner: str | None
    """Who drives it now (host:pid:token), if anyone."""
    budget_report: dict[str, Any] | None = None
    """If a limit stopped it: which, the usage, the action it stopped before."""
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
    message: int = 0
    """The thread's current message: 0 for the goal it was started with, then each
    follow-up taken (agentrt.runs.messages)."""
    trace_span_id: str | None = None
    """The span id of its last agent.run segment that ended (None before one has)."""
    app: str | None = None
    """The name of the app that made it, whose workers alone claim it (agentrt.runs.apps);
    None for a run of an unnamed app (see ``tools``) or one made before rows recorded
    their app."""
    tools: tuple[str, ...] | None = None
    """The tools of the unnamed app that made it, sorted: a worker whose app has them all
    claims it. None for a named app's run, and for one made before rows recorded their
    app (neither set), which any worker claims."""
    live_active_seconds: float | None = None
    """The run's active time as its driver last counted it, a node in flight included,
    written with each renewal of the run's lease (None until one was): what a segment
    killed inside a node spent, which its checkpoints never got. The next segment starts
    counting from at least it."""


@dataclass(frozen=True, slots=True)
class AppIdentity:
    """Which app a process is, as its runs record it and its claims ask for runs
    (agentrt.runs.apps decides which runs it may drive)."""

    name: str | None
    """``AgentRuntime(app=...)``; None for an app with no name."""
    tools: frozenset[str]
    """The names of the app's tools."""


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    """Who holds a run's lease, and until when."""

    owner: str
    """The owner's label: host, pid and token."""
    host: str
    """The host the owner runs on."""
    pid: int
    """Its process id there: a dead owner on this host is taken over at once."""
    expires_at: float
    """Epoch seconds; a lease not renewed by then is free."""


@dataclass(frozen=True, slots=True)
class LeaseRenewal:
    """One lease to extend: ``owner``'s on the run, to ``expires_at`` (epoch seconds), and
    the run's active time to note with it."""

    thread_id: str
    owner: str
    expires_at: float
    active_seconds: float | None = None
    """The run's active time as its driver counts it now (RunRecord.live_active_seconds);
    None leaves the row's as it is."""


@dataclass(frozen=True, slots=True)
class EffectRecord:
    """One row of the effects ledger."""

    key: str
    """The idempotency key: sha256 of thread, step, tool and arguments."""
    thread_id: str
    """The run the call belongs to."""
    step_id: str
    """The plan step it acts for."""
    tool: str
    """The tool called."""
    status: str
    """started, done, failed, or retry (a person said the in-doubt attempt did not act)."""
    result: Any
    """What a done call returned."""
    error: str | None
    """Why a failed call failed, or why a started one is in doubt."""
    error_kind: str | None = None
    """The error contract kind of a failure: transient, permanent or timeout."""
    attempts: int = 1
    """How many times the key was reserved (each resume or retry decision adds one)."""
    retries: int = 0
    """Transient retries within the last attempt."""


@dataclass(frozen=True, slots=True, kw_only=True)
class EffectOutcome:
    """How a started call ended: its result, or its error (then the call failed)."""

    result: Any = None
    """What the call returned, if it did."""
    error: str | None = None
    """Why it failed; set: the call failed."""
    error_kind: str | None = None
    """The error contract kind of a failure: transient, permanent or timeout."""
    retries: int = 0
    """Transient retries within the attempt."""

    @property
    def failed(self) -> bool:
        return self.error is not None


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
    prompt_tokens: int | None = None
    """The prompt's tokens as the budget's pre-flight counted them (None: not counted)."""
    cap: int | None = None
    """The output cap the call was made with, if the budget lowered it."""


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


@dataclass(frozen=True, slots=True, kw_only=True)
class NewMessage:
    """A message sent to a thread, as it is first written."""

    thread_id: str
    """The thread it goes on."""
    text: str
    """What the person said."""
    principal: dict[str, Any]
    """Who sent it, as Principal.to_dict() writes it; the message's run acts for them."""
    budget: dict[str, Any] | None = None
    """Limits on this message alone (Budget.to_dict()); None: the thread's only."""
    interrupt: bool = False
    """Queued to stop the thread's current message at its next safe point."""


@dataclass(frozen=True, slots=True)
class MessageRecord:
    """One message of a thread: the goal it was started with (index 0) or a follow-up."""

    thread_id: str
    index: int
    """Its place in the thread: 0 the goal, then 1, 2, ... in the order they were sent."""
    text: str
    principal: dict[str, Any]
    """Who sent it."""
    status: str
    """queued, current, or how it ended: a terminal run status or interrupted."""
    created_at: float
    """When it was sent."""
    budget: dict[str, Any] | None = None
    """Its own limits (None: the thread's only)."""
    interrupt: bool = False
    """Sent to interrupt the message before it."""
    usage_before: Usage | None = None
    """The thread's usage when the message was taken (None while queued)."""
    usage: Usage | None = None
    """What the message spent, once it ended."""
    output: str | None = None
    """Its answer, once it ended with one."""
    error: str | None = None
    """Why it ended without one."""
    started_at: float | None = None
    ended_at: float | None = None
    budget_report: dict[str, Any] | None = None
    """Once it ended budget_exceeded: why (the run's budget report then, which the run's
    row gives up when the thread goes on)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageOpening:
    """A thread taking its next message, with what goes with it, written at once.

    Worked out above the store (runs/messages.py) from the run's row as it was read: the
    store applies it only if the run is still in ``from_status`` at ``from_message``.
    """

    from_status: RunStatus
    """The run's status when it was read."""
    from_message: int
    """The run's current message when it was read."""
    index: int
    """The queued message to take."""
    closing: str
    """How the current message ended: a terminal run status, or interrupted."""
    output: str | None = None
    """The current message's answer, if it had one."""
    error: str | None = None
    ended_at: float | None = None
    """When the current message ended, if it had (its run's end, as the row says); None:
    it ends now, interrupted by the message taken."""
    spent: Usage
    """What the current message spent."""
    first: MessageRecord | None = None
    """The thread's goal as message 0, written the first time the thread goes on."""
    usage_before: Usage
    """The thread's usage now: where the new message's spending starts."""
    lease: LeaseRecord
    """The run is leased to the process that takes the message, in the same write."""
    add_waited: float = 0.0
    """Seconds the run waited at a gate the message interrupts."""
    cancel_pending: str | None = None
    """If set: every pending approval of the run becomes cancelled with this comment."""
    supersede: tuple[str, ...] = ()
    """Approvals given at the gate the message interrupts but never carried out (decided
    after the message was sent, before the run went on): cancelled with cancel_pending's
    comment too, if they are still approved or edited."""


@dataclass(frozen=True, slots=True)
class Claim:
    """What one claim_runs took, and when another look may find more."""

    thread_ids: tuple[str, ...]
    """The runs now leased to the claimant, oldest first."""
    next_at: float | None
    """The soonest moment a run that could not be claimed now may become claimable (a
    wait to retry ends, a lease not renewed expires); None if no such moment is known."""
