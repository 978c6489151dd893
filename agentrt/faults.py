"""Which failures may pass: a run stopped by one waits and is carried on, it does not fail.

A failure that may pass says nothing about the run: another process held the database's
write lock too long, the database server was restarting, a provider was down or
rate-limited for a minute. Ending the run for
it would lose work a person may already have approved; the run waits in status
waiting_retry instead, and resume (or the service's sweep, once retry_at has come) carries
it on from its last step. Every node may run twice, so going on from there repeats no
effect. A provider's answer that cannot succeed on retry (a bad request, a bad key, a
prompt past the context window) is a real failure, reported at once with its message.

Provider errors are read as LangChain's standard model errors say (``ModelError`` and its
``is_retryable``: rate limits, 5xx, connection and timeouts may pass); any other error with
an HTTP status is read by the status, as those errors do. A provider SDK's error with no
status (OpenAI's ``APIError`` for an error event in the middle of a stream, its answer's
200 already sent) is read by the error type its body names: a client's error type (a bad
request, a bad key) will not pass, any other (``server_error``, or none) may, as a
connection dropped mid-answer may.
"""

from __future__ import annotations

import email.utils
import sqlite3
import time
from typing import Any

from langchain_core.exceptions import ModelError

from agentrt.errors import DatabaseUnavailable

__all__ = ["retry_after", "retry_delay", "retryable_model_error", "transient_cause"]

# HTTP statuses a retry may get past: a timeout, a conflict, a rate limit, a server error.
_PASSING_STATUSES = frozenset({408, 409, 429})

# Error types (and codes) providers give a request that fails the same way every time:
# OpenAI's and Anthropic's words for a 400, 401, 403, 404, 413 and a prompt too long.
_CLIENT_ERROR_TYPES = frozenset(
    {
        "invalid_request_error",
        "authentication_error",
        "permission_error",
        "permission_denied",
        "not_found_error",
        "request_too_large",
        "invalid_api_key",
        "context_length_exceeded",
    }
)


def transient_cause(exc: BaseException) -> str | None:
    """Why ``exc`` may pass, in words; None if it is a real failure of the run.

    The first error of the chain (``exc``, then what raised it) that says either way
    decides: a bad request raised while handling a timeout is a bad request.
    """
    for cause in _chain(exc):
        if isinstance(cause, DatabaseUnavailable):
            return f"the database could not be reached: {cause}"
        if isinstance(cause, sqlite3.OperationalError) and _locked(cause):
            return f"the database stayed locked by another process ({cause})"
        passing = _passing(cause)
        if passing is True:
            return f"the model provider failed in a way that may pass: {cause}"
        if passing is False:
            return None
    return None


def retryable_model_error(exc: Exception) -> bool:
    """retry_on for the planner's RetryPolicy: only model errors that may pass (the
    store's own failures have waited out their patience already)."""
    return not isinstance(exc, DatabaseUnavailable) and _passing(exc) is True


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked to wait (Retry-After, or OpenAI's retry-after-ms)."""
    for cause in _chain(exc):
        headers = getattr(getattr(cause, "response", None), "headers", None)
        if headers is None:
            continue
        if (ms := headers.get("retry-after-ms")) is not None:
            try:
                return max(0.0, float(ms) / 1000)
            except ValueError:
                pass
        if (value := headers.get("retry-after")) is not None:
            return _seconds(value)
    return None


def retry_delay(failures: int, *, at_least: float | None = None) -> float:
    """Seconds to wait after the ``failures``-th failure in a row: 5 s, doubling, at most
    5 min; never less than ``at_least`` (what the provider asked for)."""
    delay = float(min(300, 5 * 2 ** max(0, failures - 1)))
    return max(delay, at_least or 0.0)


def _passing(exc: BaseException) -> bool | None:
    """True: a model or HTTP failure that may pass; False: one that will not; None: not a
    provider's failure at all."""
    if isinstance(exc, ModelError):
        return bool(exc.is_retryable)
    status = _status(exc)
    if status is not None:
        return status in _PASSING_STATUSES or status >= 500
    if isinstance(exc, TimeoutError | ConnectionError):
        return True
    if _sdk_api_error(exc):
        named = (getattr(exc, "type", None), getattr(exc, "code", None))
        return not any(isinstance(n, str) and n in _CLIENT_ERROR_TYPES for n in named)
    return None


def _sdk_api_error(exc: BaseException) -> bool:
    """True for a provider SDK's API error (OpenAI's and Anthropic's base class is named
    APIError, and keeps the request it answers): matched by name, as agentrt imports no
    provider's SDK."""
    return hasattr(exc, "request") and any(c.__name__ == "APIError" for c in type(exc).__mro__)


def _status(exc: BaseException) -> int | None:
    status: Any = getattr(exc, "status_code", None)
    if status is None:
        status = getattr(getattr(exc, "response", None), "status_code", None)
    return status if isinstance(status, int) else None


def _locked(exc: sqlite3.OperationalError) -> bool:
    return "locked" in str(exc) or "busy" in str(exc)


def _seconds(value: str) -> float | None:
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        return max(0.0, when.timestamp() - time.time())


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (a node's error wraps the real one)."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen
