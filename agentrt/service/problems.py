"""Errors as RFC 9457 problem details (application/problem+json), in one place.

Every refusal the service makes (its own, a validation error, or an agentrt error raised by
the runtime) leaves through here, so a client reads one shape: type, title, status, detail,
instance, plus fields that say what to do (``retry_after``, ``errors``).
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from agentrt.errors import (
    AgentRuntimeError,
    AlreadyDecided,
    ApprovalExpired,
    ConfigError,
    IllegalTransition,
    InvalidDecision,
    NotAuthorized,
    RunBusy,
    UnknownRun,
)
from agentrt.logs import get_logger

__all__ = ["PROBLEM_JSON", "Problem", "install_problem_handlers", "problem_response"]

logger = get_logger("agentrt.service")

PROBLEM_JSON = "application/problem+json"

# Each agentrt error, the status it answers with, and its problem type (a URN: the types
# are names to branch on, not pages to fetch).
_ERRORS: tuple[tuple[type[AgentRuntimeError], int, str], ...] = (
    (UnknownRun, 404, "unknown-run"),
    (NotAuthorized, 403, "not-authorized"),
    (AlreadyDecided, 409, "already-decided"),
    (ApprovalExpired, 409, "approval-expired"),
    (InvalidDecision, 422, "invalid-decision"),
    (RunBusy, 409, "run-busy"),
    (IllegalTransition, 409, "illegal-transition"),
    (ConfigError, 422, "invalid-request"),
)

# Refusals that come as HTTP exceptions (routing, the body limit), by status.
_HTTP_TYPES = {404: "not-found", 405: "method-not-allowed", 413: "body-too-large"}

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class Problem(Exception):
    """A refusal to send as problem+json: raise it from any route or dependency."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    request: Request | None,
    status: int,
    detail: str,
    *,
    type: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"urn:agentrt:problem:{type}" if type else "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if request is not None:
        body["instance"] = request.url.path
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def status_of(exc: AgentRuntimeError) -> tuple[int, str]:
    """The HTTP status and problem type an agentrt error answers with."""
    for cls, status, kind in _ERRORS:
        if isinstance(exc, cls):
            return status, kind
    return 500, "runtime-error"


def install_problem_handlers(app: FastAPI) -> None:
    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(
            request, exc.status, exc.detail, type=exc.type, headers=exc.headers, **exc.extra
        )

    async def on_agentrt(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AgentRuntimeError)
        status, kind = status_of(exc)
        if status == 500:
            logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem_response(request, status, str(exc), type=kind)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        return problem_response(
            request,
            exc.status_code,
            str(exc.detail),
            type=_HTTP_TYPES.get(exc.status_code),
            headers=dict(exc.headers or {}),
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {
                "where": _text(".".join(str(p) for p in e["loc"])),
                "message": _text(e["msg"]),
                **({"got": e["input"]} if "input" in e and _is_json(e["input"]) else {}),
            }
            for e in exc.errors()
        ]
        summary = "; ".join(f"{e['where']}: {e['message']}" for e in errors)
        return problem_response(
            request,
            422,
            f"the request does not match the schema: {summary}; see /openapi.json",
            type="invalid-request",
            errors=errors,
        )

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return problem_response(
            request, 500, "the server failed on this request; its log has the details"
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(AgentRuntimeError, on_agentrt)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_unexpected)


def _is_json(value: Any) -> bool:
    """True if ``value`` can be echoed back in a JSON answer: finite numbers, text that is
    valid Unicode (a body may carry NaN, or a lone surrogate as an escape), at most
    _ECHO_DEPTH arrays and objects deep. Walked with a stack of its own: a refused body
    nested hundreds deep must not make its refusal fail."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if item is None or isinstance(item, bool | int):
            continue
        if isinstance(item, float):
            if not math.isfinite(item):
                return False
        elif isinstance(item, str):
            if _text(item) != item:
                return False
        elif isinstance(item, list | dict):
            if depth > _ECHO_DEPTH:
                return False
            if isinstance(item, dict):
                if not all(isinstance(k, str) and _text(k) == k for k in item):
                    return False
                stack.extend((v, depth + 1) for v in item.values())
            else:
                stack.extend((v, depth + 1) for v in item)
        else:
            return False
    return True


_ECHO_DEPTH = 64
"""How deep a refused value may nest and still be echoed back (``errors[].got``)."""


def _text(text: str) -> str:
    """``text`` as valid Unicode: characters UTF-8 cannot carry are shown escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
