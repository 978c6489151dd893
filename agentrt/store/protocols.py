"""What every store must do, one protocol per table family, and the records they hold.

A backend (SQLite, PostgreSQL, the memory store) implements ``Store``: every family below,
each write its own transaction. The families hold data and apply conditional updates; the
rules that decide what to write (which status may follow which, when a lease may be taken
over, what a decision means) live above, next to the code that drives runs.
tests/test_store_conformance.py says what each method must do, for every backend.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from agentrt.approvals.model import ApprovalQuery, ApprovalRequest, Decided
from agentrt.artifacts import ArtifactRecord
from agentrt.records import (
    ApiKey,
    AppIdentity,
    Claim,
    EffectOutcome,
    EffectRecord,
    LeaseRecord,
    LeaseRenewal,
    MessageOpening,
    MessageRecord,
    ModelCall,
    NewMessage,
    NewRun,
    RunRecord,
    SpanRow,
)
from agentrt.state import RunStatus, Usage
from agentrt.store.outbox import OutboxStore

__all__ = [
    "ApiKey",
    "ApprovalQuery",
    "ApprovalStore",
    "ArtifactRecord",
    "ArtifactStore",
    "Claim",
    "Decided",
    "EffectRecord",
    "EffectStore",
    "KeyStore",
    "LeaseRecord",
    "LeaseRenewal",
    "LeaseStore",
    "Listening",
    "MessageStore",
    "ModelCall",
    "NewRun",
    "OutboxStore",
    "RecordingStore",
    "RunChange",
    "RunRecord",
    "RunStore",
    "SpanRow",
    "SpanStore",
    "Store",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class RunChange:
    """A move of a run from one status to another, with what goes with it, written at once.

    Worked out above the store (runs/lifecycle.py) from the row as it was read; the store
    applies it only if the run is still in ``from_status``."""

    from_status: RunStatus
    """The status the change was worked out from."""
    status: RunStatus
    """The status it moves to (may equal from_status: a live run's usage update)."""
    output: str | None = None
    """Set when not None."""
    error: str | None = None
    """Set when not None (see clear_error)."""
    clear_error: bool = False
    """Empty the error first (the failure that made the run wait is past)."""
    usage: Usage | None = None
    """Set when not None."""
    budget_report: Mapping[str, Any] | None = None
    """Set when not None."""
    add_waited: float = 0.0
    """Seconds to add to waited_seconds (time at a human gate)."""
    add_retry_waited: float = 0.0
    """Seconds to add to retry_waited_seconds."""
    retry_at: float | None = None
    """The new retry_at (None clears it)."""
    transient_failures: int = 0
    """The new count of failures that may pass, in a row."""
    cancel_pending: str | None = None
    """If set: every pending approval of the run becomes cancelled with this comment."""
    denials: Mapping[str, int] | None = None
    """Set when not None: the run's policy denials so far by rule id ("" for the policy's
    default), for run analytics."""


class Listening(Protocol):
    """A store telling a process, from a thread of its own, that a run may need a driver."""

    def close(self) -> None:
        """Stop listening (and close what listening held open)."""
        ...


class RunStore(Protocol):
    """The runs table: one row a run, written before its first node runs."""

    def create_run(self, run: NewRun) -> RunRecord | None:
        """Insert a pending run; None if the thread id is taken."""
        ...

    def get_run(self, thread_id: str) -> RunRecord | None: ...

    def list_runs(
        self, *, status: str | None = None, tenant: str | None = None, limit: int = 100
    ) -> list[RunRecord]:
        """Newest first."""
        ...

    def change_run(self, thread_id: str, change: RunChange) -> RunRecord | None:
        """Apply ``change`` if the run is still in change.from_status; the row after it, or
        None if the run moved meanwhile (the caller reads it again and decides anew)."""
        ...

    def unfinished_runs(self) -> list[str]:
        """Running or pending runs, and runs at a gate that has no pending request or whose
        cancel was asked, oldest first: what a process may have left mid-way."""
        ...

    def due_retries(self, now: float) -> list[str]:
        """Runs in waiting_retry whose retry_at has come, soonest first."""
        ...

    def set_usage(self, thread_id: str, usage: Usage) -> None: ...

    def swap_usage(self, thread_id: str, expected: Usage, usage: Usage) -> bool:
        """Write ``usage`` only if the row's usage is still ``expected`` (equal as JSON):
        one conditional write, so of two drivers counting from the same read one wins and
        the other reads again. False if it was not written (or there is no such run)."""
        ...

    def set_budget(self, thread_id: str, budget: Mapping[str, Any]) -> None: ...

    def request_cancel(self, thread_id: str, reason: str) -> None:
        """Keep the first reason a cancel was asked for, until the run ends."""
        ...

    def cancel_requested(self, thread_id: str) -> str | None: ...

    def run_trace(self, thread_id: str) -> tuple[str | None, str | None]:
        """The run's trace id and the span id of its last agent.run segment that ended
        (None before one has: the next segment is the run's root)."""
        ...

    def set_trace(self, thread_id: str, trace_id: str, span_id: str | None) -> None: ...

    def prunable_runs(self, *, before: float, keep_latest: int = 0) -> list[str]:
        """Finished runs last updated before ``before``, except the newest keep_latest,
        those a queued message waits for (the thread goes on) and those whose lease is
        held (someone is at work on them)."""
        ...

    def delete_run(self, thread_id: str, *, idle_before: float | None = None) -> bool:
        """The run's row and everything of it: approvals, effects, model calls, messages,
        artifacts' references, events, spans, and the graph's checkpoints and writes of its
        thread where the database holds them, all in one transaction. With ``idle_before``,
        only if the run is still one prunable_runs(before=idle_before) would name
        (keep_latest aside), looked at in the delete's own transaction. True if the row was
        deleted; nothing is deleted otherwise."""
        ...


class LeaseStore(Protocol):
    """Who drives a run: a lease on its row, taken and renewed with conditional writes."""

    @property
    def one_host(self) -> bool:
        """True when every process using this store runs on this machine (a SQLite file):
        a lease owner's pid names a process here. False for a database shared across hosts,
        where only a lease's expiry says its owner is gone."""
        ...

    def claim_runs(
        self, lease: LeaseRecord, *, now: float, limit: int, app: AppIdentity | None = None
    ) -> Claim:
        """Lease up to ``limit`` runs ``app`` may drive (runs.apps.may_drive; None: any) that
        need a driver and have none, oldest first: new (pending), left running (released
        mid-way, or their lease expired by ``now``), decided at their gate (no pending request
        left) or asked to cancel there, waiting to retry with retry_at come. Each taken run
        gets ``lease``. Exactly once: of processes claiming at once, each goes to one."""
        ...

    def listen(self, wake: Callable[[], None]) -> Listening | None:
        """Call ``wake`` (from another thread) whenever a run may have come to need a
        driver: created without a lease, decided at its gate, asked to cancel, released with
        work left, or set to wait to retry. None if this store cannot tell: poll instead."""
        ...

    def lease_of(self, thread_id: str) -> LeaseRecord | None:
        """The lease as it stands (possibly expired); None if nobody holds one.
        KeyError for an unknown run."""
        ...

    def take_lease(self, thread_id: str, lease: LeaseRecord, *, expected: str | None) -> bool:
        """Set the lease if its owner is still ``expected`` (None: nobody); False if not."""
        ...

    def leased_on(self, host: str, *, now: float) -> list[tuple[RunRecord, LeaseRecord]]:
        """The runs left pending or running whose lease a process on ``host`` holds, not
        expired by ``now``, oldest first, each with its lease: those a takeover of a dead
        process's runs looks at (on a ``one_host`` store), whatever their number."""
        ...

    def renew_leases(self, leases: Sequence[LeaseRenewal]) -> dict[str, bool | None]:
        """Extend each lease (one a run) if its owner still holds it, all in one write,
        setting the run's live_active_seconds to the renewal's active_seconds where that is
        not None (with the lease only: a driver that lost it counts for no one). Per run:
        True, renewed; False, the owner no longer holds it (or there is no such run); None,
        not now: another transaction holds the run's row, and a store with row locks does
        not wait for it, so one busy row holds up no other lease. Ask again soon."""
        ...

    def hold_lease(self, thread_id: str, owner: str, expires_at: float) -> RunRecord | None:
        """Extend ``owner``'s lease as renew_leases does, and return the run's row as it then
        is, in one write; None if ``owner`` no longer holds it (or there is no such run)."""
        ...

    def release_lease(
        self, thread_id: str, owner: str, *, trace: tuple[str, str | None] | None = None
    ) -> None:
        """Let ``owner``'s lease go (nothing if it no longer holds it). ``trace``: the run's
        trace id and the span id of the segment that just ended, set as ``set_trace`` sets
        them (whoever holds the lease) in the same write: a segment ends in one."""
        ...


class ApprovalStore(Protocol):
    """Approval requests: the review queue across all runs."""

    def put_approval(self, request: ApprovalRequest) -> ApprovalRequest:
        """Insert unless the id exists; the stored request either way."""
        ...

    def get_approval(self, approval_id: str) -> ApprovalRequest | None: ...

    def list_approvals(self, query: ApprovalQuery) -> list[ApprovalRequest]:
        """Oldest first by (requested_at, id)."""
        ...

    def due_approvals(self, now: float, *, limit: int = 1000) -> list[ApprovalRequest]:
        """Pending requests whose expiry has passed, soonest-expired first."""
        ...

    def expire_approval(
        self, approval_id: str, *, now: float, escalation: ApprovalRequest | None = None
    ) -> bool:
        """Mark a pending request expired and insert its escalation, at once; False if it
        was no longer pending."""
        ...

    def decide_approval(self, approval_id: str, decided: Decided) -> bool:
        """Record a decision if the request is still pending; False if someone was first."""
        ...


class EffectStore(Protocol):
    """The effects ledger: one row per side-effecting call, keyed by its idempotency key."""

    def get_effect(self, key: str) -> EffectRecord | None: ...

    def list_effects(self, thread_id: str) -> list[EffectRecord]:
        """In the order they were first reserved."""
        ...

    def start_effect(
        self,
        *,
        key: str,
        thread_id: str,
        step_id: str,
        tool: str,
        args_digest: str,
        seen: int,
        owner: str | None = None,
    ) -> int | None:
        """Reserve the key (status started); which attempt this is, from 1. Only from what
        the ledger read (``seen`` attempts, 0: none) and, with ``owner``, under the run's
        lease held by that owner: else None, nothing written."""
        ...

    def finish_effect(self, key: str, outcome: EffectOutcome, *, attempt: int) -> bool:
        """done with the result, or failed with the error, if ``attempt`` is still the one
        started: else False, nothing written (it was settled, or another attempt began)."""
        ...

    def note_in_doubt(self, key: str, reason: str, *, retries: int = 0) -> None:
        """Say why a started effect is in doubt, leaving it started."""
        ...

    def settle_effect(self, key: str, attempt: int, *, happened: bool, result: Any = None) -> bool:
        """done (happened) or retry, if ``attempt`` is still the one in doubt."""
        ...


class RecordingStore(Protocol):
    """Model responses, kept the moment they arrive: for resume and replay."""

    def record_model_call(
        self, thread_id: str, call: ModelCall, *, usage: Usage | None = None
    ) -> None:
        """Keep a response; a re-run of the same plan step replaces it. With ``usage``, the
        run's usage is set to it in the same write (the answer and what it cost, one
        transaction a plan step instead of two)."""
        ...

    def model_call(self, thread_id: str, revision: int) -> ModelCall | None: ...

    def model_calls(self, thread_id: str) -> list[ModelCall]:
        """By revision."""
        ...


class KeyStore(Protocol):
    """The service's API keys, by the sha256 of the key (never the key itself)."""

    def add_key(self, key: ApiKey, key_hash: str) -> None: ...

    def key_by_hash(self, key_hash: str) -> ApiKey | None:
        """The active key with this hash."""
        ...

    def list_keys(self, *, include_revoked: bool = False) -> list[ApiKey]:
        """Oldest first."""
        ...

    def revoke_key(self, key_id: str) -> ApiKey | None:
        """Revoke (once: a second revoke keeps the first time); None for an unknown id."""
        ...


class SpanStore(Protocol):
    """Finished spans, for `agentrt trace` and the review page."""

    def write_spans(self, rows: Sequence[SpanRow]) -> None:
        """Insert or replace; raises if the store cannot take them now (the exporter
        counts the loss and the run goes on)."""
        ...

    def spans_of(self, trace_id: str) -> list[SpanRow]:
        """In start order."""
        ...


class ArtifactStore(Protocol):
    """Artifacts: content kept once by its sha256, and each run's references to it by name.

    A run's references go with the run (delete_run); content stays until
    drop_unreferenced_artifacts finds no run that refers to it.
    """

    def put_artifact(self, record: ArtifactRecord, content: bytes) -> None:
        """Keep ``content`` under record.ref.digest (not written again if that digest is
        kept) and the run's reference under (thread_id, name), replacing one of that name,
        in one write. ``content`` must hash to the digest: the caller computed it."""
        ...

    def get_artifact(self, thread_id: str, name: str) -> ArtifactRecord | None: ...

    def list_artifacts(self, thread_id: str) -> list[ArtifactRecord]:
        """The run's artifacts, by name."""
        ...

    def artifact_content(self, digest: str) -> bytes | None:
        """The content kept under ``digest``; None if none is."""
        ...

    def drop_unreferenced_artifacts(self) -> int:
        """Delete the content no run's artifact refers to any more; how many went."""
        ...


class MessageStore(Protocol):
    """A thread's messages: the goal it began with and the follow-ups sent after."""

    def add_message(
        self, message: NewMessage, *, only_if_idle: bool = False
    ) -> MessageRecord | None:
        """Keep ``message`` queued on its thread, numbered after every message it has;
        None if there is no such run, or (``only_if_idle``) if the thread is busy: its run
        is live or a message is queued on it. Checked in the write's own transaction, so
        of messages sent at once to an idle thread only_if_idle keeps one."""
        ...

    def thread_messages(self, thread_id: str) -> list[MessageRecord]:
        """Every message kept for the thread, by index (message 0 is kept from the first
        time the thread goes on)."""
        ...

    def queued_message(self, thread_id: str) -> MessageRecord | None:
        """The message the thread takes next: an interrupting one first, then the oldest."""
        ...

    def open_message(self, thread_id: str, opening: MessageOpening) -> RunRecord | None:
        """Take the thread's next message: close the current one as ``opening`` says
        (writing message 0 first if given), mark the new one current, move the run to
        running at that message (output, error and stop requests cleared), lease it and
        cancel its pending approvals if asked, at once. None (nothing written) if the run
        is no longer in ``from_status`` at ``from_message``, or the queued message was
        taken meanwhile."""
        ...

    def stop_requests(self, thread_id: str) -> tuple[str | None, bool]:
        """In one read: why a cancel was asked (None: it was not), and whether a message
        waits to interrupt the thread's current one."""
        ...

    def stop_mark(self) -> object | None:
        """A value that changes whenever a stop request (a cancel, an interrupting message)
        is written through this store's kind, from any process that may drive its runs,
        once the request is committed; None if the store cannot tell (runs then look as
        agentrt.nodes.stop_watch says for a store with none). Read before a look: the same
        mark later means no request was asked since."""
        ...


class Store(
    RunStore,
    LeaseStore,
    ApprovalStore,
    EffectStore,
    RecordingStore,
    KeyStore,
    SpanStore,
    OutboxStore,
    ArtifactStore,
    MessageStore,
    Protocol,
):
    """Every table family of one database."""

    @property
    def location(self) -> str:
        """Where the data is, for messages (a path, or a URL with its password hidden)."""
        ...

    @property
    def clock(self) -> Callable[[], float]:
        """Epoch seconds for the times the store writes (created_at, decided_at, ...)."""
        ...

    @property
    def schema_version(self) -> int: ...

    def redaction_salt(self) -> str:
        """This database's own key for the Redactor's hash mode, made once at random."""
        ...

    def close(self) -> None: ...
