"""The effects ledger: each side effect is performed at most once per step, and recorded.

key = sha256(thread_id, step_id, tool name, canonical args). Reserve (started), call, record
(done or failed), each in its own committed transaction, so a process killed at any point
leaves a record that tells the next attempt what it may do.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentrt.approvals import args_digest, canonical_json
from agentrt.store.sqlite import Store
from agentrt.tools.contract import ToolContext, ToolSpec
from agentrt.tools.execution import FailureKind, ToolFailure, ToolRunner

__all__ = [
    "CRASH_LIMIT",
    "EffectInDoubt",
    "Ledger",
    "LedgerResult",
    "RecordedFailure",
    "effect_key",
    "failure_kind",
]


def effect_key(thread_id: str, step_id: str, tool: str, args: Mapping[str, Any]) -> str:
    """The idempotency key of one call: the same for every attempt of that step."""
    payload = canonical_json([thread_id, step_id, tool, dict(args)])
    return hashlib.sha256(payload.encode()).hexdigest()


CRASH_LIMIT = 2
"""Attempts of one call that may start and die with their process before a person is
asked: an idempotent tool is called again after one crash, not after two."""


class EffectInDoubt(Exception):
    """A call of a non-idempotent tool that started and has no recorded outcome.

    The process died mid-call, or the call timed out: the effect may or may not have
    happened, so the run asks a person (the reconcile gate) instead of calling again.
    """

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

    def __init__(self, store: Store) -> None:
        self.store = store

    def execute(
        self,
        spec: ToolSpec,
        args: Mapping[str, Any],
        ctx: ToolContext,
        runner: ToolRunner | None = None,
    ) -> LedgerResult:
        """Call the tool once for this step, or return what an earlier attempt recorded.

        done: the recorded result, nothing called. failed: the recorded failure again, so
        a re-run sees what the first run saw. started: an idempotent tool is called again
        with the same key; any other raises EffectInDoubt. A timeout of a non-idempotent
        call leaves the key started and raises EffectInDoubt too.
        """
        key = ctx.idempotency_key
        record = self.store.get_effect(key)
        if record is not None and record.status == "done":
            return LedgerResult(record.result, replayed=True, retries=record.retries)
        if record is not None and record.status == "failed":
            raise RecordedFailure(
                failure_kind(record.error_kind), record.error or "failed", retries=record.retries
            )
        if record is not None and record.status == "started" and not spec.idempotent:
            raise EffectInDoubt(
                spec.name,
                key,
                record.attempts,
                record.error or "an earlier attempt started and never recorded its outcome",
            )
        if record is not None and record.status == "started" and record.attempts >= CRASH_LIMIT:
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
        attempt = self.store.start_effect(
            key=key,
            thread_id=ctx.thread_id,
            step_id=ctx.step_id,
            tool=spec.name,
            args_digest=args_digest(args),
        )
        try:
            called = (runner or ToolRunner()).call(spec, args, ctx)
        except ToolFailure as failure:
            if failure.kind == "timeout" and not spec.idempotent:
                self.store.note_in_doubt(key, failure.message, retries=failure.retries)
                raise EffectInDoubt(spec.name, key, attempt, failure.message) from None
            self.store.finish_effect(
                key, error=failure.message, error_kind=failure.kind, retries=failure.retries
            )
            raise
        self.store.finish_effect(key, result=called.result, retries=called.retries)
        return LedgerResult(called.result, replayed=False, retries=called.retries)


def failure_kind(value: str | None) -> FailureKind:
    """A recorded error kind as the contract's kind (unknown or missing: permanent)."""
    if value == "transient":
        return "transient"
    if value == "timeout":
        return "timeout"
    return "permanent"
