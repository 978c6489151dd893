"""The effects ledger: each side effect is performed at most once per step, and recorded.

key = sha256(thread_id, step_id, tool name, canonical args). Reserve (started), call, record
(done or failed), each in its own committed transaction, so a process killed at any point
leaves a record that tells the next attempt what it may do.

The reservation is a conditional write: from the record the ledger read (none, or the
attempt it had), and, for a run a driver leases, only while its lease is still the
driver's. A process paused past its lease (a long GC, a frozen VM) while another took the
run over finds the key moved or the lease gone, and stops (LeaseLost) instead of acting
a second time.

The procedure is written once, as steps (``Ledger.steps``), and driven two ways:
``execute`` in the calling thread, ``aexecute`` on the caller's event loop with every store
call in a worker thread (SQLite may wait on its lock) and the tool call awaited.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentrt.digests import args_digest, effect_key
from agentrt.errors import LeaseLost
from agentrt.logs import get_logger
from agentrt.records import EffectOutcome, EffectRecord
from agentrt.steps import Steps, asynchronous, blocking, synchronous
from agentrt.store.protocols import EffectStore
from agentrt.tools.contract import Effect, ToolContext, ToolSpec
from agentrt.tools.execution import FailureKind, ToolFailure, ToolRunner

__all__ = [
    "CRASH_LIMIT",
    "EffectInDoubt",
    "Ledger",
    "LedgerResult",
    "RecordedFailure",
    "effect_key",
    "failure_kind",
    "outcome_of",
]

logger = get_logger("agentrt.tools")

CRASH_LIMIT = 2
"""Attempts of one call that may start and die with their process before a person is
asked: an idempotent tool is called again after one crash, not after two."""


class EffectInDoubt(Exception):
    """A call of a non-idempotent tool that started and has no recorded outcome.

    The process died mid-call, or the call timed out: the effect may or may not have
    happened, so the run asks a person (the reconcile gate) instead of calling again.
    """

    kind = "in_doubt"
    """How the tool.call it ends is counted (agentrt.tool.calls, agentrt.outcome)."""

    def __init__(
        self, tool: str, key: str, attempt: int, reason: str, *, idempotent: bool = False
    ) -> None:
        self.tool = tool
        self.key = key
        self.attempt = attempt
        self.reason = reason
        why = (
            ""
            if idempotent
            else f"; {tool!r} is not idempotent, so calling it again could repeat the effect"
        )
        super().__init__(
            f"{reason}{why} (effect key {key[:16]}..., attempt {attempt}). Check the target "
            "system, then settle it: resolve with the result if it happened, or retry if it "
            "did not."
        )


@dataclass(frozen=True, slots=True)
class LedgerResult:
    """What the ledger gave back: the result, whether it came from the record, retries."""

    result: Any
    replayed: bool
    retries: int = 0


class RecordedFailure(ToolFailure):
    """A failure an earlier attempt of the same step recorded in the ledger."""


class Ledger:
    """Exactly-once execution of side-effecting tools, on the store's effects table."""

    def __init__(self, store: EffectStore) -> None:
        self.store = store

    def _execute(
        self,
        spec: ToolSpec,
        args: Mapping[str, Any],
        ctx: ToolContext,
        runner: ToolRunner | None = None,
        *,
        owner: str | None = None,
    ) -> Steps[LedgerResult]:
        """Call the tool once for this step, or return what an earlier attempt recorded.

        done: the recorded result, nothing called. failed: the recorded failure again, so
        a re-run sees what the first run saw. started: an idempotent tool is called again
        with the same key; any other raises EffectInDoubt. A timeout of a non-idempotent
        call leaves the key started and raises EffectInDoubt too. Async callers get the
        store's calls in a worker thread and the tool awaited (async tools on the runner's
        tool loop). ``owner``: the lease the run is driven under, which the reservation
        needs to be still held (LeaseLost if it is not); None: a run no driver leases.
        """
        runner = runner or ToolRunner()
        key = ctx.idempotency_key
        record = yield blocking(self.store.get_effect, key)
        recorded = outcome_of(spec, key, record)
        if recorded is not None:
            return recorded
        attempt = yield blocking(
            self.store.start_effect,
            key=key,
            thread_id=ctx.thread_id,
            step_id=ctx.step_id,
            tool=spec.name,
            args_digest=args_digest(args),
            seen=0 if record is None else record.attempts,
            owner=owner,
        )
        if attempt is None:  # refused: nothing was written
            if owner is not None:
                # Under a lease only its holder reserves the run's effects, one at a time:
                # refused, the lease has gone to another process, whatever the key says.
                raise LeaseLost(ctx.thread_id, owner)
            # No lease to go by: another caller moved the key since it was read.
            record = yield blocking(self.store.get_effect, key)
            recorded = outcome_of(spec, key, record)
            if recorded is not None:
                return recorded
            raise EffectInDoubt(
                spec.name,
                key,
                0 if record is None else record.attempts,
                "another call of the same step reserved it at the same moment",
            )
        try:
            called = yield from runner.attempts(spec, args, ctx)
        except ToolFailure as failure:
            if failure.kind == "timeout" and not callable_again(spec):
                yield blocking(
                    self.store.note_in_doubt, key, failure.message, retries=failure.retries
                )
                raise EffectInDoubt(spec.name, key, attempt, failure.message) from None
            failed = EffectOutcome(
                error=failure.message, error_kind=failure.kind, retries=failure.retries
            )
            kept = yield blocking(self.store.finish_effect, key, failed, attempt=attempt)
            _late(kept, spec, ctx, attempt, owner=owner, what=f"{failure.kind} failure")
            raise failure from None
        done = EffectOutcome(result=called.result, retries=called.retries)
        kept = yield blocking(self.store.finish_effect, key, done, attempt=attempt)
        _late(kept, spec, ctx, attempt, owner=owner, what="result")
        return LedgerResult(called.result, replayed=False, retries=called.retries)

    execute = synchronous(_execute)
    aexecute = asynchronous(_execute)
    steps = _execute
    """The ledger's procedure as steps, for a node's own procedure (``yield from``)."""


