"""Which failures may pass: a run stopped by one waits and is carried on, it does not fail.

A failure that may pass says nothing about the run: another process held the database's
write lock too long, a provider was down for a minute. Ending the run for it would lose
work a person may already have approved; the run waits in status waiting_retry instead,
and resume (or the service's sweep, once retry_at has come) carries it on from its last
step. Every node may run twice, so going on from there repeats no effect.
"""

from __future__ import annotations

import sqlite3

__all__ = ["retry_delay", "transient_cause"]


def transient_cause(exc: BaseException) -> str | None:
    """Why ``exc`` may pass, in words; None if it is a real failure of the run."""
    for cause in _chain(exc):
        if isinstance(cause, sqlite3.OperationalError) and (
            "locked" in str(cause) or "busy" in str(cause)
        ):
            return f"the database stayed locked by another process ({cause})"
    return None


def retry_delay(failures: int) -> float:
    """Seconds to wait after the ``failures``-th failure in a row: 5 s, doubling, at most 5 min."""
    return float(min(300, 5 * 2 ** max(0, failures - 1)))


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (a node's error wraps the real one)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
