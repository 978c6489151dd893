"""A run's trace and segment span ids: one trace per run, whose root, and each segment after
the one before, every process can name without asking anyone; and the id generator that
gives them out."""

from __future__ import annotations

import contextvars
import hashlib
import secrets
from string import hexdigits

from opentelemetry.sdk.trace.id_generator import IdGenerator
from opentelemetry.trace import SpanContext, TraceFlags

__all__ = [
    "RUN_ROOT",
    "RUN_TRACE",
    "RunTraceIds",
    "new_trace_id",
    "remote_context",
    "root_span_id",
    "segment_span_id",
]

RUN_TRACE: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "agentrt_run_trace", default=None
)
"""The trace id the next span made in this context takes (a run's own)."""
RUN_ROOT: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "agentrt_run_root", default=None
)
"""The span id the next span made in this context takes (a run's segment)."""


def new_trace_id() -> str:
    """A fresh W3C trace id, as 32 hex digits."""
    return secrets.token_hex(16)


def root_span_id(trace_id: str) -> str:
    """The span id of a run's root span, as 16 hex digits: worked out from the run's trace
    id, so every segment, in any process, knows the root it hangs under without asking
    anyone (whichever segment is the first to end becomes it)."""
    return _derived(bytes.fromhex(trace_id))


def segment_span_id(trace_id: str, previous_span_id: str | None) -> str:
    """The span id of the segment that follows ``previous_span_id`` (the last segment that
    ended; None: the run's root, root_span_id()), as 16 hex digits. Worked out, not drawn:
    a segment killed before its span left the process still had its node spans stored
    under this id, and whoever resumes the run next finds the same segment before it and
    takes the same id, so its span is the parent they were waiting for."""
    if previous_span_id is None:
        return root_span_id(trace_id)
    if len(previous_span_id) != 16 or not all(c in hexdigits for c in previous_span_id):
        # "" would give the root's own id: a segment its own parent.
        raise ValueError(f"a span id is 16 hex digits, got {previous_span_id!r}")
    return _derived(bytes.fromhex(trace_id) + bytes.fromhex(previous_span_id))


def _derived(seed: bytes) -> str:
    digest = hashlib.sha256(seed).hexdigest()[:16]
    return digest if int(digest, 16) else "0" * 15 + "1"  # an all-zero span id is invalid


class RunTraceIds(IdGenerator):
    """Gives a run's segment span the trace id its run already has, and the span id
    segment_span_id() says; any other span the usual ids."""

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