def _late(
    kept: bool, spec: ToolSpec, ctx: ToolContext, attempt: int, *, owner: str | None, what: str
) -> None:
    """Stop a caller whose attempt's outcome the ledger refused (``kept`` False).

    The attempt is no longer the one started: the caller was paused past its lease while
    another took the run over, and a person settled the call in doubt or another attempt
    began. That row is the later attempt's; writing over it would hide the later call,
    in doubt if its process dies. So the late outcome is not recorded, only logged for
    the person who settled it (an effect that happened after all), and a leased caller
    stops as when its reservation is refused."""
    if kept:
        return
    logger.warning(
        "run %r step %s: %r attempt %d ended (%s) after it was settled or tried again; "
        "the ledger keeps the later decision, not this outcome",
        ctx.thread_id,
        ctx.step_id,
        spec.name,
        attempt,
        what,
    )
    if owner is not None:
        raise LeaseLost(ctx.thread_id, owner)


def outcome_of(spec: ToolSpec, key: str, record: EffectRecord | None) -> LedgerResult | None:
    """What an earlier attempt's record says, before anything is called.

    None: nothing recorded, or an idempotent call that may start again. A result: done.
    Raises the recorded failure, or EffectInDoubt for a call that started and may have
    acted (a non-idempotent tool, or one whose process kept dying in it).
    """
    if record is None:
        return None
    if record.status == "done":
        return LedgerResult(record.result, replayed=True, retries=record.retries)
    if record.status == "failed":
        raise RecordedFailure(
            failure_kind(record.error_kind), record.error or "failed", retries=record.retries
        )
    if record.status == "started" and not callable_again(spec):
        raise EffectInDoubt(
            spec.name,
            key,
            record.attempts,
            record.error or "an earlier attempt started and never recorded its outcome",
        )
    if record.status == "started" and record.attempts >= CRASH_LIMIT:
        # Idempotent, so calling again is safe for the effect, but not for the process:
        # a call that died with its process this often is likely what kills it.
        raise EffectInDoubt(
            spec.name,
            key,
            record.attempts,
            f"{spec.name!r} was started {record.attempts} times and its process died "
            "each time before the call returned; it may be what kills the process, so "
            "it is not started again without a person",
            idempotent=True,
        )
    return None


def callable_again(spec: ToolSpec) -> bool:
    """Whether a call that started and left no outcome may simply be made again: an
    idempotent tool (its key makes a second call a no-op), or a read (it acts on nothing;
    the run graph keeps reads out of the ledger, an app's own graph records them)."""
    return spec.idempotent or spec.effect is Effect.READ


def failure_kind(value: str | None) -> FailureKind:
    """A recorded error kind as the contract's kind (unknown or missing: permanent)."""
    if value == "transient":
        return "transient"
    if value == "timeout":
        return "timeout"
    return "permanent"
