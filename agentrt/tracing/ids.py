"""A run's trace and root span ids: one trace per run, whose root every segment (in any
process) can name without asking anyone, and the id generator that gives them out."""

from __future__ import annotations

import contextvars
import hashlib
import secrets

from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanContext, TraceFlags

__all__ = [
    "RUN_ROOT",
    "RUN_TRACE",
    "RunTraceIds",
    "new_trace_id",
    "remote_context",
    "root_span_id",
]

RUN_TRACE: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "agentrt_run_trace", default=None
)
"""The trace id the next span made in this context takes (a run's own)."""
RUN_ROOT: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "agentrt_run_root", default=None
)
"""The span id the next span made in this context takes (a run's root)."""


def new_trace_id() -> str:
    """A fresh W3C trace id, as 32 hex digits."""
    return secrets.token_hex(16)


def root_span_id(trace_id: str) -> str:
    """The span id of a run's root span, as 16 hex digits: worked out from the run's trace
    id, so every segment, in any process, knows the root it hangs under without asking
    anyone (whichever segment is the first to end becomes it)."""
    digest = hashlib.sha256(bytes.fromhex(trace_id)).hexdigest()[:16]
    return digest if int(digest, 16) else "0" * 15 + "1"  # an all-zero span id is invalid


class RunTraceIds(IdGenerator):
    """Gives a run's root span the trace id its run already has, and the span id
    root_span_id() says; any other span the usual ids."""

    def __init__(self, inner: IdGenerator) -> None:
        self.inner = inner

    def generate_span_id(self) -> int:
        wanted = RUN_ROOT.get()
        return wanted if wanted is not None else self.inner.generate_span_id()

    def generate_trace_id(self) -> int:
        wanted = RUN_TRACE.get()
        return wanted if wanted is not None else self.inner.generate_trace_id()


def remote_context(trace_id: int, span_id: str | int) -> SpanContext:
    """The context of a span another segment (maybe another process) wrote."""
    return SpanContext(
        trace_id=trace_id,
        span_id=span_id if isinstance(span_id, int) else int(span_id, 16),
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
