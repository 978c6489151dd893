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

__all__ = ["EffectInDoubt", "Ledger", "LedgerResult", "effect_key"]


def effect_key(thread_id: str, step_id: str, tool: str, args: Mapping[str, Any]) -> str:
    """The idempotency key of one call: the same for every attempt of that step."""
    payload = canonical_json([thread_id, step_id, tool, dict(args)])
    return hashlib.sha256(payload.encode()).hexdigest()


class EffectInDoubt(Exception):
    """An earlier attempt of a non-idempotent call started and never recorded an outcome."""

    def __init__(self, tool: str, key: str) -> None:
        self.tool = tool
        self.key = key
        super().__init__(
            f"an earlier attempt of {tool!r} (effect key {key[:16]}...) started and was "
            "interrupted before recording its outcome; the tool is not idempotent, so calling "
            "it again could repeat the effect. Check the target system, then settle the run."
        )


@dataclass(frozen=True, slots=True)
class LedgerResult:
    """What the ledger gave back: the result, and whether it came from the record."""

    result: Any
    replayed: bool


class Ledger:
    """Exactly-once execution of side-effecting tools, on the store's effects table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def execute(self, spec: ToolSpec, args: Mapping[str, Any], ctx: ToolContext) -> LedgerResult:
        """Call the tool once for this step, or return what an earlier attempt recorded.

        A recorded failure is raised again as the tool's error, so a re-run sees the same
        outcome as the first run did.
        """
        key = ctx.idempotency_key
        record = self.store.get_effect(key)
        if record is not None and record.status == "done":
            return LedgerResult(record.result, replayed=True)
        if record is not None and record.status == "failed":
            raise RecordedFailure(record.error or "failed")
        if record is not None and record.status == "started" and not spec.idempotent:
            raise EffectInDoubt(spec.name, key)
        self.store.start_effect(
            key=key,
            thread_id=ctx.thread_id,
            step_id=ctx.step_id,
            tool=spec.name,
            args_digest=args_digest(args),
        )
        try:
            result = spec.call(args, ctx)
        except Exception as exc:
            self.store.finish_effect(key, error=f"{type(exc).__name__}: {exc}")
            raise
        self.store.finish_effect(key, result=result)
        return LedgerResult(result, replayed=False)


class RecordedFailure(Exception):
    """A failure an earlier attempt of the same step recorded in the ledger."""
